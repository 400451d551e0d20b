//! The subscribers of one channel, kept in connection-id order.
//!
//! A fan-out visits the sockets in the order their connections were made, and so walks the
//! kernel's socket state (and the client's) roughly in the order it was allocated, which costs less
//! per delivery than a scattered order. Most channels have one or a few subscribers (a user's own
//! private channel), so up to [`FEW`] they are a sorted vector that starts with room for one; past
//! that, a B-tree, whose removals stay cheap however large the channel grows.

use super::{ConnId, Outbox};
use std::collections::{BTreeMap, btree_map};

/// One subscriber of a channel: where its frames go, and its presence member key.
#[derive(Debug)]
pub(super) struct Subscriber {
    pub(super) outbox: Outbox,
    /// Presence member key of this subscriber (boxed: 16 bytes in every subscription's entry
    /// instead of a `String`'s 24).
    pub(super) user: Option<Box<str>>,
}

/// The most subscribers kept in a sorted vector (a larger channel moves to a B-tree).
const FEW: usize = 32;

/// The subscribers of a channel by connection id; iterates in id order.
#[derive(Debug)]
pub(super) enum Subscribers {
    /// Sorted by id; removal shifts at most [`FEW`] entries.
    Few(Vec<(ConnId, Subscriber)>),
    /// Past [`FEW`] subscribers (it stays a tree for the life of the channel's registry entry,
    /// which is removed when the channel empties).
    Many(BTreeMap<ConnId, Subscriber>),
}

impl Default for Subscribers {
    fn default() -> Self {
        Subscribers::Few(Vec::new())
    }
}

impl Subscribers {
    /// How many are subscribed.
    pub(super) fn len(&self) -> usize {
        match self {
            Subscribers::Few(v) => v.len(),
            Subscribers::Many(m) => m.len(),
        }
    }

    /// True when nobody is subscribed.
    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether connection `id` is subscribed.
    pub(super) fn contains_key(&self, id: &ConnId) -> bool {
        match self {
            Subscribers::Few(v) => v.binary_search_by_key(id, |(k, _)| *k).is_ok(),
            Subscribers::Many(m) => m.contains_key(id),
        }
    }

    /// The subscriber of connection `id`.
    pub(super) fn get_mut(&mut self, id: &ConnId) -> Option<&mut Subscriber> {
        match self {
            Subscribers::Few(v) => match v.binary_search_by_key(id, |(k, _)| *k) {
                Ok(i) => Some(&mut v[i].1),
                Err(_) => None,
            },
            Subscribers::Many(m) => m.get_mut(id),
        }
    }

    /// Adds (or replaces) the subscriber of connection `id`; returns the one it replaced.
    pub(super) fn insert(&mut self, id: ConnId, sub: Subscriber) -> Option<Subscriber> {
        match self {
            Subscribers::Few(v) => match v.binary_search_by_key(&id, |(k, _)| *k) {
                Ok(i) => Some(std::mem::replace(&mut v[i].1, sub)),
                Err(_) if v.len() >= FEW => {
                    let mut m: BTreeMap<ConnId, Subscriber> = std::mem::take(v).into_iter().collect();
                    m.insert(id, sub);
                    *self = Subscribers::Many(m);
                    None
                }
                Err(at) => {
                    if v.capacity() == 0 {
                        // Most channels have one subscriber: do not reserve room for four.
                        v.reserve_exact(1);
                    }
                    v.insert(at, (id, sub));
                    None
                }
            },
            Subscribers::Many(m) => m.insert(id, sub),
        }
    }

    /// Removes the subscriber of connection `id`.
    pub(super) fn remove(&mut self, id: &ConnId) -> Option<Subscriber> {
        match self {
            Subscribers::Few(v) => {
                let i = v.binary_search_by_key(id, |(k, _)| *k).ok()?;
                Some(v.remove(i).1)
            }
            Subscribers::Many(m) => m.remove(id),
        }
    }

    /// The subscribers in connection-id order.
    pub(super) fn iter(&self) -> Iter<'_> {
        match self {
            Subscribers::Few(v) => Iter::Few(v.iter()),
            Subscribers::Many(m) => Iter::Many(m.iter()),
        }
    }
}

/// Iterator over [`Subscribers`] in connection-id order.
pub(super) enum Iter<'a> {
    Few(std::slice::Iter<'a, (ConnId, Subscriber)>),
    Many(btree_map::Iter<'a, ConnId, Subscriber>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (ConnId, &'a Subscriber);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Few(it) => it.next().map(|(id, s)| (*id, s)),
            Iter::Many(it) => it.next().map(|(id, s)| (*id, s)),
        }
    }
}

impl<'a> IntoIterator for &'a Subscribers {
    type Item = (ConnId, &'a Subscriber);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::{Outbox, OutboxLimits};
    use std::sync::Arc;

    fn sub(user: &str) -> Subscriber {
        let outbox = Outbox::new(OutboxLimits { max_messages: 1, max_bytes: 1 }, Arc::default());
        Subscriber { outbox, user: Some(user.into()) }
    }

    fn ids(s: &Subscribers) -> Vec<ConnId> {
        s.iter().map(|(id, _)| id).collect()
    }

    #[test]
    fn keeps_id_order_across_the_move_to_a_tree_and_back_to_empty() {
        let mut s = Subscribers::default();
        // Inserted out of order, past the vector's size.
        let order: Vec<ConnId> = (0..3 * FEW as u64).map(|i| (i * 37) % (3 * FEW as u64)).collect();
        for (n, id) in order.iter().enumerate() {
            assert!(s.insert(*id, sub(&id.to_string())).is_none());
            assert_eq!(s.len(), n + 1);
            assert_eq!(matches!(s, Subscribers::Few(_)), n < FEW, "after {} inserts", n + 1);
        }
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(ids(&s), sorted);
        for id in &order {
            assert!(s.contains_key(id));
            assert_eq!(s.get_mut(id).and_then(|x| x.user.clone()), Some(id.to_string().into()));
        }
        assert!(!s.contains_key(&(3 * FEW as u64)));
        for id in order.iter().rev() {
            assert_eq!(s.remove(id).and_then(|x| x.user), Some(id.to_string().into()));
            assert!(!s.contains_key(id));
            assert!(s.remove(id).is_none());
        }
        assert!(s.is_empty());
        assert_eq!(ids(&s), Vec::<ConnId>::new());
    }

    #[test]
    fn a_small_channel_keeps_order_and_replaces_in_place() {
        let mut s = Subscribers::default();
        for id in [5, 1, 9, 3] {
            s.insert(id, sub("a"));
        }
        assert_eq!(ids(&s), vec![1, 3, 5, 9]);
        assert_eq!(s.insert(3, sub("b")).and_then(|x| x.user), Some("a".into()));
        assert_eq!(s.len(), 4);
        assert_eq!(s.get_mut(&3).and_then(|x| x.user.clone()), Some("b".into()));
        assert!(s.remove(&4).is_none());
        assert_eq!(s.remove(&1).and_then(|x| x.user), Some("a".into()));
        assert_eq!(ids(&s), vec![3, 5, 9]);
    }

    #[test]
    fn a_full_vector_replaces_a_present_id_without_moving_to_a_tree() {
        let mut s = Subscribers::default();
        for id in 0..FEW as u64 {
            s.insert(id, sub("a"));
        }
        assert!(matches!(s, Subscribers::Few(_)));
        assert_eq!(s.insert(5, sub("b")).and_then(|x| x.user), Some("a".into()));
        assert!(matches!(s, Subscribers::Few(_)));
        assert_eq!(s.len(), FEW);
        s.insert(FEW as u64, sub("c"));
        assert!(matches!(s, Subscribers::Many(_)));
        assert_eq!(ids(&s), (0..=FEW as u64).collect::<Vec<_>>());
    }

    #[test]
    fn one_subscriber_reserves_room_for_one() {
        let mut s = Subscribers::default();
        s.insert(7, sub("a"));
        let Subscribers::Few(v) = &s else { panic!("a vector") };
        assert_eq!(v.capacity(), 1);
    }
}
