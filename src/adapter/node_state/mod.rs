//! The task that writes this node's share of the cluster state: subscriptions and presence members
//! (batched into pipelines of Lua scripts), heartbeats, sweeping of dead nodes, and rewriting the
//! node's state after Redis lost it or was unreachable.
//!
//! The task keeps a mirror of what this node holds. Changes are applied to the mirror in order;
//! when Redis cannot be written the task marks itself out of sync and, once Redis answers again,
//! compares the mirror with the node's hashes in Redis and writes the difference through the same
//! scripts, so the cluster-wide transitions that happened meanwhile are announced after all.

use super::keys::Keys;
use super::link::{Link, OP_TIMEOUT, as_int, as_string, pairs};
use super::{Change, Inbound, SubOutcome, SubRequest, Transition, scripts};
use redis::Value;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Duration, Instant, timeout};

/// A change for the state task.
pub(super) enum Op {
    /// Subscribe or unsubscribe; the reply (if any) receives the outcome.
    Sub { req: SubRequest, reply: Option<oneshot::Sender<SubOutcome>> },
    /// Stop recording departures; keep this node's state for the handover period.
    Handover,
    /// Answered once everything queued before it was handled.
    Flush(oneshot::Sender<()>),
}

/// Scripts per pipeline.
const BATCH: usize = 256;
/// Least time between two attempts to write the state back after a failure.
const RETRY_EVERY: Duration = Duration::from_millis(500);

struct Scripts {
    subscribe: redis::Script,
    heartbeat: redis::Script,
    handover: redis::Script,
    sweep: redis::Script,
}

impl Scripts {
    fn sources() -> [&'static str; 4] {
        [scripts::SUBSCRIBE, scripts::HEARTBEAT, scripts::HANDOVER, scripts::SWEEP]
    }
}

/// How long a departure marker lives: the leave delay and a margin, when the app has webhooks.
fn marker_ms(webhooks: bool, leave_delay: Duration) -> u64 {
    if webhooks && !leave_delay.is_zero() { leave_delay.as_millis() as u64 + 10_000 } else { 0 }
}

/// A difference between the mirror and Redis, written back by a reconciliation.
struct Fix {
    app: String,
    channel: String,
    delta: i64,
    member: Option<(String, String)>,
    member_delta: i64,
}

/// One run of the subscribe script.
struct Write<'a> {
    app: &'a str,
    channel: &'a str,
    delta: i64,
    member: Option<&'a (String, String)>,
    member_delta: i64,
    max_members: i64,
    want_members: bool,
    want_cache: bool,
    count_events: bool,
    /// Milliseconds a departure's marker lives (0: no marker).
    marker_ms: u64,
    /// Whether the script publishes member events and counts.
    publish: bool,
    /// Token of the [`super::BusMessage::Listed`] the script publishes (a presence join).
    listed: Option<u64>,
}

impl<'a> Write<'a> {
    fn of(req: &'a SubRequest, leave_delay: Duration) -> Self {
        Write {
            app: &req.app,
            channel: &req.channel,
            delta: req.delta,
            member: req.member.as_ref(),
            member_delta: if req.member.is_some() { req.delta } else { 0 },
            max_members: i64::try_from(req.max_members).unwrap_or(i64::MAX),
            want_members: req.want_members,
            want_cache: req.want_cache,
            count_events: req.count_events,
            marker_ms: marker_ms(req.webhooks, leave_delay),
            publish: true,
            listed: req.listed,
        }
    }

    fn push(&self, pipe: &mut redis::Pipeline, script: &redis::Script, keys: &Keys, node: u32) {
        let (user, value) = self.member.map_or(("", ""), |(u, v)| (u.as_str(), v.as_str()));
        pipe.cmd("EVALSHA")
            .arg(script.get_hash())
            .arg(7)
            .arg(keys.node_subs(node))
            .arg(keys.app_subs(self.app))
            .arg(keys.node_members(node))
            .arg(keys.members(self.app, self.channel))
            .arg(keys.values(self.app, self.channel))
            .arg(keys.cache(self.app, self.channel))
            .arg(keys.nodes())
            .arg(field(self.app, self.channel))
            .arg(self.channel)
            .arg(self.delta)
            .arg(user)
            .arg(value)
            .arg(self.member_delta)
            .arg(self.max_members)
            .arg(if self.want_members { "1" } else { "0" })
            .arg(if self.want_cache { "1" } else { "0" })
            .arg(keys.bus())
            .arg(self.app)
            .arg(if self.count_events { "1" } else { "0" })
            .arg(node)
            .arg(self.marker_ms)
            .arg(if self.publish { "1" } else { "0" })
            .arg(self.listed.map_or_else(String::new, |t| t.to_string()));
    }
}

struct NodeState {
    link: Arc<Link>,
    inbound: mpsc::Sender<Inbound>,
    scripts: Scripts,
    /// `app\nchannel` -> subscriptions this node holds.
    subs: HashMap<String, i64>,
    /// `app\nchannel\nuser` -> (sockets, stored member value).
    members: HashMap<String, (i64, String)>,
    /// Redis may differ from the mirror.
    dirty: bool,
    last_attempt: Option<Instant>,
    registered: bool,
    /// Redis forgot this node while it was registered (data loss or a sweep).
    lost_registration: bool,
    /// Since when every heartbeat succeeded (`None` after a failed one).
    healthy_since: Option<Instant>,
    draining: bool,
}

/// Runs until the adapter is dropped.
pub(super) async fn run(link: Arc<Link>, mut ops: mpsc::UnboundedReceiver<Op>, inbound: mpsc::Sender<Inbound>) {
    let interval = (link.settings.node_timeout / 4).clamp(Duration::from_millis(250), Duration::from_secs(5));
    let mut state = NodeState {
        link,
        inbound,
        scripts: Scripts {
            subscribe: redis::Script::new(scripts::SUBSCRIBE),
            heartbeat: redis::Script::new(scripts::HEARTBEAT),
            handover: redis::Script::new(scripts::HANDOVER),
            sweep: redis::Script::new(scripts::SWEEP),
        },
        subs: HashMap::new(),
        members: HashMap::new(),
        dirty: false,
        last_attempt: None,
        registered: false,
        lost_registration: false,
        healthy_since: None,
        draining: false,
    };
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            n = ops.recv_many(&mut batch, BATCH) => {
                if n == 0 {
                    return;
                }
                state.process(&mut batch).await;
            }
            _ = tick.tick() => {
                state.heartbeat().await;
                // While Redis cannot be written, try again soon instead of a whole interval later:
                // the first command after Redis comes back only restarts the connection, so at the
                // full interval a node would stay unready for up to two intervals after Redis is back.
                if !state.draining && !state.link.store_is_up() {
                    tick.reset_after(RETRY_EVERY.min(interval));
                }
            }
        }
    }
}

fn field(app: &str, channel: &str) -> String {
    format!("{app}\n{channel}")
}

impl NodeState {
    async fn process(&mut self, batch: &mut Vec<Op>) {
        let mut subs: Vec<(SubRequest, Option<oneshot::Sender<SubOutcome>>)> = Vec::with_capacity(batch.len());
        let mut flushes = Vec::new();
        for op in batch.drain(..) {
            match op {
                Op::Sub { req, reply } => {
                    if self.draining {
                        if let Some(r) = reply {
                            let _ = r.send(SubOutcome::Unavailable);
                        }
                        continue;
                    }
                    self.mirror(&req);
                    subs.push((req, reply));
                }
                Op::Handover => {
                    // Changes queued before the handover are written first.
                    if !subs.is_empty() {
                        self.write(std::mem::take(&mut subs)).await;
                    }
                    self.handover().await;
                }
                Op::Flush(done) => flushes.push(done),
            }
        }
        if !subs.is_empty() {
            self.write(subs).await;
        }
        for done in flushes {
            let _ = done.send(());
        }
    }

    fn mirror(&mut self, req: &SubRequest) {
        let f = field(&req.app, &req.channel);
        bump(&mut self.subs, f.clone(), req.delta);
        if let Some((user, value)) = &req.member {
            let key = format!("{f}\n{user}");
            let entry = self.members.entry(key.clone()).or_insert((0, value.clone()));
            entry.0 += req.delta;
            if req.delta > 0 {
                entry.1.clone_from(value);
            }
            if entry.0 <= 0 {
                self.members.remove(&key);
            }
        }
    }

    fn unmirror(&mut self, req: &SubRequest) {
        let undo = SubRequest { delta: -req.delta, ..req.clone() };
        self.mirror(&undo);
    }

    /// Writes a batch of subscription changes; replies and announces what the scripts decided.
    async fn write(&mut self, subs: Vec<(SubRequest, Option<oneshot::Sender<SubOutcome>>)>) {
        if self.dirty {
            self.reconcile().await;
        }
        if self.dirty {
            for (_, reply) in subs {
                if let Some(r) = reply {
                    let _ = r.send(SubOutcome::Unavailable);
                }
            }
            return;
        }
        let node = self.link.node();
        let keys = self.link.keys.clone();
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        let leave_delay = self.link.settings.leave_delay;
        for (req, _) in &subs {
            Write::of(req, leave_delay).push(&mut pipe, &self.scripts.subscribe, &keys, node);
        }
        let results = match self.run(&pipe).await {
            Ok(r) if r.len() == subs.len() => r,
            _ => {
                self.lost_sync();
                for (_, reply) in subs {
                    if let Some(r) = reply {
                        let _ = r.send(SubOutcome::Unavailable);
                    }
                }
                return;
            }
        };
        for ((req, reply), result) in subs.into_iter().zip(results) {
            let outcome = self.apply_result(&req, &result).await;
            if let Some(r) = reply {
                let _ = r.send(outcome);
            }
        }
    }

    /// Interprets one `SUBSCRIBE` script result and announces its transitions.
    async fn apply_result(&mut self, req: &SubRequest, result: &Value) -> SubOutcome {
        let Value::Array(parts) = result else {
            tracing::error!(?result, "unexpected reply of the subscribe script");
            self.lost_sync();
            return SubOutcome::Unavailable;
        };
        let get = |i: usize| parts.get(i).unwrap_or(&Value::Nil);
        let member = as_int(get(0));
        if member == -2 {
            self.unmirror(req);
            return SubOutcome::Full;
        }
        if member == -3 {
            // Not registered (swept while cut off, or Redis lost its data): written back by the
            // reconciliation once the node registers again.
            self.lost_sync();
            return SubOutcome::Unavailable;
        }
        let marker = marker_ms(req.webhooks, self.link.settings.leave_delay) > 0;
        for change in changes_of(parts, req.member.as_ref(), marker) {
            self.announce(&req.app, &req.channel, change).await;
        }
        let members = if req.want_members { pairs(Some(get(3))) } else { Vec::new() };
        SubOutcome::Applied { members, cache: as_string(get(4)) }
    }

    async fn announce(&self, app: &str, channel: &str, change: Change) {
        let t = Transition { app: app.to_string(), channel: channel.to_string(), change };
        let _ = self.inbound.send(Inbound::Transition(t)).await;
    }

    fn lost_sync(&mut self) {
        if !self.dirty {
            tracing::warn!("cannot write cluster state to Redis; serving from this node's state until it is back");
        }
        self.dirty = true;
        self.link.set_store_up(false);
    }

    /// Runs a pipeline of scripts, loading them first if Redis lost its script cache.
    async fn run(&self, pipe: &redis::Pipeline) -> Result<Vec<Value>, ()> {
        let mut conn = self.link.conn.clone();
        for attempt in 0..2 {
            let values = match timeout(OP_TIMEOUT, pipe.query_async::<Vec<Value>>(&mut conn)).await {
                Ok(Ok(v)) => v,
                Ok(Err(e)) => {
                    self.link.stats.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(error = %e, "cluster state write failed");
                    return Err(());
                }
                Err(_) => {
                    self.link.stats.errors.fetch_add(1, Ordering::Relaxed);
                    return Err(());
                }
            };
            let noscript = values.iter().any(|v| matches!(v, Value::ServerError(e) if e.code() == "NOSCRIPT"));
            if !noscript {
                if let Some(Value::ServerError(e)) = values.iter().find(|v| matches!(v, Value::ServerError(_))) {
                    self.link.stats.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = ?e, "a cluster state script failed");
                    return Err(());
                }
                return Ok(values);
            }
            if attempt == 0 {
                let mut load = redis::pipe();
                for source in Scripts::sources() {
                    load.cmd("SCRIPT").arg("LOAD").arg(source).ignore();
                }
                if !matches!(timeout(OP_TIMEOUT, load.query_async::<()>(&mut conn)).await, Ok(Ok(()))) {
                    self.link.stats.errors.fetch_add(1, Ordering::Relaxed);
                    return Err(());
                }
            }
        }
        Err(())
    }

    async fn heartbeat(&mut self) {
        if self.draining {
            return;
        }
        if self.dirty {
            self.reconcile().await;
        }
        let ttl = self.link.settings.node_timeout.as_millis() as u64;
        let Ok(reply) = self.beat(ttl).await else {
            self.link.set_store_up(false);
            self.healthy_since = None;
            return;
        };
        let healthy_since = *self.healthy_since.get_or_insert_with(Instant::now);
        let added = reply.first().map_or(0, as_int);
        if added == 1 && self.registered && !self.dirty {
            tracing::warn!("this node's cluster state was missing from Redis; writing it again");
            self.lost_registration = true;
            self.dirty = true;
            self.last_attempt = None;
            self.reconcile().await;
        }
        self.registered = true;
        if !self.dirty {
            self.link.set_store_up(true);
        }
        // After this node could not reach Redis, the others' deadlines may have passed only because
        // Redis was unreachable for them too (a pause or a network cut keeps the data): give them a
        // whole node timeout to heartbeat again before sweeping anyone.
        if healthy_since.elapsed() < self.link.settings.node_timeout {
            return;
        }
        let me = self.link.node().to_string();
        let dead: Vec<String> = match reply.get(1) {
            Some(Value::Array(ids)) => ids.iter().filter_map(as_string).filter(|id| *id != me).collect(),
            _ => Vec::new(),
        };
        for node in dead {
            self.sweep(&node).await;
        }
    }

    async fn beat(&self, ttl_ms: u64) -> Result<Vec<Value>, ()> {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        pipe.cmd("EVALSHA")
            .arg(self.scripts.heartbeat.get_hash())
            .arg(1)
            .arg(self.link.keys.nodes())
            .arg(self.link.node())
            .arg(ttl_ms);
        match self.run(&pipe).await?.into_iter().next() {
            Some(Value::Array(parts)) => Ok(parts),
            _ => Err(()),
        }
    }

    /// Removes a dead node's contribution and announces the departures (only the first sweeper does).
    async fn sweep(&mut self, node: &str) {
        let keys = self.link.keys.clone();
        let Ok(id) = node.parse::<u32>() else { return };
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        pipe.cmd("EVALSHA")
            .arg(self.scripts.sweep.get_hash())
            .arg(4)
            .arg(keys.nodes())
            .arg(keys.node_subs(id))
            .arg(keys.node_members(id))
            .arg(keys.draining())
            .arg(node)
            .arg(keys.prefix())
            .arg(keys.bus());
        let Ok(reply) = self.run(&pipe).await else { return };
        let Some(Value::Array(parts)) = reply.into_iter().next() else {
            return; // another node swept it first
        };
        let mut vacated = Vec::new();
        if let Some(Value::Array(fields)) = parts.first() {
            vacated.extend(fields.iter().filter_map(as_string));
        }
        let mut removed = 0;
        if let Some(Value::Array(items)) = parts.get(1) {
            for pair in items.chunks(2) {
                let (Some(f), Some(value)) = (pair.first().and_then(as_string), pair.get(1).and_then(as_string)) else {
                    continue;
                };
                let mut it = f.splitn(3, '\n');
                if let (Some(app), Some(channel), Some(user)) = (it.next(), it.next(), it.next()) {
                    removed += 1;
                    let change = Change::MemberRemoved { user: user.to_string(), value, marker: false };
                    self.announce(app, channel, change).await;
                }
            }
        }
        for f in &vacated {
            if let Some((app, channel)) = f.split_once('\n') {
                self.announce(app, channel, Change::Vacated { marker: false }).await;
            }
        }
        // Channels the dead node shared with others: their subscription count dropped.
        if let Some(Value::Array(items)) = parts.get(2) {
            for pair in items.chunks(2) {
                if let (Some(f), Some(n)) = (pair.first().and_then(as_string), pair.get(1))
                    && let Some((app, channel)) = f.split_once('\n')
                {
                    self.announce(app, channel, Change::Count(as_int(n))).await;
                }
            }
        }
        tracing::info!(
            node,
            vacated = vacated.len(),
            members_removed = removed,
            "swept a node that stopped heartbeating"
        );
    }

    /// Writes the difference between the mirror and what Redis holds for this node.
    async fn reconcile(&mut self) {
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
        let mut conn = self.link.conn.clone();
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

    async fn handover(&mut self) {
        if self.draining {
            return;
        }
        self.draining = true;
        let keys = self.link.keys.clone();
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        pipe.cmd("EVALSHA")
            .arg(self.scripts.handover.get_hash())
            .arg(2)
            .arg(keys.nodes())
            .arg(keys.draining())
            .arg(self.link.node())
            .arg(self.link.settings.handover.as_millis() as u64);
        match self.run(&pipe).await.map(|r| r.into_iter().next()) {
            Ok(Some(Value::Array(nodes))) => {
                // No other node is left to take the clients over: leave nothing behind.
                for node in nodes.iter().filter_map(as_string) {
                    self.sweep(&node).await;
                }
            }
            Ok(_) => {}
            Err(()) => tracing::warn!(
                "cannot hand this node's members over in Redis; the others sweep them after the node timeout"
            ),
        }
    }
}

fn bump(map: &mut HashMap<String, i64>, key: String, delta: i64) {
    let n = map.entry(key.clone()).or_insert(0);
    *n += delta;
    if *n <= 0 {
        map.remove(&key);
    }
}

/// The cluster-wide transitions in one result of the subscribe script, in announcement order
/// (member events and counts reach clients through the bus; these are for webhooks).
fn changes_of(parts: &[Value], member: Option<&(String, String)>, marker: bool) -> Vec<Change> {
    let get = |i: usize| parts.get(i).unwrap_or(&Value::Nil);
    let (flag, before, after) = (as_int(get(0)), as_int(get(1)), as_int(get(2)));
    let mut changes = Vec::new();
    if before <= 0 && after > 0 {
        changes.push(Change::Occupied { rejoin: as_int(get(6)) == 1 });
    }
    if let Some((user, value)) = member {
        if flag == 1 || flag == 2 {
            changes.push(Change::MemberAdded { user: user.clone(), value: value.clone(), rejoin: flag == 2 });
        } else if flag == -1 {
            let stored = as_string(get(5)).unwrap_or_else(|| value.clone());
            changes.push(Change::MemberRemoved { user: user.clone(), value: stored, marker });
        }
    }
    if before > 0 && after <= 0 {
        changes.push(Change::Vacated { marker });
    }
    changes
}
