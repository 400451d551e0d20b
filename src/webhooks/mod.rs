//! Webhooks: channel and member transitions, client events and cache misses, delivered to each app's
//! endpoints as signed, batched POSTs with retries. What cannot be delivered is written to a
//! dead-letter file (JSON lines) and counted, never dropped without a trace.
//!
//! Flow: the hub calls [`Emitter::emit`] (never blocks) -> the dispatcher applies the leave delay
//! (a quick rejoin cancels `channel_vacated`/`member_removed` and the matching re-join event) ->
//! one delivery task per endpoint batches, signs and POSTs. An app's endpoints can change while
//! the node runs ([`Routing`]): the hub sets them again when an app is added, changed or removed.

mod dead_letter;
mod delivery;
mod dispatch;
mod routing;

pub use dead_letter::{DeadLetter, replay};
pub use delivery::now_ms;
use routing::Queue;
pub use routing::Routing;

use crate::config::{AppConfig, Config};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock};

/// What happened, as reported by the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// First subscriber of a channel.
    Occupied {
        /// Channel name.
        channel: String,
    },
    /// Last subscriber left.
    Vacated {
        /// Channel name.
        channel: String,
    },
    /// First socket of a user joined a presence channel.
    MemberAdded {
        /// Channel name.
        channel: String,
        /// The user id (string form).
        user_id: String,
    },
    /// Last socket of a user left a presence channel.
    MemberRemoved {
        /// Channel name.
        channel: String,
        /// The user id (string form).
        user_id: String,
    },
    /// A client event was relayed.
    ClientEvent {
        /// Channel name.
        channel: String,
        /// Event name.
        event: String,
        /// The client's data as a string (JSON-encoded when it was not a string).
        data: String,
        /// Sender's socket id.
        socket_id: String,
        /// Sender's presence user id.
        user_id: Option<String>,
    },
    /// A subscriber found an empty cache channel.
    CacheMiss {
        /// Channel name.
        channel: String,
    },
    /// A cache channel received an event (resets cache-miss de-duplication; never sent).
    CacheFilled {
        /// Channel name.
        channel: String,
    },
}

impl Trigger {
    /// The channel concerned.
    pub fn channel(&self) -> &str {
        match self {
            Trigger::Occupied { channel }
            | Trigger::Vacated { channel }
            | Trigger::MemberAdded { channel, .. }
            | Trigger::MemberRemoved { channel, .. }
            | Trigger::ClientEvent { channel, .. }
            | Trigger::CacheMiss { channel }
            | Trigger::CacheFilled { channel } => channel,
        }
    }

    /// The webhook event name.
    pub fn name(&self) -> &'static str {
        match self {
            Trigger::Occupied { .. } => "channel_occupied",
            Trigger::Vacated { .. } => "channel_vacated",
            Trigger::MemberAdded { .. } => "member_added",
            Trigger::MemberRemoved { .. } => "member_removed",
            Trigger::ClientEvent { .. } => "client_event",
            Trigger::CacheMiss { .. } | Trigger::CacheFilled { .. } => "cache_miss",
        }
    }

    /// The event object as it appears in a webhook body's `events` array.
    pub fn to_json(&self) -> Value {
        match self {
            Trigger::MemberAdded { channel, user_id } | Trigger::MemberRemoved { channel, user_id } => {
                json!({ "name": self.name(), "channel": channel, "user_id": user_id })
            }
            Trigger::ClientEvent { channel, event, data, socket_id, user_id } => {
                let mut v = json!({ "name": "client_event", "channel": channel, "event": event, "data": data, "socket_id": socket_id });
                if let (Some(u), Value::Object(m)) = (user_id, &mut v) {
                    m.insert("user_id".into(), json!(u));
                }
                v
            }
            other => json!({ "name": other.name(), "channel": other.channel() }),
        }
    }
}

/// Counters of webhook outcomes (per batch).
#[derive(Debug, Default)]
pub struct WebhookStats {
    /// Batches answered with 2xx.
    pub sent: AtomicU64,
    /// Attempts that failed and were retried.
    pub retried: AtomicU64,
    /// Batches that failed for good (then dead-lettered).
    pub failed: AtomicU64,
    /// Lines written to the dead-letter file.
    pub dead_lettered: AtomicU64,
    /// Events that could not even be dead-lettered (writer overwhelmed or file unwritable); logged.
    pub lost: AtomicU64,
}

/// Someone watching delivery attempts (the debug console's feed). Reports are built only while
/// [`Watcher::watching`] is true.
pub trait Watcher: Send + Sync {
    /// True while someone watches.
    fn watching(&self) -> bool;
    /// Takes one report about `app_id`'s deliveries.
    fn report(&self, app_id: &str, event: Value);
}

/// The watcher, once one is set ([`Webhooks::watch`]); shared with the delivery tasks.
pub(crate) type Watch = Arc<OnceLock<Arc<dyn Watcher>>>;

/// A trigger as reported to the dispatcher: app, trigger, and whether the leave delay and its
/// cancellation were already applied (cluster-wide) so it goes out as is.
type Reported = (Arc<str>, Trigger, bool);

/// Handed to each app's state; reports triggers without ever blocking.
#[derive(Clone)]
pub struct Emitter {
    app_id: Arc<str>,
    queue: Queue,
    dead: DeadLetter,
}

impl std::fmt::Debug for Emitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emitter").field("app_id", &self.app_id).finish_non_exhaustive()
    }
}

impl Emitter {
    /// Reports a trigger. When the dispatcher is overloaded the event goes to the dead-letter file.
    pub fn emit(&self, trigger: Trigger) {
        self.report(trigger, false);
    }

    /// Reports a trigger whose leave delay was already applied elsewhere (cluster-wide): it is
    /// sent as is.
    pub fn emit_decided(&self, trigger: Trigger) {
        self.report(trigger, true);
    }

    fn report(&self, trigger: Trigger, decided: bool) {
        if let Some((trigger, reason)) = self.queue.event((self.app_id.clone(), trigger, decided)) {
            tracing::warn!(app = %self.app_id, event = trigger.name(), reason, "webhook event dead-lettered");
            self.dead.write(&self.app_id, None, reason, &[trigger.to_json()]);
        }
    }
}

/// The running webhook machinery of a node: the emitters of the apps known at start-up, the
/// dispatcher (pending until [`Webhooks::start`], then running until [`Webhooks::finish`]) and the
/// [`Routing`] that changes apps' endpoints meanwhile. With the config store and no endpoints
/// anywhere nothing runs: apps cannot change then.
pub struct Webhooks {
    emitters: HashMap<String, Emitter>,
    routing: Option<Routing>,
    stats: Arc<WebhookStats>,
    pending: Mutex<Option<dispatch::Pending>>,
    running: Mutex<Option<dispatch::Handle>>,
    dead: Option<DeadLetter>,
    watch: Watch,
}

impl Webhooks {
    /// Sets up emitters for every app with endpoints, and the dispatcher when some app has
    /// endpoints or apps come from a database (they may gain some while the node runs). Nothing
    /// runs until [`Webhooks::start`].
    pub fn new(config: &Config) -> Self {
        let stats = Arc::new(WebhookStats::default());
        let watch = Watch::default();
        let apps: Vec<&AppConfig> = config.apps.iter().filter(|a| !a.webhooks.is_empty()).collect();
        if apps.is_empty() && config.app_store == "config" {
            return Webhooks {
                emitters: HashMap::new(),
                routing: None,
                stats,
                pending: Mutex::new(None),
                running: Mutex::new(None),
                dead: None,
                watch,
            };
        }
        let dead = DeadLetter::new(&config.webhooks.dead_letter_file, stats.clone());
        let (queue, inbox) = Queue::new(config.webhooks.queue_size);
        let routing = Routing::new(queue, dead.clone());
        // The first messages the dispatcher takes, before any event.
        let emitters = apps.iter().filter_map(|a| Some((a.id.clone(), routing.set_app(a)?))).collect();
        let settings = config.webhooks.clone();
        let pending = dispatch::Pending::new(settings, inbox, dead.clone(), stats.clone(), watch.clone());
        let (pending, running) = (Mutex::new(Some(pending)), Mutex::new(None));
        Webhooks { emitters, routing: Some(routing), stats, pending, running, dead: Some(dead), watch }
    }

    /// The emitter of an app known at start-up, if it has endpoints.
    pub fn emitter(&self, app_id: &str) -> Option<Emitter> {
        self.emitters.get(app_id).cloned()
    }

    /// What changes apps' endpoints while the node runs; `None` when nothing runs (config store,
    /// no endpoints).
    pub fn routing(&self) -> Option<Routing> {
        self.routing.clone()
    }

    /// Sends `app`'s events to its current endpoints from now on (see [`Routing::set_app`]); its
    /// emitter, `None` when it has no endpoints or nothing runs.
    pub fn set_app(&self, app: &AppConfig) -> Option<Emitter> {
        match &self.routing {
            Some(r) => r.set_app(app),
            None if !app.webhooks.is_empty() => {
                tracing::warn!(app = %app.id, "webhooks are not running on this node; the app's are not sent");
                None
            }
            None => None,
        }
    }

    /// Stops the removed app's deliveries (they finish what they hold).
    pub fn remove_app(&self, id: &str) {
        if let Some(r) = &self.routing {
            r.remove_app(id);
        }
    }

    /// Outcome counters.
    pub fn stats(&self) -> &Arc<WebhookStats> {
        &self.stats
    }

    /// Reports every delivery attempt to `watcher` from now on (set once; later calls are ignored).
    pub fn watch(&self, watcher: Arc<dyn Watcher>) {
        let _ = self.watch.set(watcher);
    }

    /// Starts the dispatcher and delivery tasks (once).
    pub fn start(&self) {
        let pending = lock(&self.pending).take();
        if let Some(p) = pending {
            *lock(&self.running) = Some(p.spawn());
        }
    }

    /// Sends everything pending (leave delays are cut short), waits up to `grace`, then
    /// dead-letters what is left.
    pub async fn finish(&self, grace: std::time::Duration) {
        let running = lock(&self.running).take();
        if let Some(d) = running {
            d.finish(grace).await;
        }
        if let Some(dead) = &self.dead {
            dead.flush(grace).await;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_json_shapes() {
        let t = Trigger::ClientEvent {
            channel: "presence-a".into(),
            event: "client-x".into(),
            data: "{\"a\":1}".into(),
            socket_id: "1.2".into(),
            user_id: Some("u".into()),
        };
        assert_eq!(
            t.to_json(),
            json!({"name":"client_event","channel":"presence-a","event":"client-x","data":"{\"a\":1}","socket_id":"1.2","user_id":"u"})
        );
        assert_eq!(
            Trigger::Occupied { channel: "c".into() }.to_json(),
            json!({"name":"channel_occupied","channel":"c"})
        );
        assert_eq!(
            Trigger::MemberRemoved { channel: "presence-c".into(), user_id: "7".into() }.to_json(),
            json!({"name":"member_removed","channel":"presence-c","user_id":"7"})
        );
    }
}
