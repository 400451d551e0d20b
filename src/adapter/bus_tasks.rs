//! The two tasks of the cluster bus: the publisher, which sends this node's messages to Redis in
//! pipelines (with the writes of cache channels' last events, in the same order), and the reader,
//! which keeps a subscription to the bus channel and hands the other nodes' messages to the hub.

use super::Inbound;
use super::bus::BusMessage;
use super::link::{Link, OP_TIMEOUT};
use futures_util::StreamExt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::mpsc;
use tokio::time::{Duration, timeout};

/// What the publisher sends to Redis, in the order it was queued.
pub(super) enum Outgoing {
    /// An encoded [`BusMessage`] for the other nodes.
    Publish(Vec<u8>),
    /// The last event of a cache channel, stored under `key` for `ttl_ms`.
    SetCache { key: String, value: String, ttl_ms: u64 },
}

/// Sends what the handle queued, in order, batching it into pipelines. Returns once the handle is
/// gone and the queue is empty.
pub(super) async fn run_publisher(link: Arc<Link>, mut rx: mpsc::Receiver<Outgoing>) {
    let bus = link.keys.bus();
    let mut batch = Vec::with_capacity(256);
    let mut failing = false;
    loop {
        if rx.recv_many(&mut batch, 256).await == 0 {
            return;
        }
        let mut pipe = redis::pipe();
        let mut publishes = 0;
        for item in batch.drain(..) {
            match item {
                Outgoing::Publish(payload) => {
                    publishes += 1;
                    pipe.cmd("PUBLISH").arg(&bus).arg(payload).ignore();
                }
                Outgoing::SetCache { key, value, ttl_ms } => {
                    pipe.cmd("SET").arg(key).arg(value).arg("PX").arg(ttl_ms).ignore();
                }
            }
        }
        let mut conn = match link.conn() {
            Ok(conn) => conn,
            Err(e) => {
                publish_failed(&link, &mut failing, publishes, &e.to_string());
                continue;
            }
        };
        match timeout(OP_TIMEOUT, pipe.query_async::<()>(&mut conn)).await {
            Ok(Ok(())) => {
                link.stats.published.fetch_add(publishes, Ordering::Relaxed);
                if failing {
                    tracing::info!("cluster bus publishing works again");
                    failing = false;
                }
            }
            Ok(Err(e)) => {
                publish_failed(&link, &mut failing, publishes, &e.to_string());
            }
            Err(_) => publish_failed(&link, &mut failing, publishes, "timed out"),
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

/// Keeps a subscription to the bus channel (re-made with backoff whenever it drops) and hands the
/// other nodes' messages to the hub. Returns once the hub stops listening.
pub(super) async fn run_reader(link: Arc<Link>, inbound: mpsc::Sender<Inbound>) {
    let bus = link.keys.bus();
    let mut backoff = Duration::from_millis(100);
    let mut lost = false;
    let mut moved = link.master_moved();
    loop {
        moved.mark_unchanged();
        let client = match link.client() {
            Ok(client) => client,
            Err(e) => {
                bus_failed(&link, &mut lost, &e.to_string());
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        match timeout(OP_TIMEOUT, client.get_async_pubsub()).await {
            Ok(Ok(mut pubsub)) => match timeout(OP_TIMEOUT, pubsub.subscribe(&bus)).await {
                Ok(Ok(())) => {
                    if lost {
                        link.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                        tracing::info!("cluster bus subscription restored");
                    }
                    link.set_bus_up(true);
                    backoff = Duration::from_millis(100);
                    let mut messages = pubsub.on_message();
                    // Until the subscription drops, or the master moved (the old one may live on
                    // as a replica and stay silent).
                    while let Some(msg) = tokio::select! {
                        msg = messages.next() => msg,
                        _ = moved.changed() => None,
                    } {
                        match BusMessage::decode(msg.get_payload_bytes()) {
                            // Node 0 marks messages published by the state scripts: for every node.
                            Ok(m) if m.node() == link.node() => {}
                            Ok(m) => {
                                link.stats.received.fetch_add(1, Ordering::Relaxed);
                                if inbound.send(Inbound::Bus(m)).await.is_err() {
                                    return;
                                }
                            }
                            Err(e) => {
                                link.stats.errors.fetch_add(1, Ordering::Relaxed);
                                tracing::warn!(error = %e, "undecodable message on the cluster bus");
                            }
                        }
                    }
                    link.set_bus_up(false);
                    tracing::warn!("cluster bus subscription lost; reconnecting");
                    lost = true;
                }
                Ok(Err(e)) => bus_failed(&link, &mut lost, &e.to_string()),
                Err(_) => bus_failed(&link, &mut lost, "subscribe timed out"),
            },
            Ok(Err(e)) => bus_failed(&link, &mut lost, &e.to_string()),
            Err(_) => bus_failed(&link, &mut lost, "connect timed out"),
        }
        let jitter = Duration::from_millis(rand::random::<u64>() % 100);
        tokio::time::sleep(backoff + jitter).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

fn bus_failed(link: &Link, lost: &mut bool, error: &str) {
    link.set_bus_up(false);
    link.stats.errors.fetch_add(1, Ordering::Relaxed);
    if !*lost {
        tracing::error!(error, "cannot subscribe to the cluster bus; retrying");
        *lost = true;
    }
}
