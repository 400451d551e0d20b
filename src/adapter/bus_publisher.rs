//! The bus publisher: sends this node's messages to Redis in pipelines, with the writes of cache
//! channels' last events, in the order they were queued. A message goes to its topic (a channel's,
//! or the bus every node listens to); on a Redis Cluster a pipeline may only touch one slot, so a
//! batch becomes one pipeline per slot, sent together, and channel topics use `SPUBLISH`. With
//! NATS as the channel bus, channel messages go to NATS and the rest to Redis.

use super::error::OP_TIMEOUT;
use super::link::Link;
use futures_util::future::join_all;
use redis::cluster_routing::Slot;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::mpsc;
use tokio::time::timeout;

/// What the publisher sends to Redis, in the order it was queued.
pub(super) enum Outgoing {
    /// An encoded [`super::BusMessage`] for the nodes listening to `topic`; `sharded` on a
    /// channel's topic (sharded pub/sub on a Redis Cluster).
    Publish { topic: String, payload: Vec<u8>, sharded: bool },
    /// The last event of a cache channel, stored under `key` for `ttl_ms`.
    SetCache { key: String, value: String, ttl_ms: u64 },
}

impl Outgoing {
    /// The key or topic that decides the slot on a Redis Cluster.
    fn slot(&self) -> Slot {
        match self {
            Outgoing::Publish { topic, .. } => Slot::for_key(topic),
            Outgoing::SetCache { key, .. } => Slot::for_key(key),
        }
    }

    fn push(self, pipe: &mut redis::Pipeline, cluster: bool) -> u64 {
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
        }
    }
}

/// Sends what the handle queued, in order, batching it into pipelines. Returns once the handle is
/// gone and the queue is empty.
pub(super) async fn run_publisher(link: Arc<Link>, mut rx: mpsc::Receiver<Outgoing>) {
    let cluster = link.is_cluster();
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
        let mut pipes: Vec<(redis::Pipeline, u64)> = Vec::new();
        if cluster {
            let mut by_slot: HashMap<Slot, usize> = HashMap::new();
            for item in batch.drain(..) {
                let i = *by_slot.entry(item.slot()).or_insert_with(|| {
                    pipes.push((redis::pipe(), 0));
                    pipes.len() - 1
                });
                let (pipe, n) = &mut pipes[i];
                *n += item.push(pipe, true);
            }
        } else {
            let mut pipe = redis::pipe();
            let n = batch.drain(..).map(|item| item.push(&mut pipe, false)).sum();
            pipes.push((pipe, n));
        }
        let publishes: u64 = pipes.iter().map(|(_, n)| n).sum();
        let conn = match link.conn().await {
            Ok(conn) => conn,
            Err(e) => {
                publish_failed(&link, &mut failing, publishes, &e.to_string());
                continue;
            }
        };
        let sends = pipes.iter().map(|(pipe, _)| {
            let mut conn = conn.clone();
            async move { timeout(OP_TIMEOUT, pipe.query_async::<()>(&mut conn)).await }
        });
        let mut lost = 0;
        let mut error = None;
        for ((_, n), result) in pipes.iter().zip(join_all(sends).await) {
            match result {
                Ok(Ok(())) => link.stats.published.fetch_add(*n, Ordering::Relaxed),
                Ok(Err(e)) => {
                    lost += n;
                    error = Some(e.to_string());
                    0
                }
                Err(_) => {
                    lost += n;
                    error = Some("timed out".to_string());
                    0
                }
            };
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

fn publish_failed(link: &Link, failing: &mut bool, lost: u64, error: &str) {
    link.stats.errors.fetch_add(1, Ordering::Relaxed);
    link.stats.dropped.fetch_add(lost, Ordering::Relaxed);
    if !*failing {
        tracing::error!(error, lost, "cannot publish to the cluster bus; other nodes miss these messages");
        *failing = true;
    }
}
