//! The Redis adapter's handle: what the hub calls to record subscriptions, publish to the other
//! nodes and hand over on a graceful stop. It queues work for the background tasks it starts (the
//! node-state task in [`super::node_state`], the bus publisher in [`super::bus_publisher`] and
//! the reader in [`super::bus_reader`]); the cluster-wide reads are in [`super::queries`].

use super::bus_publisher::{self, Outgoing, Positioned};
use super::bus_reader::{self, Interest};
use super::error::{ClusterError, OP_TIMEOUT};
use super::link::{AdapterStats, Link, Settings, as_count};
use super::node_state::{self, Op};
use super::{BusMessage, Inbound, SubOutcome, SubRequest};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Duration, timeout};

/// An event of a channel with history, for [`RedisAdapter::publish_positioned`].
#[derive(Debug, Clone)]
pub struct PositionedEvent<'a> {
    /// App id.
    pub app: &'a str,
    /// Channel name.
    pub channel: &'a str,
    /// The frame as delivered without history (a JSON object).
    pub frame: &'a str,
    /// The socket left out.
    pub except: Option<&'a str>,
    /// A REST event of a cache channel (the channel's last event, to keep).
    pub cache: bool,
    /// The epoch the channel starts with if it has none (made by the hub).
    pub new_epoch: String,
    /// Events kept.
    pub size: usize,
    /// How long each is kept, in milliseconds.
    pub ttl_ms: u64,
}

/// Messages waiting to be published; beyond it they are dropped, counted and logged.
const OUTGOING_QUEUE: usize = 65_536;
/// Messages from the bus waiting for the hub.
const INBOUND_QUEUE: usize = 65_536;
/// How long a presence join waits for its [`BusMessage::Listed`] before going on without it.
const LISTED_WAIT: Duration = Duration::from_secs(1);

struct Receivers {
    ops: mpsc::UnboundedReceiver<Op>,
    outgoing: mpsc::Receiver<Outgoing>,
    interest: mpsc::UnboundedReceiver<Interest>,
}

/// Cluster state and messaging over Redis. Cheap to share behind an `Arc`.
pub struct RedisAdapter {
    /// What the background tasks share with this handle.
    pub(super) link: Arc<Link>,
    ops: mpsc::UnboundedSender<Op>,
    outgoing: mpsc::Sender<Outgoing>,
    /// Tells the bus reader which channel topics this node's subscribers need.
    interest: mpsc::UnboundedSender<Interest>,
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
        let (interest, interest_rx) = mpsc::unbounded_channel();
        Ok(Arc::new(RedisAdapter {
            stats: link.stats.clone(),
            link,
            ops,
            outgoing,
            interest,
            receivers: Mutex::new(Some(Receivers { ops: ops_rx, outgoing: outgoing_rx, interest: interest_rx })),
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
        tokio::spawn(bus_publisher::run_publisher(self.link.clone(), receivers.outgoing, inbound.clone()));
        tokio::spawn(bus_reader::run_reader(self.link.clone(), inbound, receivers.interest));
        tokio::spawn(super::link::follow_sentinels(self.link.clone()));
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
    ///
    /// It also returns only once this node listens to the channel's topic (see
    /// [`super::bus_reader`]), so the subscriber misses nothing published after its
    /// `subscription_succeeded`.
    pub async fn subscribe(&self, req: SubRequest) -> SubOutcome {
        let topic = self.link.channel_topic(&req.app, &req.channel);
        let (want, listening) = oneshot::channel();
        let _ = self.interest.send(Interest::Want(topic.clone(), want));
        let (outcome, listening) = tokio::join!(self.record(req), timeout(OP_TIMEOUT * 2, listening));
        if outcome == SubOutcome::Full {
            // The hub drops the subscriber again.
            let _ = self.interest.send(Interest::Drop(topic));
        } else if !matches!(listening, Ok(Ok(true))) && self.link.bus_is_up() {
            tracing::warn!(channel = %topic, "could not subscribe to a channel's bus topic; the subscription is retried");
        }
        outcome
    }

    async fn record(&self, mut req: SubRequest) -> SubOutcome {
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
        let _ = self.interest.send(Interest::Drop(self.link.channel_topic(&req.app, &req.channel)));
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
    ///
    /// An event goes to the topic of each of its channels (one message per channel, sent in one
    /// pipeline), a client event to its channel's topic: only nodes with a subscriber on the
    /// channel receive them. Everything else goes to the bus every node listens to.
    pub fn publish(&self, msg: &BusMessage) {
        let link = &self.link;
        match msg {
            BusMessage::Event { node, app, channels, event, data, except } if channels.len() > 1 => {
                for channel in channels {
                    let one = BusMessage::Event {
                        node: *node,
                        app: app.clone(),
                        channels: vec![channel.clone()],
                        event: event.clone(),
                        data: data.clone(),
                        except: except.clone(),
                    };
                    self.enqueue(Outgoing::Publish {
                        topic: link.channel_topic(app, channel),
                        payload: one.encode(),
                        sharded: true,
                    });
                }
            }
            BusMessage::Event { app, channels, .. } => {
                if let Some(channel) = channels.first() {
                    let topic = link.channel_topic(app, channel);
                    self.enqueue(Outgoing::Publish { topic, payload: msg.encode(), sharded: true });
                }
            }
            BusMessage::Frame { app, channel, .. } => {
                let topic = link.channel_topic(app, channel);
                self.enqueue(Outgoing::Publish { topic, payload: msg.encode(), sharded: true });
            }
            _ => {
                self.enqueue(Outgoing::Publish { topic: link.keys.bus(), payload: msg.encode(), sharded: false });
            }
        }
    }

    /// Stores the last event of a cache channel (`{"event":..,"data":..}`) for `ttl_seconds`.
    pub fn set_cache(&self, app: &str, channel: &str, value: String, ttl_seconds: u64) {
        self.enqueue(Outgoing::SetCache {
            key: self.link.keys.cache(app, channel),
            value,
            ttl_ms: ttl_seconds.saturating_mul(1000).max(1),
        });
    }

    /// Queues an event of a channel with history (`frame`, without position) for the history
    /// script, which positions, keeps and publishes it to every node with a subscriber, this one
    /// included (see [`super::history`]). `done` is dropped once Redis took the event, or once it
    /// was handed back to this node's subscribers because Redis could not. `Err` when the queue to
    /// Redis is full: the caller delivers the event itself.
    pub fn publish_positioned(
        &self,
        event: PositionedEvent<'_>,
        done: Option<Arc<oneshot::Sender<()>>>,
    ) -> Result<(), QueueFull> {
        let link = &self.link;
        let (topic, sharded) = link.history_topic(event.app, event.channel);
        let item = Outgoing::Positioned(Box::new(Positioned {
            keys: link.history_keys(event.app, event.channel),
            epoch: event.new_epoch,
            frame: event.frame.to_string(),
            size: event.size,
            ttl_ms: event.ttl_ms.max(1),
            topic,
            sharded,
            app: event.app.to_string(),
            channel: event.channel.to_string(),
            except: event.except.map(str::to_string),
            cache: event.cache,
            done,
        }));
        if self.enqueue(item) { Ok(()) } else { Err(QueueFull) }
    }

    /// A channel's history after offset `since`, at most `limit` events; `None` when the channel
    /// has no position (nothing published within the TTL, or Redis lost it).
    ///
    /// For a resume (`resume`), no event is returned unless all of those after `since` are, within
    /// `limit`: the resume fails otherwise, and the events need not travel.
    pub async fn read_history(
        &self,
        app: &str,
        channel: &str,
        since: u64,
        limit: usize,
        ttl_ms: u64,
        resume: bool,
    ) -> Result<Option<super::Kept>, ClusterError> {
        let script = redis::Script::new(super::history::READ);
        let [position, list] = self.link.history_keys(app, channel);
        let mut conn = self.link.conn().await?;
        let mut call = script.key(position);
        call.key(list).arg(since).arg(limit.max(1)).arg(ttl_ms.max(1)).arg(if resume { "R" } else { "" });
        match timeout(OP_TIMEOUT, call.invoke_async::<redis::Value>(&mut conn)).await {
            Ok(Ok(v)) => super::history::parse_read(&v),
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

    /// Queues `item` for the publisher; false when the queue is full (counted and logged).
    fn enqueue(&self, item: Outgoing) -> bool {
        let queued = self.outgoing.try_send(item).is_ok();
        if !queued {
            let n = self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            if n.is_power_of_two() {
                tracing::error!(dropped = n + 1, "cluster bus queue full: messages for other nodes dropped");
            }
        }
        queued
    }
}

/// The queue to Redis is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFull;
