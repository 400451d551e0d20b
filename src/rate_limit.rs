//! [`RateWindow`]: the one rate-limit rule, a fixed one-second window that opens with the first
//! request after the previous one closed. It limits client events per connection (Pusher error
//! 4301), and per app token-authorization requests, REST events and REST reads (HTTP 429).
//!
//! Hand-written rather than `governor`: a window lives in every connection, so it is 12 bytes with
//! 4-byte alignment (it packs beside a `u32` of the connection; a governor limiter per connection
//! would hold its own state, quota and clock), and the caller passes the time in, which keeps the
//! rule testable without a clock.

/// A fixed one-second window: how many requests it has taken, and when it opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateWindow {
    taken: u32,
    /// When the window opened, in milliseconds of the caller's clock, as two halves so that the
    /// window needs only 4-byte alignment.
    opened: [u32; 2],
}

/// The length of a window, in milliseconds.
const WINDOW_MS: u64 = 1000;

impl RateWindow {
    /// A window opened at `now_ms`, nothing taken yet.
    pub fn new(now_ms: u64) -> Self {
        RateWindow { taken: 0, opened: split(now_ms) }
    }

    /// Takes one request at `now_ms` if fewer than `per_second` were taken in the current window;
    /// false (nothing taken) when the window is full. A window that has lasted a second is
    /// replaced by one opening now.
    pub fn take(&mut self, now_ms: u64, per_second: u32) -> bool {
        self.take_n(now_ms, 1, per_second)
    }

    /// Takes `n` requests at once, or none (when fewer than `n` are left in the current window).
    pub fn take_n(&mut self, now_ms: u64, n: u32, per_second: u32) -> bool {
        let opened = u64::from(self.opened[0]) << 32 | u64::from(self.opened[1]);
        if now_ms.saturating_sub(opened) >= WINDOW_MS {
            *self = RateWindow::new(now_ms);
        }
        if per_second.saturating_sub(self.taken) < n {
            return false;
        }
        self.taken += n;
        true
    }
}

fn split(ms: u64) -> [u32; 2] {
    [(ms >> 32) as u32, ms as u32]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_up_to_the_limit_then_refuses_until_a_second_has_passed() {
        let mut w = RateWindow::new(5_000);
        assert!((0..3).all(|_| w.take(5_000, 3)));
        assert!(!w.take(5_999, 3), "still the same window");
        assert!(w.take(6_000, 3), "a second after it opened");
        assert!(w.take(6_500, 3) && w.take(6_999, 3));
        assert!(!w.take(6_999, 3));
    }

    #[test]
    fn several_are_taken_at_once_or_none() {
        let mut w = RateWindow::new(0);
        assert!(w.take_n(0, 3, 5));
        assert!(!w.take_n(10, 3, 5), "two left: three are refused, none taken");
        assert!(w.take_n(10, 2, 5));
        assert!(!w.take(10, 5));
        assert!(!w.take_n(1_000, 6, 5), "more than a whole window never fits");
        assert!(w.take_n(1_000, 5, 5));
    }

    #[test]
    fn the_window_opens_with_the_first_request_after_it_closed() {
        let mut w = RateWindow::new(0);
        assert!(w.take(10_000, 1));
        assert!(!w.take(10_900, 1), "the new window opened at 10,000, not at 10,000 rounded");
        assert!(w.take(11_000, 1));
    }

    #[test]
    fn a_zero_limit_refuses_everything_and_times_past_u32_work() {
        let mut w = RateWindow::new(0);
        assert!(!w.take(0, 0));
        let late = u64::from(u32::MAX) * 3;
        let mut w = RateWindow::new(late);
        assert!(w.take(late, 1));
        assert!(!w.take(late + 999, 1));
        assert!(w.take(late + 1_000, 1));
        assert_eq!(std::mem::size_of::<RateWindow>(), 12);
        assert_eq!(std::mem::align_of::<RateWindow>(), 4);
    }
}
