//! The attached socket: attaching it, the writer that writes the queue to it ([`Outbox::pump`]),
//! and letting it go.

use super::{CloseRequest, DirectSink, Outbox, State, clock};
use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::task::{Context, Poll};

/// What [`Outbox::pump`] reports.
#[derive(Debug)]
pub enum Pumped {
    /// Everything queued is written; send this close and end the connection.
    Close(CloseRequest),
    /// The socket failed, none is attached, or [`Outbox::keepalive`] gave up on it.
    Failed,
}

impl State {
    /// Lets go of the socket and of everything queued for it.
    pub(super) fn release_socket(&mut self) {
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

impl Outbox {
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
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{attached, written};
    use super::*;
    use crate::hub::Frame;

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
}
