//! The apps this node serves, by key and by id, and what changes them while it runs: an app found
//! in the app store is added, a changed one has its settings replaced as a whole (new connections
//! and requests see them; open connections keep their socket), a disabled one has its clients
//! closed with 4003, a removed one with 4001, and a rotated secret keeps signing for a grace
//! period so that backends can roll the new one out. Webhooks follow: an added app's endpoints
//! start at once, a change of endpoints, key or secret replaces its deliveries (signed with the
//! new credentials), a removed app sends no more.

use super::{AppState, Frame, Hub, lock};
use crate::config::AppConfig;
use crate::protocol::frame;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The apps this node serves, by key and by id.
#[derive(Default)]
pub(super) struct AppIndex {
    pub(super) by_key: HashMap<String, Arc<AppState>>,
    pub(super) by_id: HashMap<String, Arc<AppState>>,
}

/// A secret replaced by a rotation, and until when it still signs.
#[derive(Debug)]
pub(super) struct Retired {
    secret: String,
    until: Instant,
}

/// What [`Hub::change_app`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The settings were the same.
    Unchanged,
    /// New settings are served.
    Changed,
    /// No app has this id, or its new key is another app's.
    Refused,
}

impl AppState {
    /// Whether `check` accepts the app's secret, or the secret it had before its last rotation
    /// while that one is in its grace period. The old secret is only tried when the current one
    /// fails, so a correct signature costs nothing more.
    pub fn signed(&self, check: impl Fn(&str) -> bool) -> bool {
        if check(&self.config().secret) {
            return true;
        }
        self.retired_secret().is_some_and(|old| check(&old))
    }

    /// Whether the app is no longer served (deleted from the app store).
    pub fn is_removed(&self) -> bool {
        self.removed.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The secret before the last rotation, while it is still accepted.
    pub fn retired_secret(&self) -> Option<String> {
        let retired = lock(&self.retired);
        retired.as_ref().filter(|r| Instant::now() < r.until).map(|r| r.secret.clone())
    }

    /// Asks every connection of this app on this node to close with `code`, after a `pusher:error`
    /// saying why.
    fn close_all(&self, code: u16, reason: &str) {
        let error = Frame::from(frame::error(Some(code), reason));
        self.connections.for_each_live(|o| o.close(Some(error.clone()), code, reason));
    }
}

impl Hub {
    fn index(&self) -> std::sync::RwLockReadGuard<'_, AppIndex> {
        self.inner.apps.read().unwrap_or_else(|p| p.into_inner())
    }

    fn index_mut(&self) -> std::sync::RwLockWriteGuard<'_, AppIndex> {
        self.inner.apps.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The app with this public key.
    pub fn app_by_key(&self, key: &str) -> Option<Arc<AppState>> {
        self.index().by_key.get(key).cloned()
    }

    /// The app with this id.
    pub fn app_by_id(&self, id: &str) -> Option<Arc<AppState>> {
        self.index().by_id.get(id).cloned()
    }

    /// Every app.
    pub fn apps(&self) -> Vec<Arc<AppState>> {
        self.index().by_id.values().cloned().collect()
    }

    /// The emitter of `config`'s webhooks from now on (see [`crate::webhooks::Routing::set_app`]).
    /// Called with the index locked, so that changes of one app reach the dispatcher in the order
    /// they are served.
    fn set_webhooks(&self, config: &AppConfig) -> Option<crate::webhooks::Emitter> {
        // None only with the config store, whose apps never change.
        self.inner.webhooks.as_ref().and_then(|routing| routing.set_app(config))
    }

    /// Starts serving an app found after start-up (in the app store), its webhooks too; false when
    /// its id or key is already served.
    pub fn add_app(&self, config: AppConfig) -> bool {
        let mut index = self.index_mut();
        if index.by_id.contains_key(&config.id) || index.by_key.contains_key(&config.key) {
            return false;
        }
        let hooks = self.set_webhooks(&config);
        let (id, key) = (config.id.clone(), config.key.clone());
        let state = Arc::new(AppState::with_feed(
            config,
            Arc::default(),
            hooks,
            self.inner.debug.clone(),
            self.inner.adapter.clone(),
        ));
        tracing::info!(app = %id, "app added from the app store");
        index.by_key.insert(key, state.clone());
        index.by_id.insert(id, state);
        true
    }

    /// Serves `config` as the settings of the app with its id. A new secret leaves the old one
    /// valid for `grace`; a key that changes is looked up by its new value only (open connections
    /// stay); an app switched off has its clients closed with 4003. New endpoints, a new key or a
    /// new secret replace the app's webhook deliveries (what the old ones hold is still sent, signed
    /// as before).
    pub fn change_app(&self, config: AppConfig, grace: Duration) -> Change {
        let mut index = self.index_mut();
        let Some(app) = index.by_id.get(&config.id).cloned() else { return Change::Refused };
        let old = app.config_owned();
        if serde_json::to_value(&*old).ok() == serde_json::to_value(&config).ok() {
            return Change::Unchanged;
        }
        if old.key != config.key {
            if index.by_key.contains_key(&config.key) {
                tracing::error!(app = %config.id, "app changed to a key another app has; the change is not served");
                return Change::Refused;
            }
            index.by_key.remove(&old.key);
            index.by_key.insert(config.key.clone(), app.clone());
        }
        if old.secret != config.secret {
            *lock(&app.retired) = Some(Retired { secret: old.secret.clone(), until: Instant::now() + grace });
            tracing::info!(app = %config.id, grace_seconds = grace.as_secs(), "app secret rotated; the old one is accepted during the grace period");
        }
        let endpoints_changed = serde_json::to_value(&old.webhooks).ok() != serde_json::to_value(&config.webhooks).ok();
        if endpoints_changed || old.key != config.key || old.secret != config.secret {
            app.hooks.set(self.set_webhooks(&config));
        }
        let disabled = old.enabled && !config.enabled;
        app.history_on.store(!config.history_channels.is_empty(), std::sync::atomic::Ordering::Relaxed);
        app.config.store(Arc::new(config));
        drop(index);
        tracing::info!(app = %app.id(), "app settings changed in the app store");
        if disabled {
            tracing::info!(app = %app.id(), "app disabled: closing its connections with 4003");
            app.close_all(4003, "Application is disabled");
        }
        Change::Changed
    }

    /// Stops serving the app with this id and closes its clients with 4001; false when no app has it.
    /// Its webhooks stop first (its clients' departures are not reported); what its deliveries
    /// hold is still sent.
    pub fn remove_app(&self, id: &str) -> bool {
        let mut index = self.index_mut();
        let Some(app) = index.by_id.remove(id) else { return false };
        let key = app.config().key.clone();
        index.by_key.remove(&key);
        app.removed.store(true, std::sync::atomic::Ordering::Release);
        app.hooks.set(None);
        if let Some(routing) = &self.inner.webhooks {
            routing.remove_app(id);
        }
        drop(index);
        tracing::info!(app = %id, "app deleted from the app store: closing its connections with 4001");
        app.close_all(4001, "Application does not exist");
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::hub::DebugFeed;
    use crate::webhooks::Webhooks;

    fn hub() -> Hub {
        let config = Config::load(None, Vec::new()).unwrap_or_else(|e| panic!("{e}"));
        Hub::new(&config, &Webhooks::new(&config), &DebugFeed::default())
    }

    #[test]
    fn a_rotated_secret_signs_until_its_grace_ends() {
        let hub = hub();
        let app = hub.app_by_id("1").unwrap_or_else(|| panic!("dev app"));
        let old = app.config().secret.clone();
        let rotated = AppConfig { secret: "new-secret".into(), ..(*app.config_owned()).clone() };
        assert_eq!(hub.change_app(rotated.clone(), Duration::from_secs(60)), Change::Changed);
        assert_eq!(hub.change_app(rotated.clone(), Duration::from_secs(60)), Change::Unchanged);
        assert!(app.signed(|s| s == "new-secret"));
        assert!(app.signed(|s| s == old));
        assert!(!app.signed(|s| s == "other"));
        let again = AppConfig { secret: "third".into(), ..rotated };
        hub.change_app(again, Duration::ZERO);
        assert!(!app.signed(|s| s == "new-secret"), "no grace: the old secret stops at once");
    }

    #[test]
    fn a_new_key_is_found_the_old_one_is_not_and_removal_forgets_both() {
        let hub = hub();
        let app = hub.app_by_key("app-key").unwrap_or_else(|| panic!("dev app"));
        let moved = AppConfig { key: "moved".into(), ..(*app.config_owned()).clone() };
        assert_eq!(hub.change_app(moved, Duration::ZERO), Change::Changed);
        assert!(hub.app_by_key("app-key").is_none());
        assert!(hub.app_by_key("moved").is_some());
        let unknown = AppConfig { id: "nope".into(), ..AppConfig::development() };
        assert_eq!(hub.change_app(unknown, Duration::ZERO), Change::Refused);
        assert!(hub.remove_app("1"));
        assert!(hub.app_by_id("1").is_none() && hub.app_by_key("moved").is_none());
        assert!(!hub.remove_app("1"));
    }

    #[test]
    fn webhooks_follow_apps_added_changed_and_removed() {
        let mut config = Config::load(None, Vec::new()).unwrap_or_else(|e| panic!("{e}"));
        config.app_store = "postgres".into();
        config.webhooks.dead_letter_file = std::env::temp_dir().join("sinew-hub-apps-test.jsonl").display().to_string();
        let hub = Hub::new(&config, &Webhooks::new(&config), &DebugFeed::default());
        let hook = crate::config::WebhookTarget {
            url: "http://127.0.0.1:9/h".into(),
            event_types: Vec::new(),
            channel_prefix: None,
        };
        let added =
            AppConfig { id: "new".into(), key: "new-key".into(), webhooks: vec![hook], ..AppConfig::development() };
        assert!(hub.add_app(added.clone()));
        let app = hub.app_by_id("new").unwrap_or_else(|| panic!("added"));
        assert!(app.has_webhooks(), "an app added while running sends its webhooks");
        assert_eq!(
            hub.change_app(AppConfig { webhooks: Vec::new(), ..added.clone() }, Duration::ZERO),
            Change::Changed
        );
        assert!(!app.has_webhooks());
        assert_eq!(hub.change_app(added, Duration::ZERO), Change::Changed);
        assert!(app.has_webhooks());
        assert!(hub.remove_app("new"));
        assert!(!app.has_webhooks(), "a removed app reports nothing more");
    }

    #[test]
    fn history_switched_on_by_a_change_applies_to_the_next_publish() {
        let hub = hub();
        let app = hub.app_by_id("1").unwrap_or_else(|| panic!("dev app"));
        assert!(!app.keeps_history("private-a"));
        let on = AppConfig { history_channels: vec!["private-".into()], ..(*app.config_owned()).clone() };
        hub.change_app(on, Duration::ZERO);
        assert!(app.keeps_history("private-a") && !app.keeps_history("news"));
    }

    #[test]
    fn disabling_closes_open_connections_with_4003() {
        let hub = hub();
        let app = hub.app_by_id("1").unwrap_or_else(|| panic!("dev app"));
        let conn = hub.new_connection(&app);
        app.connections().set_live(&conn, true);
        let off = AppConfig { enabled: false, ..(*app.config_owned()).clone() };
        hub.change_app(off, Duration::ZERO);
        assert_eq!(conn.outbox.close_request().map(|c| c.code), Some(4003));
    }
}
