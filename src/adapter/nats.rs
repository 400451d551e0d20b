//! NATS as the channel bus (`adapter = "nats"`): a channel's events and client events travel on a
//! core NATS subject of its own, with the same interest routing as on Redis (a node subscribes
//! while it has a subscriber on the channel). Cluster state (counts, presence, cache, node
//! liveness) stays in Redis, and so does the bus topic the state scripts publish member events
//! and counts on: those must reach every node in the order Redis decided them, which only a
//! publish from inside the script gives.
//!
//! The client reconnects by itself and subscribes again to every subject it held; messages
//! published while a node was cut off from NATS are lost (core NATS keeps nothing), as on Redis.

use super::error::{ClusterError, OP_TIMEOUT};
use async_nats::{Client, ConnectOptions, Event, Subscriber};
use futures_util::StreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::OnceCell;
use tokio::time::timeout;
use tokio_stream::StreamMap;

/// Where NATS is and the client, made on first use.
pub(super) struct NatsLink {
    urls: String,
    client: OnceCell<Client>,
    up: Arc<AtomicBool>,
}

impl NatsLink {
    pub(super) fn new(urls: String) -> NatsLink {
        NatsLink { urls, client: OnceCell::new(), up: Arc::new(AtomicBool::new(false)) }
    }

    /// True while the client is connected.
    pub(super) fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// The client; the first call connects (and keeps trying in the background if NATS is down).
    pub(super) async fn client(&self) -> Result<Client, ClusterError> {
        let client = self
            .client
            .get_or_try_init(|| async {
                let up = self.up.clone();
                let options = ConnectOptions::new()
                    .name("sinew")
                    .retry_on_initial_connect()
                    .max_reconnects(None)
                    .connection_timeout(OP_TIMEOUT)
                    .event_callback(move |event| {
                        let up = up.clone();
                        async move {
                            match event {
                                Event::Connected => {
                                    up.store(true, Ordering::Release);
                                    tracing::info!("connected to NATS");
                                }
                                Event::Disconnected => {
                                    up.store(false, Ordering::Release);
                                    tracing::warn!("lost the connection to NATS; reconnecting");
                                }
                                Event::Closed => up.store(false, Ordering::Release),
                                other => tracing::warn!(event = %other, "NATS"),
                            }
                        }
                    });
                let urls: Vec<&str> = self.urls.split(',').map(str::trim).filter(|u| !u.is_empty()).collect();
                let addrs = urls
                    .iter()
                    .map(|u| u.parse::<async_nats::ServerAddr>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| ClusterError::Unavailable(format!("bad NATS URL: {e}")))?;
                options.connect(addrs).await.map_err(|e| ClusterError::Unavailable(e.to_string()))
            })
            .await?;
        Ok(client.clone())
    }

    /// Publishes `payload` on `subject` (queued in the client, which sends it in order).
    pub(super) async fn publish(&self, subject: String, payload: Vec<u8>) -> Result<(), String> {
        let client = self.client().await.map_err(|e| e.to_string())?;
        match timeout(OP_TIMEOUT, client.publish(subject, payload.into())).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timed out".into()),
        }
    }
}

/// A subject of one channel: `{prefix}.ch.{app}.{channel}`, each part escaped into one token.
pub(super) fn channel_subject(prefix: &str, app: &str, channel: &str) -> String {
    format!("{}.ch.{}.{}", token(prefix), token(app), token(channel))
}

/// `s` as one subject token: the characters NATS gives a meaning (`.`, `*`, `>`), white space,
/// control characters and `%` itself are written `%XX`, so distinct names stay distinct.
fn token(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '.' | '*' | '>' | '%') || c.is_whitespace() || c.is_control() {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    if out.is_empty() {
        out.push_str("%00");
    }
    out
}

/// The channel subjects this node listens to.
pub(super) struct NatsTopics {
    client: Client,
    subs: StreamMap<String, Subscriber>,
}

impl NatsTopics {
    pub(super) fn new(client: Client) -> NatsTopics {
        NatsTopics { client, subs: StreamMap::new() }
    }

    /// Subscribes to `subjects`; `Ok` once the server has them (a flush round trip).
    pub(super) async fn add(&mut self, subjects: &[String]) -> Result<(), String> {
        if subjects.is_empty() {
            return Ok(());
        }
        for s in subjects {
            if !self.subs.contains_key(s) {
                let sub = self.client.subscribe(s.clone()).await.map_err(|e| e.to_string())?;
                self.subs.insert(s.clone(), sub);
            }
        }
        // Disconnected: the client sends the subscriptions once it is back.
        if self.client.connection_state() != async_nats::connection::State::Connected {
            return Err("not connected to NATS".into());
        }
        match timeout(OP_TIMEOUT, self.client.flush()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("NATS did not confirm the subscription in time".into()),
        }
    }

    /// Unsubscribes from `subjects` (dropping a subscriber unsubscribes it).
    pub(super) fn remove(&mut self, subjects: &[String]) {
        for s in subjects {
            self.subs.remove(s);
        }
    }

    /// True when subscribed to nothing (then [`NatsTopics::next`] must not be awaited).
    pub(super) fn is_empty(&self) -> bool {
        self.subs.is_empty()
    }

    /// The next message's payload.
    pub(super) async fn next(&mut self) -> Option<Vec<u8>> {
        self.subs.next().await.map(|(_, m)| m.payload.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_keep_names_apart() {
        assert_eq!(channel_subject("sinew", "1", "private-a"), "sinew.ch.1.private-a");
        assert_eq!(channel_subject("sinew", "1", "a.b"), "sinew.ch.1.a%2Eb");
        assert_ne!(channel_subject("s", "a.b", "c"), channel_subject("s", "a", "b.c"));
        assert_eq!(channel_subject("s", "", "c"), "s.ch.%00.c");
        assert_eq!(token("x y*>%"), "x%20y%2A%3E%25");
    }
}
