//! The bus publisher: sends this node's messages to Redis in pipelines, with the writes of cache
//! channels' last events, in the order they were queued. A message goes to its topic (a channel's,
//! or the bus every node listens to); on a Redis Cluster a pipeline may only touch one slot, so a
//! batch becomes one pipeline per slot, sent together, and channel topics use `SPUBLISH`. With
//! NATS as the channel bus, channel messages go to NATS and the rest to Redis.
//!
//! An event of a channel with history goes to the history script instead (see [`super::history`]),
//! in the same pipeline; when Redis cannot take it, it is handed back to this node's subscribers
//! without a position (the other nodes miss it, as every message of an unreachable bus).

use super::error::OP_TIMEOUT;
use super::history;
use super::link::Link;
use super::{BusMessage, Inbound};
use futures_util::future::join_all;
use redis::Value;
use redis::cluster_routing::Slot;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::{mpsc, oneshot};
use tokio::time::timeout;

/// What the publisher sends to Redis, in the order it was queued.
pub(super) enum Outgoing {
    /// An encoded [`super::BusMessage`] for the nodes listening to `topic`; `sharded` on a
    /// channel's topic (sharded pub/sub on a Redis Cluster).
    Publish { topic: String, payload: Vec<u8>, sharded: bool },
    /// The last event of a cache channel, stored under `key` for `ttl_ms`.
    SetCache { key: String, value: String, ttl_ms: u64 },
    /// An event of a channel with history, for [`history::PUBLISH`].
    Positioned(Box<Positioned>),
}

/// An event of a channel with history, as the history script takes it.
pub(super) struct Positioned {
    /// Position hash and history list.
    pub(super) keys: [String; 2],
    /// The epoch the channel starts with when it has none.
    pub(super) epoch: String,
    /// The frame without position.
    pub(super) frame: String,
    /// Events kept.
    pub(super) size: usize,
    /// How long, in milliseconds.
    pub(super) ttl_ms: u64,
    /// Where the script publishes, and whether sharded.
    pub(super) topic: String,
    pub(super) sharded: bool,
    /// App, channel, the socket left out and whether it is a cache channel's REST event: the bus
    /// message (and, when Redis cannot take it, the local delivery).
    pub(super) app: String,
    pub(super) channel: String,
    pub(super) except: Option<String>,
    pub(super) cache: bool,
    /// Dropped with the event once Redis took it (or it was handed back): what a REST publish
    /// waits for (dropped with the last event of the publish), so that its answer means the
    /// event has its position.
    pub(super) done: Option<Arc<oneshot::Sender<()>>>,
}

impl Positioned {
    /// The script call: the first of a pipeline sends the script itself (`EVAL`, which also
    /// loads it, so a Redis that lost its scripts never answers `NOSCRIPT`), the others its hash.
    fn push(&self, pipe: &mut redis::Pipeline, first: bool, sha: &str) {
        let (head, tail) =
            BusMessage::positioned_around_frame(&self.app, &self.channel, self.except.as_deref(), self.cache);
        let cmd = if first { pipe.cmd("EVAL").arg(history::PUBLISH) } else { pipe.cmd("EVALSHA").arg(sha) };
        cmd.arg(2)
            .arg(&self.keys[0])
            .arg(&self.keys[1])
            .arg(&self.epoch)
            .arg(&self.frame)
            .arg(self.size)
            .arg(self.ttl_ms)
            .arg(&self.topic)
            .arg(if self.sharded { "S" } else { "P" })
            .arg(head)
            .arg(tail);
    }

    /// This node's subscribers get it without a position.
    async fn deliver_here(self, inbound: &mpsc::Sender<Inbound>) {
        let Positioned { app, channel, frame, except, cache, done, .. } = self;
        let msg = BusMessage::Positioned { node: 0, app, channel, frame, except, cache };
        let _ = inbound.send(Inbound::Bus(msg)).await;
        drop(done);
    }
}

impl Outgoing {
    /// The key or topic that decides the slot on a Redis Cluster.
    fn slot(&self) -> Slot {
        match self {
            Outgoing::Publish { topic, .. } => Slot::for_key(topic),
            Outgoing::SetCache { key, .. } => Slot::for_key(key),
            Outgoing::Positioned(p) => Slot::for_key(&p.keys[0]),
        }
    }

    /// Adds the command to `pipe` (a history event's to `positioned` too, whose replies are not
    /// ignored); returns the number of messages it publishes.
    fn push(self, pipe: &mut redis::Pipeline, cluster: bool, positioned: &mut Vec<Positioned>, sha: &str) -> u64 {
        match self {
            Outgoing::Publish { topic, payload, sharded } => {
                let command = if sharded && cluster { "SPUBLISH" } else { "PUBLISH" };
                pipe.cmd(command).arg(topic).arg(payload).ignore();
                1
            }
            Outgoing::SetCache { key, value, ttl_ms } => {
                pipe.cmd("SET").arg(key).arg(value).arg("PX").arg(ttl_ms).ignore();
                0
            }
            Outgoing::Positioned(p) => {
                p.push(pipe, positioned.is_empty(), sha);
                pipe.ignore_errors();
                positioned.push(*p);
                1
            }
        }
    }
}

/// Sends what the handle queued, in order, batching it into pipelines. Returns once the handle is
/// gone and the queue is empty.
pub(super) async fn run_publisher(link: Arc<Link>, mut rx: mpsc::Receiver<Outgoing>, inbound: mpsc::Sender<Inbound>) {
    let cluster = link.is_cluster();
    let sha = redis::Script::new(history::PUBLISH).get_hash().to_string();
    let mut batch = Vec::with_capacity(256);
    let mut failing = false;
    loop {
        if rx.recv_many(&mut batch, 256).await == 0 {
            return;
        }
        if let Some(nats) = &link.nats {
            // Channel messages to NATS, in order; the rest stays in the batch for Redis.
            let mut rest = Vec::with_capacity(batch.len());
            for item in batch.drain(..) {
                match item {
                    Outgoing::Publish { topic, payload, sharded: true } => match nats.publish(topic, payload).await {
                        Ok(()) => {
                            link.stats.published.fetch_add(1, Ordering::Relaxed);
                            if failing {
                                tracing::info!("cluster bus publishing works again");
                                failing = false;
                            }
                        }
                        Err(e) => publish_failed(&link, &mut failing, 1, &e),
                    },
                    other => rest.push(other),
                }
            }
            batch = rest;
            if batch.is_empty() {
                continue;
            }
        }
        // One pipeline, or one per slot on a Redis Cluster (each keeps the queue's order).
        let mut pipes: Vec<Pipe> = Vec::new();
        if cluster {
            let mut by_slot: HashMap<Slot, usize> = HashMap::new();
            for item in batch.drain(..) {
                let i = *by_slot.entry(item.slot()).or_insert_with(|| {
                    pipes.push(Pipe::default());
                    pipes.len() - 1
                });
                let p = &mut pipes[i];
                p.publishes += item.push(&mut p.pipe, true, &mut p.positioned, &sha);
            }
        } else {
            let mut p = Pipe::default();
            for item in batch.drain(..) {
                p.publishes += item.push(&mut p.pipe, false, &mut p.positioned, &sha);
            }
            pipes.push(p);
        }
        let publishes: u64 = pipes.iter().map(|p| p.publishes).sum();
        let conn = match link.conn().await {
            Ok(conn) => conn,
            Err(e) => {
                publish_failed(&link, &mut failing, publishes, &e.to_string());
                for p in pipes {
                    for item in p.positioned {
                        item.deliver_here(&inbound).await;
                    }
                }
                continue;
            }
        };
        let sends = pipes.iter().map(|p| {
            let mut conn = conn.clone();
            async move { timeout(OP_TIMEOUT, p.pipe.query_async::<Vec<Value>>(&mut conn)).await }
        });
        let results = join_all(sends).await;
        let mut lost = 0;
        let mut error = None;
        for (p, result) in pipes.into_iter().zip(results) {
            let replies = match result {
                Ok(Ok(replies)) => replies,
                failure => {
                    // The whole pipeline failed: its history events go to this node's subscribers.
                    error = Some(match failure {
                        Ok(Err(e)) => e.to_string(),
                        _ => "timed out".to_string(),
                    });
                    lost += p.publishes;
                    for item in p.positioned {
                        item.deliver_here(&inbound).await;
                    }
                    continue;
                }
            };
            let mut failed = 0;
            for (item, reply) in p.positioned.into_iter().zip(replies) {
                if let Value::ServerError(e) = reply {
                    error = Some(format!("history script: {e:?}"));
                    failed += 1;
                    item.deliver_here(&inbound).await;
                }
            }
            lost += failed;
            link.stats.published.fetch_add(p.publishes - failed, Ordering::Relaxed);
        }
        match error {
            Some(e) => publish_failed(&link, &mut failing, lost, &e),
            None if failing => {
                tracing::info!("cluster bus publishing works again");
                failing = false;
            }
            None => {}
        }
    }
}

/// One pipeline of the publisher: its commands, how many messages they publish, and the history
/// events among them, whose replies are read.
#[derive(Default)]
struct Pipe {
    pipe: redis::Pipeline,
    publishes: u64,
    positioned: Vec<Positioned>,
}

fn publish_failed(link: &Link, failing: &mut bool, lost: u64, error: &str) {
    link.stats.errors.fetch_add(1, Ordering::Relaxed);
    link.stats.dropped.fetch_add(lost, Ordering::Relaxed);
    if !*failing {
        tracing::error!(error, lost, "cannot publish to the cluster bus; other nodes miss these messages");
        *failing = true;
    }
}
