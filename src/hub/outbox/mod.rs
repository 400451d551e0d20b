//! The per-connection outbound queue: bounded in messages and bytes, drained by the transport's writer.
//!
//! Publishers push shared frames without blocking. A connection whose queue overflows is marked for
//! closing with 4100 and its queue is dropped, so a client that does not read never slows others down.
//!
//! The writer's waker lives under the same lock as the queue, so a push costs one uncontended lock and
//! at most one wake-up (none while the writer is already awake).
//!
//! A transport whose socket can be written without blocking attaches it as a [`DirectSink`]: a frame
//! pushed while nothing is queued is then written by the pushing thread itself, under the queue's
//! lock, and the connection's task is not woken at all. Only what the socket does not take at once
//! is queued for the task ([`Outbox::pump`]). Every write to an attached socket happens under the
//! lock, so frames never interleave or reorder.
//!
//! Every connection's liveness is kept here too (when the client was last heard, whether it was
//! pinged, and for an attached socket since when it has been behind its queue), so that one task
//! checks every connection of every transport ([`Outbox::keepalive`]) instead of each connection's
//! task holding its own timer.

use std::collections::VecDeque;
use std::io;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use super::frame::Frame;

/// Close code sent to a client whose outbound queue overflowed (pusher-js retries after 1 s).
pub const OVERFLOW_CLOSE_CODE: u16 = 4100;

/// Control bytes (pongs) that may wait for a socket that is not taking them.
const MAX_CONTROL_BYTES: usize = 16 * 1024;

/// A request to end the connection with a Pusher close code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseRequest {
    /// The close code (4000-4299).
    pub code: u16,
    /// A short reason.
    pub reason: String,
}

/// Limits of one queue.
#[derive(Debug, Clone, Copy)]
pub struct OutboxLimits {
    /// Queued messages allowed.
    pub max_messages: usize,
    /// Queued bytes allowed.
    pub max_bytes: usize,
}

/// A socket that frames can be written to without blocking (see the module documentation).
pub trait DirectSink: Send + Sync {
    /// Writes what the socket takes now of the wire form ([`Frame::wire`]) of `frames`, starting
    /// `skip` bytes into the first one. Returns the bytes written; `WouldBlock` when the socket
    /// takes nothing.
    fn try_write(&self, frames: &mut dyn Iterator<Item = &Frame>, skip: usize) -> io::Result<usize>;
    /// [`DirectSink::try_write`] of one whole frame (`skip` 0), the case of a push to an empty
    /// queue; same result and accounting, possibly with a cheaper write.
    fn try_write_one(&self, frame: &Frame) -> io::Result<usize> {
        self.try_write(&mut std::iter::once(frame), 0)
    }
    /// Writes what the socket takes now of raw bytes (already framed).
    fn try_write_raw(&self, bytes: &[u8]) -> io::Result<usize>;
    /// Ready when the socket may take more bytes.
    fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

#[derive(Default)]
struct State {
    queue: VecDeque<Frame>,
    bytes: usize,
    /// Boxed, like `control`: rare, and every connection holds a queue.
    close: Option<Box<CloseRequest>>,
    /// The writer waiting in [`Outbox::next`] or [`Outbox::pump`], if it is waiting.
    waker: Option<Waker>,
    /// The attached socket, if any.
    sink: Option<Arc<dyn DirectSink>>,
    /// Wire bytes of `queue.front()` already written to the sink.
    head: usize,
    /// Framed control bytes (pong, ...) for the sink, written before the next whole frame.
    #[expect(clippy::box_collection, reason = "8 bytes per idle connection instead of 24")]
    control: Option<Box<Vec<u8>>>,
    /// Since when (see [`clock`]) the sink has not taken everything queued for it; 0 while it has.
    stalled_since: u64,
    /// When the client was last heard ([`clock`]).
    heard: u64,
    /// A ping was sent since the client was last heard.
    pinged: bool,
}

impl State {
    /// Lets go of the socket and of everything queued for it.
    fn release_socket(&mut self) {
        self.sink = None;
        self.queue = VecDeque::new();
        self.bytes = 0;
        self.head = 0;
        self.control = None;
    }

    /// Writes queued control bytes and frames to the sink until done (true) or the socket is full.
    fn write_out(&mut self, sink: &dyn DirectSink) -> io::Result<bool> {
        loop {
            if self.head == 0
                && let Some(control) = &mut self.control
            {
                let n = match sink.try_write_raw(control) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                    r => r?,
                };
                control.drain(..n);
                if control.is_empty() {
                    self.control = None;
                }
                continue;
            }
            if self.queue.is_empty() {
                if self.queue.capacity() > 0 {
                    self.queue = VecDeque::new();
                }
                return Ok(true);
            }
            let mut n = match sink.try_write(&mut self.queue.iter(), self.head) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                r => r?,
            };
            while let Some(f) = self.queue.front() {
                let rest = f.wire().len() - self.head;
                if n < rest {
                    self.head += n;
                    break;
                }
                n -= rest;
                self.head = 0;
                self.bytes -= f.len();
                self.queue.pop_front();
            }
            if self.head > 0 {
                // The socket took part of a frame: it is full for now.
                return Ok(false);
            }
        }
    }
}

struct Inner {
    state: Mutex<State>,
    limits: OutboxLimits,
    overflows: Arc<AtomicU64>,
}

/// A cheap handle to a connection's outbound queue.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox").finish_non_exhaustive()
    }
}

/// What [`Outbox::pump`] reports.
#[derive(Debug)]
pub enum Pumped {
    /// Everything queued is written; send this close and end the connection.
    Close(CloseRequest),
    /// The socket failed, none is attached, or [`Outbox::keepalive`] gave up on it.
    Failed,
}

/// Milliseconds on a monotonic clock shared by every connection (never 0).
pub fn clock() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX).saturating_add(1)
}

/// The liveness rules [`Outbox::keepalive`] applies, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Liveness {
    /// Silence after which the client is pinged.
    pub activity: u64,
    /// Further silence after a ping before the connection is closed with 4201.
    pub pong: u64,
    /// How long a socket may stay behind (not catch up with what is queued for it), and how long
    /// a 4201 close may take once due, before the socket is dropped.
    pub write: u64,
}

/// What [`Outbox::keepalive`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    /// Nothing was due.
    Alive,
    /// The client was pinged.
    Pinged,
    /// The client did not answer the ping: closing with 4201.
    Closed,
    /// The socket was dropped: it did not catch up, or the close was not completed, in time.
    Dropped,
}

/// What the writer should do next.
#[derive(Debug)]
pub enum Drained {
    /// Frames to write, in order (the batch vector is filled).
    Frames,
    /// Write what was drained, then close with this code.
    Close(CloseRequest),
}

impl Outbox {
    /// Creates an empty queue; `overflows` counts connections dropped for not reading.
    pub fn new(limits: OutboxLimits, overflows: Arc<AtomicU64>) -> Self {
        let state = State { heard: clock(), ..State::default() };
        Outbox { inner: Arc::new(Inner { state: Mutex::new(state), limits, overflows }) }
    }

    /// A new, empty queue with the same limits and overflow counter.
    pub fn sibling(&self) -> Outbox {
        Outbox::new(self.inner.limits, self.inner.overflows.clone())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the queue inconsistent; keep serving.
        self.inner.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues a frame, or writes it at once when a sink is attached and nothing is queued (the frame
    /// is cloned only to be queued). Returns false if the connection is closing or has just
    /// overflowed.
    pub fn push(&self, frame: &Frame) -> bool {
        let mut st = self.lock();
        if st.close.is_some() {
            return false;
        }
        let len = frame.len();
        if st.queue.len() >= self.inner.limits.max_messages || st.bytes + len > self.inner.limits.max_bytes {
            self.overflow(st);
            return false;
        }
        if st.queue.is_empty()
            && st.control.is_none()
            && let Some(sink) = &st.sink
        {
            match sink.try_write_one(frame) {
                Ok(n) if n == frame.wire().len() => return true,
                Ok(n) => st.head = n,
                // Blocked or failed: the writer finds out when it writes the queue.
                Err(_) => {}
            }
        }
        st.bytes += len;
        st.queue.push_back(frame.clone());
        // A writer waiting for a full socket is woken by the socket, not by more frames.
        let waker = if st.stalled_since == 0 { st.waker.take() } else { None };
        drop(st);
        wake(waker);
        true
    }

    /// Attaches a socket: from now on pushes write to it directly (see the module documentation),
    /// and the writer calls [`Outbox::pump`] instead of [`Outbox::next`].
    pub fn attach(&self, sink: Arc<dyn DirectSink>) {
        let mut st = self.lock();
        st.sink = Some(sink);
        st.heard = clock();
        if st.queue.is_empty() {
            // What the handshake drained leaves no buffer behind on an idle connection.
            st.queue = VecDeque::new();
        }
    }

    /// Detaches the socket (when the connection ends), so the queue no longer keeps it open.
    pub fn detach(&self) {
        self.lock().release_socket();
    }

    /// Drops what is queued (but a frame already partly written, and control bytes) and asks for a
    /// close with 4100.
    fn overflow(&self, mut st: MutexGuard<'_, State>) {
        // A frame already partly on the wire is finished before the close frame.
        let started = if st.head > 0 { st.queue.pop_front() } else { None };
        st.queue = VecDeque::new();
        st.bytes = started.as_ref().map_or(0, |f| f.len());
        st.queue.extend(started);
        st.close = Some(Box::new(CloseRequest {
            code: OVERFLOW_CLOSE_CODE,
            reason: "Over capacity: client is not reading".into(),
        }));
        let waker = st.waker.take();
        drop(st);
        self.inner.overflows.fetch_add(1, Ordering::Relaxed);
        wake(waker);
    }

    /// Queues framed control bytes for the attached socket, written before the next whole frame.
    /// A client that sends control frames (pings) faster than it reads their answers overflows
    /// like one that does not read its messages.
    pub fn push_control(&self, bytes: &[u8]) {
        let mut st = self.lock();
        if st.control.as_ref().map_or(0, |c| c.len()) + bytes.len() > MAX_CONTROL_BYTES {
            if st.close.is_none() {
                self.overflow(st);
            }
            return;
        }
        st.control.get_or_insert_default().extend_from_slice(bytes);
        let waker = st.waker.take();
        drop(st);
        wake(waker);
    }

    /// The writer of an attached socket: writes what is queued, then waits. Returns when the socket
    /// fails or is dropped by [`Outbox::keepalive`], or when everything before a requested close is
    /// written (the close frame itself is the writer's to send).
    pub async fn pump(&self) -> Pumped {
        std::future::poll_fn(|cx| self.poll_pump(cx)).await
    }

    /// [`Outbox::pump`] as a poll function.
    pub fn poll_pump(&self, cx: &mut Context<'_>) -> Poll<Pumped> {
        loop {
            let mut st = self.lock();
            // Taken out and put back in every branch, under the lock: no reference count traffic
            // on every poll, only when the socket is full and is waited on after the lock.
            let Some(sink) = st.sink.take() else {
                return Poll::Ready(Pumped::Failed);
            };
            match st.write_out(&*sink) {
                Err(_) => {
                    st.sink = Some(sink);
                    return Poll::Ready(Pumped::Failed);
                }
                Ok(true) => {
                    st.sink = Some(sink);
                    st.stalled_since = 0;
                    if let Some(c) = &st.close {
                        return Poll::Ready(Pumped::Close(CloseRequest::clone(c)));
                    }
                    if !st.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                        st.waker = Some(cx.waker().clone());
                    }
                    return Poll::Pending;
                }
                Ok(false) => {
                    st.sink = Some(sink.clone());
                    // Pushes only queue while something is queued: no need to wake this writer
                    // (but keepalive may, to drop it).
                    if !st.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                        st.waker = Some(cx.waker().clone());
                    }
                    if st.stalled_since == 0 {
                        st.stalled_since = clock();
                    }
                    drop(st);
                    match sink.poll_writable(cx) {
                        Poll::Ready(Ok(())) => continue,
                        Poll::Ready(Err(_)) => return Poll::Ready(Pumped::Failed),
                        Poll::Pending => return Poll::Pending,
                    }
                }
            }
        }
    }

    /// True while a socket is attached.
    pub fn is_attached(&self) -> bool {
        self.lock().sink.is_some()
    }

    /// True while the attached socket is not taking what is queued for it.
    pub fn is_stalled(&self) -> bool {
        self.lock().stalled_since != 0
    }

    /// Records that the client was heard at `now` ([`clock`]).
    pub fn heard(&self, now: u64) {
        let mut st = self.lock();
        st.heard = now;
        st.pinged = false;
    }

    /// Applies the liveness rules at `now` ([`clock`]), the one place they are written for every
    /// transport (the transports only report what they hear with [`Outbox::heard`]): pings a client
    /// silent for `activity` (with `ping`), closes with 4201 one still silent `pong` later. An
    /// attached socket is also dropped when it has not caught up with its queue for `write`, or
    /// when the 4201 close is still not done `write` after it was due; a queue without one is
    /// written by its transport's task, which bounds its own writes.
    pub fn keepalive(&self, now: u64, rules: &Liveness, ping: &Frame) -> Checked {
        let mut st = self.lock();
        let silent = now.saturating_sub(st.heard);
        let unanswered = rules.activity.saturating_add(rules.pong);
        if st.sink.is_some() {
            let stalled = st.stalled_since != 0 && now.saturating_sub(st.stalled_since) >= rules.write;
            if stalled || (st.pinged && silent >= unanswered.saturating_add(rules.write)) {
                self.abandon(st);
                return Checked::Dropped;
            }
        }
        if silent < rules.activity {
            return Checked::Alive;
        }
        if !st.pinged {
            st.pinged = true;
            drop(st);
            self.push(ping);
            return Checked::Pinged;
        }
        if silent >= unanswered && st.close.is_none() {
            drop(st);
            self.close(None, 4201, "Pong reply not received");
            return Checked::Closed;
        }
        Checked::Alive
    }

    /// Drops the attached socket now (the writer finds no socket and ends) and refuses later
    /// pushes: for a socket that never catches up, and at the end of a shutdown's grace period.
    /// Queues without an attached socket (other transports) are left alone.
    pub fn abort(&self) {
        let st = self.lock();
        if st.sink.is_some() {
            self.abandon(st);
        }
    }

    fn abandon(&self, mut st: MutexGuard<'_, State>) {
        st.release_socket();
        if st.close.is_none() {
            // Refuses pushes; never written (there is no socket to write it to).
            st.close = Some(Box::new(CloseRequest { code: 1006, reason: "dropped".into() }));
        }
        let waker = st.waker.take();
        drop(st);
        wake(waker);
    }

    /// Queues `frame` (if any) and then a close with `code`; later pushes are refused.
    pub fn close(&self, frame: Option<Frame>, code: u16, reason: &str) {
        let mut st = self.lock();
        if st.close.is_some() {
            return;
        }
        if let Some(f) = frame {
            st.bytes += f.len();
            st.queue.push_back(f);
        }
        st.close = Some(Box::new(CloseRequest { code, reason: reason.to_string() }));
        let waker = st.waker.take();
        drop(st);
        wake(waker);
    }

    /// True once a close was requested (by overflow, terminate or shutdown).
    pub fn is_closing(&self) -> bool {
        self.lock().close.is_some()
    }

    /// Moves every queued frame into `batch` (without waiting); a pending close comes last.
    pub fn drain(&self, batch: &mut Vec<Frame>) -> Option<Drained> {
        Self::drain_locked(&mut self.lock(), batch)
    }

    fn drain_locked(st: &mut State, batch: &mut Vec<Frame>) -> Option<Drained> {
        if st.queue.is_empty() && st.close.is_none() && st.control.is_none() {
            return None;
        }
        batch.extend(st.queue.drain(..));
        st.bytes = 0;
        if st.queue.capacity() > 64 {
            st.queue = VecDeque::new();
        }
        Some(match &st.close {
            Some(c) => Drained::Close(CloseRequest::clone(c)),
            None => Drained::Frames,
        })
    }

    /// Control bytes (pongs) queued by [`Outbox::push_control`] and not written yet, for a writer
    /// that drains with [`Outbox::next`]; they go out before the frames drained with them.
    pub fn take_control(&self) -> Option<Vec<u8>> {
        self.lock().control.take().map(|c| *c)
    }

    /// Waits until something is queued (frames, control bytes or a close), then drains the frames
    /// into `batch`. Meant for one writer task.
    pub async fn next(&self, batch: &mut Vec<Frame>) -> Drained {
        std::future::poll_fn(|cx| {
            let mut st = self.lock();
            if let Some(d) = Self::drain_locked(&mut st, batch) {
                return Poll::Ready(d);
            }
            if !st.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                st.waker = Some(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }

    /// Frames currently queued.
    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn wake(waker: Option<Waker>) {
    if let Some(w) = waker {
        w.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbox(max_messages: usize, max_bytes: usize) -> (Outbox, Arc<AtomicU64>) {
        let c = Arc::new(AtomicU64::new(0));
        (Outbox::new(OutboxLimits { max_messages, max_bytes }, c.clone()), c)
    }

    #[tokio::test]
    async fn drains_in_order_then_closes() {
        let (o, _) = outbox(10, 1000);
        assert!(o.push(&Frame::from("a")));
        assert!(o.push(&Frame::from("b")));
        let mut batch = Vec::new();
        assert!(matches!(o.next(&mut batch).await, Drained::Frames));
        assert_eq!(batch, vec![Frame::from("a"), Frame::from("b")]);
        batch.clear();
        o.close(Some(Frame::from("bye")), 4009, "terminated");
        assert!(!o.push(&Frame::from("late")));
        match o.next(&mut batch).await {
            Drained::Close(c) => assert_eq!(c.code, 4009),
            Drained::Frames => panic!("expected close"),
        }
        assert_eq!(batch, vec![Frame::from("bye")]);
    }

    #[tokio::test]
    async fn push_and_close_wake_a_waiting_writer() {
        let (o, _) = outbox(10, 1000);
        let writer = {
            let o = o.clone();
            tokio::spawn(async move {
                let mut batch = Vec::new();
                let first = o.next(&mut batch).await;
                let frames = std::mem::take(&mut batch);
                let second = o.next(&mut batch).await;
                (first, frames, second)
            })
        };
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        assert!(o.push(&Frame::from("x")));
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        o.close(None, 4009, "bye");
        let (first, frames, second) = writer.await.unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(first, Drained::Frames));
        assert_eq!(frames, vec![Frame::from("x")]);
        assert!(matches!(second, Drained::Close(c) if c.code == 4009));
    }

    #[tokio::test]
    async fn overflow_by_count_or_bytes_closes_with_4100() {
        let (o, counter) = outbox(2, 1000);
        assert!(o.push(&Frame::from("1")));
        assert!(o.push(&Frame::from("2")));
        assert!(!o.push(&Frame::from("3")));
        assert_eq!(counter.load(Ordering::Relaxed), 1);
        let mut batch = Vec::new();
        match o.next(&mut batch).await {
            Drained::Close(c) => assert_eq!(c.code, OVERFLOW_CLOSE_CODE),
            Drained::Frames => panic!("expected close"),
        }
        assert!(batch.is_empty(), "an overflowed queue is dropped");

        let (o, _) = outbox(100, 5);
        assert!(o.push(&Frame::from("abc")));
        assert!(!o.push(&Frame::from("abc")));
        assert!(o.is_closing());
    }

    /// A socket that takes everything (recording it) until told to take nothing, or only so many
    /// bytes more.
    #[derive(Default)]
    struct FakeSocket {
        written: Mutex<Vec<u8>>,
        full: std::sync::atomic::AtomicBool,
        /// Bytes it takes before it is full; no limit when `None`.
        room: Mutex<Option<usize>>,
    }

    impl FakeSocket {
        fn set_room(&self, room: Option<usize>) {
            *self.room.lock().unwrap_or_else(|p| p.into_inner()) = room;
        }
    }

    impl DirectSink for FakeSocket {
        fn try_write(&self, frames: &mut dyn Iterator<Item = &Frame>, skip: usize) -> io::Result<usize> {
            let mut room = self.room.lock().unwrap_or_else(|p| p.into_inner());
            if self.full.load(Ordering::Relaxed) || *room == Some(0) {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let mut w = self.written.lock().unwrap_or_else(|p| p.into_inner());
            let mut n = 0;
            for (i, f) in frames.enumerate() {
                let bytes = if i == 0 { &f.wire()[skip..] } else { f.wire() };
                let take = room.map_or(bytes.len(), |r| bytes.len().min(r - n));
                w.extend_from_slice(&bytes[..take]);
                n += take;
            }
            if let Some(r) = room.as_mut() {
                *r -= n;
            }
            Ok(n)
        }
        fn try_write_raw(&self, bytes: &[u8]) -> io::Result<usize> {
            self.try_write(&mut std::iter::empty(), 0)?;
            self.written.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn poll_writable(&self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Pending
        }
    }

    const RULES: Liveness = Liveness { activity: 1000, pong: 500, write: 2000 };

    /// Counts its wake-ups.
    #[derive(Default)]
    struct Wakes(AtomicU64);

    impl std::task::Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn attached() -> (Outbox, Arc<FakeSocket>) {
        let (o, _) = outbox(10, 1000);
        let sock = Arc::new(FakeSocket::default());
        o.attach(sock.clone());
        (o, sock)
    }

    /// The texts of the text frames written to `s`, one after the other; every frame must be whole.
    fn written(s: &FakeSocket) -> String {
        let bytes = s.written.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let (mut rest, mut texts) = (&bytes[..], String::new());
        while !rest.is_empty() {
            let (len, head) = match rest {
                [0x81, n @ 0..126, ..] => (usize::from(*n), 2),
                [0x81, 126, a, b, ..] => (usize::from(u16::from_be_bytes([*a, *b])), 4),
                _ => panic!("not a text frame header: {rest:?}"),
            };
            let Some((text, more)) = rest[head..].split_at_checked(len) else {
                panic!("a frame cut off: {rest:?}");
            };
            texts.push_str(&String::from_utf8_lossy(text));
            rest = more;
        }
        texts
    }

    #[test]
    fn frames_split_inside_a_header_and_inside_a_text_arrive_whole_and_in_order() {
        let (o, sock) = attached();
        let long = "L".repeat(200);
        // The socket takes 3 of the long frame's 4 header bytes; the rest is queued behind it.
        sock.set_room(Some(3));
        assert!(o.push(&Frame::from(long.as_str())));
        assert!(o.push(&Frame::from("short")));
        assert_eq!(o.len(), 2);
        let waker = futures_util::task::noop_waker();
        // Then 100 bytes, into the long frame's text; then everything.
        sock.set_room(Some(100));
        assert!(o.poll_pump(&mut Context::from_waker(&waker)).is_pending());
        assert_eq!(o.len(), 2);
        assert_eq!(sock.written.lock().unwrap_or_else(|p| p.into_inner()).len(), 103);
        sock.set_room(None);
        assert!(o.poll_pump(&mut Context::from_waker(&waker)).is_pending());
        assert!(o.is_empty());
        assert_eq!(written(&sock), format!("{long}short"));
    }

    #[test]
    fn a_silent_client_is_pinged_then_closed_with_4201_then_dropped() {
        let (o, sock) = attached();
        let ping = Frame::from("PING");
        let t0 = o.lock().heard;
        assert_eq!(o.keepalive(t0 + 999, &RULES, &ping), Checked::Alive);
        assert_eq!(o.keepalive(t0 + 1000, &RULES, &ping), Checked::Pinged);
        assert_eq!(written(&sock), "PING");
        assert_eq!(o.keepalive(t0 + 1400, &RULES, &ping), Checked::Alive, "pinged once, waiting for the pong");
        assert_eq!(o.keepalive(t0 + 1500, &RULES, &ping), Checked::Closed);
        assert!(o.is_closing());
        assert_eq!(o.keepalive(t0 + 1600, &RULES, &ping), Checked::Alive, "closing, within the write timeout");
        let wakes = Arc::new(Wakes::default());
        let waker = Waker::from(wakes.clone());
        assert!(o.poll_pump(&mut Context::from_waker(&waker)).is_ready(), "the close is the writer's to send");
        assert_eq!(o.keepalive(t0 + 3500, &RULES, &ping), Checked::Dropped);
        assert!(!o.is_attached());
        assert!(matches!(o.poll_pump(&mut Context::from_waker(&waker)), Poll::Ready(Pumped::Failed)));
    }

    #[test]
    fn hearing_the_client_starts_the_wait_again() {
        let (o, _sock) = attached();
        let ping = Frame::from("PING");
        let t0 = o.lock().heard;
        assert_eq!(o.keepalive(t0 + 1000, &RULES, &ping), Checked::Pinged);
        o.heard(t0 + 1200);
        assert_eq!(o.keepalive(t0 + 2100, &RULES, &ping), Checked::Alive);
        assert_eq!(o.keepalive(t0 + 2200, &RULES, &ping), Checked::Pinged);
    }

    #[test]
    fn a_socket_that_takes_nothing_is_dropped_after_the_write_timeout() {
        let (o, sock) = attached();
        let ping = Frame::from("PING");
        sock.full.store(true, Ordering::Relaxed);
        assert!(o.push(&Frame::from("queued")));
        let wakes = Arc::new(Wakes::default());
        let waker = Waker::from(wakes.clone());
        assert!(o.poll_pump(&mut Context::from_waker(&waker)).is_pending());
        assert!(o.is_stalled());
        assert!(o.push(&Frame::from("more")));
        assert_eq!(wakes.0.load(Ordering::Relaxed), 0, "a writer waiting for its socket is not woken by pushes");
        let since = o.lock().stalled_since;
        // The client keeps talking; only the socket's writes are stuck.
        o.heard(since + 1500);
        assert_eq!(o.keepalive(since + 1999, &RULES, &ping), Checked::Alive);
        assert_eq!(o.keepalive(since + 2000, &RULES, &ping), Checked::Dropped);
        assert_eq!(wakes.0.load(Ordering::Relaxed), 1, "the waiting writer is woken to end");
        assert!(matches!(o.poll_pump(&mut Context::from_waker(&waker)), Poll::Ready(Pumped::Failed)));
        assert!(!o.push(&Frame::from("late")), "a dropped socket takes no more frames");
        assert_eq!(o.inner.overflows.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_socket_that_catches_up_is_not_dropped() {
        let (o, sock) = attached();
        let ping = Frame::from("PING");
        sock.full.store(true, Ordering::Relaxed);
        assert!(o.push(&Frame::from("queued")));
        let waker = futures_util::task::noop_waker();
        assert!(o.poll_pump(&mut Context::from_waker(&waker)).is_pending());
        let since = o.lock().stalled_since;
        sock.full.store(false, Ordering::Relaxed);
        assert!(o.poll_pump(&mut Context::from_waker(&waker)).is_pending());
        assert!(!o.is_stalled());
        o.heard(since + 1900);
        assert_eq!(o.keepalive(since + 2500, &RULES, &ping), Checked::Alive);
        assert_eq!(written(&sock), "queued");
    }

    #[test]
    fn queues_without_a_socket_get_the_same_pings_and_4201_but_are_not_dropped() {
        let (o, _) = outbox(10, 1000);
        let ping = Frame::from("PING");
        let t0 = o.lock().heard;
        assert!(t0 > 0, "a new queue counts as just heard");
        assert_eq!(o.keepalive(t0 + 999, &RULES, &ping), Checked::Alive);
        assert_eq!(o.keepalive(t0 + 1000, &RULES, &ping), Checked::Pinged);
        assert_eq!(o.len(), 1, "the ping waits for the transport's writer");
        assert_eq!(o.keepalive(t0 + 1500, &RULES, &ping), Checked::Closed);
        assert!(o.is_closing());
        assert_eq!(o.keepalive(u64::MAX, &RULES, &ping), Checked::Alive, "its writer bounds its own writes");
        o.abort();
        assert!(o.is_closing(), "abort leaves a queue without a socket to its transport");
    }

    #[test]
    fn abort_wakes_an_idle_writer_and_ends_it() {
        let (o, _sock) = attached();
        let wakes = Arc::new(Wakes::default());
        let waker = Waker::from(wakes.clone());
        assert!(o.poll_pump(&mut Context::from_waker(&waker)).is_pending());
        o.abort();
        assert_eq!(wakes.0.load(Ordering::Relaxed), 1);
        assert!(matches!(o.poll_pump(&mut Context::from_waker(&waker)), Poll::Ready(Pumped::Failed)));
    }
}
