//! Changing an app's endpoints while the node runs, and the queue into the dispatcher. [`Routing`]
//! hands the dispatcher a [`RouteChange`] for the app and gives back the emitter its state reports
//! through. Changes and events share one queue, so the dispatcher applies a change after every
//! event reported before it and before every event reported after it: an event goes to the
//! endpoints the app had when it was reported.

use super::{DeadLetter, Emitter, Reported, Trigger};
use crate::config::{AppConfig, WebhookTarget};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::mpsc;

/// An app's endpoints from now on, and the credentials their deliveries sign with. No endpoints:
/// the app sends no more webhooks (it lost them, or it was removed).
#[derive(Debug)]
pub(super) struct RouteChange {
    /// The app concerned.
    pub(super) app: Arc<str>,
    /// Sent as `X-Pusher-Key`.
    pub(super) key: String,
    /// Signs every body.
    pub(super) secret: String,
    /// Where its events go now (replacing all the app had).
    pub(super) endpoints: Vec<WebhookTarget>,
}

/// What the dispatcher receives, in the order it was sent.
pub(super) enum Intake {
    /// A trigger reported by an app.
    Event(Reported),
    /// An app's endpoints changed.
    Route(RouteChange),
}

/// The sending end of the dispatcher's queue, shared by every emitter and the [`Routing`]. Events
/// beyond `capacity` waiting are refused (the emitter dead-letters them) so a stalled dispatcher
/// cannot take all memory; route changes are never refused (they are rare, and one lost would
/// leave an app signing with old credentials or posting to an old URL).
#[derive(Clone)]
pub(super) struct Queue {
    tx: mpsc::UnboundedSender<Intake>,
    /// Events sent and not yet received (route changes are not counted).
    queued: Arc<AtomicUsize>,
    capacity: usize,
}

impl Queue {
    /// A queue holding at most `capacity` events, and its receiving end.
    pub(super) fn new(capacity: usize) -> (Queue, Inbox) {
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        (Queue { tx, queued: queued.clone(), capacity }, Inbox { rx, queued })
    }

    /// Queues an event without blocking; a refused event's trigger comes back with the reason.
    pub(super) fn event(&self, reported: Reported) -> Option<(Trigger, &'static str)> {
        if self.queued.fetch_add(1, Ordering::Relaxed) >= self.capacity {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            return Some((reported.1, "webhook intake queue full"));
        }
        if let Err(mpsc::error::SendError(refused)) = self.tx.send(Intake::Event(reported)) {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            if let Intake::Event((_, trigger, _)) = refused {
                return Some((trigger, "webhooks stopped"));
            }
        }
        None
    }
}

/// The dispatcher's end of the queue.
pub(super) struct Inbox {
    rx: mpsc::UnboundedReceiver<Intake>,
    queued: Arc<AtomicUsize>,
}

impl Inbox {
    /// The next message; `None` once every sender is gone.
    pub(super) async fn recv(&mut self) -> Option<Intake> {
        let msg = self.rx.recv().await;
        self.taken(msg)
    }

    /// The next message if one is waiting.
    pub(super) fn try_recv(&mut self) -> Option<Intake> {
        let msg = self.rx.try_recv().ok();
        self.taken(msg)
    }

    fn taken(&self, msg: Option<Intake>) -> Option<Intake> {
        if let Some(Intake::Event(_)) = &msg {
            self.queued.fetch_sub(1, Ordering::Relaxed);
        }
        msg
    }
}

/// The way into a running dispatcher for app changes: its queue (shared with the emitters it makes)
/// and the dead-letter file emitters fall back to. Cheap to clone; the hub keeps one to follow app
/// changes, so it owns nothing of the dispatcher but the right to send it changes.
#[derive(Clone)]
pub struct Routing {
    queue: Queue,
    dead: DeadLetter,
}

impl std::fmt::Debug for Routing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routing").finish_non_exhaustive()
    }
}

impl Routing {
    pub(super) fn new(queue: Queue, dead: DeadLetter) -> Self {
        Routing { queue, dead }
    }

    /// Sends `app`'s events to its current endpoints from now on, signed with its current key and
    /// secret; its previous deliveries finish what they hold and end. The emitter its state reports
    /// through, or `None` when it has no endpoints (nothing is reported then).
    pub fn set_app(&self, app: &AppConfig) -> Option<Emitter> {
        let id: Arc<str> = app.id.as_str().into();
        self.send(RouteChange {
            app: id.clone(),
            key: app.key.clone(),
            secret: app.secret.clone(),
            endpoints: app.webhooks.clone(),
        });
        (!app.webhooks.is_empty()).then(|| Emitter { app_id: id, queue: self.queue.clone(), dead: self.dead.clone() })
    }

    /// Stops the app's deliveries (they finish what they hold): it was removed.
    pub fn remove_app(&self, id: &str) {
        self.send(RouteChange { app: id.into(), key: String::new(), secret: String::new(), endpoints: Vec::new() });
    }

    fn send(&self, change: RouteChange) {
        if self.queue.tx.send(Intake::Route(change)).is_err() {
            // Only after shutdown: the dispatcher is gone and emitters dead-letter what they get.
            tracing::debug!("webhook dispatcher stopped; route change ignored");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{DeadLetter, Intake, Queue, Routing};
    use crate::config::{AppConfig, Config, WebhookTarget};
    use crate::protocol::signature;
    use crate::webhooks::{Trigger, Webhooks};
    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::{HeaderMap, Uri};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// Every POST received: path, `X-Pusher-Key`, the secret whose signature it carries, body.
    type Received = Arc<Mutex<Vec<(String, String, String, serde_json::Value)>>>;

    async fn hook(State(got): State<Received>, uri: Uri, headers: HeaderMap, body: Bytes) {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let sig = header("x-pusher-signature");
        let signer = ["s1", "s2"].into_iter().find(|s| signature::verify_hex(s, &body, &sig)).unwrap_or("none");
        let body = serde_json::from_slice(&body).unwrap_or_default();
        got.lock().unwrap_or_else(|p| p.into_inner()).push((
            uri.path().into(),
            header("x-pusher-key"),
            signer.into(),
            body,
        ));
    }

    async fn receiver() -> (String, Received) {
        let got = Received::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let app = axum::Router::new().fallback(axum::routing::post(hook)).with_state(got.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}"), got)
    }

    fn app(base: &str, path: &str, key: &str, secret: &str) -> AppConfig {
        let url = format!("{base}{path}");
        let webhooks = vec![WebhookTarget { url, event_types: Vec::new(), channel_prefix: None }];
        AppConfig { id: "live".into(), key: key.into(), secret: secret.into(), webhooks, ..AppConfig::default() }
    }

    fn config(store: &str) -> Config {
        let mut c = Config::load(None, Vec::new()).unwrap_or_else(|e| panic!("{e}"));
        c.app_store = store.into();
        c.webhooks.batch_window_ms = 5;
        c.webhooks.dead_letter_file =
            std::env::temp_dir().join(format!("sinew-routing-{}.jsonl", rand::random::<u64>())).display().to_string();
        c
    }

    fn seen(got: &Received) -> Vec<(String, String, String, serde_json::Value)> {
        got.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    #[test]
    fn events_are_bounded_route_changes_are_not_and_both_keep_their_order() {
        let (queue, mut inbox) = Queue::new(2);
        let dead = DeadLetter::new(&config("postgres").webhooks.dead_letter_file, Arc::default());
        let routing = Routing::new(queue.clone(), dead);
        let event = |n: u32| (Arc::<str>::from("live"), Trigger::Occupied { channel: format!("c{n}") }, false);
        assert!(queue.event(event(1)).is_none());
        assert!(queue.event(event(2)).is_none());
        assert_eq!(
            queue.event(event(3)).map(|(t, why)| (t.channel().to_string(), why)),
            Some(("c3".into(), "webhook intake queue full"))
        );
        routing.remove_app("live");
        let taken = |msg: Option<Intake>| match msg {
            Some(Intake::Event((_, t, _))) => t.channel().to_string(),
            Some(Intake::Route(c)) => format!("route {} {}", c.app, c.endpoints.len()),
            None => "nothing".into(),
        };
        assert_eq!(taken(inbox.try_recv()), "c1");
        assert!(queue.event(event(4)).is_none(), "one taken, one more fits");
        let order: Vec<String> = std::iter::from_fn(|| inbox.try_recv()).map(|m| taken(Some(m))).collect();
        assert_eq!(order, ["c2", "route live 0", "c4"]);
        drop(inbox);
        assert_eq!(queue.event(event(5)).map(|(_, why)| why), Some("webhooks stopped"));
    }

    #[test]
    fn nothing_runs_with_the_config_store_and_no_endpoints() {
        let hooks = Webhooks::new(&config("config"));
        assert!(hooks.routing().is_none());
        assert!(hooks.set_app(&app("http://127.0.0.1:9", "/a", "k", "s1")).is_none());
        assert!(Webhooks::new(&config("postgres")).routing().is_some(), "a database app may gain endpoints");
    }

    #[tokio::test]
    async fn endpoints_and_secrets_set_while_running_are_used_and_drained_at_shutdown() {
        let (base, got) = receiver().await;
        let hooks = Webhooks::new(&config("postgres"));
        hooks.start();
        let occupied = |n: u32| Trigger::Occupied { channel: format!("c{n}") };

        let first = hooks.set_app(&app(&base, "/a", "k1", "s1")).unwrap_or_else(|| panic!("has endpoints"));
        first.emit(occupied(1));
        // Replaced before the first delivery is sure to be out: it still goes out, as it was signed.
        let second = hooks.set_app(&app(&base, "/b", "k2", "s2")).unwrap_or_else(|| panic!("has endpoints"));
        second.emit(occupied(2));
        let none = AppConfig { webhooks: Vec::new(), ..app(&base, "/b", "k2", "s2") };
        assert!(hooks.set_app(&none).is_none(), "no endpoints, no emitter");
        second.emit(occupied(3));
        let third = hooks.set_app(&app(&base, "/a", "k1", "s1")).unwrap_or_else(|| panic!("has endpoints"));
        hooks.remove_app("live");
        third.emit(occupied(4));
        // Deliveries started after start-up are waited for.
        hooks.finish(Duration::from_secs(5)).await;

        let mut seen: Vec<_> = seen(&got)
            .into_iter()
            .map(|(path, key, signer, body)| (path, key, signer, body["events"][0]["channel"].clone()))
            .collect();
        seen.sort_by_key(|s| s.3.to_string());
        let row = |p: &str, k: &str, s: &str, c: &str| (p.to_string(), k.to_string(), s.to_string(), c.into());
        assert_eq!(seen, vec![row("/a", "k1", "s1", "c1"), row("/b", "k2", "s2", "c2")]);
    }
}
