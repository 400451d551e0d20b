//! Cache channels: the last event published to each `cache-` channel, kept for a TTL.

use super::{AppState, lock};
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

impl AppState {
    /// Stores the last event of a cache channel.
    pub fn store_cached(&self, channel: &str, event: &str, data: &str) {
        let expires_at = Instant::now() + Duration::from_secs(self.config.cache_ttl_seconds);
        let previous = lock(&self.cache)
            .insert(channel.to_string(), CachedEvent { event: event.into(), data: data.into(), expires_at });
        if previous.is_none() {
            self.emit(|| crate::webhooks::Trigger::CacheFilled { channel: channel.to_string() });
        }
    }

    /// The cached event of a channel, unless it expired (expired entries are dropped).
    pub fn cached(&self, channel: &str) -> Option<CachedEvent> {
        let mut cache = lock(&self.cache);
        let now = Instant::now();
        match cache.get(channel) {
            Some(ev) if ev.expires_at > now => Some(ev.clone()),
            Some(_) => {
                cache.remove(channel);
                None
            }
            None => None,
        }
    }

    /// Drops every expired cache entry; called periodically.
    pub fn purge_expired_cache(&self) {
        let now = Instant::now();
        lock(&self.cache).retain(|_, ev| ev.expires_at > now);
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
        app.purge_expired_cache();
        assert!(lock(&app.cache).is_empty());
    }
}
