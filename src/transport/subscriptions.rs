//! The channels one connection has joined.
//!
//! Kept as a vector sorted by channel name: nearly every connection joins one or a few channels,
//! and a hash map reserves about 200 bytes for even one, which every idle connection would hold.
//! Lookups are binary searches, so a connection at the per-connection limit (1,000 by default)
//! still finds a channel in about ten comparisons.

/// Joined channels, each with the presence member key it joined as, if any.
#[derive(Debug, Default)]
pub struct Subscriptions {
    entries: Vec<(Box<str>, Option<Box<str>>)>,
}

impl Subscriptions {
    fn find(&self, channel: &str) -> Result<usize, usize> {
        self.entries.binary_search_by(|(name, _)| (**name).cmp(channel))
    }

    /// How many channels are joined.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no channel is joined.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `channel` is joined.
    pub fn contains(&self, channel: &str) -> bool {
        self.find(channel).is_ok()
    }

    /// The member key `channel` was joined as: `None` when it is not joined, `Some(None)` when it
    /// was joined without one.
    pub fn member(&self, channel: &str) -> Option<Option<&str>> {
        self.find(channel).ok().map(|i| self.entries[i].1.as_deref())
    }

    /// Records `channel`; false (and nothing changes) when it was already joined.
    pub fn insert(&mut self, channel: &str, member: Option<&str>) -> bool {
        let Err(at) = self.find(channel) else { return false };
        if self.entries.capacity() == 0 {
            // Most connections join one channel: do not reserve room for four.
            self.entries.reserve_exact(1);
        }
        self.entries.insert(at, (channel.into(), member.map(Into::into)));
        true
    }

    /// Forgets `channel`; true when it was joined.
    pub fn remove(&mut self, channel: &str) -> bool {
        match self.find(channel) {
            Ok(i) => {
                self.entries.remove(i);
                true
            }
            Err(_) => false,
        }
    }

    /// The joined channels, in name order.
    pub fn channels(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(name, _)| &**name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_find_remove() {
        let mut s = Subscriptions::default();
        assert!(s.is_empty());
        assert!(s.insert("presence-room", Some("u1")));
        assert!(s.insert("chat", None));
        assert!(s.insert("b", None));
        assert!(!s.insert("chat", Some("other")), "a second join changes nothing");
        assert_eq!(s.len(), 3);
        assert_eq!(s.member("presence-room"), Some(Some("u1")));
        assert_eq!(s.member("chat"), Some(None));
        assert_eq!(s.member("nope"), None);
        assert_eq!(s.channels().collect::<Vec<_>>(), ["b", "chat", "presence-room"]);
        assert!(s.remove("chat"));
        assert!(!s.remove("chat"));
        assert!(!s.contains("chat"));
        assert!(s.contains("b"));
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn one_channel_reserves_room_for_one() {
        let mut s = Subscriptions::default();
        s.insert("only", None);
        assert_eq!(s.entries.capacity(), 1);
    }

    #[test]
    fn many_channels_stay_sorted() {
        let mut s = Subscriptions::default();
        for i in (0..1000).rev() {
            assert!(s.insert(&format!("ch-{i:04}"), None));
        }
        assert_eq!(s.len(), 1000);
        assert!(s.channels().zip(s.channels().skip(1)).all(|(a, b)| a < b));
        assert!((0..1000).all(|i| s.contains(&format!("ch-{i:04}"))));
    }
}
