//! The channel registry, a part of [`AppState`](super::AppState): the subscribers and presence
//! members of every channel with a subscriber on this node, and what can be read from them.
//! Subscribing and unsubscribing, which also touch the cache, webhooks and the debug feed, are the
//! app's (`subscriptions.rs`).

use super::subscribers::Subscribers;
use crate::protocol::frame;
use dashmap::DashMap;
use dashmap::mapref::one::{Ref, RefMut};
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use tokio::time::Instant;

/// A presence member as supplied by the subscriber (channel_data or sign-in).
#[derive(Debug, Clone)]
pub struct Member {
    /// The id's string form, used as the key.
    pub key: String,
    /// The id as the client sent it (a JSON string or number).
    pub id_json: String,
    /// `user_info` as raw JSON, if any.
    pub info_json: Option<String>,
}

#[derive(Debug)]
pub(super) struct MemberEntry {
    pub(super) id_json: String,
    pub(super) info_json: Option<String>,
    pub(super) sockets: usize,
}

/// The subscribers and members of one channel (on this node).
#[derive(Debug, Default)]
pub struct Channel {
    /// In connection-id order (see [`Subscribers`]).
    pub(super) subscribers: Subscribers,
    pub(super) members: Members,
    pub(super) last_count_sent: Option<Instant>,
}

/// The presence members of a channel by key. Holds no table until the first member joins, and
/// lets it go when the last leaves: most channels are not presence channels, and each channel's
/// entry in the registry would otherwise carry an empty table's 48 bytes.
#[derive(Debug, Default)]
#[expect(clippy::box_collection, reason = "8 bytes in every channel's entry instead of 48")]
pub(super) struct Members(Option<Box<HashMap<String, MemberEntry>>>);

impl Members {
    /// The member with `key`.
    pub(super) fn get(&self, key: &str) -> Option<&MemberEntry> {
        self.0.as_ref()?.get(key)
    }

    /// Whether `key` is a member.
    pub(super) fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// How many distinct members.
    pub(super) fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |m| m.len())
    }

    /// The members, in no particular order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&String, &MemberEntry)> {
        self.0.iter().flat_map(|m| m.iter())
    }

    /// The member keys, in no particular order.
    pub(super) fn keys(&self) -> impl Iterator<Item = &String> {
        self.iter().map(|(k, _)| k)
    }
}

impl Channel {
    /// Counts one more socket of member `m`; true when it is the member's first (a new member).
    pub(super) fn add_member_socket(&mut self, m: &Member) -> bool {
        match self.members.0.get_or_insert_default().entry(m.key.clone()) {
            Entry::Occupied(mut e) => {
                e.get_mut().sockets += 1;
                false
            }
            Entry::Vacant(e) => {
                e.insert(MemberEntry { id_json: m.id_json.clone(), info_json: m.info_json.clone(), sockets: 1 });
                true
            }
        }
    }

    /// Counts one socket of member `key` gone; returns the member when that was its last socket.
    pub(super) fn release_member_socket(&mut self, key: &str) -> Option<MemberEntry> {
        let table = self.members.0.as_mut()?;
        let entry = table.get_mut(key)?;
        entry.sockets -= 1;
        if entry.sockets > 0 {
            return None;
        }
        let gone = table.remove(key);
        if table.is_empty() {
            self.members.0 = None;
        }
        gone
    }
}

/// Counts of one occupied channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelSummary {
    /// Sockets subscribed.
    pub subscription_count: usize,
    /// Distinct presence members (0 for other channels).
    pub user_count: usize,
}

/// Every channel with a subscriber on this node, by name.
#[derive(Debug, Default)]
pub struct Channels(DashMap<String, Channel>);

impl Channels {
    /// The channel named `name`, if it has subscribers (or is being joined).
    pub(super) fn get(&self, name: &str) -> Option<Ref<'_, String, Channel>> {
        self.0.get(name)
    }

    /// The channel named `name` for changes, if it exists.
    pub(super) fn get_mut(&self, name: &str) -> Option<RefMut<'_, String, Channel>> {
        self.0.get_mut(name)
    }

    /// The channel named `name` for changes, made if it does not exist (the name is copied only
    /// then, for a channel's first subscriber).
    pub(super) fn get_or_make(&self, name: &str) -> RefMut<'_, String, Channel> {
        match self.0.get_mut(name) {
            Some(ch) => ch,
            None => self.0.entry(name.to_string()).or_default(),
        }
    }

    /// Forgets the channel named `name` if nobody is subscribed to it (checked under its guard).
    pub(super) fn forget_if_empty(&self, name: &str) {
        self.0.remove_if(name, |_, c| c.subscribers.is_empty());
    }

    /// Counts for one channel, or `None` when nobody is subscribed.
    pub fn summary(&self, name: &str) -> Option<ChannelSummary> {
        let ch = self.0.get(name)?;
        Some(ChannelSummary { subscription_count: ch.subscribers.len(), user_count: ch.members.len() })
    }

    /// Every occupied channel whose name starts with `prefix`.
    pub fn with_prefix(&self, prefix: &str) -> Vec<(String, ChannelSummary)> {
        self.0
            .iter()
            .filter(|e| e.key().starts_with(prefix) && !e.subscribers.is_empty())
            .map(|e| {
                (
                    e.key().clone(),
                    ChannelSummary { subscription_count: e.subscribers.len(), user_count: e.members.len() },
                )
            })
            .collect()
    }

    /// The distinct member ids (string form) of a presence channel.
    pub fn member_ids(&self, name: &str) -> Vec<String> {
        self.0.get(name).map(|ch| ch.members.keys().cloned().collect()).unwrap_or_default()
    }
}

/// `{"ids":[...],"hash":{...},"count":n}` for `subscription_succeeded`.
pub(super) fn presence_json(ch: &Channel) -> String {
    let size: usize = ch
        .members
        .iter()
        .map(|(key, m)| m.id_json.len() + key.len() + m.info_json.as_ref().map_or(4, String::len) + 5)
        .sum();
    let mut out = String::with_capacity(48 + size);
    out.push_str("{\"ids\":[");
    for (i, (_, m)) in ch.members.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&m.id_json);
    }
    out.push_str("],\"hash\":{");
    for (i, (key, m)) in ch.members.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        frame::push_json_str(&mut out, key);
        out.push(':');
        out.push_str(m.info_json.as_deref().unwrap_or("null"));
    }
    out.push_str("},\"count\":");
    out.push_str(&ch.members.len().to_string());
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(key: &str) -> Member {
        Member { key: key.into(), id_json: format!("\"{key}\""), info_json: Some("{\"n\":1}".into()) }
    }

    #[test]
    fn the_members_table_is_let_go_with_the_last_member_and_made_again_for_the_next() {
        let mut ch = Channel::default();
        assert!(ch.members.0.is_none());
        assert!(ch.add_member_socket(&member("u1")));
        assert!(!ch.add_member_socket(&member("u1")));
        assert!(ch.add_member_socket(&member("u2")));
        assert_eq!((ch.members.len(), ch.members.get("u1").map(|m| m.sockets)), (2, Some(2)));
        assert!(ch.release_member_socket("u1").is_none());
        assert_eq!(ch.release_member_socket("u1").map(|m| m.id_json), Some("\"u1\"".into()));
        assert!(ch.release_member_socket("u1").is_none());
        assert!(ch.members.0.is_some());
        assert!(ch.release_member_socket("u2").is_some());
        assert!(ch.members.0.is_none() && ch.members.len() == 0 && !ch.members.contains_key("u2"));
        assert!(ch.add_member_socket(&member("u3")));
        assert_eq!(ch.members.keys().collect::<Vec<_>>(), vec!["u3"]);
    }
}
