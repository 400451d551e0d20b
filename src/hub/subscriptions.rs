//! Subscribing and unsubscribing (the transitions that touch the channel registry, the cache,
//! webhooks and the debug feed together), and the local fan-out of shared frames.

use super::channels::{Channel, Member, presence_json};
use super::subscribers::Subscriber;
use super::{AppState, ConnId, ConnRef, Frame};
use crate::protocol::channel::{ChannelKind, ChannelType};
use crate::protocol::frame;
use crate::webhooks::Trigger;
use std::sync::atomic::Ordering;
use tokio::time::{Duration, Instant};

/// Why a subscription was refused after authorization.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscribeError {
    /// The socket is already subscribed to this channel.
    #[error("Existing subscription to channel {0}")]
    AlreadySubscribed(String),
    /// The presence channel is full.
    #[error("Presence channel {channel} is full ({max} members)")]
    MembersLimit {
        /// The channel.
        channel: String,
        /// The configured limit.
        max: usize,
    },
}

/// Channels with more subscribers than this get `subscription_count` at most every 5 s.
pub(super) const COUNT_THROTTLE_SUBSCRIBERS: usize = 100;
pub(super) const COUNT_THROTTLE: Duration = Duration::from_secs(5);

impl AppState {
    /// Adds `conn` to `channel`, sends `subscription_succeeded` (with the member list on presence
    /// channels) and `member_added` to the others, then the cached event or `pusher:cache_miss`.
    pub fn subscribe(&self, conn: &ConnRef, channel: &str, member: Option<Member>) -> Result<(), SubscribeError> {
        let ty = ChannelType::of(channel);
        {
            let mut ch = self.channels.get_or_make(channel);
            if ch.subscribers.contains_key(&conn.id) {
                return Err(SubscribeError::AlreadySubscribed(channel.to_string()));
            }
            if let Some(m) = &member {
                let is_new = !ch.members.contains_key(&m.key);
                if is_new && ch.members.len() >= self.config().max_presence_members {
                    let empty = ch.subscribers.is_empty();
                    drop(ch);
                    return Err(self.refuse_full(channel, empty));
                }
                if ch.subscribers.is_empty() {
                    self.emit(|| Trigger::Occupied { channel: channel.to_string() });
                    self.debug(|| serde_json::json!({"type": "channel_occupied", "channel": channel}));
                }
                if ch.add_member_socket(m) {
                    let added = Frame::from(frame::member_added(channel, &m.id_json, m.info_json.as_deref()));
                    self.fan_out(&ch, &added, Some(conn.id));
                    self.emit(|| Trigger::MemberAdded { channel: channel.to_string(), user_id: m.key.clone() });
                    self.debug(|| {
                        let info = m.info_json.as_deref().map(super::json_or_text);
                        serde_json::json!({"type": "member_added", "channel": channel, "user_id": m.key, "user_info": info})
                    });
                }
            } else if ch.subscribers.is_empty() {
                self.emit(|| Trigger::Occupied { channel: channel.to_string() });
                self.debug(|| serde_json::json!({"type": "channel_occupied", "channel": channel}));
            }
            ch.subscribers.insert(
                conn.id,
                Subscriber { outbox: conn.outbox.clone(), user: member.map(|m| m.key.into_boxed_str()) },
            );
            let presence = (ty.kind == ChannelKind::Presence).then(|| presence_json(&ch));
            conn.outbox.push(&Frame::from(frame::subscription_succeeded(channel, presence.as_deref())));
            if ty.kind != ChannelKind::Presence && self.config().subscription_count {
                self.send_count(channel, &mut ch);
            }
            // Under the channel guard, so a concurrent publish cannot slip between the cached
            // event and this subscriber.
            if ty.cache {
                conn.outbox.push(&Frame::from(match self.cached(channel) {
                    Some(ev) => frame::channel_event(&ev.event, channel, &ev.data),
                    None => {
                        self.emit(|| Trigger::CacheMiss { channel: channel.to_string() });
                        frame::cache_miss(channel)
                    }
                }));
            }
        }
        Ok(())
    }

    /// The refusal of a subscribe to a full presence channel; forgets the channel if `empty`.
    pub(super) fn refuse_full(&self, channel: &str, empty: bool) -> SubscribeError {
        if empty {
            self.channels.forget_if_empty(channel);
        }
        SubscribeError::MembersLimit { channel: channel.to_string(), max: self.config().max_presence_members }
    }

    /// Removes `conn` from `channel`; sends `member_removed` when its user's last socket left.
    /// Returns false if it was not subscribed.
    pub fn unsubscribe(&self, conn: ConnId, channel: &str) -> bool {
        let Some(mut ch) = self.channels.get_mut(channel) else {
            return false;
        };
        let Some(sub) = ch.subscribers.remove(&conn) else {
            return false;
        };
        if let Some(user_id) = sub.user
            && let Some(gone) = ch.release_member_socket(&user_id)
        {
            let removed = Frame::from(frame::member_removed(channel, &gone.id_json));
            self.fan_out(&ch, &removed, None);
            self.debug(|| serde_json::json!({"type": "member_removed", "channel": channel, "user_id": user_id}));
            self.emit(|| Trigger::MemberRemoved { channel: channel.to_string(), user_id: user_id.into() });
        }
        let empty = ch.subscribers.is_empty();
        if empty {
            self.emit(|| Trigger::Vacated { channel: channel.to_string() });
            self.debug(|| serde_json::json!({"type": "channel_vacated", "channel": channel}));
        }
        if !empty && self.config().subscription_count && ChannelType::of(channel).kind != ChannelKind::Presence {
            self.send_count(channel, &mut ch);
        }
        drop(ch);
        if empty {
            self.channels.forget_if_empty(channel);
        }
        true
    }

    /// Stores the last event of a cache channel and delivers it, under the channel's guard so that
    /// subscribers see either the old cached event followed by this one, or only this one.
    pub fn publish_cached(
        &self,
        channel: &str,
        event: &str,
        data: &str,
        frame: &Frame,
        except: Option<ConnId>,
    ) -> usize {
        match self.channels.get(channel) {
            Some(ch) => {
                self.store_cached(channel, event, data);
                self.fan_out(&ch, frame, except)
            }
            None => {
                self.store_cached(channel, event, data);
                0
            }
        }
    }

    /// Queues `frame` for every subscriber of `channel` except `except`; returns how many got it.
    pub fn publish(&self, channel: &str, frame: &Frame, except: Option<ConnId>) -> usize {
        match self.channels.get(channel) {
            Some(ch) => self.fan_out(&ch, frame, except),
            None => 0,
        }
    }

    pub(super) fn fan_out(&self, ch: &Channel, frame: &Frame, except: Option<ConnId>) -> usize {
        let mut n = 0;
        for (id, sub) in &ch.subscribers {
            if Some(id) != except && sub.outbox.push(frame) {
                n += 1;
            }
        }
        self.stats.deliveries.fetch_add(n as u64, Ordering::Relaxed);
        n
    }

    fn send_count(&self, channel: &str, ch: &mut Channel) {
        let now = Instant::now();
        if ch.subscribers.len() > COUNT_THROTTLE_SUBSCRIBERS
            && ch.last_count_sent.is_some_and(|t| now.duration_since(t) < COUNT_THROTTLE)
        {
            return;
        }
        ch.last_count_sent = Some(now);
        let f = Frame::from(frame::subscription_count(channel, ch.subscribers.len()));
        self.fan_out(ch, &f, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AppConfig;
    use crate::hub::ChannelSummary;
    use crate::hub::{Drained, Outbox, OutboxLimits};
    use std::sync::Arc;

    fn app(cfg: AppConfig) -> AppState {
        AppState::new(cfg, Arc::default(), None)
    }

    fn conn(id: ConnId) -> ConnRef {
        ConnRef { id, outbox: Outbox::new(OutboxLimits { max_messages: 100, max_bytes: 100_000 }, Arc::default()) }
    }

    fn take(c: &ConnRef) -> Vec<serde_json::Value> {
        let mut batch = Vec::new();
        match c.outbox.drain(&mut batch) {
            Some(Drained::Frames) | None => {}
            Some(Drained::Close(_)) => panic!("unexpected close"),
        }
        batch.iter().map(|f| serde_json::from_str(f.as_str()).unwrap_or_default()).collect()
    }

    fn member(key: &str) -> Member {
        Member { key: key.into(), id_json: format!("\"{key}\""), info_json: Some("{\"n\":1}".into()) }
    }

    #[test]
    fn presence_members_are_per_user() {
        let a = app(AppConfig::development());
        let (c1, c2, c3) = (conn(1), conn(2), conn(3));
        assert_eq!(a.subscribe(&c1, "presence-r", Some(member("u1"))), Ok(()));
        assert_eq!(take(&c1).len(), 1);
        // Second socket of the same user: no member_added to anyone.
        assert_eq!(a.subscribe(&c2, "presence-r", Some(member("u1"))), Ok(()));
        assert!(take(&c1).is_empty());
        let succeeded = take(&c2);
        let data: serde_json::Value =
            serde_json::from_str(succeeded[0]["data"].as_str().unwrap_or("")).unwrap_or_default();
        assert_eq!(data["presence"]["count"], 1);
        // A new user: member_added to the others only.
        assert_eq!(a.subscribe(&c3, "presence-r", Some(member("u2"))), Ok(()));
        assert_eq!(take(&c1)[0]["event"], "pusher_internal:member_added");
        assert_eq!(take(&c2)[0]["event"], "pusher_internal:member_added");
        assert_eq!(take(&c3)[0]["event"], "pusher_internal:subscription_succeeded");
        assert_eq!(a.channels().summary("presence-r"), Some(ChannelSummary { subscription_count: 3, user_count: 2 }));
        // u1 leaves one socket: nothing; leaves the last: member_removed.
        assert!(a.unsubscribe(1, "presence-r"));
        assert!(take(&c3).is_empty());
        assert!(a.unsubscribe(2, "presence-r"));
        assert_eq!(take(&c3)[0]["event"], "pusher_internal:member_removed");
        assert!(!a.unsubscribe(2, "presence-r"));
        assert!(a.unsubscribe(3, "presence-r"));
        assert_eq!(a.channels().summary("presence-r"), None);
    }

    #[test]
    fn duplicate_subscribe_and_member_limit() {
        let a = app(AppConfig { max_presence_members: 1, ..AppConfig::development() });
        let (c1, c2) = (conn(1), conn(2));
        assert_eq!(a.subscribe(&c1, "presence-r", Some(member("u1"))), Ok(()));
        assert!(matches!(
            a.subscribe(&c1, "presence-r", Some(member("u1"))),
            Err(SubscribeError::AlreadySubscribed(_))
        ));
        assert!(matches!(a.subscribe(&c2, "presence-r", Some(member("u2"))), Err(SubscribeError::MembersLimit { .. })));
        assert_eq!(a.channels().summary("presence-r").map(|s| s.user_count), Some(1));
    }

    #[test]
    fn publish_skips_excluded_socket() {
        let a = app(AppConfig::development());
        let (c1, c2) = (conn(1), conn(2));
        a.subscribe(&c1, "news", None).unwrap_or_else(|e| panic!("{e}"));
        a.subscribe(&c2, "news", None).unwrap_or_else(|e| panic!("{e}"));
        take(&c1);
        take(&c2);
        let f = Frame::from(frame::channel_event("e", "news", "d"));
        assert_eq!(a.publish("news", &f, Some(1)), 1);
        assert!(take(&c1).is_empty());
        assert_eq!(take(&c2)[0]["data"], "d");
        assert_eq!(a.publish("nobody", &f, None), 0);
    }
}
