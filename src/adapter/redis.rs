//! The Redis adapter: connections, the bus publisher and subscriber, and cluster-wide reads.

use super::keys::Keys;
use super::node_state::{self, Op};
use super::{BusMessage, Inbound, SubOutcome, SubRequest};
use futures_util::StreamExt;
use redis::Value;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Duration, timeout};

/// How long one Redis round trip may take before it counts as failed.
pub(super) const OP_TIMEOUT: Duration = Duration::from_secs(2);
/// Messages waiting to be published; beyond it they are dropped, counted and logged.
const OUTGOING_QUEUE: usize = 65_536;
/// Messages from the bus waiting for the hub.
const INBOUND_QUEUE: usize = 65_536;
/// How long a presence join waits for its [`BusMessage::Listed`] before going on without it.
const LISTED_WAIT: Duration = Duration::from_secs(1);

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

enum Outgoing {
    Publish(Vec<u8>),
    SetCache { key: String, value: String, ttl_ms: u64 },
}

struct Receivers {
    ops: mpsc::UnboundedReceiver<Op>,
    outgoing: mpsc::Receiver<Outgoing>,
}

/// Cluster state and messaging over Redis. Cheap to share behind an `Arc`.
pub struct RedisAdapter {
    node: u32,
    pub(super) keys: Keys,
    pub(super) settings: Settings,
    client: redis::Client,
    pub(super) conn: ConnectionManager,
    ops: mpsc::UnboundedSender<Op>,
    outgoing: mpsc::Sender<Outgoing>,
    receivers: Mutex<Option<Receivers>>,
    bus_up: AtomicBool,
    pub(super) store_up: AtomicBool,
    /// Presence joins waiting for their [`BusMessage::Listed`], by token.
    listed: Mutex<HashMap<u64, oneshot::Sender<()>>>,
    next_listed: AtomicU64,
    /// Counters for metrics and `/usage`.
    pub stats: AdapterStats,
}

impl std::fmt::Debug for RedisAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisAdapter").field("node", &self.node).field("prefix", &self.keys.prefix()).finish()
    }
}

impl RedisAdapter {
    /// Prepares the adapter for node `node` without connecting yet (connections are made by
    /// [`RedisAdapter::start`] and re-made whenever they drop). Must run inside a Tokio runtime.
    pub fn new(settings: Settings, node: u32) -> Result<Arc<Self>, ClusterError> {
        let client = redis::Client::open(settings.url.as_str())?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(OP_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
        let (ops, ops_rx) = mpsc::unbounded_channel();
        let (outgoing, outgoing_rx) = mpsc::channel(OUTGOING_QUEUE);
        Ok(Arc::new(RedisAdapter {
            node,
            keys: Keys::new(settings.prefix.clone()),
            settings,
            client,
            conn,
            ops,
            outgoing,
            receivers: Mutex::new(Some(Receivers { ops: ops_rx, outgoing: outgoing_rx })),
            bus_up: AtomicBool::new(false),
            store_up: AtomicBool::new(false),
            listed: Mutex::new(HashMap::new()),
            next_listed: AtomicU64::new(1),
            stats: AdapterStats::default(),
        }))
    }

    /// This node's id.
    pub fn node(&self) -> u32 {
        self.node
    }

    /// The webhook leave delay applied cluster-wide.
    pub fn leave_delay(&self) -> Duration {
        self.settings.leave_delay
    }

    /// After the leave delay: true if a departure still stands (its marker was not consumed by a
    /// return), consuming the marker. When Redis cannot tell, the departure stands.
    pub async fn departure_stands(&self, app: &str, channel: &str, user: Option<&str>) -> bool {
        let key = match user {
            Some(u) => self.keys.leaving(app, channel, u),
            None => self.keys.vacating(app, channel),
        };
        let mut pipe = redis::pipe();
        pipe.cmd("DEL").arg(key);
        match self.query(&pipe).await {
            Ok(v) => v.first().map_or(0, as_count) == 1,
            Err(_) => true,
        }
    }

    /// Starts the background tasks (state writer with heartbeats and sweeping, bus publisher, bus
    /// subscriber) and returns what they hand to the hub. Returns `None` if already started.
    pub fn start(self: &Arc<Self>) -> Option<mpsc::Receiver<Inbound>> {
        let receivers = self.receivers.lock().unwrap_or_else(|p| p.into_inner()).take()?;
        let (inbound, inbound_rx) = mpsc::channel(INBOUND_QUEUE);
        tokio::spawn(node_state::run(self.clone(), receivers.ops, inbound.clone()));
        tokio::spawn(self.clone().run_publisher(receivers.outgoing));
        tokio::spawn(self.clone().run_bus(inbound));
        Some(inbound_rx)
    }

    /// True while the bus subscription works.
    pub(super) fn bus_is_up(&self) -> bool {
        self.bus_up.load(Ordering::Acquire)
    }

    /// True while both the bus subscription and the state writes work.
    pub fn is_connected(&self) -> bool {
        self.bus_up.load(Ordering::Acquire) && self.store_up.load(Ordering::Acquire)
    }

    /// Records a subscribe cluster-wide and returns what the subscriber needs to know.
    ///
    /// With the member list, it returns only once the hub has applied every member event that
    /// came on the bus before the list was read: the bus and the script's answer travel on
    /// different connections, so such an event can arrive after the answer, and the caller (which
    /// drops the events its list already reflects) would otherwise pass it on as news.
    pub async fn subscribe(&self, mut req: SubRequest) -> SubOutcome {
        let listed = (req.want_members && self.bus_is_up()).then(|| {
            let token = self.next_listed.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = oneshot::channel();
            self.lock_listed().insert(token, tx);
            (token, rx)
        });
        req.listed = listed.as_ref().map(|(token, _)| *token);
        let (tx, rx) = oneshot::channel();
        let outcome = if self.ops.send(Op::Sub { req, reply: Some(tx) }).is_err() {
            SubOutcome::Unavailable
        } else {
            match timeout(OP_TIMEOUT * 2, rx).await {
                Ok(Ok(outcome)) => outcome,
                _ => SubOutcome::Unavailable,
            }
        };
        if let Some((token, rx)) = listed {
            if matches!(outcome, SubOutcome::Applied { .. }) && timeout(LISTED_WAIT, rx).await.is_err() {
                tracing::warn!("no word from the cluster bus on a presence join; its member events may repeat");
            }
            self.lock_listed().remove(&token);
        }
        outcome
    }

    /// The hub applied the [`BusMessage::Listed`] with `token`.
    pub fn listed(&self, token: u64) {
        if let Some(tx) = self.lock_listed().remove(&token) {
            let _ = tx.send(());
        }
    }

    fn lock_listed(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<()>>> {
        self.listed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records an unsubscribe cluster-wide (in order after this node's earlier changes).
    pub fn unsubscribe(&self, req: SubRequest) {
        let _ = self.ops.send(Op::Sub { req, reply: None });
    }

    /// Stops recording departures and lets this node's members live for the handover period, so
    /// clients reconnecting to other nodes do not show as leaving and rejoining.
    pub fn begin_handover(&self) {
        let _ = self.ops.send(Op::Handover);
    }

    /// Waits (briefly) until every change queued so far has been written.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.ops.send(Op::Flush(tx)).is_ok() {
            let _ = timeout(OP_TIMEOUT * 2, rx).await;
        }
    }

    /// Queues a message for the other nodes. Messages keep their order.
    pub fn publish(&self, msg: &BusMessage) {
        self.enqueue(Outgoing::Publish(msg.encode()));
    }

    /// Stores the last event of a cache channel (`{"event":..,"data":..}`) for `ttl_seconds`.
    pub fn set_cache(&self, app: &str, channel: &str, value: String, ttl_seconds: u64) {
        self.enqueue(Outgoing::SetCache {
            key: self.keys.cache(app, channel),
            value,
            ttl_ms: ttl_seconds.saturating_mul(1000).max(1),
        });
    }

    fn enqueue(&self, item: Outgoing) {
        if self.outgoing.try_send(item).is_err() {
            let n = self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            if n.is_power_of_two() {
                tracing::error!(dropped = n + 1, "cluster bus queue full: messages for other nodes dropped");
            }
        }
    }

    async fn run_publisher(self: Arc<Self>, mut rx: mpsc::Receiver<Outgoing>) {
        let bus = self.keys.bus();
        let mut batch = Vec::with_capacity(256);
        let mut failing = false;
        loop {
            if rx.recv_many(&mut batch, 256).await == 0 {
                return;
            }
            let mut pipe = redis::pipe();
            let mut publishes = 0;
            for item in batch.drain(..) {
                match item {
                    Outgoing::Publish(payload) => {
                        publishes += 1;
                        pipe.cmd("PUBLISH").arg(&bus).arg(payload).ignore();
                    }
                    Outgoing::SetCache { key, value, ttl_ms } => {
                        pipe.cmd("SET").arg(key).arg(value).arg("PX").arg(ttl_ms).ignore();
                    }
                }
            }
            let mut conn = self.conn.clone();
            match timeout(OP_TIMEOUT, pipe.query_async::<()>(&mut conn)).await {
                Ok(Ok(())) => {
                    self.stats.published.fetch_add(publishes, Ordering::Relaxed);
                    if failing {
                        tracing::info!("cluster bus publishing works again");
                        failing = false;
                    }
                }
                Ok(Err(e)) => {
                    self.publish_failed(&mut failing, publishes, &e.to_string());
                }
                Err(_) => self.publish_failed(&mut failing, publishes, "timed out"),
            }
        }
    }

    fn publish_failed(&self, failing: &mut bool, lost: u64, error: &str) {
        self.stats.errors.fetch_add(1, Ordering::Relaxed);
        self.stats.dropped.fetch_add(lost, Ordering::Relaxed);
        if !*failing {
            tracing::error!(error, lost, "cannot publish to the cluster bus; other nodes miss these messages");
            *failing = true;
        }
    }

    async fn run_bus(self: Arc<Self>, inbound: mpsc::Sender<Inbound>) {
        let bus = self.keys.bus();
        let mut backoff = Duration::from_millis(100);
        let mut lost = false;
        loop {
            match timeout(OP_TIMEOUT, self.client.get_async_pubsub()).await {
                Ok(Ok(mut pubsub)) => match timeout(OP_TIMEOUT, pubsub.subscribe(&bus)).await {
                    Ok(Ok(())) => {
                        if lost {
                            self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                            tracing::info!("cluster bus subscription restored");
                        }
                        self.bus_up.store(true, Ordering::Release);
                        backoff = Duration::from_millis(100);
                        let mut messages = pubsub.on_message();
                        while let Some(msg) = messages.next().await {
                            match BusMessage::decode(msg.get_payload_bytes()) {
                                // Node 0 marks messages published by the state scripts: for every node.
                                Ok(m) if m.node() == self.node => {}
                                Ok(m) => {
                                    self.stats.received.fetch_add(1, Ordering::Relaxed);
                                    if inbound.send(Inbound::Bus(m)).await.is_err() {
                                        return;
                                    }
                                }
                                Err(e) => {
                                    self.stats.errors.fetch_add(1, Ordering::Relaxed);
                                    tracing::warn!(error = %e, "undecodable message on the cluster bus");
                                }
                            }
                        }
                        self.bus_up.store(false, Ordering::Release);
                        tracing::warn!("cluster bus subscription lost; reconnecting");
                        lost = true;
                    }
                    Ok(Err(e)) => self.bus_failed(&mut lost, &e.to_string()),
                    Err(_) => self.bus_failed(&mut lost, "subscribe timed out"),
                },
                Ok(Err(e)) => self.bus_failed(&mut lost, &e.to_string()),
                Err(_) => self.bus_failed(&mut lost, "connect timed out"),
            }
            let jitter = Duration::from_millis(rand::random::<u64>() % 100);
            tokio::time::sleep(backoff + jitter).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    fn bus_failed(&self, lost: &mut bool, error: &str) {
        self.bus_up.store(false, Ordering::Release);
        self.stats.errors.fetch_add(1, Ordering::Relaxed);
        if !*lost {
            tracing::error!(error, "cannot subscribe to the cluster bus; retrying");
            *lost = true;
        }
    }

    async fn query(&self, pipe: &redis::Pipeline) -> Result<Vec<Value>, ClusterError> {
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

    /// Cluster-wide subscriptions and distinct presence members of one channel.
    pub async fn channel_counts(&self, app: &str, channel: &str) -> Result<(u64, u64), ClusterError> {
        let mut pipe = redis::pipe();
        pipe.cmd("HGET").arg(self.keys.app_subs(app)).arg(channel);
        pipe.cmd("HLEN").arg(self.keys.members(app, channel));
        let v = self.query(&pipe).await?;
        Ok((v.first().map_or(0, as_count), v.get(1).map_or(0, as_count)))
    }

    /// Every occupied channel of an app whose name starts with `prefix`, with its subscriptions,
    /// and the distinct member count of presence channels when `user_counts` is set.
    pub async fn channels(
        &self,
        app: &str,
        prefix: &str,
        user_counts: bool,
    ) -> Result<Vec<(String, u64, u64)>, ClusterError> {
        let mut pipe = redis::pipe();
        pipe.cmd("HGETALL").arg(self.keys.app_subs(app));
        let v = self.query(&pipe).await?;
        let mut out: Vec<(String, u64, u64)> = pairs(v.first())
            .into_iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .map(|(name, n)| (name, n.parse::<u64>().unwrap_or(0), 0))
            .filter(|(_, n, _)| *n > 0)
            .collect();
        if user_counts && !out.is_empty() {
            let mut pipe = redis::pipe();
            for (name, _, _) in &out {
                pipe.cmd("HLEN").arg(self.keys.members(app, name));
            }
            let counts = self.query(&pipe).await?;
            for ((_, _, users), n) in out.iter_mut().zip(counts.iter()) {
                *users = as_count(n);
            }
        }
        Ok(out)
    }

    /// The member keys of a presence channel, cluster-wide.
    pub async fn member_ids(&self, app: &str, channel: &str) -> Result<Vec<String>, ClusterError> {
        let mut pipe = redis::pipe();
        pipe.cmd("HKEYS").arg(self.keys.members(app, channel));
        let v = self.query(&pipe).await?;
        Ok(match v.first() {
            Some(Value::Array(items)) => items.iter().filter_map(as_string).collect(),
            _ => Vec::new(),
        })
    }

    /// The cached event of a cache channel (`{"event":..,"data":..}`) and its remaining seconds.
    pub async fn cached(&self, app: &str, channel: &str) -> Result<Option<(String, u64)>, ClusterError> {
        let key = self.keys.cache(app, channel);
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(&key);
        pipe.cmd("PTTL").arg(&key);
        let v = self.query(&pipe).await?;
        let ttl_ms = match v.get(1) {
            Some(Value::Int(ms)) if *ms > 0 => *ms as u64,
            _ => 0,
        };
        Ok(v.first().and_then(as_string).map(|s| (s, ttl_ms / 1000)))
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
