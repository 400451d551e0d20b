//! The per-connection outbound queue: bounded in messages and bytes, drained by the transport's writer.
//!
//! Publishers push shared frames without blocking. A connection whose queue overflows is marked for
//! closing with 4100 and its queue is dropped, so a client that does not read never slows others down.
//!
//! The writer's waker lives under the same lock as the queue, so a push costs one uncontended lock and
//! at most one wake-up (none while the writer is already awake).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// One encoded message, shared by every recipient (cloning bumps a reference count).
pub type Frame = Utf8Bytes;

/// Close code sent to a client whose outbound queue overflowed (pusher-js retries after 1 s).
pub const OVERFLOW_CLOSE_CODE: u16 = 4100;

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

#[derive(Default)]
struct State {
    queue: VecDeque<Frame>,
    bytes: usize,
    close: Option<CloseRequest>,
    /// The writer waiting in [`Outbox::next`], if it is waiting.
    waker: Option<Waker>,
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
        Outbox { inner: Arc::new(Inner { state: Mutex::new(State::default()), limits, overflows }) }
    }

    /// A new, empty queue with the same limits and overflow counter.
    pub fn sibling(&self) -> Outbox {
        Outbox::new(self.inner.limits, self.inner.overflows.clone())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the queue inconsistent; keep serving.
        self.inner.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues a frame. Returns false if the connection is closing or has just overflowed.
    pub fn push(&self, frame: Frame) -> bool {
        let mut st = self.lock();
        if st.close.is_some() {
            return false;
        }
        let len = frame.len();
        if st.queue.len() >= self.inner.limits.max_messages || st.bytes + len > self.inner.limits.max_bytes {
            st.queue = VecDeque::new();
            st.bytes = 0;
            st.close =
                Some(CloseRequest { code: OVERFLOW_CLOSE_CODE, reason: "Over capacity: client is not reading".into() });
            let waker = st.waker.take();
            drop(st);
            self.inner.overflows.fetch_add(1, Ordering::Relaxed);
            wake(waker);
            return false;
        }
        st.bytes += len;
        st.queue.push_back(frame);
        let waker = st.waker.take();
        drop(st);
        wake(waker);
        true
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
        st.close = Some(CloseRequest { code, reason: reason.to_string() });
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
        if st.queue.is_empty() && st.close.is_none() {
            return None;
        }
        batch.extend(st.queue.drain(..));
        st.bytes = 0;
        if st.queue.capacity() > 64 {
            st.queue = VecDeque::new();
        }
        Some(match &st.close {
            Some(c) => Drained::Close(c.clone()),
            None => Drained::Frames,
        })
    }

    /// Waits until something is queued, then drains it into `batch`. Meant for one writer task.
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
        assert!(o.push(Frame::from("a")));
        assert!(o.push(Frame::from("b")));
        let mut batch = Vec::new();
        assert!(matches!(o.next(&mut batch).await, Drained::Frames));
        assert_eq!(batch, vec![Frame::from("a"), Frame::from("b")]);
        batch.clear();
        o.close(Some(Frame::from("bye")), 4009, "terminated");
        assert!(!o.push(Frame::from("late")));
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
        assert!(o.push(Frame::from("x")));
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
        assert!(o.push(Frame::from("1")));
        assert!(o.push(Frame::from("2")));
        assert!(!o.push(Frame::from("3")));
        assert_eq!(counter.load(Ordering::Relaxed), 1);
        let mut batch = Vec::new();
        match o.next(&mut batch).await {
            Drained::Close(c) => assert_eq!(c.code, OVERFLOW_CLOSE_CODE),
            Drained::Frames => panic!("expected close"),
        }
        assert!(batch.is_empty(), "an overflowed queue is dropped");

        let (o, _) = outbox(100, 5);
        assert!(o.push(Frame::from("abc")));
        assert!(!o.push(Frame::from("abc")));
        assert!(o.is_closing());
    }
}
