//! Scale-out: how nodes of one cluster share state and messages.
//!
//! With `adapter = "local"` (the default) there is no adapter: one node's registry answers everything.
//! With `adapter = "redis"`, [`RedisAdapter`] keeps the cluster-wide part of the state in Redis (one
//! server, the master Sentinels name, or a Redis Cluster) and carries messages between nodes over
//! Redis pub/sub:
//!
//! - a REST event is one message per channel, on that channel's topic, which only the nodes with a
//!   subscriber on the channel listen to (interest routing; sharded pub/sub on a Redis Cluster);
//!   member events, counts and `terminate` go on the bus topic every node listens to;
//! - subscription counts and presence members live in Redis hashes, changed by one Lua script per
//!   subscribe or unsubscribe, which also decides the cluster-wide transitions (first subscriber,
//!   last subscriber, first and last socket of a presence user);
//! - each node heartbeats into a sorted set and records what it contributed in per-node hashes, so a
//!   node that dies without saying goodbye is swept by the others and its members removed.
//!
//! The adapter knows nothing of the hub: what comes from other nodes and the transitions the scripts
//! decide are handed over as [`Inbound`] values, which the hub consumes.
//!
//! Where things are: `redis.rs` is the handle the hub holds; `link.rs` what the handle and its
//! background tasks share (settings, connection, key and topic names from `keys.rs`, counters,
//! up/down flags, helpers reading replies); `node_state/` the task writing this node's state
//! (`write.rs`, `heartbeat.rs` with sweeping and handover, `reconcile.rs`); `bus_publisher.rs` and
//! `bus_reader.rs` (with this node's interest in channel topics) the bus tasks, `subscription.rs`
//! the reader's connection; `bus.rs` the messages on the bus; `queries.rs` the cluster-wide reads;
//! `scripts.rs` the Lua scripts and the key layout; `history.rs` the channels' history
//! (its scripts, keys and reads). The tasks get an `Arc` of the link, never the
//! handle.

mod bus;
mod bus_publisher;
mod bus_reader;
mod error;
mod history;
mod keys;
mod link;
mod local_or_redis;
mod nats;
mod node_state;
mod queries;
mod redis;
mod scripts;
mod subscription;

pub use bus::BusMessage;
pub use error::ClusterError;
pub use history::Kept;
pub use link::{AdapterStats, Settings};
pub use local_or_redis::Adapter;
pub use redis::{PositionedEvent, RedisAdapter};

/// A subscribe (`delta` +1) or unsubscribe (-1) as the cluster sees it.
#[derive(Debug, Clone)]
pub struct SubRequest {
    /// App id.
    pub app: String,
    /// Channel name.
    pub channel: String,
    /// +1 on subscribe, -1 on unsubscribe.
    pub delta: i64,
    /// Presence member key and its stored value (see [`member_value`]).
    pub member: Option<(String, String)>,
    /// Distinct members allowed on a presence channel.
    pub max_members: usize,
    /// Whether the reply should carry the member list (presence subscribe).
    pub want_members: bool,
    /// Whether the reply should carry the cached event (cache channel subscribe).
    pub want_cache: bool,
    /// Whether the channel's subscribers get `subscription_count` updates.
    pub count_events: bool,
    /// Whether the app has webhooks (departures then leave a marker for the leave delay).
    pub webhooks: bool,
    /// Set by the adapter on a subscribe that wants the member list: the script publishes
    /// [`BusMessage::Listed`] with it after any member event that precedes the list.
    pub listed: Option<u64>,
}

/// What a subscribe learned from the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubOutcome {
    /// Recorded cluster-wide.
    Applied {
        /// Members as `(key, stored value)` when asked for.
        members: Vec<(String, String)>,
        /// The cached event (`{"event":..,"data":..}`) when asked for and present.
        cache: Option<String>,
    },
    /// The presence channel already has `max_members` distinct members; nothing was recorded.
    Full,
    /// Redis could not be reached; the caller proceeds with what this node knows. The state is
    /// written when Redis is back.
    Unavailable,
}

/// A cluster-wide change of one channel, decided in Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The first subscriber in the cluster arrived.
    Occupied {
        /// Back within the leave delay: the pending `channel_vacated` is cancelled, and so is this.
        rejoin: bool,
    },
    /// The last subscriber in the cluster left.
    Vacated {
        /// A marker waits for the leave delay; the webhook goes out only if nobody consumed it.
        marker: bool,
    },
    /// A presence user's first socket in the cluster joined; `value` as stored.
    MemberAdded {
        /// Member key.
        user: String,
        /// Stored value (see [`member_value`]).
        value: String,
        /// Back within the leave delay (see [`Change::Occupied`]).
        rejoin: bool,
    },
    /// A presence user's last socket in the cluster left.
    MemberRemoved {
        /// Member key.
        user: String,
        /// Stored value (see [`member_value`]).
        value: String,
        /// See [`Change::Vacated`].
        marker: bool,
    },
    /// The cluster-wide subscriber count changed because a dead node was swept (for
    /// `subscription_count`; counts changed by subscribes travel on the bus).
    Count(i64),
}

/// A [`Change`] of one app's channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// App id.
    pub app: String,
    /// Channel name.
    pub channel: String,
    /// What happened.
    pub change: Change,
}

/// What the adapter hands to the hub.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    /// A message published by another node.
    Bus(BusMessage),
    /// A transition this node observed and must announce (as webhooks).
    Transition(Transition),
    /// This node's state was written back to Redis after an outage.
    Resynced,
}

/// The stored form of a presence member: its id as JSON, a newline, its `user_info` JSON (or `null`).
pub fn member_value(id_json: &str, info_json: Option<&str>) -> String {
    format!("{id_json}\n{}", info_json.unwrap_or("null"))
}

/// Splits a [`member_value`] into the id JSON and the info JSON.
pub fn split_member_value(value: &str) -> (&str, &str) {
    value.split_once('\n').unwrap_or((value, "null"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_values_round_trip() {
        let v = member_value("\"u1\"", Some("{\n\"name\": \"A\"\n}"));
        assert_eq!(split_member_value(&v), ("\"u1\"", "{\n\"name\": \"A\"\n}"));
        assert_eq!(split_member_value(&member_value("42", None)), ("42", "null"));
    }
}
