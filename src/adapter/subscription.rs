//! The bus reader's subscription connection: a dedicated pub/sub connection to one server (the
//! master), or a RESP3 connection to a Redis Cluster whose messages arrive as pushes. Channel
//! topics are sharded on a Redis Cluster (`SSUBSCRIBE`, one command per slot), plain elsewhere.

use super::error::OP_TIMEOUT;
use super::link::Link;
use futures_util::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::Slot;
use redis::{PushKind, RedisResult, Value};
use std::collections::HashMap;
use tokio::sync::mpsc;
use tokio::time::timeout;

/// What the bus reader listens on.
pub(super) enum Subscription {
    /// A dedicated pub/sub connection to one server.
    Single { sink: PubSubSink, stream: PubSubStream },
    /// A Redis Cluster connection; pub/sub messages and the loss of a node's connection come as
    /// pushes.
    Cluster { conn: ClusterConnection, pushes: mpsc::UnboundedReceiver<redis::PushInfo> },
}

impl Subscription {
    /// Connects, subscribed to nothing yet.
    pub(super) async fn open(link: &Link) -> Result<Subscription, String> {
        if link.is_cluster() {
            let (tx, pushes) = mpsc::unbounded_channel();
            let conn = link.cluster_subscriber(tx).await.map_err(|e| e.to_string())?;
            return Ok(Subscription::Cluster { conn, pushes });
        }
        let client = link.client().map_err(|e| e.to_string())?;
        match timeout(OP_TIMEOUT, client.get_async_pubsub()).await {
            Ok(Ok(pubsub)) => {
                let (sink, stream) = pubsub.split();
                Ok(Subscription::Single { sink, stream })
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("connect timed out".into()),
        }
    }

    /// Subscribes to the bus every node listens to.
    pub(super) async fn listen_to_bus(&mut self, bus: &str) -> RedisResult<()> {
        match self {
            Subscription::Single { sink, .. } => sink.subscribe(bus).await,
            Subscription::Cluster { conn, .. } => conn.subscribe(bus).await,
        }
    }

    /// Subscribes to channel topics (all confirmed when it returns `Ok`).
    pub(super) async fn add(&mut self, topics: &[String]) -> RedisResult<()> {
        if topics.is_empty() {
            return Ok(());
        }
        match self {
            Subscription::Single { sink, .. } => {
                for chunk in topics.chunks(1024) {
                    sink.subscribe(chunk).await?;
                }
                Ok(())
            }
            Subscription::Cluster { conn, .. } => {
                for group in by_slot(topics) {
                    conn.ssubscribe(group).await?;
                }
                Ok(())
            }
        }
    }

    /// Unsubscribes from channel topics.
    pub(super) async fn remove(&mut self, topics: &[String]) -> RedisResult<()> {
        if topics.is_empty() {
            return Ok(());
        }
        match self {
            Subscription::Single { sink, .. } => {
                for chunk in topics.chunks(1024) {
                    sink.unsubscribe(chunk).await?;
                }
                Ok(())
            }
            Subscription::Cluster { conn, .. } => {
                for group in by_slot(topics) {
                    conn.sunsubscribe(group).await?;
                }
                Ok(())
            }
        }
    }

    /// The next message's payload; `None` once the subscription is lost (on a Redis Cluster: any
    /// of its connections, after which the reader subscribes again from scratch).
    pub(super) async fn next(&mut self) -> Option<Vec<u8>> {
        match self {
            Subscription::Single { stream, .. } => stream.next().await.map(|msg| msg.get_payload_bytes().to_vec()),
            Subscription::Cluster { pushes, .. } => loop {
                let push = pushes.recv().await?;
                match push.kind {
                    PushKind::Message | PushKind::SMessage => {
                        if let Some(Value::BulkString(payload)) = push.data.into_iter().nth(1) {
                            return Some(payload);
                        }
                    }
                    PushKind::Disconnection => return None,
                    _ => {}
                }
            },
        }
    }
}

/// Topics grouped by hash slot, each group one `SSUBSCRIBE` on a Redis Cluster.
fn by_slot(topics: &[String]) -> Vec<Vec<&String>> {
    let mut groups: HashMap<Slot, Vec<&String>> = HashMap::new();
    for t in topics {
        groups.entry(Slot::for_key(t)).or_default().push(t);
    }
    groups.into_values().collect()
}
