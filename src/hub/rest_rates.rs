//! An app's REST rate limits on this node: events published per second (each event counts once
//! per channel it names, so a batch and a multi-channel trigger cost what they deliver) and read
//! requests per second. A limit of 0 means unlimited, and then nothing is locked or counted.

use super::{AppState, clock, lock};
use crate::rate_limit::RateWindow;
use std::sync::Mutex;

/// The app's two REST windows.
#[derive(Debug)]
pub struct RestRates {
    events: Mutex<RateWindow>,
    reads: Mutex<RateWindow>,
}

impl Default for RestRates {
    fn default() -> Self {
        RestRates { events: Mutex::new(RateWindow::new(clock())), reads: Mutex::new(RateWindow::new(clock())) }
    }
}

impl AppState {
    /// Takes `n` event deliveries (events x channels) from this second's allowance; false when
    /// they do not fit (`max_backend_events_per_second`).
    pub fn take_rest_events(&self, n: usize) -> bool {
        let limit = self.config().max_backend_events_per_second;
        limit == 0 || lock(&self.rest_rates.events).take_n(clock(), u32::try_from(n).unwrap_or(u32::MAX), limit)
    }

    /// Takes one read request (channel info, channel list, presence users) from this second's
    /// allowance (`max_read_requests_per_second`).
    pub fn take_rest_read(&self) -> bool {
        let limit = self.config().max_read_requests_per_second;
        limit == 0 || lock(&self.rest_rates.reads).take(clock(), limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AppConfig;
    use crate::hub::Stats;
    use std::sync::Arc;

    fn app(events: u32, reads: u32) -> AppState {
        let config = AppConfig {
            max_backend_events_per_second: events,
            max_read_requests_per_second: reads,
            ..AppConfig::development()
        };
        AppState::new(config, Arc::new(Stats::default()), None)
    }

    #[test]
    fn zero_is_unlimited() {
        let a = app(0, 0);
        assert!((0..10_000).all(|_| a.take_rest_events(100) && a.take_rest_read()));
    }

    #[test]
    fn events_count_per_channel_and_reads_per_request() {
        let a = app(10, 2);
        assert!(a.take_rest_events(4));
        assert!(a.take_rest_events(6));
        assert!(!a.take_rest_events(1), "ten deliveries this second");
        assert!(a.take_rest_read() && a.take_rest_read());
        assert!(!a.take_rest_read());
    }
}
