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
//!
//! Files: this one holds the queue ([`Outbox`]: pushes, closes, the batches a writer task drains)
//! and what it is made of; `pump.rs` the attached socket (attaching it, writing the queue to it,
//! letting it go); `liveness.rs` the liveness rules ([`clock`], [`Outbox::keepalive`], aborting).

mod liveness;
mod pump;
#[cfg(test)]
mod test_support;

pub use liveness::{Checked, Liveness, clock};
pub use pump::Pumped;

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

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

    /// The close requested so far, if any (for the debug console's disconnection rows).
    pub fn close_request(&self) -> Option<CloseRequest> {
        self.lock().close.as_deref().cloned()
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

    /// Waits until something is queued (frames or a close), then drains the frames into `batch`.
    /// Meant for one writer task of a transport without control frames (the HTTP fallback).
    pub async fn next(&self, batch: &mut Vec<Frame>) -> Drained {
        self.next_with_control(batch, &mut Vec::new()).await
    }

    /// [`Outbox::next`] for a WebSocket writer: control bytes (pongs) queued by
    /// [`Outbox::push_control`] are appended to `control` under the same lock, to go out before the
    /// frames drained with them.
    pub async fn next_with_control(&self, batch: &mut Vec<Frame>, control: &mut Vec<u8>) -> Drained {
        std::future::poll_fn(|cx| {
            let mut st = self.lock();
            if let Some(d) = Self::drain_locked(&mut st, batch) {
                // Taken only with a batch handed out: a waiting writer that is dropped loses nothing.
                if let Some(c) = st.control.take() {
                    control.extend_from_slice(&c);
                }
                return Poll::Ready(d);
            }
            if !st.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                st.waker = Some(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }

    /// Messages and bytes that can still be queued before the queue overflows.
    pub fn room(&self) -> (usize, usize) {
        let st = self.lock();
        let limits = self.inner.limits;
        (limits.max_messages.saturating_sub(st.queue.len()), limits.max_bytes.saturating_sub(st.bytes))
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
    use super::test_support::outbox;
    use super::*;

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

    #[tokio::test]
    async fn pongs_go_out_with_the_next_batch_and_a_dropped_wait_loses_none() {
        let (o, _) = outbox(10, 1000);
        let (mut batch, mut control) = (Vec::new(), Vec::new());
        // A writer that stops waiting (its select took another branch) takes nothing.
        let waited =
            tokio::time::timeout(std::time::Duration::from_millis(10), o.next_with_control(&mut batch, &mut control));
        assert!(waited.await.is_err());
        o.push_control(b"PONG");
        assert!(matches!(o.next_with_control(&mut batch, &mut control).await, Drained::Frames));
        assert_eq!((batch.len(), control.as_slice()), (0, &b"PONG"[..]));
        o.push_control(b"PONG2");
        assert!(o.push(&Frame::from("f")));
        control.clear();
        assert!(matches!(o.next_with_control(&mut batch, &mut control).await, Drained::Frames));
        assert_eq!((batch.len(), control.as_slice()), (1, &b"PONG2"[..]));
    }
}
