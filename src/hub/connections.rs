//! [`Connections`]: an app's connections on this node: the quota (`max_connections`, Pusher error
//! 4004) and the queue of every open connection, which the keepalive sweep, shutdown and the auth
//! endpoints' liveness check go through.

use super::{ConnId, ConnRef, Outbox};
use dashmap::DashMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// An app's open connections on this node.
#[derive(Debug, Default)]
pub struct Connections {
    /// Slots taken (reserved before the connection is registered).
    count: AtomicU64,
    /// Open connections, with their queues.
    live: DashMap<ConnId, Outbox>,
}

impl Connections {
    /// Connections currently open.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Reserves a slot; false when `max` (0: unlimited) are taken.
    pub fn try_reserve(&self, max: u64) -> bool {
        self.count.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (max == 0 || n < max).then_some(n + 1)).is_ok()
    }

    /// Releases a slot taken by [`Connections::try_reserve`].
    pub fn release(&self) {
        let _ = self.count.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| Some(n.saturating_sub(1)));
    }

    /// Marks a connection as open (`true`) or closed (`false`).
    pub fn set_live(&self, conn: &ConnRef, live: bool) {
        if live {
            self.live.insert(conn.id, conn.outbox.clone());
        } else {
            self.live.remove(&conn.id);
        }
    }

    /// Calls `f` with the queue of every open connection. `f` runs under a read lock of the map: it
    /// must not open or close connections.
    pub fn for_each_live(&self, mut f: impl FnMut(&Outbox)) {
        for entry in self.live.iter() {
            f(entry.value());
        }
    }

    /// Whether a connection is open.
    pub fn is_live(&self, conn: ConnId) -> bool {
        self.live.contains_key(&conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quota_holds_and_released_slots_come_back() {
        let c = Connections::default();
        assert!(c.try_reserve(1));
        assert!(!c.try_reserve(1));
        c.release();
        assert!(c.try_reserve(1));
        assert!((0..5).all(|_| c.try_reserve(0)), "0 is unlimited");
        assert_eq!(c.count(), 6);
    }
}
