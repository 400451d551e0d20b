//! The task that writes this node's share of the cluster state: subscriptions and presence members
//! (batched into pipelines of Lua scripts), heartbeats, sweeping of dead nodes, and rewriting the
//! node's state after Redis lost it or was unreachable.
//!
//! The task keeps a mirror of what this node holds. Changes are applied to the mirror in order;
//! when Redis cannot be written the task marks itself out of sync and, once Redis answers again,
//! compares the mirror with the node's hashes in Redis and writes the difference through the same
//! scripts, so the cluster-wide transitions that happened meanwhile are announced after all.
//!
//! Files: this one holds the task's loop, the mirror and the pipeline runner; [`write`](mod@write) the
//! batched subscription writes, [`heartbeat`] the heartbeats, sweeping of dead nodes and the
//! handover on a graceful stop, [`reconcile`] the rewriting of the state after an outage.

mod heartbeat;
mod reconcile;
mod write;

use super::error::OP_TIMEOUT;
use super::link::Link;
use super::{Change, Inbound, SubOutcome, SubRequest, Transition, scripts};
use redis::Value;
use std::collections::HashMap;
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
    /// Since when Redis took every heartbeat and write (`None` after a failed one).
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
        // A write that failed is as much a sign of Redis being unreachable as a failed heartbeat
        // (the heartbeat may not have run meanwhile: it waits behind the write): the others get a
        // whole node timeout to heartbeat again before this node sweeps any of them.
        self.healthy_since = None;
    }

    /// Runs a pipeline of scripts, loading them first if Redis lost its script cache.
    async fn run(&self, pipe: &redis::Pipeline) -> Result<Vec<Value>, ()> {
        let Ok(mut conn) = self.link.conn().await else {
            self.link.stats.errors.fetch_add(1, Ordering::Relaxed);
            return Err(());
        };
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
                // One command each, not a pipeline: on a Redis Cluster `SCRIPT LOAD` goes to every
                // node.
                for source in Scripts::sources() {
                    let load = redis::cmd("SCRIPT").arg("LOAD").arg(source).clone();
                    if !matches!(timeout(OP_TIMEOUT, load.query_async::<Value>(&mut conn)).await, Ok(Ok(_))) {
                        self.link.stats.errors.fetch_add(1, Ordering::Relaxed);
                        return Err(());
                    }
                }
            }
        }
        Err(())
    }
}

fn bump(map: &mut HashMap<String, i64>, key: String, delta: i64) {
    let n = map.entry(key.clone()).or_insert(0);
    *n += delta;
    if *n <= 0 {
        map.remove(&key);
    }
}
