//! Reconciliation: after Redis was unreachable or lost this node's state, the difference between
//! the mirror and the node's hashes in Redis is written back through the subscribe script, and the
//! transitions it decides are announced (unless Redis merely lost data nobody saw change).

use super::write::{Write, changes_of};
use super::{BATCH, NodeState, RETRY_EVERY};
use crate::adapter::Inbound;
use crate::adapter::error::OP_TIMEOUT;
use crate::adapter::link::{as_int, pairs};
use redis::Value;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use tokio::time::{Duration, Instant, timeout};

/// A difference between the mirror and Redis, written back by a reconciliation.
struct Fix {
    app: String,
    channel: String,
    delta: i64,
    member: Option<(String, String)>,
    member_delta: i64,
}

impl NodeState {
    /// Writes the difference between the mirror and what Redis holds for this node.
    pub(super) async fn reconcile(&mut self) {
        if self.last_attempt.is_some_and(|t| t.elapsed() < RETRY_EVERY) {
            return;
        }
        // The rewrite publishes member events; wait until this node hears the bus again, so its own
        // clients get them too.
        if !self.link.bus_is_up() {
            return;
        }
        self.last_attempt = Some(Instant::now());
        let node = self.link.node();
        let keys = self.link.keys.clone();
        // Register first: the scripts write nothing for an unregistered node.
        let ttl = self.link.settings.node_timeout.as_millis() as u64;
        let Ok(beat) = self.beat(ttl).await else { return };
        if beat.first().map_or(0, as_int) == 1 && self.registered {
            self.lost_registration = true;
        }
        let mut pipe = redis::pipe();
        pipe.cmd("HGETALL").arg(keys.node_subs(node));
        pipe.cmd("HGETALL").arg(keys.node_members(node));
        pipe.cmd("DEL").arg(keys.swept(node));
        let Ok(mut conn) = self.link.conn().await else {
            self.link.stats.errors.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let Ok(Ok(current)) = timeout(OP_TIMEOUT, pipe.query_async::<Vec<Value>>(&mut conn)).await else {
            self.link.stats.errors.fetch_add(1, Ordering::Relaxed);
            return;
        };
        // Registration lost without a sweep: Redis lost its data, and nobody saw anything change,
        // so the state is restored silently. After a sweep the others saw this node's members
        // leave, so their return is announced.
        let swept = current.get(2).map_or(0, as_int) == 1;
        let silent = self.lost_registration && !swept;
        let in_redis_subs: HashMap<String, i64> =
            pairs(current.first()).into_iter().map(|(k, v)| (k, v.parse().unwrap_or(0))).collect();
        let in_redis_members: HashMap<String, i64> =
            pairs(current.get(1)).into_iter().map(|(k, v)| (k, v.parse().unwrap_or(0))).collect();
        let mut fixes: Vec<Fix> = Vec::new();
        let sub_fields: HashSet<&String> = self.subs.keys().chain(in_redis_subs.keys()).collect();
        for f in sub_fields {
            let delta = self.subs.get(f).copied().unwrap_or(0) - in_redis_subs.get(f).copied().unwrap_or(0);
            if delta != 0
                && let Some((app, channel)) = f.split_once('\n')
            {
                fixes.push(Fix { app: app.into(), channel: channel.into(), delta, member: None, member_delta: 0 });
            }
        }
        let member_fields: HashSet<&String> = self.members.keys().chain(in_redis_members.keys()).collect();
        for f in member_fields {
            let mine = self.members.get(f);
            let delta = mine.map_or(0, |m| m.0) - in_redis_members.get(f).copied().unwrap_or(0);
            let mut it = f.splitn(3, '\n');
            if delta != 0
                && let (Some(app), Some(channel), Some(user)) = (it.next(), it.next(), it.next())
            {
                let value = mine.map(|m| m.1.clone()).unwrap_or_default();
                let member = Some((user.to_string(), value));
                fixes.push(Fix { app: app.into(), channel: channel.into(), delta: 0, member, member_delta: delta });
            }
        }
        let total = fixes.len();
        let mut last_beat = Instant::now();
        let beat_every = (self.link.settings.node_timeout / 4).max(Duration::from_millis(250));
        for chunk in fixes.chunks(BATCH) {
            // A long rewrite keeps heartbeating, so the others never take this node for dead.
            if last_beat.elapsed() >= beat_every {
                if self.beat(ttl).await.is_err() {
                    return;
                }
                last_beat = Instant::now();
            }
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            for f in chunk {
                let w = Write {
                    app: &f.app,
                    channel: &f.channel,
                    delta: f.delta,
                    member: f.member.as_ref(),
                    member_delta: f.member_delta,
                    max_members: i64::MAX,
                    want_members: false,
                    want_cache: false,
                    count_events: false,
                    marker_ms: 0,
                    publish: !silent,
                    listed: None,
                };
                w.push(&mut pipe, &self.scripts.subscribe, &keys, node);
            }
            let Ok(results) = self.run(&pipe).await else {
                return;
            };
            if silent {
                continue;
            }
            for (f, result) in chunk.iter().zip(results.iter()) {
                let Value::Array(parts) = result else { continue };
                for change in changes_of(parts, f.member.as_ref(), false) {
                    self.announce(&f.app, &f.channel, change).await;
                }
            }
        }
        self.dirty = false;
        self.lost_registration = false;
        self.link.set_store_up(true);
        let _ = self.inbound.send(Inbound::Resynced).await;
        tracing::info!(changes = total, restored = silent, "cluster state of this node written to Redis again");
    }
}
