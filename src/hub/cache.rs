//! Cache channels: the last event published to each `cache-` channel, kept for a TTL.

use super::{AppState, lock};
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::time::{Duration, Instant};

/// The last event of a cache channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedEvent {
    /// Event name.
    pub event: String,
    /// Event data, as published.
    pub data: String,
    /// When it stops being served.
    pub expires_at: Instant,
}

/// The last event of each cache channel of an app, with its expiry.
#[derive(Debug, Default)]
pub struct Cache {
    entries: Mutex<HashMap<String, CachedEvent>>,
}

impl Cache {
    /// Stores the last event of `channel` for `ttl`; true when the channel had none (or only an
    /// expired one not purged yet: that one counts as present, as before a purge).
    pub fn store(&self, channel: &str, event: &str, data: &str, ttl: Duration) -> bool {
        let expires_at = Instant::now() + ttl;
        let previous = lock(&self.entries)
            .insert(channel.to_string(), CachedEvent { event: event.into(), data: data.into(), expires_at });
        previous.is_none()
    }

    /// The cached event of a channel, unless it expired (expired entries are dropped).
    pub fn get(&self, channel: &str) -> Option<CachedEvent> {
        let mut entries = lock(&self.entries);
        let now = Instant::now();
        match entries.get(channel) {
            Some(ev) if ev.expires_at > now => Some(ev.clone()),
            Some(_) => {
                entries.remove(channel);
                None
            }
            None => None,
        }
    }

    /// Drops every expired entry; called periodically.
    pub fn purge_expired(&self) {
        let now = Instant::now();
        lock(&self.entries).retain(|_, ev| ev.expires_at > now);
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        lock(&self.entries).is_empty()
    }
}

impl AppState {
    /// Stores the last event of a cache channel (a `cache_filled` webhook when it had none).
    pub fn store_cached(&self, channel: &str, event: &str, data: &str) {
        if self.cache.store(channel, event, data, Duration::from_secs(self.config().cache_ttl_seconds)) {
            self.emit(|| crate::webhooks::Trigger::CacheFilled { channel: channel.to_string() });
        }
    }

    /// The cached event of a channel, unless it expired.
    pub fn cached(&self, channel: &str) -> Option<CachedEvent> {
        self.cache.get(channel)
    }

    /// This app's cache channels' last events.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AppConfig;
    use std::sync::Arc;

    #[tokio::test(start_paused = true)]
    async fn entries_expire_after_ttl() {
        let app = AppState::new(AppConfig { cache_ttl_seconds: 10, ..AppConfig::development() }, Arc::default(), None);
        app.store_cached("cache-a", "e", "d1");
        app.store_cached("cache-a", "e", "d2");
        assert_eq!(app.cached("cache-a").map(|e| e.data), Some("d2".into()));
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(app.cached("cache-a"), None);
        app.store_cached("cache-b", "e", "d");
        tokio::time::advance(Duration::from_secs(11)).await;
        app.cache().purge_expired();
        assert!(app.cache().is_empty());
    }
}
