//! The dispatcher: applies the leave delay and its cancellation, de-duplicates cache misses, and
//! routes each event to the delivery queue of every matching endpoint. It also owns the app ->
//! endpoints table and starts a delivery task per endpoint whenever an app's endpoints are set
//! (at start-up for the apps then known, later as apps change; see `routing.rs`).

use super::delivery::{self, Target};
use super::routing::{Inbox, Intake, RouteChange};
use super::{DeadLetter, Trigger, Watch, WebhookStats};
use crate::config::WebhookSettings;
use futures_util::StreamExt;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tokio_util::time::{DelayQueue, delay_queue};

struct Route {
    url: String,
    event_types: Vec<String>,
    channel_prefix: Option<String>,
    tx: mpsc::Sender<Value>,
}

impl Route {
    fn wants(&self, t: &Trigger) -> bool {
        (self.event_types.is_empty() || self.event_types.iter().any(|e| e == t.name()))
            && self.channel_prefix.as_deref().is_none_or(|p| t.channel().starts_with(p))
    }
}

/// Everything needed to start the dispatcher: its queue (events and route changes) and what its
/// delivery tasks share.
pub struct Pending {
    inbox: Inbox,
    settings: WebhookSettings,
    dead: DeadLetter,
    stats: Arc<WebhookStats>,
    watch: Watch,
}

impl Pending {
    pub(super) fn new(
        settings: WebhookSettings,
        inbox: Inbox,
        dead: DeadLetter,
        stats: Arc<WebhookStats>,
        watch: Watch,
    ) -> Self {
        Pending { inbox, settings, dead, stats, watch }
    }

    /// Spawns the dispatcher; it starts the delivery tasks as it applies route changes.
    pub(super) fn spawn(self) -> Handle {
        let hard_stop = CancellationToken::new();
        let client = reqwest::Client::builder().timeout(Duration::from_secs(self.settings.timeout_seconds)).build();
        let client = client.unwrap_or_else(|e| {
            tracing::error!(error = %e, "webhook HTTP client set-up failed; using defaults");
            reqwest::Client::new()
        });
        let deliveries = TaskTracker::new();
        let (finish_tx, finish_rx) = oneshot::channel();
        let dispatcher = Dispatcher {
            routes: HashMap::new(),
            delay: Duration::from_millis(self.settings.leave_delay_ms),
            leaving: DelayQueue::new(),
            pending_leave: HashMap::new(),
            missed: HashSet::new(),
            spawner: Spawner {
                settings: self.settings,
                client,
                dead: self.dead.clone(),
                stats: self.stats,
                hard_stop: hard_stop.clone(),
                watch: self.watch,
                tasks: deliveries.clone(),
            },
            dead: self.dead,
        };
        let task = tokio::spawn(dispatcher.run(self.inbox, finish_rx));
        Handle { finish_tx, dispatcher: task, deliveries, hard_stop }
    }
}

/// Running tasks, kept for shutdown.
pub struct Handle {
    finish_tx: oneshot::Sender<()>,
    dispatcher: JoinHandle<()>,
    /// Every delivery task, started at start-up or later: shutdown waits for all of them.
    deliveries: TaskTracker,
    hard_stop: CancellationToken,
}

impl Handle {
    pub(super) async fn finish(self, grace: Duration) {
        let _ = self.finish_tx.send(());
        let _ = self.dispatcher.await;
        // The dispatcher is gone: no delivery task starts any more.
        self.deliveries.close();
        if tokio::time::timeout(grace, self.deliveries.wait()).await.is_err() {
            tracing::warn!("webhooks still pending after the grace period; writing them to the dead-letter file");
            self.hard_stop.cancel();
            self.deliveries.wait().await;
        }
    }
}

/// What a delivery task needs, shared by all of them; starts one per endpoint.
struct Spawner {
    settings: WebhookSettings,
    client: reqwest::Client,
    dead: DeadLetter,
    stats: Arc<WebhookStats>,
    hard_stop: CancellationToken,
    watch: Watch,
    tasks: TaskTracker,
}

impl Spawner {
    /// Starts delivering to `target`; the task ends once the returned sender is dropped and its
    /// queue is drained (or at the hard stop).
    fn start(&self, target: Target) -> mpsc::Sender<Value> {
        let (tx, rx) = mpsc::channel(self.settings.queue_size);
        let run = delivery::Delivery {
            target,
            settings: self.settings.clone(),
            client: self.client.clone(),
            dead: self.dead.clone(),
            stats: self.stats.clone(),
            hard_stop: self.hard_stop.clone(),
            watch: self.watch.clone(),
        };
        self.tasks.spawn(run.run(rx));
        tx
    }
}

type LeaveKey = (Arc<str>, String, Option<String>);

struct Dispatcher {
    routes: HashMap<Arc<str>, Vec<Route>>,
    delay: Duration,
    leaving: DelayQueue<(Arc<str>, Trigger)>,
    pending_leave: HashMap<LeaveKey, delay_queue::Key>,
    missed: HashSet<(Arc<str>, String)>,
    spawner: Spawner,
    dead: DeadLetter,
}

impl Dispatcher {
    async fn run(mut self, mut inbox: Inbox, mut finish: oneshot::Receiver<()>) {
        let mut open = true;
        loop {
            tokio::select! {
                biased;
                _ = &mut finish => break,
                Some(expired) = self.leaving.next(), if !self.leaving.is_empty() => {
                    let (app, t) = expired.into_inner();
                    self.pending_leave.remove(&leave_key(&app, &t));
                    self.send(&app, &t);
                }
                msg = inbox.recv(), if open => match msg {
                    Some(msg) => self.take(msg),
                    None => open = false,
                },
            }
        }
        // Shutdown: take what was reported so far, then send delayed leaves at once.
        while let Some(msg) = inbox.try_recv() {
            self.take(msg);
        }
        let mut rest: Vec<_> = self.pending_leave.drain().map(|(_, k)| k).collect();
        rest.sort_by_key(|k| self.leaving.deadline(k));
        for k in rest {
            let (app, t) = self.leaving.remove(&k).into_inner();
            self.send(&app, &t);
        }
        // Dropping the routes closes the delivery queues; deliveries finish what they hold.
    }

    fn take(&mut self, msg: Intake) {
        match msg {
            Intake::Event((app, t, decided)) => self.handle(app, t, decided),
            Intake::Route(change) => self.apply(change),
        }
    }

    /// Replaces an app's endpoints: a delivery task starts for each new one, and the old ones' queues
    /// close (their tasks deliver what they hold, then end).
    fn apply(&mut self, change: RouteChange) {
        let RouteChange { app, key, secret, endpoints } = change;
        if endpoints.is_empty() {
            if self.routes.remove(&app).is_some() {
                tracing::info!(app = %app, "webhooks of the app stopped");
            }
            self.missed.retain(|(a, _)| *a != app);
            return;
        }
        let routes = endpoints
            .into_iter()
            .map(|w| {
                let target =
                    Target { app_id: app.clone(), url: w.url.clone(), key: key.clone(), secret: secret.clone() };
                Route {
                    tx: self.spawner.start(target),
                    url: w.url,
                    event_types: w.event_types,
                    channel_prefix: w.channel_prefix,
                }
            })
            .collect::<Vec<_>>();
        tracing::debug!(app = %app, endpoints = routes.len(), "webhook endpoints of the app set");
        self.routes.insert(app, routes);
    }

    fn handle(&mut self, app: Arc<str>, t: Trigger, decided: bool) {
        if decided {
            // Delay and cancellation were already applied cluster-wide.
            return self.send(&app, &t);
        }
        match &t {
            Trigger::Vacated { .. } | Trigger::MemberRemoved { .. } if !self.delay.is_zero() => {
                let key = leave_key(&app, &t);
                if let Some(old) = self.pending_leave.remove(&key) {
                    self.leaving.remove(&old);
                }
                let k = self.leaving.insert((app, t), self.delay);
                self.pending_leave.insert(key, k);
            }
            Trigger::Occupied { channel } | Trigger::MemberAdded { channel, .. } => {
                let user = match &t {
                    Trigger::MemberAdded { user_id, .. } => Some(user_id.clone()),
                    _ => None,
                };
                match self.pending_leave.remove(&(app.clone(), channel.clone(), user)) {
                    // A quick return cancels both the leave and this join.
                    Some(k) => drop(self.leaving.remove(&k)),
                    None => self.send(&app, &t),
                }
            }
            Trigger::CacheMiss { channel } => {
                if self.missed.insert((app.clone(), channel.clone())) {
                    self.send(&app, &t);
                }
            }
            Trigger::CacheFilled { channel } => {
                self.missed.remove(&(app, channel.clone()));
            }
            _ => self.send(&app, &t),
        }
    }

    fn send(&mut self, app: &Arc<str>, t: &Trigger) {
        if let Trigger::Vacated { channel } = t {
            self.missed.remove(&(app.clone(), channel.clone()));
        }
        let Some(routes) = self.routes.get(app) else { return };
        let json = t.to_json();
        for r in routes.iter().filter(|r| r.wants(t)) {
            if let Err(e) = r.tx.try_send(json.clone()) {
                let reason = match e {
                    mpsc::error::TrySendError::Full(_) => "webhook queue full",
                    mpsc::error::TrySendError::Closed(_) => "webhook delivery stopped",
                };
                tracing::warn!(app = %app, url = %r.url, reason, "webhook event dead-lettered");
                self.dead.write(app, Some(&r.url), reason, std::slice::from_ref(&json));
            }
        }
    }
}

fn leave_key(app: &Arc<str>, t: &Trigger) -> LeaveKey {
    let user = match t {
        Trigger::MemberRemoved { user_id, .. } | Trigger::MemberAdded { user_id, .. } => Some(user_id.clone()),
        _ => None,
    };
    (app.clone(), t.channel().to_string(), user)
}
