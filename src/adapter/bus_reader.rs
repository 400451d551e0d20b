//! The bus reader: keeps a subscription to the bus every node listens to and to the topics of the
//! channels this node has subscribers on (interest routing: a node receives a channel's traffic
//! only while it has a local subscriber), and hands the other nodes' messages to the hub. The
//! subscription is re-made with backoff whenever it drops, with every topic still wanted.
//!
//! Interest is counted here, per topic, one [`Interest::Want`] per local subscriber and one
//! [`Interest::Drop`] per departure, in the order the handle sent them: the first `Want` of a
//! topic subscribes and answers once Redis confirmed (so nothing published after the subscriber's
//! `subscription_succeeded` is missed); later ones answer at once (they come after it); the last
//! `Drop` unsubscribes.

use super::Inbound;
use super::bus::BusMessage;
use super::link::Link;
use super::nats::NatsTopics;
use super::subscription::Subscription;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Duration, Instant};

/// A change of this node's interest in a channel topic.
pub(super) enum Interest {
    /// A local subscriber arrived; the answer says whether the topic is subscribed.
    Want(String, oneshot::Sender<bool>),
    /// A local subscriber left.
    Drop(String),
}

/// Interest changes handled in one go.
const INTEREST_BATCH: usize = 1024;

/// Runs the subscription until the hub stops listening (or the handle is gone).
pub(super) async fn run_reader(
    link: Arc<Link>,
    inbound: mpsc::Sender<Inbound>,
    mut interest: mpsc::UnboundedReceiver<Interest>,
) {
    let bus = link.keys.bus();
    let mut topics: HashMap<String, usize> = HashMap::new();
    let mut backoff = Duration::from_millis(100);
    let mut lost = false;
    let mut moved = link.master_moved();
    let mut batch = Vec::with_capacity(INTEREST_BATCH);
    // With NATS as the channel bus, the channel subjects live there, across Redis reconnects.
    let mut nats = match &link.nats {
        None => None,
        Some(n) => loop {
            match n.client().await {
                Ok(client) => break Some(NatsTopics::new(client)),
                Err(e) => {
                    tracing::error!(error = %e, "cannot set up the NATS client; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        },
    };
    let no_topics = HashMap::new();
    loop {
        moved.mark_unchanged();
        let on_redis = if nats.is_some() { &no_topics } else { &topics };
        match connect(&link, &bus, on_redis).await {
            Ok(mut sub) => {
                if lost {
                    link.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                    tracing::info!("cluster bus subscription restored");
                }
                link.set_bus_up(true);
                backoff = Duration::from_millis(100);
                // Until the subscription drops, or the master moved (the old one may live on as a
                // replica and stay silent).
                loop {
                    tokio::select! {
                        biased;
                        n = interest.recv_many(&mut batch, INTEREST_BATCH) => {
                            if n == 0 {
                                return;
                            }
                            if let Err(e) = apply(&mut topics, batch.drain(..), Some(&mut sub), nats.as_mut()).await {
                                tracing::warn!(error = %e, "cluster bus subscribe failed");
                                break;
                            }
                        }
                        Some(payload) = next_from(&mut nats) => {
                            if !deliver(&link, &inbound, &payload).await {
                                return;
                            }
                        }
                        payload = sub.next() => match payload {
                            Some(payload) => {
                                if !deliver(&link, &inbound, &payload).await {
                                    return;
                                }
                            }
                            None => break,
                        },
                        _ = moved.changed() => break,
                    }
                }
                link.set_bus_up(false);
                tracing::warn!("cluster bus subscription lost; reconnecting");
                lost = true;
            }
            Err(e) => {
                link.set_bus_up(false);
                link.stats.errors.fetch_add(1, Ordering::Relaxed);
                if !lost {
                    tracing::error!(error = %e, "cannot subscribe to the cluster bus; retrying");
                    lost = true;
                }
            }
        }
        // Wait before trying again, still answering interest changes (unsubscribed for now).
        let jitter = Duration::from_millis(rand::random::<u64>() % 100);
        let until = Instant::now() + backoff + jitter;
        backoff = (backoff * 2).min(Duration::from_secs(2));
        loop {
            tokio::select! {
                n = interest.recv_many(&mut batch, INTEREST_BATCH) => {
                    if n == 0 {
                        return;
                    }
                    let _ = apply(&mut topics, batch.drain(..), None, nats.as_mut()).await;
                }
                Some(payload) = next_from(&mut nats) => {
                    if !deliver(&link, &inbound, &payload).await {
                        return;
                    }
                }
                _ = tokio::time::sleep_until(until) => break,
            }
        }
    }
}

/// A new subscription to the bus and to every topic in `topics`.
async fn connect(link: &Link, bus: &str, topics: &HashMap<String, usize>) -> Result<Subscription, String> {
    let mut sub = Subscription::open(link).await?;
    let wanted: Vec<String> = topics.keys().cloned().collect();
    let subscribed = async {
        sub.listen_to_bus(bus).await?;
        sub.add(&wanted).await
    };
    match tokio::time::timeout(super::error::OP_TIMEOUT * 2, subscribed).await {
        Ok(Ok(())) => Ok(sub),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("subscribe timed out".into()),
    }
}

/// The next message on a NATS channel subject; never ready without NATS or subjects.
async fn next_from(nats: &mut Option<NatsTopics>) -> Option<Vec<u8>> {
    match nats {
        Some(n) if !n.is_empty() => n.next().await,
        _ => std::future::pending().await,
    }
}

/// Counts the interest changes and subscribes to the topics newly wanted and unsubscribes from
/// those no longer wanted (on NATS when it carries channel traffic, else on the Redis subscription
/// if there is one), then answers the `Want`s.
async fn apply(
    topics: &mut HashMap<String, usize>,
    changes: impl Iterator<Item = Interest>,
    sub: Option<&mut Subscription>,
    nats: Option<&mut NatsTopics>,
) -> Result<(), String> {
    let mut added = Vec::new();
    let mut removed = Vec::new();
    let mut answers = Vec::new();
    for change in changes {
        match change {
            Interest::Want(topic, answer) => {
                let n = topics.entry(topic.clone()).or_insert(0);
                *n += 1;
                if *n == 1 {
                    added.push(topic);
                }
                answers.push(answer);
            }
            Interest::Drop(topic) => {
                if let Some(n) = topics.get_mut(&topic) {
                    *n -= 1;
                    if *n == 0 {
                        topics.remove(&topic);
                        removed.push(topic);
                    }
                }
            }
        }
    }
    // A topic wanted and dropped again within the batch needs no subscription, and one dropped
    // and wanted again keeps it.
    added.retain(|t| topics.contains_key(t));
    removed.retain(|t| !topics.contains_key(t));
    if let Some(nats) = nats {
        let result = nats.add(&added).await;
        nats.remove(&removed);
        for a in answers {
            let _ = a.send(result.is_ok());
        }
        // NATS subscribes again by itself after a reconnect; a failure here is not the Redis
        // subscription's.
        if let Err(e) = result {
            tracing::warn!(error = %e, "NATS subscribe failed; the client subscribes again once connected");
        }
        return Ok(());
    }
    let Some(sub) = sub else {
        for a in answers {
            let _ = a.send(false);
        }
        return Ok(());
    };
    let result = sub.add(&added).await;
    let ok = result.is_ok();
    for a in answers {
        let _ = a.send(ok);
    }
    result.map_err(|e| e.to_string())?;
    sub.remove(&removed).await.map_err(|e| e.to_string())
}

/// Hands a message from another node to the hub; false once the hub stopped listening.
async fn deliver(link: &Link, inbound: &mpsc::Sender<Inbound>, payload: &[u8]) -> bool {
    match BusMessage::decode(payload) {
        // Node 0 marks messages published by the state scripts: for every node.
        Ok(m) if m.node() == link.node() => true,
        Ok(m) => {
            link.stats.received.fetch_add(1, Ordering::Relaxed);
            inbound.send(Inbound::Bus(m)).await.is_ok()
        }
        Err(e) => {
            link.stats.errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "undecodable message on the cluster bus");
            true
        }
    }
}
