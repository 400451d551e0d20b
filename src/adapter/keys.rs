//! The names of the Redis keys and of the bus channel under one prefix (see [`super::scripts`] for
//! what each key holds).

/// Key names under one prefix.
#[derive(Debug, Clone)]
pub(super) struct Keys {
    prefix: String,
}

impl Keys {
    pub(super) fn new(prefix: String) -> Self {
        Keys { prefix }
    }
    pub(super) fn prefix(&self) -> &str {
        &self.prefix
    }
    pub(super) fn bus(&self) -> String {
        format!("{}:bus", self.prefix)
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
