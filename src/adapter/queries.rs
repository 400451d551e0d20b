//! Cluster-wide reads: the subscriptions and members of channels, presence member ids, and the
//! cached event of a cache channel.

use super::error::ClusterError;
use super::link::{as_count, as_string, pairs};
use super::redis::RedisAdapter;
use redis::Value;

impl RedisAdapter {
    /// Cluster-wide subscriptions and distinct presence members of one channel.
    pub async fn channel_counts(&self, app: &str, channel: &str) -> Result<(u64, u64), ClusterError> {
        let mut pipe = redis::pipe();
        pipe.cmd("HGET").arg(self.link.keys.app_subs(app)).arg(channel);
        pipe.cmd("HLEN").arg(self.link.keys.members(app, channel));
        let v = self.link.query(&pipe).await?;
        Ok((v.first().map_or(0, as_count), v.get(1).map_or(0, as_count)))
    }

    /// Every occupied channel of an app whose name starts with `prefix`, with its subscriptions,
    /// and the distinct member count of presence channels when `user_counts` is set.
    pub async fn channels(
        &self,
        app: &str,
        prefix: &str,
        user_counts: bool,
    ) -> Result<Vec<(String, u64, u64)>, ClusterError> {
        let mut pipe = redis::pipe();
        pipe.cmd("HGETALL").arg(self.link.keys.app_subs(app));
        let v = self.link.query(&pipe).await?;
        let mut out: Vec<(String, u64, u64)> = pairs(v.first())
            .into_iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .map(|(name, n)| (name, n.parse::<u64>().unwrap_or(0), 0))
            .filter(|(_, n, _)| *n > 0)
            .collect();
        if user_counts && !out.is_empty() {
            let mut pipe = redis::pipe();
            for (name, _, _) in &out {
                pipe.cmd("HLEN").arg(self.link.keys.members(app, name));
            }
            let counts = self.link.query(&pipe).await?;
            for ((_, _, users), n) in out.iter_mut().zip(counts.iter()) {
                *users = as_count(n);
            }
        }
        Ok(out)
    }

    /// The member keys of a presence channel, cluster-wide.
    pub async fn member_ids(&self, app: &str, channel: &str) -> Result<Vec<String>, ClusterError> {
        let mut pipe = redis::pipe();
        pipe.cmd("HKEYS").arg(self.link.keys.members(app, channel));
        let v = self.link.query(&pipe).await?;
        Ok(match v.first() {
            Some(Value::Array(items)) => items.iter().filter_map(as_string).collect(),
            _ => Vec::new(),
        })
    }

    /// The cached event of a cache channel (`{"event":..,"data":..}`) and its remaining seconds.
    pub async fn cached(&self, app: &str, channel: &str) -> Result<Option<(String, u64)>, ClusterError> {
        let key = self.link.keys.cache(app, channel);
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(&key);
        pipe.cmd("PTTL").arg(&key);
        let v = self.link.query(&pipe).await?;
        let ttl_ms = match v.get(1) {
            Some(Value::Int(ms)) if *ms > 0 => *ms as u64,
            _ => 0,
        };
        Ok(v.first().and_then(as_string).map(|s| (s, ttl_ms / 1000)))
    }
}
