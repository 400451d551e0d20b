//! A raw-byte WebSocket client, over plain TCP or TLS: it writes request heads and frames byte for
//! byte as the test gives them, and reads the server's frames as they are on the wire (checking
//! that they are unmasked), then how the stream ends (a TCP FIN; through TLS, close_notify).

use super::certs::{Certs, client_config, tls_over};
use super::{KEY, TestServer};
use serde_json::Value;
use sinew::config::Config;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::rustls::ClientConfig;

pub const WAIT: Duration = Duration::from_secs(10);
/// The key and accept value of RFC 6455's example (sections 1.3 and 4.2.2).
pub const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const SAMPLE_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// Runs each listed `async fn(Transport)` of the calling module as two tests, `plain::{name}` and
/// `tls::{name}`. (Unused by the test crates that share `common` without it.)
#[allow(unused_macros)]
macro_rules! on_both_transports {
    ($($name:ident),* $(,)?) => {
        mod plain {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(crate::common::raw::Transport::Plain).await
                }
            )*
        }
        mod tls {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(crate::common::raw::Transport::Tls).await
                }
            )*
        }
    };
}
#[allow(unused_imports)]
pub(crate) use on_both_transports;

/// A stream the raw client writes and reads.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// How a client reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Plain,
    /// TLS on the main port (`wss://`), with a certificate from a test CA.
    Tls,
}

/// An in-process server on one transport, and raw connections to it.
pub struct Served {
    server: TestServer,
    /// The certificates (kept until the server stops) and a client trusting their CA.
    tls: Option<(Certs, Arc<ClientConfig>)>,
}

impl std::ops::Deref for Served {
    type Target = TestServer;
    fn deref(&self) -> &TestServer {
        &self.server
    }
}

impl Served {
    /// A server on `transport`, its configuration adjusted by `tweak`.
    pub async fn start(transport: Transport, tweak: impl FnOnce(&mut Config)) -> Served {
        let tls = (transport == Transport::Tls).then(|| {
            let certs = Certs::with_pairs(&["a"]);
            let config = client_config(&certs.path("ca.pem"));
            (certs, config)
        });
        let paths = tls.as_ref().map(|(certs, _)| {
            (certs.path("a.pem").to_string_lossy().into_owned(), certs.path("a.key").to_string_lossy().into_owned())
        });
        let server = TestServer::start(|c| {
            if let Some((cert, key)) = paths {
                c.tls_cert = cert;
                c.tls_key = key;
            }
            tweak(c);
        })
        .await;
        Served { server, tls }
    }

    pub async fn default(transport: Transport) -> Served {
        Served::start(transport, |_| {}).await
    }

    /// A new connection (through TLS on a TLS server), before any request.
    pub async fn stream(&self) -> Box<dyn Io> {
        self.over(TcpStream::connect(self.server.addr).await.unwrap()).await
    }

    /// A new connection whose TCP receive buffer is 4 KB: a client whose socket fills up fast.
    pub async fn stream_small(&self) -> Box<dyn Io> {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        self.over(socket.connect(self.server.addr).await.unwrap()).await
    }

    /// `tcp`, through TLS on a TLS server.
    pub async fn over(&self, tcp: TcpStream) -> Box<dyn Io> {
        match &self.tls {
            Some((_, config)) => Box::new(tls_over(tcp, config).await),
            None => Box::new(tcp),
        }
    }

    /// Connects, sends `request` (and `after` in the same write) and reads the response head.
    pub async fn connect(&self, request: &str, after: &[u8]) -> (String, Raw) {
        Raw::open(self.stream().await, request, after).await
    }

    /// Connects, upgrades and reads `connection_established`.
    pub async fn established(&self) -> Raw {
        let (head, mut raw) = self.connect(&request(&upgrade_headers()), &[]).await;
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert_eq!(raw.event().await["event"], "pusher:connection_established");
        raw
    }

    /// Like [`Served::established`], with a 4 KB receive buffer.
    pub async fn established_small(&self) -> Raw {
        let (head, mut raw) = Raw::open(self.stream_small().await, &request(&upgrade_headers()), &[]).await;
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert_eq!(raw.event().await["event"], "pusher:connection_established");
        raw
    }

    pub async fn stop(self) {
        self.server.stop().await;
    }
}

/// A masked client frame: first byte `b0` (FIN, RSV and opcode), then the length in the fewest
/// bytes (7, 16 or 64 bits) with the mask bit set, the masking key, and `payload` masked with it.
pub fn masked(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![b0];
    match payload.len() {
        n @ 0..126 => out.push(0x80 | n as u8),
        n @ 126..=0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    with_mask(out, payload)
}

/// Appends a masking key and `payload` masked with it to a frame header.
pub fn with_mask(mut header: Vec<u8>, payload: &[u8]) -> Vec<u8> {
    let mask = [0xA1, 0xB2, 0xC3, 0xD4];
    header.extend_from_slice(&mask);
    header.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    header
}

/// A masked text frame holding `v`.
pub fn text(v: Value) -> Vec<u8> {
    masked(0x81, v.to_string().as_bytes())
}

/// A `GET` of the WebSocket endpoint with `Host` and `headers`.
pub fn request(headers: &str) -> String {
    format!("GET /app/{KEY}?protocol=7&client=js&version=8.6.0 HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n")
}

/// The upgrade headers of RFC 6455's example.
pub fn upgrade_headers() -> String {
    format!(
        "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {SAMPLE_KEY}\r\n"
    )
}

/// The value of the header `name` in a response head.
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

/// How the server's stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// A TCP FIN; through TLS, after the server's close_notify.
    Clean,
    /// A reset, or (TLS) the TCP stream ended without close_notify.
    Failed(String),
}

/// A raw WebSocket client.
pub struct Raw {
    pub stream: Box<dyn Io>,
    /// Bytes read and not consumed yet.
    pub buf: Vec<u8>,
    /// How the stream ended, once it has.
    pub end: Option<End>,
}

impl Raw {
    /// Sends `request` (and `after` in the same write) and reads the response head.
    pub async fn open(stream: Box<dyn Io>, request: &str, after: &[u8]) -> (String, Raw) {
        let mut raw = Raw { stream, buf: Vec::new(), end: None };
        let mut out = request.as_bytes().to_vec();
        out.extend_from_slice(after);
        raw.send(&out).await;
        let head = raw.head().await;
        (head, raw)
    }

    /// Reads a response head; the bytes after it stay in [`Raw::buf`].
    pub async fn head(&mut self) -> String {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8(self.buf[..end].to_vec()).unwrap();
                self.buf.drain(..end + 4);
                return head;
            }
            assert!(self.fill().await, "connection closed during the handshake");
        }
    }

    /// Reads (and drops) the `content-length` body of a response whose head was `head`.
    pub async fn response_body(&mut self, head: &str) {
        let len: usize = header(head, "content-length").map_or(0, |v| v.parse().unwrap());
        while self.buf.len() < len {
            assert!(self.fill().await, "connection closed inside a body");
        }
        self.buf.drain(..len);
    }

    /// Reads more bytes; false at the end of the stream ([`Raw::end`] says how it ended).
    pub async fn fill(&mut self) -> bool {
        if self.end.is_some() {
            return false;
        }
        let mut chunk = [0u8; 8192];
        match tokio::time::timeout(WAIT, self.stream.read(&mut chunk)).await.expect("the server went silent") {
            Ok(0) => {
                self.end = Some(End::Clean);
                false
            }
            Err(e) => {
                self.end = Some(End::Failed(e.to_string()));
                false
            }
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
        self.stream.flush().await.unwrap();
    }

    /// The next server frame (first byte, payload), or `None` at the end of the stream. Server
    /// frames must be unmasked (RFC 6455 section 5.1) and use the fewest length bytes (5.2).
    pub async fn frame(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if self.buf.len() >= 2 {
                assert_eq!(self.buf[1] & 0x80, 0, "server frames are not masked");
                let (len, start) = match self.buf[1] & 0x7F {
                    126 if self.buf.len() >= 4 => (usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]])), 4),
                    127 if self.buf.len() >= 10 => {
                        (u64::from_be_bytes(self.buf[2..10].try_into().unwrap()) as usize, 10)
                    }
                    126 | 127 => (usize::MAX, 0),
                    n => (usize::from(n), 2),
                };
                if start > 0 {
                    let fewest = match len {
                        0..126 => 2,
                        126..=0xFFFF => 4,
                        _ => 10,
                    };
                    assert_eq!(start, fewest, "a {len}-byte payload's length in the fewest bytes");
                }
                if start > 0 && self.buf.len() >= start + len {
                    let b0 = self.buf[0];
                    let payload = self.buf[start..start + len].to_vec();
                    self.buf.drain(..start + len);
                    return Some((b0, payload));
                }
            }
            if !self.fill().await {
                assert!(self.buf.is_empty(), "the stream ended inside a frame");
                return None;
            }
        }
    }

    /// The next protocol event (skipping pongs).
    pub async fn event(&mut self) -> Value {
        loop {
            match self.frame().await {
                Some((0x81, p)) => return serde_json::from_slice(&p).expect("JSON event"),
                Some((0x8A, _)) => continue,
                other => panic!("expected an event, got {other:?}"),
            }
        }
    }

    /// Reads up to the close frame and checks that nothing follows it and that the server then
    /// ends the stream cleanly (RFC 6455 section 7.1.1: the server closes the TCP connection
    /// first; through TLS, with close_notify); returns the close payload.
    pub async fn close(&mut self) -> Vec<u8> {
        loop {
            match self.frame().await {
                Some((0x88, p)) => {
                    assert_eq!(self.frame().await, None, "nothing is sent after a close frame");
                    assert_eq!(self.end, Some(End::Clean), "the server ends the stream cleanly after its close");
                    return p;
                }
                Some((0x81 | 0x8A, _)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    }

    /// [`Raw::close`]'s close code; its reason must be UTF-8.
    pub async fn close_code(&mut self) -> u16 {
        let p = self.close().await;
        assert!(p.len() >= 2, "close frame without a code");
        assert!(std::str::from_utf8(&p[2..]).is_ok(), "close reason in UTF-8");
        u16::from_be_bytes([p[0], p[1]])
    }
}
