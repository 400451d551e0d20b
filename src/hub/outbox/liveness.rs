//! Liveness: the clock every connection shares, the rules [`Outbox::keepalive`] applies to every
//! queue (pings, the 4201 close, dropping a socket that does not catch up), and [`Outbox::abort`].

use super::{CloseRequest, Outbox, State, wake};
use crate::hub::Frame;
use std::sync::{MutexGuard, OnceLock};
use std::time::Instant;

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

impl Outbox {
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
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{Wakes, attached, outbox, written};
    use super::*;
    use crate::hub::Pumped;
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use std::task::{Context, Poll, Waker};

    const RULES: Liveness = Liveness { activity: 1000, pong: 500, write: 2000 };

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
