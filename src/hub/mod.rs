//! Shared state: apps, their channels and members, signed-in users and cached events.
//!
//! [`Hub`] is a cheap `Clone` handle. All locks here are synchronous and never held across `.await`;
//! outbound frames are pushed into each connection's [`Outbox`] without blocking.

mod apps;
mod cache;
mod channels;
mod cluster_join;
mod cluster_view;
mod connections;
mod debug_feed;
mod frame;
mod history;
mod inbound;
mod outbox;
mod publish;
mod rest_rates;
mod stats;
mod subscribers;
mod subscriptions;
mod users;

pub use apps::Change;
pub use cache::{Cache, CachedEvent};
pub use channels::{ChannelSummary, Channels, Member};
pub use connections::Connections;
pub use debug_feed::{Console, DebugFeed, json_or_text, preview};
pub use frame::Frame;
pub use history::{History, Keep, Page, Resumed};
pub use outbox::{
    Checked, CloseRequest, DirectSink, Drained, Liveness, OVERFLOW_CLOSE_CODE, Outbox, OutboxLimits, Pumped, clock,
};
pub use publish::{Event, Origin};
pub use stats::{Stats, StatsSnapshot};
pub use subscriptions::SubscribeError;
pub use users::Users;

use crate::adapter::Adapter;
use crate::config::{AppConfig, Config};
use crate::webhooks::{Emitter, Routing, Trigger, Webhooks};
use apps::AppIndex;
use arc_swap::{ArcSwap, ArcSwapOption};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

/// Identifies a connection on this node.
pub type ConnId = u64;

/// A subscriber as the hub sees it: its id and its outbound queue.
#[derive(Debug, Clone)]
pub struct ConnRef {
    /// Node-local id; the socket id is `{node}.{id}`.
    pub id: ConnId,
    /// Where frames for this connection go.
    pub outbox: Outbox,
}

/// One application's live state. Its parts own their data and methods: [`Connections`] (quota,
/// open queues), [`Channels`] (subscribers and presence members per channel), [`Users`]
/// (signed-in users, watchlists), [`Cache`] (cache channels). What touches several parts at once
/// is this type's: subscribing and fan-out (`subscriptions.rs`), the cluster sides
/// (`cluster_join.rs`, `cluster_view.rs`, `inbound.rs`) and publishing (`publish.rs`).
#[derive(Debug)]
pub struct AppState {
    /// The app's id (never changes).
    id: String,
    /// The app's settings, replaced as a whole when they change (see [`AppState::config`]).
    config: ArcSwap<AppConfig>,
    connections: Connections,
    channels: Channels,
    users: Users,
    cache: Cache,
    stats: Arc<Stats>,
    /// Where the app's webhook triggers go; swapped when its endpoints or credentials change (see
    /// `apps.rs`); read on every transition and client event.
    hooks: Hooks,
    debug: DebugFeed,
    adapter: Adapter,
    /// Connections that joined a presence channel while Redis was unreachable (their member list
    /// is this node's only); asked to reconnect once the cluster state is back.
    degraded_joins: Mutex<Vec<Outbox>>,
    /// REST events and reads per second.
    rest_rates: rest_rates::RestRates,
    /// The secret before the last rotation, while it still signs (see `apps.rs`).
    retired: Mutex<Option<apps::Retired>>,
    /// Set once the app is no longer served (deleted from the app store).
    removed: std::sync::atomic::AtomicBool,
    /// Events kept for resuming, on the channels the app keeps history for.
    history: History,
    /// Whether the app keeps history on any channel (read first on every publish, so that an app
    /// without history pays one plain load).
    history_on: std::sync::atomic::AtomicBool,
}

/// An app's webhook emitter (`None` while it has no endpoints) and a flag saying whether there is
/// one: the flag is what a transition or client event of an app without webhooks reads (one plain
/// load, where the emitter's would take a few dozen instructions).
#[derive(Debug)]
struct Hooks {
    on: std::sync::atomic::AtomicBool,
    emitter: ArcSwapOption<Emitter>,
}

impl Hooks {
    fn new(emitter: Option<Emitter>) -> Self {
        Hooks { on: emitter.is_some().into(), emitter: ArcSwapOption::from(emitter.map(Arc::new)) }
    }

    /// Replaces the emitter.
    fn set(&self, emitter: Option<Emitter>) {
        self.on.store(emitter.is_some(), Ordering::Release);
        self.emitter.store(emitter.map(Arc::new));
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl AppState {
    #[cfg(test)]
    fn new(config: AppConfig, stats: Arc<Stats>, hooks: Option<Emitter>) -> Self {
        Self::with_feed(config, stats, hooks, DebugFeed::default(), Adapter::Local)
    }

    fn with_feed(
        config: AppConfig,
        stats: Arc<Stats>,
        hooks: Option<Emitter>,
        debug: DebugFeed,
        adapter: Adapter,
    ) -> Self {
        let users = Users::new(config.watchlist);
        let history_on = !config.history_channels.is_empty();
        AppState {
            id: config.id.clone(),
            adapter,
            degraded_joins: Mutex::new(Vec::new()),
            debug,
            hooks: Hooks::new(hooks),
            config: ArcSwap::from_pointee(config),
            connections: Connections::default(),
            channels: Channels::default(),
            users,
            cache: Cache::default(),
            stats,
            rest_rates: rest_rates::RestRates::default(),
            retired: Mutex::new(None),
            removed: std::sync::atomic::AtomicBool::new(false),
            history: History::default(),
            history_on: history_on.into(),
        }
    }

    /// The app's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The app's current settings, for a short look (not to be held across an `.await`; see
    /// [`AppState::config_owned`]).
    pub fn config(&self) -> arc_swap::Guard<Arc<AppConfig>> {
        self.config.load()
    }

    /// The app's current settings, to keep.
    pub fn config_owned(&self) -> Arc<AppConfig> {
        self.config.load_full()
    }

    /// Reports a webhook trigger when the app has webhook endpoints.
    pub fn emit(&self, trigger: impl FnOnce() -> Trigger) {
        if self.hooks.on.load(Ordering::Relaxed)
            && let Some(h) = &*self.hooks.emitter.load()
        {
            h.emit(trigger());
        }
    }

    /// Sends an event to open debug consoles (built only when one is watching).
    pub fn debug(&self, event: impl FnOnce() -> serde_json::Value) {
        self.debug.emit(self.id(), event);
    }

    /// Whether the app has webhook endpoints.
    pub fn has_webhooks(&self) -> bool {
        self.hooks.on.load(Ordering::Relaxed)
    }

    /// This app's counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// This app's signed-in users on this node and their watchers.
    pub fn users(&self) -> &Users {
        &self.users
    }

    /// This app's channels on this node: subscribers and presence members.
    pub fn channels(&self) -> &Channels {
        &self.channels
    }

    /// This app's channel history on this node.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// How long this app's history keeps, from its settings.
    pub fn history_keep(&self) -> Keep {
        let c = self.config();
        Keep { size: c.history_size, ttl: std::time::Duration::from_secs(c.history_ttl_seconds) }
    }

    /// Whether `channel`'s events get positions and are kept (on this node alone, in Redis in a
    /// cluster).
    pub fn keeps_history(&self, channel: &str) -> bool {
        self.history_on.load(Ordering::Relaxed) && self.config().history_for(channel)
    }

    /// This app's connections on this node: quota and open queues.
    pub fn connections(&self) -> &Connections {
        &self.connections
    }
}

struct HubInner {
    node_id: u32,
    next_conn: AtomicU64,
    /// Read on every connection and REST call, written only when an app is added, changed or removed.
    apps: RwLock<AppIndex>,
    outbox_limits: OutboxLimits,
    adapter: Adapter,
    debug: DebugFeed,
    /// Sets apps' webhook endpoints as they are added, changed or removed; `None` when webhooks
    /// do not run on this node (config store, no endpoints: apps never change then).
    webhooks: Option<Routing>,
}

/// Handle to all shared state of this node.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

impl Hub {
    /// Builds the state for every configured app; `webhooks` supplies each app's emitter.
    ///
    /// With `adapter = "redis"` it prepares the Redis adapter (connected by [`Hub::start_cluster`]);
    /// this must then run inside a Tokio runtime.
    pub fn new(config: &Config, webhooks: &Webhooks, debug: &DebugFeed) -> Self {
        // A random node id keeps socket ids unique across nodes and restarts.
        let node_id = rand::random::<u32>() % 1_000_000_000 + 1;
        let adapter = Adapter::from_config(config, node_id);
        webhooks.watch(Arc::new(debug.clone()));
        let mut index = AppIndex::default();
        for app in &config.apps {
            let state = Arc::new(AppState::with_feed(
                app.clone(),
                Arc::default(),
                webhooks.emitter(&app.id),
                debug.clone(),
                adapter.clone(),
            ));
            index.by_key.insert(app.key.clone(), state.clone());
            index.by_id.insert(app.id.clone(), state);
        }
        Hub {
            inner: Arc::new(HubInner {
                node_id,
                next_conn: AtomicU64::new(1),
                apps: RwLock::new(index),
                outbox_limits: OutboxLimits {
                    max_messages: config.outbox_max_messages,
                    max_bytes: config.outbox_max_bytes,
                },
                adapter,
                debug: debug.clone(),
                webhooks: webhooks.routing(),
            }),
        }
    }

    /// Every app's counters, summed.
    pub fn stats(&self) -> StatsSnapshot {
        self.apps().iter().map(|a| a.stats.snapshot()).fold(StatsSnapshot::default(), |a, b| a + b)
    }

    /// Allocates a new connection id and its outbound queue for a connection of `app`.
    pub fn new_connection(&self, app: &AppState) -> ConnRef {
        let id = self.inner.next_conn.fetch_add(1, Ordering::Relaxed);
        app.stats.connections_opened.fetch_add(1, Ordering::Relaxed);
        ConnRef { id, outbox: Outbox::new(self.inner.outbox_limits, app.stats.outbox_overflows.clone()) }
    }

    /// The socket id clients see for a connection of this node.
    pub fn socket_id(&self, id: ConnId) -> String {
        socket_id(self.inner.node_id, id)
    }

    /// This node's id (the first half of its socket ids).
    pub fn node_id(&self) -> u32 {
        self.inner.node_id
    }

    /// The local connection a socket id names, if it was issued by this node.
    pub fn local_conn(&self, socket_id: &str) -> Option<ConnId> {
        let (node, conn) = socket_id.split_once('.')?;
        (node.parse::<u32>().ok()? == self.inner.node_id).then(|| conn.parse().ok())?
    }
}

/// The socket id of connection `id` of node `node`: `{node}.{id}`.
pub fn socket_id(node: u32, id: ConnId) -> String {
    let (mut node_digits, mut id_digits) = (itoa::Buffer::new(), itoa::Buffer::new());
    let (node, id) = (node_digits.format(node), id_digits.format(id));
    let mut out = String::with_capacity(node.len() + 1 + id.len());
    out.push_str(node);
    out.push('.');
    out.push_str(id);
    out
}

/// True for the socket id format the official SDKs accept: `^\d+\.\d+$`.
pub fn is_valid_socket_id(s: &str) -> bool {
    match s.split_once('.') {
        Some((a, b)) => {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_ids_round_trip() {
        let config = Config::load(None, Vec::new()).unwrap_or_else(|e| panic!("{e}"));
        let hub = Hub::new(&config, &Webhooks::new(&config), &DebugFeed::default());
        let c = hub.new_connection(&hub.app_by_key("app-key").unwrap_or_else(|| panic!("dev app")));
        let sid = hub.socket_id(c.id);
        assert!(is_valid_socket_id(&sid));
        assert_eq!(hub.local_conn(&sid), Some(c.id));
        assert_eq!(hub.local_conn("1.2.3"), None);
        assert!(!is_valid_socket_id("1."));
        assert!(!is_valid_socket_id("a.1"));
        assert!(!is_valid_socket_id("12"));
        assert_eq!(socket_id(0, 0), "0.0");
        assert_eq!(socket_id(u32::MAX, u64::MAX), format!("{}.{}", u32::MAX, u64::MAX));
    }
}
