//! The link to Redis that the adapter handle and its background tasks share: the settings, the
//! connection, the key names, this node's id, the counters, and whether the bus subscription and
//! the state writes currently work. Also the helpers that read Redis replies.
//!
//! The handle ([`super::RedisAdapter`]) and every task hold an `Arc` of one [`Link`]; the tasks never
//! see the handle.

use super::keys::Keys;
use redis::Value;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tokio::time::{Duration, timeout};

/// How long one Redis round trip may take before it counts as failed.
pub(super) const OP_TIMEOUT: Duration = Duration::from_secs(2);

/// Settings of the Redis adapter.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `redis://` or `rediss://` URL.
    pub url: String,
    /// Prefix of every key and of the bus channel.
    pub prefix: String,
    /// A node silent for this long is swept by the others.
    pub node_timeout: Duration,
    /// How long a gracefully stopped node's members are kept for their clients to reconnect.
    pub handover: Duration,
    /// The webhook leave delay: a departure's webhook waits this long and is dropped if the
    /// member or channel came back anywhere in the cluster meanwhile.
    pub leave_delay: Duration,
}

/// Why a cluster-wide answer could not be given.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Redis did not answer.
    #[error("the cluster state in Redis is unavailable: {0}")]
    Unavailable(String),
}

impl From<redis::RedisError> for ClusterError {
    fn from(e: redis::RedisError) -> Self {
        ClusterError::Unavailable(e.to_string())
    }
}

/// Counters of the adapter, exported as metrics.
#[derive(Debug, Default)]
pub struct AdapterStats {
    /// Messages published to the bus.
    pub published: AtomicU64,
    /// Messages received from other nodes.
    pub received: AtomicU64,
    /// Failed Redis round trips (and undecodable bus messages).
    pub errors: AtomicU64,
    /// Reconnections of the bus subscriber after a loss.
    pub reconnects: AtomicU64,
    /// Messages not published because the outgoing queue was full.
    pub dropped: AtomicU64,
}

/// What the adapter handle and its tasks share.
pub(super) struct Link {
    node: u32,
    pub(super) keys: Keys,
    pub(super) settings: Settings,
    /// Makes the bus subscriber's dedicated connections.
    pub(super) client: redis::Client,
    /// The shared connection for commands, re-made whenever it drops.
    pub(super) conn: ConnectionManager,
    pub(super) stats: Arc<AdapterStats>,
    bus_up: AtomicBool,
    store_up: AtomicBool,
}

impl Link {
    /// Prepares the link for node `node` without connecting yet. Must run inside a Tokio runtime.
    pub(super) fn new(settings: Settings, node: u32) -> Result<Self, ClusterError> {
        let client = redis::Client::open(settings.url.as_str())?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(OP_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
        Ok(Link {
            node,
            keys: Keys::new(settings.prefix.clone()),
            settings,
            client,
            conn,
            stats: Arc::new(AdapterStats::default()),
            bus_up: AtomicBool::new(false),
            store_up: AtomicBool::new(false),
        })
    }

    /// This node's id.
    pub(super) fn node(&self) -> u32 {
        self.node
    }

    /// True while the bus subscription works.
    pub(super) fn bus_is_up(&self) -> bool {
        self.bus_up.load(Ordering::Acquire)
    }

    /// Records whether the bus subscription works.
    pub(super) fn set_bus_up(&self, up: bool) {
        self.bus_up.store(up, Ordering::Release);
    }

    /// True while the state writes work.
    pub(super) fn store_is_up(&self) -> bool {
        self.store_up.load(Ordering::Acquire)
    }

    /// Records whether the state writes work.
    pub(super) fn set_store_up(&self, up: bool) {
        self.store_up.store(up, Ordering::Release);
    }

    /// Runs a pipeline of reads (or simple writes) on the shared connection, counting failures.
    pub(super) async fn query(&self, pipe: &redis::Pipeline) -> Result<Vec<Value>, ClusterError> {
        let mut conn = self.conn.clone();
        match timeout(OP_TIMEOUT, pipe.query_async::<Vec<Value>>(&mut conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                Err(e.into())
            }
            Err(_) => {
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                Err(ClusterError::Unavailable("Redis did not answer in time".into()))
            }
        }
    }
}

/// A Redis integer or numeric string as a count (0 for anything else).
pub(super) fn as_count(v: &Value) -> u64 {
    as_int(v).max(0) as u64
}

/// A Redis integer or numeric string (0 for anything else).
pub(super) fn as_int(v: &Value) -> i64 {
    match v {
        Value::Int(n) => *n,
        Value::BulkString(b) => std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()).unwrap_or(0),
        _ => 0,
    }
}

/// A Redis string reply as UTF-8.
pub(super) fn as_string(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// The field/value pairs of an `HGETALL` reply (RESP2 array or RESP3 map).
pub(super) fn pairs(v: Option<&Value>) -> Vec<(String, String)> {
    match v {
        Some(Value::Array(items)) => {
            items.chunks(2).filter_map(|c| Some((as_string(c.first()?)?, as_string(c.get(1)?)?))).collect()
        }
        Some(Value::Map(entries)) => entries.iter().filter_map(|(k, v)| Some((as_string(k)?, as_string(v)?))).collect(),
        _ => Vec::new(),
    }
}
