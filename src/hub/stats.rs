//! [`Stats`]: the counters of one app (per-app labels in metrics; summed for `/usage`). Plain
//! relaxed atomics, so the hot path never touches a metrics registry. Each counter is named once,
//! in the list below; the snapshot type and its sum follow from it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($( $(#[$doc:meta])* $name:ident : $ty:ty ),* $(,)?) => {
        /// Counters of one app.
        #[derive(Debug, Default)]
        pub struct Stats {
            $( $(#[$doc])* pub $name: $ty, )*
        }

        /// A point-in-time copy of [`Stats`].
        #[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
        pub struct StatsSnapshot {
            $( $(#[$doc])* pub $name: u64, )*
        }

        impl Stats {
            /// Reads every counter.
            pub fn snapshot(&self) -> StatsSnapshot {
                StatsSnapshot { $( $name: self.$name.load(Ordering::Relaxed), )* }
            }
        }

        impl std::ops::Add for StatsSnapshot {
            type Output = StatsSnapshot;
            fn add(self, o: StatsSnapshot) -> StatsSnapshot {
                StatsSnapshot { $( $name: self.$name + o.$name, )* }
            }
        }
    };
}

counters! {
    /// Connections accepted since start.
    connections_opened: AtomicU64,
    /// Connections closed since start.
    connections_closed: AtomicU64,
    /// Connections closed because their outbound queue overflowed (shared with every outbox).
    outbox_overflows: Arc<AtomicU64>,
    /// Events published through the REST API.
    events_published: AtomicU64,
    /// Frames queued for subscribers by fan-out.
    deliveries: AtomicU64,
    /// Client events refused by the rate limit.
    rate_limited: AtomicU64,
    /// WebSocket messages received from clients.
    messages_in: AtomicU64,
    /// WebSocket messages written to clients.
    messages_out: AtomicU64,
    /// Payload bytes received from clients.
    bytes_in: AtomicU64,
    /// Payload bytes written to clients.
    bytes_out: AtomicU64,
    /// HTTP fallback sessions open now (a gauge: up when one opens, down when it ends).
    http_sessions: AtomicU64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_read_and_sum_every_counter() {
        let s = Stats::default();
        s.deliveries.fetch_add(3, Ordering::Relaxed);
        s.outbox_overflows.fetch_add(2, Ordering::Relaxed);
        let snap = s.snapshot();
        assert_eq!((snap.deliveries, snap.outbox_overflows, snap.bytes_out), (3, 2, 0));
        let sum = snap + snap;
        assert_eq!((sum.deliveries, sum.outbox_overflows), (6, 4));
    }
}
