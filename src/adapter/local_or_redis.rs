//! [`Adapter`]: the one value the hub holds for scale-out, whatever this node runs. A node alone
//! (`adapter = "local"`) has no bus and no shared state: messages for other nodes are not even
//! built, and the cluster-wide queries answer `None` (this node's registry is the whole view). A
//! new bus or store (Sentinel, Redis Cluster, NATS) is a new variant here; the hub does not change.

use super::{AdapterStats, BusMessage, ClusterError, Inbound, RedisAdapter, Settings};
use crate::config::Config;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// This node's adapter.
#[derive(Debug, Clone, Default)]
pub enum Adapter {
    /// One node: nothing to share.
    #[default]
    Local,
    /// Cluster state in Redis, and the bus over Redis pub/sub.
    Redis(Arc<RedisAdapter>),
}

impl Adapter {
    /// The adapter `config` asks for, for node `node`. With `adapter = "redis"` this must run
    /// inside a Tokio runtime; a Redis adapter that cannot be set up is logged and the node runs
    /// alone.
    pub fn from_config(config: &Config, node: u32) -> Adapter {
        if config.adapter == "local" {
            return Adapter::Local;
        }
        let topology = match config.redis_topology() {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "cannot set up the Redis adapter; running alone");
                return Adapter::Local;
            }
        };
        let settings = Settings {
            topology,
            prefix: config.redis_prefix.clone(),
            node_timeout: Duration::from_secs(config.cluster_node_timeout_seconds),
            handover: Duration::from_secs(config.cluster_handover_seconds),
            leave_delay: Duration::from_millis(config.webhooks.leave_delay_ms),
            nats: (config.adapter == "nats").then(|| config.nats_url.clone()),
        };
        match RedisAdapter::new(settings, node) {
            Ok(redis) => Adapter::Redis(redis),
            Err(e) => {
                tracing::error!(error = %e, "cannot set up the Redis adapter; running alone");
                Adapter::Local
            }
        }
    }

    /// `local`, `redis` or `nats` (as `/usage` reports it).
    pub fn kind(&self) -> &'static str {
        match self {
            Adapter::Local => "local",
            Adapter::Redis(r) if r.link.nats.is_some() => "nats",
            Adapter::Redis(_) => "redis",
        }
    }

    /// The Redis adapter, for the hub's side of a clustered subscribe (its staging queue).
    pub fn redis(&self) -> Option<&Arc<RedisAdapter>> {
        match self {
            Adapter::Local => None,
            Adapter::Redis(r) => Some(r),
        }
    }

    /// Whether this node shares its state with others.
    pub fn is_clustered(&self) -> bool {
        matches!(self, Adapter::Redis(_))
    }

    /// Whether the cluster's store and bus can be reached (always, alone).
    pub fn is_connected(&self) -> bool {
        self.redis().is_none_or(|r| r.is_connected())
    }

    /// The adapter's counters, when there is a cluster to count.
    pub fn stats(&self) -> Option<&AdapterStats> {
        self.redis().map(|r| &*r.stats)
    }

    /// Connects and returns what the other nodes and the cluster's store hand over, or `None`
    /// alone (or when already started).
    pub fn start(&self) -> Option<mpsc::Receiver<Inbound>> {
        self.redis().and_then(|r| r.start())
    }

    /// Sends the message `build` makes (given this node's id) to the other nodes; alone, `build`
    /// is not called.
    pub fn publish_with(&self, build: impl FnOnce(u32) -> BusMessage) {
        if let Some(r) = self.redis() {
            r.publish(&build(r.node()));
        }
    }

    /// Stores the last event of a cache channel for the whole cluster.
    pub fn set_cache(&self, app: &str, channel: &str, value: impl FnOnce() -> Option<String>, ttl_seconds: u64) {
        if let Some(r) = self.redis()
            && let Some(value) = value()
        {
            r.set_cache(app, channel, value, ttl_seconds);
        }
    }

    /// Before this node's connections close on shutdown: their departures are handed over.
    pub fn begin_handover(&self) {
        if let Some(r) = self.redis() {
            r.begin_handover();
        }
    }

    /// Waits (briefly) for what is queued for the cluster to be written.
    pub async fn flush(&self) {
        if let Some(r) = self.redis() {
            r.flush().await;
        }
    }

    /// Subscriptions and users of a channel, cluster-wide; `None` alone.
    pub async fn channel_counts(&self, app: &str, channel: &str) -> Result<Option<(u64, u64)>, ClusterError> {
        match self.redis() {
            None => Ok(None),
            Some(r) => r.channel_counts(app, channel).await.map(Some),
        }
    }

    /// Occupied channels starting with `prefix` as `(name, subscriptions, users)`, cluster-wide;
    /// `None` alone.
    pub async fn channels(
        &self,
        app: &str,
        prefix: &str,
        user_counts: bool,
    ) -> Result<Option<Vec<(String, u64, u64)>>, ClusterError> {
        match self.redis() {
            None => Ok(None),
            Some(r) => r.channels(app, prefix, user_counts).await.map(Some),
        }
    }

    /// Member ids of a presence channel, cluster-wide; `None` alone.
    pub async fn member_ids(&self, app: &str, channel: &str) -> Result<Option<Vec<String>>, ClusterError> {
        match self.redis() {
            None => Ok(None),
            Some(r) => r.member_ids(app, channel).await.map(Some),
        }
    }

    /// The stored cached event of a channel and its seconds left, cluster-wide; `None` alone.
    pub async fn cached(&self, app: &str, channel: &str) -> Result<Option<Option<(String, u64)>>, ClusterError> {
        match self.redis() {
            None => Ok(None),
            Some(r) => r.cached(app, channel).await.map(Some),
        }
    }
}
