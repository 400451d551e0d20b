//! Subscribing on a clustered node: the subscription is recorded cluster-wide, with the member
//! list and the cached event the cluster holds.
//!
//! On a node with the Redis adapter, a subscribe first attaches the connection locally with a
//! staging queue, then asks the cluster; frames published meanwhile wait in the staging queue and
//! follow `subscription_succeeded`, so nothing published after the cluster recorded the subscriber
//! is missed.

use super::channels::Member;
use super::cluster_view::StoredEvent;
use super::subscribers::Subscriber;
use super::{AppState, ConnId, ConnRef, Drained, Frame, SubscribeError, lock};
use crate::adapter::{RedisAdapter, SubOutcome, SubRequest, member_value, split_member_value};
use crate::protocol::channel::{ChannelKind, ChannelType};
use crate::protocol::frame;
use crate::webhooks::Trigger;
use std::collections::HashSet;

impl AppState {
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
            let mut ch = self.channels.get_or_make(channel);
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
            app: self.id().to_string(),
            channel: channel.to_string(),
            delta: 1,
            member: member.as_ref().map(|m| (m.key.clone(), member_value(&m.id_json, m.info_json.as_deref()))),
            max_members: self.config().max_presence_members,
            want_members: presence,
            want_cache: ty.cache,
            count_events: self.config().subscription_count && !presence,
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
                    presence.then(|| super::channels::presence_json(&ch)),
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
            self.channels.forget_if_empty(channel);
        }
        let presence = ChannelType::of(channel).kind == ChannelKind::Presence;
        cluster.unsubscribe(SubRequest {
            app: self.id().to_string(),
            channel: channel.to_string(),
            delta: -1,
            member,
            max_members: self.config().max_presence_members,
            want_members: false,
            want_cache: false,
            count_events: self.config().subscription_count && !presence,
            webhooks: self.has_webhooks(),
            listed: None,
        });
        true
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
