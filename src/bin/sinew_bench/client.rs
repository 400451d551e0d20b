//! A minimal Pusher WebSocket client: connect (optionally from a chosen source address), read
//! `connection_established`, subscribe with signed auth, answer `pusher:ping`.

use anyhow::{Context as _, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use sinew::protocol::signature;
use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{Duration, timeout};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// The server under test and the app credentials.
#[derive(Debug, Clone)]
pub struct Target {
    /// Resolved server address.
    pub addr: SocketAddr,
    /// Host header value (`host:port`).
    pub authority: String,
    /// App id, for REST paths.
    pub app_id: String,
    /// App key.
    pub key: String,
    /// App secret, for signing.
    pub secret: String,
}

impl Target {
    /// `key:signature` for a private channel.
    pub fn auth_private(&self, socket_id: &str, channel: &str) -> String {
        let s = signature::private_string(socket_id, channel);
        format!("{}:{}", self.key, signature::sign(&self.secret, s.as_bytes()))
    }

    /// `key:signature` for a presence channel with `channel_data`.
    pub fn auth_presence(&self, socket_id: &str, channel: &str, channel_data: &str) -> String {
        let s = signature::presence_string(socket_id, channel, channel_data);
        format!("{}:{}", self.key, signature::sign(&self.secret, s.as_bytes()))
    }
}

/// A protocol event's envelope; `data` stays raw.
#[derive(Debug, Deserialize)]
pub struct Event<'a> {
    /// Event name.
    #[serde(borrow)]
    pub event: Cow<'a, str>,
    /// Channel, when the event has one.
    #[serde(borrow, default)]
    pub channel: Option<Cow<'a, str>>,
}

/// Parses an event envelope; `None` if the text is not one.
pub fn event(text: &str) -> Option<Event<'_>> {
    serde_json::from_str(text).ok()
}

const WAIT: Duration = Duration::from_secs(30);

/// One open Pusher connection.
pub struct Conn {
    /// The WebSocket.
    pub ws: WebSocketStream<TcpStream>,
    /// The socket id the server assigned.
    pub socket_id: String,
}

/// What [`Conn::next`] read.
pub enum Incoming {
    /// A text message (pings already answered).
    Text(tokio_tungstenite::tungstenite::Utf8Bytes),
    /// The server closed, with its close code if it sent one.
    Closed(Option<u16>),
}

impl Conn {
    /// Opens a connection (from `source` if given) and waits for `connection_established`.
    pub async fn open(t: &Target, source: Option<IpAddr>) -> anyhow::Result<Conn> {
        let sock = if t.addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        if let Some(ip) = source {
            sock.bind(SocketAddr::new(ip, 0)).with_context(|| format!("bind {ip}"))?;
        }
        let stream = timeout(WAIT, sock.connect(t.addr)).await.context("connect timed out")??;
        stream.set_nodelay(true)?;
        let url = format!("ws://{}/app/{}?protocol=7&client=js&version=8.6.0&flash=false", t.authority, t.key);
        // Small buffers: thousands of idle clients live in this process.
        let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
        let (ws, _) = timeout(WAIT, tokio_tungstenite::client_async_with_config(url, stream, Some(config)))
            .await
            .context("handshake timed out")??;
        let mut conn = Conn { ws, socket_id: String::new() };
        let text = conn.expect_text().await?;
        let established: serde_json::Value = serde_json::from_str(&text)?;
        if established["event"] != "pusher:connection_established" {
            bail!("expected connection_established, got {text}");
        }
        let data: serde_json::Value = serde_json::from_str(established["data"].as_str().unwrap_or("{}"))?;
        conn.socket_id = data["socket_id"].as_str().ok_or_else(|| anyhow!("no socket_id in {text}"))?.to_string();
        Ok(conn)
    }

    /// Sends a text message.
    pub async fn send(&mut self, text: String) -> anyhow::Result<()> {
        self.ws.send(Message::Text(text.into())).await?;
        Ok(())
    }

    /// The next text message; answers `pusher:ping` on the way.
    pub async fn next(&mut self) -> Incoming {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    if t.as_str().starts_with("{\"event\":\"pusher:ping\"") {
                        let _ = self.send(r#"{"event":"pusher:pong","data":{}}"#.to_string()).await;
                        continue;
                    }
                    return Incoming::Text(t);
                }
                Some(Ok(Message::Close(f))) => return Incoming::Closed(f.map(|f| u16::from(f.code))),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Incoming::Closed(None),
            }
        }
    }

    async fn expect_text(&mut self) -> anyhow::Result<String> {
        match timeout(WAIT, self.next()).await {
            Ok(Incoming::Text(t)) => Ok(t.as_str().to_string()),
            Ok(Incoming::Closed(code)) => bail!("closed by server ({code:?})"),
            Err(_) => bail!("no message within {WAIT:?}"),
        }
    }

    /// Subscribes and waits for `subscription_succeeded`; other events before it are passed to `early`.
    pub async fn subscribe(
        &mut self,
        channel: &str,
        auth: Option<&str>,
        channel_data: Option<&str>,
        mut early: impl FnMut(&str),
    ) -> anyhow::Result<()> {
        let mut data = serde_json::json!({"channel": channel, "auth": auth.unwrap_or("")});
        if let Some(cd) = channel_data {
            data["channel_data"] = cd.into();
        }
        self.send(serde_json::json!({"event":"pusher:subscribe","data":data}).to_string()).await?;
        loop {
            let text = self.expect_text().await?;
            match event(&text) {
                Some(e)
                    if e.event == "pusher_internal:subscription_succeeded" && e.channel.as_deref() == Some(channel) =>
                {
                    return Ok(());
                }
                Some(e) if e.event == "pusher:subscription_error" || e.event == "pusher:error" => {
                    bail!("subscribe to {channel} failed: {text}")
                }
                _ => early(&text),
            }
        }
    }

    /// Leaves a channel.
    pub async fn unsubscribe(&mut self, channel: &str) -> anyhow::Result<()> {
        self.send(serde_json::json!({"event":"pusher:unsubscribe","data":{"channel":channel}}).to_string()).await
    }

    /// Closes politely, not waiting for long.
    pub async fn close(mut self) {
        let _ = timeout(Duration::from_secs(2), self.ws.close(None)).await;
    }
}

/// The source address for connection `i`: 127.0.0.1 up to 127.0.0.`n` in turn (`None` when `n` <= 1).
pub fn source_for(i: usize, n: usize) -> Option<IpAddr> {
    (n > 1).then(|| IpAddr::from([127, 0, 0, (1 + i % n) as u8]))
}
