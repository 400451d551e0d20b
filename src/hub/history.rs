//! Channel history, for a client that lost its connection to pick up where it left off on the
//! channels the app keeps history for (`history_channels`): every event published to such a
//! channel gets a **position**, an offset that grows by one per event and the epoch it counts in,
//! carried in the delivered frame as `"sinew_position"`; the last `history_size` events of the last
//! `history_ttl_seconds` are kept. A socket subscribed again sends `sinew:resume` with the last
//! position it saw and gets every later event again, exactly as first sent, then `sinew:resumed`;
//! or `sinew:resume_failed` with why (the history it counts from is gone, or too short).
//!
//! Where it is kept: alone, on this node ([`History`]); in a cluster, in Redis (see
//! `adapter/history.rs`), read by [`AppState::resume`] and [`AppState::read_history`] here. The
//! rule a resume is answered by ([`answer`]) is the same for both.
//!
//! This node's history: an epoch is made when a channel's log is, so a restart (or a log dropped
//! after its events expired) starts a new one and an old position is known to be unusable. The
//! cost is per publish (one positioned frame, one log entry), never per subscriber; channels
//! without history pay nothing. Publishing and resuming a channel take its log's lock, so a replay
//! and the live events around it cannot interleave: everything after the replay's last offset is
//! sent after it.

use super::{AppState, Frame, Outbox};
use crate::adapter::{ClusterError, Kept};
use crate::protocol::frame;
use dashmap::DashMap;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The logs of an app's channels with history, on this node.
#[derive(Debug, Default)]
pub struct History {
    channels: DashMap<String, Log>,
}

#[derive(Debug)]
struct Log {
    epoch: String,
    /// The offset of the last event published (0: none yet).
    last: u64,
    /// The events kept: offset, when published, the frame as delivered.
    events: VecDeque<(u64, Instant, Frame)>,
}

impl Log {
    fn new() -> Self {
        Log { epoch: frame::new_epoch(), last: 0, events: VecDeque::new() }
    }

    /// Drops events older than `ttl` and beyond `size`.
    fn prune(&mut self, size: usize, ttl: Duration, now: Instant) {
        while self.events.len() > size || self.events.front().is_some_and(|(_, at, _)| now.duration_since(*at) > ttl) {
            self.events.pop_front();
        }
    }

    /// The first offset still kept (`last + 1` when none is).
    fn first(&self) -> u64 {
        self.events.front().map_or(self.last + 1, |(o, _, _)| *o)
    }
}

/// How long a history keeps, from the app's settings.
#[derive(Debug, Clone, Copy)]
pub struct Keep {
    /// Events per channel.
    pub size: usize,
    /// How long each.
    pub ttl: Duration,
}

impl Keep {
    /// How long each event is kept, in milliseconds (as Redis counts it in a cluster).
    pub fn ttl_ms(&self) -> u64 {
        u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX)
    }
}

/// A page of a channel's history.
#[derive(Debug)]
pub struct Page {
    /// The epoch the offsets count in.
    pub epoch: String,
    /// The first offset still kept (`last + 1` when none is).
    pub first: u64,
    /// The latest offset.
    pub last: u64,
    /// Offsets and the frames as delivered.
    pub events: Vec<(u64, Frame)>,
}

/// The answer to a resume, already queued on the socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resumed {
    /// Every event after the position was sent again, then `sinew:resumed`.
    Replayed(usize),
    /// `sinew:resume_failed` was sent, with this reason.
    Failed(&'static str),
}

impl From<Kept> for Page {
    fn from(k: Kept) -> Page {
        let events = k.events.into_iter().map(|(o, f)| (o, Frame::from(f))).collect();
        Page { epoch: k.epoch, first: k.first, last: k.last, events }
    }
}

/// Answers a resume of `channel` from `epoch`/`offset` with what is kept (`page`: the channel's
/// position and the events after `offset`, possibly fewer than there are) on `outbox`: the events
/// after the offset and `sinew:resumed`; or `sinew:resume_failed` when the epoch is not the
/// channel's (or the offset one it never had), when the events after the offset are no longer all
/// kept, or when they would take more than half the room left in the socket's queue, which live
/// events share.
pub fn answer(channel: &str, epoch: &str, offset: u64, page: Option<&Page>, outbox: &Outbox) -> Resumed {
    let fail = |reason: &'static str, now: Option<(&str, u64)>| {
        outbox.push(&Frame::from(frame::resume_failed(channel, reason, now)));
        Resumed::Failed(reason)
    };
    let Some(page) = page else { return fail("epoch_changed", None) };
    let now = Some((page.epoch.as_str(), page.last));
    if page.epoch != epoch || offset > page.last {
        return fail("epoch_changed", now);
    }
    if offset.saturating_add(1) < page.first {
        return fail("too_old", now);
    }
    let missed: Vec<&Frame> = page.events.iter().filter(|(o, _)| *o > offset).map(|(_, f)| f).collect();
    let expected = usize::try_from(page.last - offset).unwrap_or(usize::MAX);
    let bytes: usize = missed.iter().map(|f| f.len()).sum();
    let (messages, room) = outbox.room();
    if expected.saturating_add(1) > messages / 2 || missed.len() < expected || bytes > room / 2 {
        return fail("too_many", now);
    }
    for f in &missed {
        outbox.push(f);
    }
    outbox.push(&Frame::from(frame::resumed(channel, &page.epoch, page.last, missed.len())));
    Resumed::Replayed(missed.len())
}

impl AppState {
    /// Answers `sinew:resume` of `channel` from `epoch`/`offset` on `outbox`: from this node's
    /// logs alone, from Redis in a cluster (`sinew:resume_failed` with `unavailable` when Redis
    /// cannot be read), `history_off` for a channel without history.
    pub async fn resume(&self, channel: &str, epoch: &str, offset: u64, outbox: &Outbox) -> Resumed {
        if !self.keeps_history(channel) {
            outbox.push(&Frame::from(frame::resume_failed(channel, "history_off", None)));
            return Resumed::Failed("history_off");
        }
        let keep = self.history_keep();
        let Some(cluster) = self.adapter().redis() else {
            return self.history().resume(channel, epoch, offset, keep, outbox);
        };
        // More than half the queue's room would fail anyway: no need to read more.
        let limit = (outbox.room().0 / 2).max(1);
        match cluster.read_history(self.id(), channel, offset, limit, keep.ttl_ms(), true).await {
            Ok(kept) => answer(channel, epoch, offset, kept.map(Page::from).as_ref(), outbox),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read a channel's history for a resume");
                outbox.push(&Frame::from(frame::resume_failed(channel, "unavailable", None)));
                Resumed::Failed("unavailable")
            }
        }
    }

    /// What a backend reads of `channel`'s history (`GET .../history`): up to `limit` kept events
    /// after offset `since`; `None` while the channel has no position.
    pub async fn read_history(&self, channel: &str, since: u64, limit: usize) -> Result<Option<Page>, ClusterError> {
        let keep = self.history_keep();
        match self.adapter().redis() {
            None => Ok(self.history().read(channel, since, limit, keep)),
            Some(cluster) => {
                Ok(cluster.read_history(self.id(), channel, since, limit, keep.ttl_ms(), false).await?.map(Page::from))
            }
        }
    }
}

impl History {
    /// Gives the next event of `channel` its position: `positioned` builds its frame from the epoch
    /// and offset, `deliver` hands the frame to the subscribers, both under the channel's lock.
    pub fn record(
        &self,
        channel: &str,
        keep: Keep,
        positioned: impl FnOnce(&str, u64) -> Frame,
        deliver: impl FnOnce(&Frame),
    ) {
        let mut log = match self.channels.get_mut(channel) {
            Some(log) => log,
            None => self.channels.entry(channel.to_string()).or_insert_with(Log::new),
        };
        let now = Instant::now();
        log.last += 1;
        let f = positioned(&log.epoch, log.last);
        deliver(&f);
        let offset = log.last;
        log.events.push_back((offset, now, f));
        log.prune(keep.size, keep.ttl, now);
    }

    /// Answers `sinew:resume` of `channel` from `epoch`/`offset` on `outbox` (see [`answer`]),
    /// under the channel's lock: nothing published after the replay comes before it.
    pub fn resume(&self, channel: &str, epoch: &str, offset: u64, keep: Keep, outbox: &Outbox) -> Resumed {
        let Some(mut log) = self.channels.get_mut(channel) else {
            return answer(channel, epoch, offset, None, outbox);
        };
        log.prune(keep.size, keep.ttl, Instant::now());
        let events = log.events.iter().filter(|(o, _, _)| *o > offset).map(|(o, _, f)| (*o, f.clone())).collect();
        let page = Page { epoch: log.epoch.clone(), first: log.first(), last: log.last, events };
        answer(channel, epoch, offset, Some(&page), outbox)
    }

    /// What a backend reads (`GET .../history`): the channel's epoch and latest offset, and up to
    /// `limit` kept events after offset `since`, oldest first; `None` when the channel has no log.
    pub fn read(&self, channel: &str, since: u64, limit: usize, keep: Keep) -> Option<Page> {
        let mut log = self.channels.get_mut(channel)?;
        log.prune(keep.size, keep.ttl, Instant::now());
        let events = log.events.iter().filter(|(o, _, _)| *o > since).take(limit).map(|(o, _, f)| (*o, f.clone()));
        let events = events.collect();
        Some(Page { epoch: log.epoch.clone(), first: log.first(), last: log.last, events })
    }

    /// Drops the logs of channels whose events have all expired and that nobody published to for
    /// `ttl` (a resume from them then fails as `epoch_changed`, which is what it is).
    pub fn purge_expired(&self, keep: Keep) {
        let now = Instant::now();
        self.channels.retain(|_, log| {
            log.prune(keep.size, keep.ttl, now);
            !log.events.is_empty()
        });
    }

    /// Channels with a log on this node.
    pub fn len(&self) -> usize {
        self.channels.len()
    }

    /// True when no channel has a log.
    pub fn is_empty(&self) -> bool {
        self.channels.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::OutboxLimits;
    use std::sync::Arc;

    const KEEP: Keep = Keep { size: 3, ttl: Duration::from_secs(60) };

    fn outbox() -> Outbox {
        Outbox::new(OutboxLimits { max_messages: 100, max_bytes: 1 << 20 }, Arc::default())
    }

    fn publish(h: &History, channel: &str, n: usize) -> String {
        let mut epoch = String::new();
        for i in 0..n {
            h.record(
                channel,
                KEEP,
                |e, o| {
                    epoch = e.to_string();
                    Frame::from(frame::with_position(&frame::channel_event("e", channel, &i.to_string()), e, o))
                },
                |_| {},
            );
        }
        epoch
    }

    fn texts(o: &Outbox) -> Vec<String> {
        let mut batch = Vec::new();
        o.drain(&mut batch);
        batch.iter().map(|f| f.as_str().to_string()).collect()
    }

    #[test]
    fn a_resume_replays_what_came_after_the_position_then_says_so() {
        let h = History::default();
        let epoch = publish(&h, "private-a", 3);
        let o = outbox();
        assert_eq!(h.resume("private-a", &epoch, 1, KEEP, &o), Resumed::Replayed(2));
        let sent = texts(&o);
        assert_eq!(sent.len(), 3);
        assert!(sent[0].contains("\"data\":\"1\"") && sent[0].contains(&format!("\"epoch\":\"{epoch}\",\"offset\":2")));
        assert!(sent[2].starts_with("{\"event\":\"sinew:resumed\",\"channel\":\"private-a\""), "{}", sent[2]);
        assert!(sent[2].contains("\"offset\":3,\"replayed\":2"));
        // Nothing missed: nothing replayed, still a resumed answer.
        assert_eq!(h.resume("private-a", &epoch, 3, KEEP, &o), Resumed::Replayed(0));
    }

    #[test]
    fn a_lost_epoch_a_pruned_gap_or_too_much_fails_with_why() {
        let h = History::default();
        let epoch = publish(&h, "c", 5);
        let o = outbox();
        assert_eq!(h.resume("c", "other", 4, KEEP, &o), Resumed::Failed("epoch_changed"));
        assert_eq!(h.resume("c", &epoch, 9, KEEP, &o), Resumed::Failed("epoch_changed"));
        assert_eq!(h.resume("c", &epoch, 1, KEEP, &o), Resumed::Failed("too_old"), "2 is no longer kept");
        assert_eq!(h.resume("c", &epoch, 2, KEEP, &o), Resumed::Replayed(3));
        let small = Outbox::new(OutboxLimits { max_messages: 6, max_bytes: 1 << 20 }, Arc::default());
        assert_eq!(h.resume("c", &epoch, 2, KEEP, &small), Resumed::Failed("too_many"), "3 events and the answer in 6");
        assert_eq!(h.resume("none", &epoch, 2, KEEP, &o), Resumed::Failed("epoch_changed"));
        let failed = texts(&o);
        assert!(
            failed[0].contains("\"reason\":\"epoch_changed\"") && failed[0].contains("\"offset\":5"),
            "{}",
            failed[0]
        );
    }

    #[test]
    fn expired_logs_are_dropped_and_their_epoch_with_them() {
        let h = History::default();
        let epoch = publish(&h, "c", 2);
        h.purge_expired(Keep { size: 3, ttl: Duration::ZERO });
        assert!(h.is_empty());
        let again = publish(&h, "c", 1);
        assert_ne!(epoch, again, "a new log counts in a new epoch");
    }
}
