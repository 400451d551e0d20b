//! The hub's side of scale-out: subscriptions recorded cluster-wide, messages from other nodes
//! delivered here, and cluster-wide transitions announced (to local subscribers, to the other nodes
//! and as webhooks).
//!
//! On a node with the Redis adapter, a subscribe first attaches the connection locally with a
//! staging queue, then asks the cluster; frames published meanwhile wait in the staging queue and
//! follow `subscription_succeeded`, so nothing published after the cluster recorded the subscriber
//! is missed.

use super::registry::Member;
use super::subscribers::Subscriber;
use super::{AppState, ChannelSummary, ConnId, ConnRef, Drained, Event, Frame, Hub, Origin, SubscribeError, lock};
use crate::adapter::{
    Adapter, BusMessage, Change, ClusterError, Inbound, RedisAdapter, SubOutcome, SubRequest, member_value,
    split_member_value,
};
use crate::protocol::channel::{ChannelKind, ChannelType};
use crate::protocol::frame;
use crate::webhooks::Trigger;
use std::collections::HashSet;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// A cached event as stored in Redis.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredEvent {
    event: String,
    data: String,
}

impl AppState {
    /// This node's adapter.
    pub fn adapter(&self) -> &Adapter {
        &self.adapter
    }

    /// Subscribes `conn` to `channel`: locally, or cluster-wide when clustered.
    pub async fn join(&self, conn: &ConnRef, channel: &str, member: Option<Member>) -> Result<(), SubscribeError> {
        match self.adapter.redis() {
            None => self.subscribe(conn, channel, member),
            Some(cluster) => self.join_cluster(cluster, conn, channel, member).await,
        }
    }

    /// Unsubscribes `conn` from `channel`: locally, and cluster-wide when clustered.
    pub fn leave(&self, conn: ConnId, channel: &str) -> bool {
        match self.adapter.redis() {
            None => self.unsubscribe(conn, channel),
            Some(cluster) => self.leave_cluster(cluster, conn, channel),
        }
    }

    async fn join_cluster(
        &self,
        cluster: &RedisAdapter,
        conn: &ConnRef,
        channel: &str,
        member: Option<Member>,
    ) -> Result<(), SubscribeError> {
        let ty = ChannelType::of(channel);
        let staging = conn.outbox.sibling();
        {
            let mut ch = self.channels.entry(channel.to_string()).or_default();
            if ch.subscribers.contains_key(&conn.id) {
                return Err(SubscribeError::AlreadySubscribed(channel.to_string()));
            }
            if let Some(m) = &member {
                ch.add_member_socket(m);
            }
            ch.subscribers.insert(
                conn.id,
                Subscriber { outbox: staging.clone(), user: member.as_ref().map(|m| m.key.as_str().into()) },
            );
        }
        let presence = ty.kind == ChannelKind::Presence;
        let req = SubRequest {
            app: self.config.id.clone(),
            channel: channel.to_string(),
            delta: 1,
            member: member.as_ref().map(|m| (m.key.clone(), member_value(&m.id_json, m.info_json.as_deref()))),
            max_members: self.config.max_presence_members,
            want_members: presence,
            want_cache: ty.cache,
            count_events: self.config.subscription_count && !presence,
            webhooks: self.has_webhooks(),
            listed: None,
        };
        let outcome = cluster.subscribe(req).await;
        let Some(mut ch) = self.channels.get_mut(channel) else {
            return Ok(());
        };
        // Frames published while the cluster answered; none can arrive while the guard is held.
        let mut staged = Vec::new();
        let overflowed = matches!(staging.drain(&mut staged), Some(Drained::Close(_)));
        // The member keys the list below gives, to skip staged member events it already reflects;
        // needed only when something was staged.
        let listing = presence && !staged.is_empty();
        let (presence_json, mut known, cached) = match outcome {
            SubOutcome::Full => {
                ch.subscribers.remove(&conn.id);
                if let Some(m) = &member {
                    ch.release_member_socket(&m.key);
                }
                let empty = ch.subscribers.is_empty();
                drop(ch);
                return Err(self.refuse_full(channel, empty));
            }
            SubOutcome::Applied { members, cache } => {
                let cached = cache.and_then(|c| serde_json::from_str::<StoredEvent>(&c).ok());
                (
                    presence.then(|| presence_from_values(&members)),
                    listing.then(|| members.into_iter().map(|(key, _)| key).collect::<HashSet<_>>()),
                    cached.map(|e| (e.event, e.data)),
                )
            }
            SubOutcome::Unavailable => {
                // Serve what this node knows. The cluster (this node's other subscribers included)
                // learns of the member when Redis is back; this subscriber is then asked to
                // reconnect, to get the whole member list.
                if presence {
                    lock(&self.degraded_joins).push(conn.outbox.clone());
                }
                (
                    presence.then(|| super::registry::presence_json(&ch)),
                    listing.then(|| ch.members.keys().cloned().collect::<HashSet<_>>()),
                    self.cached(channel).map(|e| (e.event, e.data)),
                )
            }
        };
        conn.outbox.push(&Frame::from(frame::subscription_succeeded(channel, presence_json.as_deref())));
        if ty.cache {
            conn.outbox.push(&Frame::from(match cached {
                Some((event, data)) => frame::channel_event(&event, channel, &data),
                None => {
                    self.emit(|| Trigger::CacheMiss { channel: channel.to_string() });
                    frame::cache_miss(channel)
                }
            }));
        }
        for f in staged {
            if let Some(known) = known.as_mut()
                && !member_event_applies(known, &f)
            {
                continue;
            }
            conn.outbox.push(&f);
        }
        if overflowed {
            conn.outbox.close(None, super::OVERFLOW_CLOSE_CODE, "Over capacity: client is not reading");
        }
        if let Some(sub) = ch.subscribers.get_mut(&conn.id) {
            sub.outbox = conn.outbox.clone();
        }
        Ok(())
    }

    fn leave_cluster(&self, cluster: &RedisAdapter, conn: ConnId, channel: &str) -> bool {
        let Some(mut ch) = self.channels.get_mut(channel) else {
            return false;
        };
        let Some(sub) = ch.subscribers.remove(&conn) else {
            return false;
        };
        let mut member = None;
        if let Some(user) = sub.user
            && let Some(e) = ch.members.get(&user)
        {
            let value = member_value(&e.id_json, e.info_json.as_deref());
            ch.release_member_socket(&user);
            member = Some((user.into(), value));
        }
        let empty = ch.subscribers.is_empty();
        drop(ch);
        if empty {
            self.channels.remove_if(channel, |_, c| c.subscribers.is_empty());
        }
        let presence = ChannelType::of(channel).kind == ChannelKind::Presence;
        cluster.unsubscribe(SubRequest {
            app: self.config.id.clone(),
            channel: channel.to_string(),
            delta: -1,
            member,
            max_members: self.config.max_presence_members,
            want_members: false,
            want_cache: false,
            count_events: self.config.subscription_count && !presence,
            webhooks: self.has_webhooks(),
            listed: None,
        });
        true
    }

    fn fan_out_except_user(
        &self,
        ch: &super::registry::Channel,
        frame: &Frame,
        except: Option<ConnId>,
        except_user: Option<&str>,
    ) -> usize {
        let Some(user) = except_user else {
            return self.fan_out(ch, frame, except);
        };
        let mut n = 0;
        for (id, sub) in &ch.subscribers {
            if Some(id) != except && sub.user.as_deref() != Some(user) && sub.outbox.push(frame) {
                n += 1;
            }
        }
        n
    }

    /// Queues `frame` for local subscribers of `channel`, skipping a socket and a member's sockets.
    fn publish_except_user(&self, channel: &str, frame: &Frame, except: Option<ConnId>, except_user: Option<&str>) {
        if let Some(ch) = self.channels.get(channel) {
            self.fan_out_except_user(&ch, frame, except, except_user);
        }
    }

    /// Sends a cluster-wide subscriber count to local subscribers (at most every few seconds on
    /// busy channels).
    fn deliver_count(&self, channel: &str, count: i64) {
        let Some(mut ch) = self.channels.get_mut(channel) else { return };
        let now = Instant::now();
        if count > super::registry::COUNT_THROTTLE_SUBSCRIBERS as i64
            && ch.last_count_sent.is_some_and(|t| now.duration_since(t) < super::registry::COUNT_THROTTLE)
        {
            return;
        }
        ch.last_count_sent = Some(now);
        let f = Frame::from(frame::subscription_count(channel, count.max(0) as usize));
        self.fan_out(&ch, &f, None);
    }

    /// Sends a frame to the subscribers of `channel` on the other nodes.
    pub fn publish_to_cluster(&self, channel: &str, frame: &Frame, except: Option<&str>) {
        self.adapter.publish_with(|node| BusMessage::Frame {
            node,
            app: self.config.id.clone(),
            channel: channel.to_string(),
            frame: frame.as_str().to_string(),
            except: except.map(str::to_string),
            except_user: None,
        });
    }

    /// Counts of one channel, cluster-wide when clustered.
    pub async fn channel_info(&self, channel: &str) -> Result<Option<ChannelSummary>, ClusterError> {
        Ok(match self.adapter.channel_counts(&self.config.id, channel).await? {
            None => self.channel_summary(channel),
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
        Ok(match self.adapter.channels(&self.config.id, prefix, user_counts).await? {
            None => self.channels_with_prefix(prefix),
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
        Ok(match self.adapter.member_ids(&self.config.id, channel).await? {
            None => self.member_ids(channel),
            Some(ids) => ids,
        })
    }

    /// The cached event of a cache channel as `(event, data, seconds left)`, cluster-wide when clustered.
    pub async fn cached_event(&self, channel: &str) -> Result<Option<(String, String, u64)>, ClusterError> {
        Ok(match self.adapter.cached(&self.config.id, channel).await? {
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
        self.adapter.set_cache(&self.config.id, channel, value, self.config.cache_ttl_seconds);
    }

    /// Closes this user's connections here and, when clustered, on every node.
    pub fn terminate_everywhere(&self, user: &str) -> usize {
        self.adapter.publish_with(|node| BusMessage::Terminate {
            node,
            app: self.config.id.clone(),
            user: user.to_string(),
        });
        self.terminate_user(user)
    }

    /// Announces a cluster-wide transition this node observed. The frames went out on the bus from
    /// Redis itself (in Redis's order); here the webhooks and the debug feed, once per cluster
    /// transition, with the leave delay applied cluster-wide: a departure's webhook waits, and is
    /// dropped if the member or channel came back on any node meanwhile (which also drops that
    /// return's webhook).
    fn announce(&self, channel: &str, change: Change) {
        match change {
            Change::Occupied { rejoin } => {
                if !rejoin {
                    self.emit_decided(Trigger::Occupied { channel: channel.to_string() });
                }
            }
            Change::Vacated { marker } => self.emit_departure(channel, None, marker),
            Change::MemberAdded { user, rejoin, .. } => {
                self.debug(|| serde_json::json!({"type": "member_added", "channel": channel, "user_id": user}));
                if !rejoin {
                    self.emit_decided(Trigger::MemberAdded { channel: channel.to_string(), user_id: user });
                }
            }
            Change::MemberRemoved { user, marker, .. } => {
                self.debug(|| serde_json::json!({"type": "member_removed", "channel": channel, "user_id": user}));
                self.emit_departure(channel, Some(user), marker);
            }
            // Counts decided by the scripts reach every node through the bus; this one comes from a
            // sweep, which cannot know which apps want counts.
            Change::Count(count) => {
                if self.config.subscription_count && ChannelType::of(channel).kind != ChannelKind::Presence {
                    self.deliver_count(channel, count);
                    let app = self.config.id.clone();
                    self.adapter.publish_with(|node| BusMessage::Count {
                        node,
                        app,
                        channel: channel.to_string(),
                        count,
                    });
                }
            }
        }
    }

    fn emit_decided(&self, trigger: Trigger) {
        if let Some(h) = &self.hooks {
            h.emit_decided(trigger);
        }
    }

    /// Sends `channel_vacated` (no user) or `member_removed` once the leave delay passed, unless
    /// the departure was undone meanwhile.
    fn emit_departure(&self, channel: &str, user: Option<String>, marker: bool) {
        let (Some(hooks), Some(cluster)) = (self.hooks.clone(), self.adapter.redis().cloned()) else { return };
        let trigger = match &user {
            Some(u) => Trigger::MemberRemoved { channel: channel.to_string(), user_id: u.clone() },
            None => Trigger::Vacated { channel: channel.to_string() },
        };
        if !marker {
            return hooks.emit_decided(trigger);
        }
        let (app, channel) = (self.config.id.clone(), channel.to_string());
        tokio::spawn(async move {
            tokio::time::sleep(cluster.leave_delay()).await;
            if cluster.departure_stands(&app, &channel, user.as_deref()).await {
                hooks.emit_decided(trigger);
            }
        });
    }

    /// Asks connections that joined presence channels while Redis was unreachable to reconnect.
    fn resynced(&self) {
        let joined = std::mem::take(&mut *lock(&self.degraded_joins));
        const MSG: &str = "Cluster state restored: reconnect for the full member list";
        for outbox in joined {
            outbox.close(Some(Frame::from(frame::error(Some(4200), MSG))), 4200, MSG);
        }
    }
}
/// Applies a staged member event to `known`; false when it repeats what the list already says.
fn member_event_applies(known: &mut HashSet<String>, f: &Frame) -> bool {
    let text = f.as_str();
    let added = text.contains("\"pusher_internal:member_added\"");
    if !added && !text.contains("\"pusher_internal:member_removed\"") {
        return true;
    }
    let key = serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v.get("data")?.as_str().map(str::to_string))
        .and_then(|d| serde_json::from_str::<serde_json::Value>(&d).ok())
        .and_then(|d| match d.get("user_id")? {
            serde_json::Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        });
    match key {
        Some(k) if added => known.insert(k),
        Some(k) => known.remove(&k),
        None => true,
    }
}

/// `{"ids":[...],"hash":{...},"count":n}` from stored member values.
fn presence_from_values(members: &[(String, String)]) -> String {
    let mut ids = String::from("[");
    let mut hash = String::from("{");
    for (i, (key, value)) in members.iter().enumerate() {
        let (id, info) = split_member_value(value);
        if i > 0 {
            ids.push(',');
            hash.push(',');
        }
        ids.push_str(id);
        frame::push_json_str(&mut hash, key);
        hash.push(':');
        hash.push_str(info);
    }
    format!("{{\"ids\":{ids}],\"hash\":{hash}}},\"count\":{}}}", members.len())
}

impl Hub {
    /// Starts the cluster adapter (if any) and delivers what it hands over until it stops.
    pub fn start_cluster(&self) {
        let Some(rx) = self.inner.adapter.start() else { return };
        tokio::spawn(self.clone().run_inbound(rx));
    }

    /// This node's adapter.
    pub fn adapter(&self) -> &Adapter {
        &self.inner.adapter
    }

    /// Whether a socket id names an open connection: checked here for this node's sockets, and
    /// assumed for another node's sockets when clustered.
    pub fn is_socket_live(&self, app: &AppState, socket_id: &str) -> bool {
        let ours = socket_id.split_once('.').and_then(|(n, _)| n.parse::<u32>().ok()) == Some(self.inner.node_id);
        match self.local_conn(socket_id) {
            Some(c) => app.is_live(c),
            None => !ours && self.inner.adapter.is_clustered() && super::is_valid_socket_id(socket_id),
        }
    }

    async fn run_inbound(self, mut rx: mpsc::Receiver<Inbound>) {
        while let Some(msg) = rx.recv().await {
            self.apply_inbound(msg);
        }
    }

    fn apply_inbound(&self, msg: Inbound) {
        match msg {
            Inbound::Bus(BusMessage::Event { app, channels, event, data, except, .. }) => {
                let Some(app) = self.app_by_id(&app) else { return };
                let event = Event { name: &event, data: &data, channels: &channels, except: except.as_deref() };
                self.publish_event(&app, event, Origin::OtherNode);
            }
            Inbound::Bus(BusMessage::Frame { app, channel, frame, except, except_user, .. }) => {
                let Some(app) = self.app_by_id(&app) else { return };
                let except = except.and_then(|s| self.local_conn(&s));
                app.publish_except_user(&channel, &Frame::from(frame), except, except_user.as_deref());
            }
            Inbound::Bus(BusMessage::Member { app, channel, user, value, added, .. }) => {
                let Some(app) = self.app_by_id(&app) else { return };
                let (id, info) = split_member_value(&value);
                let fallback_id;
                let id = if id.is_empty() {
                    fallback_id = frame::json_str(&user);
                    fallback_id.as_str()
                } else {
                    id
                };
                let f = Frame::from(if added {
                    frame::member_added(&channel, id, (info != "null").then_some(info))
                } else {
                    frame::member_removed(&channel, id)
                });
                app.publish_except_user(&channel, &f, None, Some(&user));
            }
            Inbound::Bus(BusMessage::Count { app, channel, count, .. }) => {
                if let Some(app) = self.app_by_id(&app) {
                    app.deliver_count(&channel, count);
                }
            }
            Inbound::Bus(BusMessage::Terminate { app, user, .. }) => {
                if let Some(app) = self.app_by_id(&app) {
                    app.terminate_user(&user);
                }
            }
            Inbound::Bus(BusMessage::Listed { to, token, .. }) => {
                // Everything on the bus before it has been applied above.
                if let Some(cluster) = self.adapter().redis()
                    && to == cluster.node()
                {
                    cluster.listed(token);
                }
            }
            Inbound::Transition(t) => {
                if let Some(app) = self.app_by_id(&t.app) {
                    app.announce(&t.channel, t.change);
                }
            }
            Inbound::Resynced => {
                for app in self.apps() {
                    app.resynced();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presence_json_from_stored_values() {
        let members =
            vec![("u1".to_string(), member_value("\"u1\"", Some("{\"n\":1}"))), ("7".into(), member_value("7", None))];
        let v: serde_json::Value = serde_json::from_str(&presence_from_values(&members)).unwrap_or_default();
        assert_eq!(v["count"], 2);
        assert_eq!(v["ids"], serde_json::json!(["u1", 7]));
        assert_eq!(v["hash"]["u1"]["n"], 1);
        assert!(v["hash"]["7"].is_null());
    }

    #[test]
    fn staged_member_events_that_repeat_the_list_are_dropped() {
        let mut known = HashSet::from(["u1".to_string()]);
        let added = |id: &str| Frame::from(frame::member_added("presence-a", id, None));
        let removed = |id: &str| Frame::from(frame::member_removed("presence-a", id));
        assert!(!member_event_applies(&mut known, &added("\"u1\"")), "already listed");
        assert!(member_event_applies(&mut known, &added("2")), "numeric id, new");
        assert!(!member_event_applies(&mut known, &added("2")));
        assert!(member_event_applies(&mut known, &removed("\"u1\"")));
        assert!(!member_event_applies(&mut known, &removed("\"u1\"")), "already gone");
        assert!(member_event_applies(&mut known, &Frame::from(frame::channel_event("e", "presence-a", "d"))));
    }
}
