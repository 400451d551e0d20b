//! The Redis adapter: connections, the bus publisher and subscriber, and cluster-wide reads.

use super::link::{AdapterStats, ClusterError, Link, OP_TIMEOUT, Settings, as_count, as_string, pairs};
use super::node_state::{self, Op};
use super::{BusMessage, Inbound, SubOutcome, SubRequest};
use futures_util::StreamExt;
use redis::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Duration, timeout};

/// Messages waiting to be published; beyond it they are dropped, counted and logged.
const OUTGOING_QUEUE: usize = 65_536;
/// Messages from the bus waiting for the hub.
const INBOUND_QUEUE: usize = 65_536;
/// How long a presence join waits for its [`BusMessage::Listed`] before going on without it.
const LISTED_WAIT: Duration = Duration::from_secs(1);

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
    /// What the background tasks share with this handle.
    link: Arc<Link>,
    ops: mpsc::UnboundedSender<Op>,
    outgoing: mpsc::Sender<Outgoing>,
    receivers: Mutex<Option<Receivers>>,
    /// Presence joins waiting for their [`BusMessage::Listed`], by token.
    listed: Mutex<HashMap<u64, oneshot::Sender<()>>>,
    next_listed: AtomicU64,
    /// Counters for metrics and `/usage` (the same counters the background tasks count in).
    pub stats: Arc<AdapterStats>,
}

impl std::fmt::Debug for RedisAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisAdapter")
            .field("node", &self.link.node())
            .field("prefix", &self.link.keys.prefix())
            .finish()
    }
}

impl RedisAdapter {
    /// Prepares the adapter for node `node` without connecting yet (connections are made by
    /// [`RedisAdapter::start`] and re-made whenever they drop). Must run inside a Tokio runtime.
    pub fn new(settings: Settings, node: u32) -> Result<Arc<Self>, ClusterError> {
        let link = Arc::new(Link::new(settings, node)?);
        let (ops, ops_rx) = mpsc::unbounded_channel();
        let (outgoing, outgoing_rx) = mpsc::channel(OUTGOING_QUEUE);
        Ok(Arc::new(RedisAdapter {
            stats: link.stats.clone(),
            link,
            ops,
            outgoing,
            receivers: Mutex::new(Some(Receivers { ops: ops_rx, outgoing: outgoing_rx })),
            listed: Mutex::new(HashMap::new()),
            next_listed: AtomicU64::new(1),
        }))
    }

    /// This node's id.
    pub fn node(&self) -> u32 {
        self.link.node()
    }

    /// The webhook leave delay applied cluster-wide.
    pub fn leave_delay(&self) -> Duration {
        self.link.settings.leave_delay
    }

    /// After the leave delay: true if a departure still stands (its marker was not consumed by a
    /// return), consuming the marker. When Redis cannot tell, the departure stands.
    pub async fn departure_stands(&self, app: &str, channel: &str, user: Option<&str>) -> bool {
        let key = match user {
            Some(u) => self.link.keys.leaving(app, channel, u),
            None => self.link.keys.vacating(app, channel),
        };
        let mut pipe = redis::pipe();
        pipe.cmd("DEL").arg(key);
        match self.link.query(&pipe).await {
            Ok(v) => v.first().map_or(0, as_count) == 1,
            Err(_) => true,
        }
    }

    /// Starts the background tasks (state writer with heartbeats and sweeping, bus publisher, bus
    /// subscriber) and returns what they hand to the hub. Returns `None` if already started.
    pub fn start(self: &Arc<Self>) -> Option<mpsc::Receiver<Inbound>> {
        let receivers = self.receivers.lock().unwrap_or_else(|p| p.into_inner()).take()?;
        let (inbound, inbound_rx) = mpsc::channel(INBOUND_QUEUE);
        tokio::spawn(node_state::run(self.link.clone(), receivers.ops, inbound.clone()));
        tokio::spawn(self.clone().run_publisher(receivers.outgoing));
        tokio::spawn(self.clone().run_bus(inbound));
        Some(inbound_rx)
    }

    /// True while both the bus subscription and the state writes work.
    pub fn is_connected(&self) -> bool {
        self.link.bus_is_up() && self.link.store_is_up()
    }

    /// Records a subscribe cluster-wide and returns what the subscriber needs to know.
    ///
    /// With the member list, it returns only once the hub has applied every member event that
    /// came on the bus before the list was read: the bus and the script's answer travel on
    /// different connections, so such an event can arrive after the answer, and the caller (which
    /// drops the events its list already reflects) would otherwise pass it on as news.
    pub async fn subscribe(&self, mut req: SubRequest) -> SubOutcome {
        let listed = (req.want_members && self.link.bus_is_up()).then(|| {
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
            key: self.link.keys.cache(app, channel),
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
        let bus = self.link.keys.bus();
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
            let mut conn = self.link.conn.clone();
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
        let bus = self.link.keys.bus();
        let mut backoff = Duration::from_millis(100);
        let mut lost = false;
        loop {
            match timeout(OP_TIMEOUT, self.link.client.get_async_pubsub()).await {
                Ok(Ok(mut pubsub)) => match timeout(OP_TIMEOUT, pubsub.subscribe(&bus)).await {
                    Ok(Ok(())) => {
                        if lost {
                            self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                            tracing::info!("cluster bus subscription restored");
                        }
                        self.link.set_bus_up(true);
                        backoff = Duration::from_millis(100);
                        let mut messages = pubsub.on_message();
                        while let Some(msg) = messages.next().await {
                            match BusMessage::decode(msg.get_payload_bytes()) {
                                // Node 0 marks messages published by the state scripts: for every node.
                                Ok(m) if m.node() == self.link.node() => {}
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
                        self.link.set_bus_up(false);
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
        self.link.set_bus_up(false);
        self.stats.errors.fetch_add(1, Ordering::Relaxed);
        if !*lost {
            tracing::error!(error, "cannot subscribe to the cluster bus; retrying");
            *lost = true;
        }
    }

    /// Cluster-wide subscriptions and distinct presence members of one channel.
    pub async fn channel_counts(&self, app: &str, channel: &str) -> Result<(u64, u64), ClusterError> {
        let mut pipe = redis::pipe();
        pipe.cmd("HGET").arg(self.link.keys.app_subs(app)).arg(channel);
        pipe.cmd("HLEN").arg(self.link.keys.members(app, channel));
        let v = self.link.query(&pipe).await?;
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
        pipe.cmd("HGETALL").arg(self.link.keys.app_subs(app));
        let v = self.link.query(&pipe).await?;
        let mut out: Vec<(String, u64, u64)> = pairs(v.first())
            .into_iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .map(|(name, n)| (name, n.parse::<u64>().unwrap_or(0), 0))
            .filter(|(_, n, _)| *n > 0)
            .collect();
        if user_counts && !out.is_empty() {
            let mut pipe = redis::pipe();
            for (name, _, _) in &out {
                pipe.cmd("HLEN").arg(self.link.keys.members(app, name));
            }
            let counts = self.link.query(&pipe).await?;
            for ((_, _, users), n) in out.iter_mut().zip(counts.iter()) {
                *users = as_count(n);
            }
        }
        Ok(out)
    }

    /// The member keys of a presence channel, cluster-wide.
    pub async fn member_ids(&self, app: &str, channel: &str) -> Result<Vec<String>, ClusterError> {
        let mut pipe = redis::pipe();
        pipe.cmd("HKEYS").arg(self.link.keys.members(app, channel));
        let v = self.link.query(&pipe).await?;
        Ok(match v.first() {
            Some(Value::Array(items)) => items.iter().filter_map(as_string).collect(),
            _ => Vec::new(),
        })
    }

    /// The cached event of a cache channel (`{"event":..,"data":..}`) and its remaining seconds.
    pub async fn cached(&self, app: &str, channel: &str) -> Result<Option<(String, u64)>, ClusterError> {
        let key = self.link.keys.cache(app, channel);
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(&key);
        pipe.cmd("PTTL").arg(&key);
        let v = self.link.query(&pipe).await?;
        let ttl_ms = match v.get(1) {
            Some(Value::Int(ms)) if *ms > 0 => *ms as u64,
            _ => 0,
        };
        Ok(v.first().and_then(as_string).map(|s| (s, ttl_ms / 1000)))
    }
}
