//! Changing an app's endpoints while the node runs: [`Routing`] hands the dispatcher a
//! [`RouteChange`] for the app and gives back the emitter its state reports through. Changes and
//! events travel on separate queues; the dispatcher applies every change it was sent before it
//! routes an event, so an event reported through an emitter that [`Routing::set_app`] returned
//! always finds the app's new endpoints.

use super::{DeadLetter, Emitter, Reported};
use crate::config::{AppConfig, WebhookTarget};
use std::sync::Arc;
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

/// The way into a running dispatcher: its intake (for new emitters), its queue of route changes,
/// and the dead-letter file emitters fall back to. Cheap to clone; the hub keeps one to follow app
/// changes, so it owns nothing of the dispatcher but the right to send it changes.
#[derive(Clone)]
pub struct Routing {
    intake: mpsc::Sender<Reported>,
    changes: mpsc::UnboundedSender<RouteChange>,
    dead: DeadLetter,
}

impl std::fmt::Debug for Routing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routing").finish_non_exhaustive()
    }
}

impl Routing {
    pub(super) fn new(
        intake: mpsc::Sender<Reported>,
        changes: mpsc::UnboundedSender<RouteChange>,
        dead: DeadLetter,
    ) -> Self {
        Routing { intake, changes, dead }
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
        (!app.webhooks.is_empty()).then(|| Emitter { app_id: id, tx: self.intake.clone(), dead: self.dead.clone() })
    }

    /// Stops the app's deliveries (they finish what they hold): it was removed.
    pub fn remove_app(&self, id: &str) {
        self.send(RouteChange { app: id.into(), key: String::new(), secret: String::new(), endpoints: Vec::new() });
    }

    fn send(&self, change: RouteChange) {
        if self.changes.send(change).is_err() {
            // Only after shutdown: the dispatcher is gone and emitters dead-letter what they get.
            tracing::debug!("webhook dispatcher stopped; route change ignored");
        }
    }
}
