//! The names of the Redis keys and of the bus topics under one prefix (see [`super::scripts`] for
//! what each key holds).
//!
//! On a Redis Cluster every state key starts with the prefix as a hash tag (`{P}:...`), so all of
//! them live in one slot and each Lua script touches one shard; the topics keep the bare prefix,
//! so sharded pub/sub spreads the channels' topics over the shards.

/// Key and topic names under one prefix.
#[derive(Debug, Clone)]
pub(super) struct Keys {
    /// What state keys start with: the prefix, as a hash tag on a Redis Cluster.
    prefix: String,
    /// What topics start with: the prefix.
    topics: String,
}

impl Keys {
    pub(super) fn new(prefix: String, cluster: bool) -> Self {
        let keys = if cluster { format!("{{{prefix}}}") } else { prefix.clone() };
        Keys { prefix: keys, topics: prefix }
    }
    /// What every state key starts with.
    pub(super) fn prefix(&self) -> &str {
        &self.prefix
    }
    /// The topic every node listens to: member events and counts (published by the state scripts
    /// in the order Redis decided them), `listed`, `terminate`.
    pub(super) fn bus(&self) -> String {
        format!("{}:bus", self.topics)
    }
    /// The topic of one channel's events and client events, listened to by the nodes that have a
    /// subscriber on it.
    pub(super) fn channel_topic(&self, app: &str, channel: &str) -> String {
        format!("{}:ch:{app}:{channel}", self.topics)
    }
    pub(super) fn nodes(&self) -> String {
        format!("{}:nodes", self.prefix)
    }
    pub(super) fn draining(&self) -> String {
        format!("{}:draining", self.prefix)
    }
    pub(super) fn swept(&self, node: u32) -> String {
        format!("{}:swept:{node}", self.prefix)
    }
    /// The marker of a member's departure (see [`super::scripts::SUBSCRIBE`]).
    pub(super) fn leaving(&self, app: &str, channel: &str, user: &str) -> String {
        format!("{}:leaving:{user}", self.members(app, channel))
    }
    /// The marker of a channel's vacancy.
    pub(super) fn vacating(&self, app: &str, channel: &str) -> String {
        format!("{}:vacating:{channel}", self.app_subs(app))
    }
    pub(super) fn node_subs(&self, node: u32) -> String {
        format!("{}:node:{node}:subs", self.prefix)
    }
    pub(super) fn node_members(&self, node: u32) -> String {
        format!("{}:node:{node}:members", self.prefix)
    }
    pub(super) fn app_subs(&self, app: &str) -> String {
        format!("{}:app:{app}:subs", self.prefix)
    }
    pub(super) fn members(&self, app: &str, channel: &str) -> String {
        format!("{}:app:{app}:members:{channel}", self.prefix)
    }
    pub(super) fn values(&self, app: &str, channel: &str) -> String {
        format!("{}:app:{app}:values:{channel}", self.prefix)
    }
    pub(super) fn cache(&self, app: &str, channel: &str) -> String {
        format!("{}:app:{app}:cache:{channel}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_keeps_state_in_one_slot_and_spreads_topics() {
        let plain = Keys::new("sinew".into(), false);
        assert_eq!(plain.app_subs("1"), "sinew:app:1:subs");
        assert_eq!(plain.bus(), "sinew:bus");
        let cluster = Keys::new("sinew".into(), true);
        assert_eq!(cluster.app_subs("1"), "{sinew}:app:1:subs");
        assert_eq!(cluster.nodes(), "{sinew}:nodes");
        assert_eq!(cluster.bus(), "sinew:bus");
        assert_eq!(cluster.channel_topic("1", "private-a"), "sinew:ch:1:private-a");
        let slot = |k: &str| redis::cluster_routing::Slot::for_key(k);
        assert_eq!(slot(&cluster.members("1", "presence-a")), slot(&cluster.node_subs(3)));
    }
}
