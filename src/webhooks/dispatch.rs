//! The dispatcher: applies the leave delay and its cancellation, de-duplicates cache misses, and
//! routes each event to the delivery queue of every matching endpoint.

use super::delivery::{self, Target};
use super::{DeadLetter, Reported, Task, Trigger, Watch, WebhookStats};
use crate::config::{Config, WebhookSettings};
use futures_util::StreamExt;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
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

/// Everything needed to start the webhook tasks.
pub struct Pending {
    rx: mpsc::Receiver<Reported>,
    settings: WebhookSettings,
    targets: Vec<(Target, mpsc::Receiver<Value>)>,
    routes: HashMap<Arc<str>, Vec<Route>>,
    dead: DeadLetter,
    stats: Arc<WebhookStats>,
    watch: Watch,
}

impl Pending {
    pub(super) fn new(
        config: &Config,
        rx: mpsc::Receiver<Reported>,
        dead: DeadLetter,
        stats: Arc<WebhookStats>,
        watch: Watch,
    ) -> Self {
        let mut targets = Vec::new();
        let mut routes: HashMap<Arc<str>, Vec<Route>> = HashMap::new();
        for app in &config.apps {
            let app_id: Arc<str> = app.id.as_str().into();
            for w in &app.webhooks {
                let (tx, target_rx) = mpsc::channel(config.webhooks.queue_size);
                targets.push((
                    Target {
                        app_id: app_id.clone(),
                        url: w.url.clone(),
                        key: app.key.clone(),
                        secret: app.secret.clone(),
                    },
                    target_rx,
                ));
                routes.entry(app_id.clone()).or_default().push(Route {
                    url: w.url.clone(),
                    event_types: w.event_types.clone(),
                    channel_prefix: w.channel_prefix.clone(),
                    tx,
                });
            }
        }
        Pending { rx, settings: config.webhooks.clone(), targets, routes, dead, stats, watch }
    }

    /// Spawns the dispatcher and one delivery task per endpoint.
    pub(super) fn spawn(self) -> Handle {
        let hard_stop = CancellationToken::new();
        let client = reqwest::Client::builder().timeout(Duration::from_secs(self.settings.timeout_seconds)).build();
        let client = client.unwrap_or_else(|e| {
            tracing::error!(error = %e, "webhook HTTP client set-up failed; using defaults");
            reqwest::Client::new()
        });
        let deliveries = self
            .targets
            .into_iter()
            .map(|(target, rx)| {
                let run = delivery::Delivery {
                    target,
                    settings: self.settings.clone(),
                    client: client.clone(),
                    dead: self.dead.clone(),
                    stats: self.stats.clone(),
                    hard_stop: hard_stop.clone(),
                    watch: self.watch.clone(),
                };
                tokio::spawn(run.run(rx))
            })
            .collect();
        let (finish_tx, finish_rx) = oneshot::channel();
        let dispatcher = Dispatcher {
            routes: self.routes,
            delay: Duration::from_millis(self.settings.leave_delay_ms),
            leaving: DelayQueue::new(),
            pending_leave: HashMap::new(),
            missed: HashSet::new(),
            dead: self.dead,
        };
        let task = tokio::spawn(dispatcher.run(self.rx, finish_rx));
        Handle { finish_tx, dispatcher: task, deliveries, hard_stop }
    }
}

/// Running tasks, kept for shutdown.
pub struct Handle {
    finish_tx: oneshot::Sender<()>,
    dispatcher: Task,
    deliveries: Vec<Task>,
    hard_stop: CancellationToken,
}

impl Handle {
    pub(super) async fn finish(self, grace: Duration) {
        let _ = self.finish_tx.send(());
        let _ = self.dispatcher.await;
        let deliveries = futures_util::future::join_all(self.deliveries);
        tokio::pin!(deliveries);
        if tokio::time::timeout(grace, &mut deliveries).await.is_err() {
            tracing::warn!("webhooks still pending after the grace period; writing them to the dead-letter file");
            self.hard_stop.cancel();
            deliveries.await;
        }
    }
}

type LeaveKey = (Arc<str>, String, Option<String>);

struct Dispatcher {
    routes: HashMap<Arc<str>, Vec<Route>>,
    delay: Duration,
    leaving: DelayQueue<(Arc<str>, Trigger)>,
    pending_leave: HashMap<LeaveKey, delay_queue::Key>,
    missed: HashSet<(Arc<str>, String)>,
    dead: DeadLetter,
}

impl Dispatcher {
    async fn run(mut self, mut rx: mpsc::Receiver<Reported>, mut finish: oneshot::Receiver<()>) {
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
                msg = rx.recv(), if open => match msg {
                    Some((app, t, decided)) => self.handle(app, t, decided),
                    None => open = false,
                },
            }
        }
        // Shutdown: take what was reported so far, then send delayed leaves at once.
        while let Ok((app, t, decided)) = rx.try_recv() {
            self.handle(app, t, decided);
        }
        let mut rest: Vec<_> = self.pending_leave.drain().map(|(_, k)| k).collect();
        rest.sort_by_key(|k| self.leaving.deadline(k));
        for k in rest {
            let (app, t) = self.leaving.remove(&k).into_inner();
            self.send(&app, &t);
        }
        // Dropping the routes closes the delivery queues; deliveries finish what they hold.
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
