//! The cluster-wide view of an app's channels, for the REST API: counts, channel lists, presence
//! members and cached events, from the adapter when clustered and from this node's registry alone.

use super::{AppState, ChannelSummary};
use crate::adapter::{Adapter, ClusterError};
use tokio::time::Instant;

/// A cached event as stored in Redis.
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct StoredEvent {
    pub(super) event: String,
    pub(super) data: String,
}

impl AppState {
    /// This node's adapter.
    pub fn adapter(&self) -> &Adapter {
        &self.adapter
    }

    /// Counts of one channel, cluster-wide when clustered.
    pub async fn channel_info(&self, channel: &str) -> Result<Option<ChannelSummary>, ClusterError> {
        Ok(match self.adapter.channel_counts(self.id(), channel).await? {
            None => self.channels.summary(channel),
            Some((subs, users)) => {
                (subs > 0).then_some(ChannelSummary { subscription_count: subs as usize, user_count: users as usize })
            }
        })
    }

    /// Occupied channels starting with `prefix`, cluster-wide when clustered (`user_count` is only
    /// filled when `user_counts` is set).
    pub async fn channel_list(
        &self,
        prefix: &str,
        user_counts: bool,
    ) -> Result<Vec<(String, ChannelSummary)>, ClusterError> {
        Ok(match self.adapter.channels(self.id(), prefix, user_counts).await? {
            None => self.channels.with_prefix(prefix),
            Some(channels) => channels
                .into_iter()
                .map(|(name, subs, users)| {
                    (name, ChannelSummary { subscription_count: subs as usize, user_count: users as usize })
                })
                .collect(),
        })
    }

    /// Member ids of a presence channel, cluster-wide when clustered.
    pub async fn channel_members(&self, channel: &str) -> Result<Vec<String>, ClusterError> {
        Ok(match self.adapter.member_ids(self.id(), channel).await? {
            None => self.channels.member_ids(channel),
            Some(ids) => ids,
        })
    }

    /// The cached event of a cache channel as `(event, data, seconds left)`, cluster-wide when clustered.
    pub async fn cached_event(&self, channel: &str) -> Result<Option<(String, String, u64)>, ClusterError> {
        Ok(match self.adapter.cached(self.id(), channel).await? {
            None => self.cached(channel).map(|ev| {
                let ttl = ev.expires_at.saturating_duration_since(Instant::now()).as_secs();
                (ev.event, ev.data, ttl)
            }),
            Some(stored) => stored.and_then(|(stored, ttl)| {
                serde_json::from_str::<StoredEvent>(&stored).ok().map(|e| (e.event, e.data, ttl))
            }),
        })
    }

    /// Stores the last event of a cache channel in Redis for the whole cluster (when clustered).
    pub fn share_cached(&self, channel: &str, event: &str, data: &str) {
        let value = || serde_json::to_string(&StoredEvent { event: event.to_string(), data: data.to_string() }).ok();
        self.adapter.set_cache(self.id(), channel, value, self.config().cache_ttl_seconds);
    }
}
