//! A minimal Pusher WebSocket client: connect (optionally from a chosen source address), read
//! `connection_established`, subscribe with signed auth, answer `pusher:ping`.
//!
//! The WebSocket framing is written by hand (as the REST client is): thousands of these clients
//! share the load generator's core, and a general WebSocket stack would spend a good part of it
//! on buffers and wakers the load does not need.

use crate::framing::{self, apply_mask, header, masked};
use anyhow::{Context as _, anyhow, bail};
use serde::Deserialize;
use sinew::protocol::signature;
use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{Duration, timeout};

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

/// A connection's receive buffer starts at this size; a read goes into whatever room it has, at
/// least a quarter of this.
const READ_CHUNK: usize = 4096;

/// Messages larger than this close the connection as an error.
const MAX_MESSAGE: usize = 16 << 20;

/// One open Pusher connection.
pub struct Conn {
    stream: TcpStream,
    /// Bytes received; those before `pos` are consumed.
    received: Vec<u8>,
    pos: usize,
    /// A fragmented text message being put together.
    partial: Option<Vec<u8>>,
    /// Answers to pings and closes not written yet: written at the next `next` or `send`, a part
    /// at a time, so that a `next` dropped in a `select!` loses none of them.
    replies: Vec<u8>,
    /// State of the masking keys' generator (xorshift).
    mask_state: u32,
    /// The socket id the server assigned.
    pub socket_id: String,
}

/// What [`Conn::next`] read.
pub enum Incoming {
    /// A text message (pings already answered).
    Text(String),
    /// The server closed, with its close code if it sent one.
    Closed(Option<u16>),
}

impl Conn {
    /// Opens a connection (from `source` if given) and waits for `connection_established`.
    pub async fn open(t: &Target, source: Option<IpAddr>) -> anyhow::Result<Conn> {
        Conn::open_with(t, source, None).await
    }

    /// [`Conn::open`] with the socket's receive buffer set to `recv_buffer` bytes (the kernel
    /// then holds little of what a client that stops reading is sent).
    pub async fn open_with(t: &Target, source: Option<IpAddr>, recv_buffer: Option<u32>) -> anyhow::Result<Conn> {
        let sock = if t.addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        if let Some(size) = recv_buffer {
            sock.set_recv_buffer_size(size).context("SO_RCVBUF")?;
        }
        if let Some(ip) = source {
            sock.bind(SocketAddr::new(ip, 0)).with_context(|| format!("bind {ip}"))?;
        }
        let stream = timeout(WAIT, sock.connect(t.addr)).await.context("connect timed out")??;
        stream.set_nodelay(true)?;
        let seed: [u8; 16] = rand::random();
        let mut conn = Conn {
            stream,
            received: Vec::with_capacity(READ_CHUNK),
            pos: 0,
            partial: None,
            replies: Vec::new(),
            mask_state: u32::from_le_bytes([seed[0], seed[1], seed[2], seed[3]]) | 1,
            socket_id: String::new(),
        };
        timeout(WAIT, conn.handshake(t, &seed)).await.context("handshake timed out")??;
        let text = conn.expect_text().await?;
        let established: serde_json::Value = serde_json::from_str(&text)?;
        if established["event"] != "pusher:connection_established" {
            bail!("expected connection_established, got {text}");
        }
        let data: serde_json::Value = serde_json::from_str(established["data"].as_str().unwrap_or("{}"))?;
        conn.socket_id = data["socket_id"].as_str().ok_or_else(|| anyhow!("no socket_id in {text}"))?.to_string();
        Ok(conn)
    }

    /// Sends the upgrade request and checks the `101` answer; bytes after it stay buffered.
    async fn handshake(&mut self, t: &Target, nonce: &[u8; 16]) -> anyhow::Result<()> {
        let (request, key) = framing::upgrade_request(&t.key, &t.authority, nonce);
        self.stream.write_all(request.as_bytes()).await?;
        loop {
            if let Some(end) = framing::upgrade_answer(&self.received, &key)? {
                self.pos = end;
                return Ok(());
            }
            if self.received.len() > 16 << 10 {
                bail!("upgrade answer head too long");
            }
            if self.fill().await? == 0 {
                bail!("closed during the upgrade");
            }
        }
    }

    /// Reads what the socket has into the buffer (moving unconsumed bytes to its start first).
    async fn fill(&mut self) -> std::io::Result<usize> {
        if self.pos == self.received.len() {
            self.received.clear();
            self.pos = 0;
        } else if self.pos > 0 && self.received.capacity() - self.received.len() < READ_CHUNK / 4 {
            self.received.drain(..self.pos);
            self.pos = 0;
        }
        self.received.reserve(READ_CHUNK / 4);
        self.stream.read_buf(&mut self.received).await
    }

    fn next_mask(&mut self) -> [u8; 4] {
        let mut x = self.mask_state;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.mask_state = x;
        x.to_le_bytes()
    }

    /// Queues a control frame or a `pusher:pong` (see `replies`).
    fn queue_reply(&mut self, opcode: u8, payload: &[u8]) {
        let mask = self.next_mask();
        self.replies.extend_from_slice(&masked(0x80 | opcode, payload, mask));
    }

    /// Writes the queued replies. Each write either happens or not, so a caller dropped at an
    /// await point leaves the rest queued; a failed write drops them (the reads will fail too).
    async fn flush_replies(&mut self) {
        while !self.replies.is_empty() {
            match self.stream.write(&self.replies).await {
                Ok(n) if n > 0 => {
                    self.replies.drain(..n);
                }
                _ => self.replies.clear(),
            }
        }
    }

    /// Sends a text message.
    pub async fn send(&mut self, text: String) -> anyhow::Result<()> {
        self.flush_replies().await;
        let mask = self.next_mask();
        self.stream.write_all(&masked(0x81, text.as_bytes(), mask)).await?;
        Ok(())
    }

    /// The next text message; answers `pusher:ping` (and WebSocket pings) on the way.
    pub async fn next(&mut self) -> Incoming {
        loop {
            self.flush_replies().await;
            match self.next_frame().await {
                Ok(Some(text)) if text.starts_with("{\"event\":\"pusher:ping\"") => {
                    self.queue_reply(0x1, br#"{"event":"pusher:pong","data":{}}"#);
                }
                Ok(Some(text)) => return Incoming::Text(text),
                Ok(None) => {}
                Err(code) => {
                    self.flush_replies().await;
                    return Incoming::Closed(code);
                }
            }
        }
    }

    /// Reads one frame: `Ok(Some(text))` for a complete text message, `Ok(None)` for anything
    /// else (a ping's answer is queued), `Err(close code)` when the server closed or the connection
    /// ended or broke the protocol (a malformed or oversized message). Only the read awaits, and
    /// nothing is consumed before a whole frame is there.
    async fn next_frame(&mut self) -> Result<Option<String>, Option<u16>> {
        let h = loop {
            let buf = &self.received[self.pos..];
            if let Some(h) = header(buf) {
                if h.payload > MAX_MESSAGE {
                    return Err(None);
                }
                if buf.len() >= h.head_len + h.payload {
                    break h;
                }
            }
            match self.fill().await {
                Ok(n) if n > 0 => {}
                _ => return Err(None),
            }
        };
        let start = self.pos + h.head_len;
        self.pos = start + h.payload;
        let mut payload = self.received[start..self.pos].to_vec();
        if let Some(m) = h.mask {
            apply_mask(&mut payload, m);
        }
        let message = match (h.opcode, self.partial.take()) {
            (0x1, None) if h.fin => payload,
            (0x1, None) => {
                self.partial = Some(payload);
                return Ok(None);
            }
            (0x0, Some(mut part)) => {
                part.extend_from_slice(&payload);
                if part.len() > MAX_MESSAGE {
                    return Err(None);
                }
                if !h.fin {
                    self.partial = Some(part);
                    return Ok(None);
                }
                part
            }
            (0x8, _) => {
                let code = payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]));
                self.queue_reply(0x8, payload.get(..2).unwrap_or(&[]));
                return Err(code);
            }
            (0x9, partial) => {
                self.partial = partial;
                self.queue_reply(0xA, &payload);
                return Ok(None);
            }
            // Pongs, binary messages: not part of the Pusher protocol's traffic here.
            (0x2 | 0xA, partial) => {
                self.partial = partial;
                return Ok(None);
            }
            _ => return Err(None),
        };
        String::from_utf8(message).map(Some).map_err(|_| None)
    }

    async fn expect_text(&mut self) -> anyhow::Result<String> {
        match timeout(WAIT, self.next()).await {
            Ok(Incoming::Text(t)) => Ok(t),
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

    /// Closes politely (a close frame, code 1000), not waiting for the answer.
    pub async fn close(mut self) {
        self.queue_reply(0x8, &1000u16.to_be_bytes());
        let _ = timeout(Duration::from_secs(2), self.flush_replies()).await;
    }
}

/// The source address for connection `i`: 127.0.0.1 up to 127.0.0.`n` in turn (`None` when `n` <= 1).
pub fn source_for(i: usize, n: usize) -> Option<IpAddr> {
    (n > 1).then(|| IpAddr::from([127, 0, 0, (1 + i % n) as u8]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sinew::protocol::websocket::{self as wire, Decoder, Incoming as FromClient};
    use tokio::net::TcpListener;

    /// Reads client frames from `peer` until one message decodes.
    async fn from_client(peer: &mut TcpStream, d: &mut Decoder) -> FromClient {
        loop {
            match d.next(1 << 20) {
                Ok(Some(m)) => return m,
                Ok(None) => {}
                Err(e) => panic!("client sent a bad frame: {e:?}"),
            }
            let mut chunk = [0u8; 4096];
            let n = timeout(WAIT, peer.read(&mut chunk)).await.unwrap_or_else(|_| panic!("no frame")).unwrap_or(0);
            assert!(n > 0, "client closed");
            d.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn server_text(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = wire::encode(opcode, payload);
        if !fin {
            f[0] &= 0x7F;
        }
        f
    }

    #[tokio::test]
    async fn talks_websocket_with_a_server_byte_by_byte() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let server = tokio::spawn(async move {
            let (mut peer, _) = listener.accept().await.unwrap_or_else(|e| panic!("{e}"));
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                let mut b = [0u8; 1];
                peer.read_exact(&mut b).await.unwrap_or_else(|e| panic!("{e}"));
                head.push(b[0]);
            }
            let head = String::from_utf8_lossy(&head).to_string();
            assert!(head.starts_with("GET /app/k?protocol=7&"), "{head}");
            let key = head
                .lines()
                .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
                .unwrap_or_else(|| panic!("no key in {head}"));
            let accept = sinew::protocol::websocket::accept_key(key.as_bytes());
            // The answer and the first message in one write: the client keeps what follows the head.
            let mut out = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {accept}\r\n\r\n"
            )
            .into_bytes();
            let established = r#"{"event":"pusher:connection_established","data":"{\"socket_id\":\"1.2\"}"}"#;
            out.extend(wire::encode(0x1, established.as_bytes()));
            // A message in two fragments with a ping between them.
            out.extend(server_text(false, 0x1, b"frag"));
            out.extend(wire::encode(0x9, b"hi"));
            out.extend(server_text(true, 0x0, b"mented"));
            out.extend(wire::encode(0x1, br#"{"event":"pusher:ping","data":{}}"#));
            peer.write_all(&out).await.unwrap_or_else(|e| panic!("{e}"));
            let mut d = Decoder::new(Vec::new());
            // The ping is answered with a pong (the decoder keeps no pong payload), then pusher:ping.
            assert!(matches!(from_client(&mut peer, &mut d).await, FromClient::Pong));
            assert!(matches!(from_client(&mut peer, &mut d).await, FromClient::Text(t) if t.contains("pusher:pong")));
            // A long message (64-bit length form) written a byte at a time, then a few KB at a time.
            let big = "x".repeat(70_000);
            let frame = wire::encode(0x1, big.as_bytes());
            for b in &frame[..12] {
                peer.write_all(std::slice::from_ref(b)).await.unwrap_or_else(|e| panic!("{e}"));
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            for part in frame[12..].chunks(5000) {
                peer.write_all(part).await.unwrap_or_else(|e| panic!("{e}"));
            }
            assert!(matches!(from_client(&mut peer, &mut d).await, FromClient::Text(t) if t == "hello"));
            peer.write_all(&wire::close_frame(4100, "bye")).await.unwrap_or_else(|e| panic!("{e}"));
            assert!(matches!(from_client(&mut peer, &mut d).await, FromClient::Close(Some(4100))));
        });
        let target =
            Target { addr, authority: addr.to_string(), app_id: "1".into(), key: "k".into(), secret: "s".into() };
        let mut conn = Conn::open(&target, None).await.unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(conn.socket_id, "1.2");
        assert!(matches!(conn.next().await, Incoming::Text(t) if t == "fragmented"));
        let long = conn.next().await;
        assert!(matches!(&long, Incoming::Text(t) if t.len() == 70_000), "the long message whole");
        conn.send("hello".into()).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(conn.next().await, Incoming::Closed(Some(4100))));
        server.await.unwrap_or_else(|e| panic!("{e}"));
    }
}
