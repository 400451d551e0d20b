//! The WebSocket handshake: the upgrade request's checks, the bounds of a request head, and the
//! upgrade read and answered directly from a connection's first request head (plain TCP or TLS,
//! recognised without the HTTP server).

use super::input::read_stream;
use super::stream::{Io, serve_stream, write_stream};
use super::tcp::{TcpState, read_up_to};
use super::{Task, Upgraded};
use crate::protocol::websocket as wire;
use crate::state::Context;
use crate::transport::connection::{ClientQuery, Connection, Refusal};
use crate::transport::keepalive::WRITE_TIMEOUT;
use crate::transport::write_all;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::io;
use std::mem::MaybeUninit;
use std::ops::Range;
use std::sync::atomic::Ordering;
use tokio::io::AsyncRead;
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Longest request head Sinew reads. A longer one goes to the HTTP server as it is, whose buffer
/// has the same bound, and is refused there with `431 Request Header Fields Too Large`.
pub const HEAD_LIMIT: usize = 16 * 1024;
/// Most header fields in a request head (the HTTP server's bound too; more are refused with 431).
pub const MAX_HEADERS: usize = 100;
/// Room first reserved for a request head: nearly every head fits.
const HEAD_START: usize = 4096;

/// Why an upgrade request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum HandshakeError {
    #[error("expected a WebSocket upgrade request")]
    NotUpgrade,
    #[error("a WebSocket upgrade needs HTTP/1.1")]
    NotHttp11,
    #[error("unsupported WebSocket version (13 is supported)")]
    Version,
    #[error("expected one valid Sec-WebSocket-Key")]
    Key,
    #[error("expected one Host header")]
    Host,
}

impl IntoResponse for HandshakeError {
    fn into_response(self) -> Response {
        let status = match self {
            HandshakeError::Version => StatusCode::UPGRADE_REQUIRED,
            HandshakeError::NotUpgrade | HandshakeError::NotHttp11 | HandshakeError::Key | HandshakeError::Host => {
                StatusCode::BAD_REQUEST
            }
        };
        let mut res = (status, axum::Json(serde_json::json!({"error": self.to_string()}))).into_response();
        if self == HandshakeError::Version {
            // The client may retry with a version named here.
            res.headers_mut().insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        }
        res
    }
}

/// Request headers, from the HTTP server's map or parsed by [`direct_upgrade`].
pub(super) trait Headers {
    /// The values of every header named `name` (case-insensitive).
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]>;
}

impl Headers for HeaderMap {
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> {
        self.get_all(name).into_iter().map(HeaderValue::as_bytes)
    }
}

impl Headers for [httparse::Header<'_>] {
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> {
        self.iter().filter(move |h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value)
    }
}

/// Checks the upgrade request's headers (RFC 6455 section 4.2.1; the method and HTTP version are
/// the caller's to check) and returns the `Sec-WebSocket-Accept` value.
pub(super) fn accept_key<H: Headers + ?Sized>(headers: &H) -> Result<String, HandshakeError> {
    let has_token = |name: &str, token: &str| {
        headers
            .values(name)
            .filter_map(|v| std::str::from_utf8(v).ok())
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    if !has_token("connection", "upgrade") || !has_token("upgrade", "websocket") {
        return Err(HandshakeError::NotUpgrade);
    }
    let mut hosts = headers.values("host");
    if !matches!((hosts.next(), hosts.next()), (Some(_), None)) {
        return Err(HandshakeError::Host);
    }
    let mut versions = headers.values("sec-websocket-version");
    let (Some(version), None) = (versions.next(), versions.next()) else {
        return Err(HandshakeError::Version);
    };
    if version.trim_ascii() != b"13" {
        return Err(HandshakeError::Version);
    }
    let mut keys = headers.values("sec-websocket-key");
    let (Some(key), None) = (keys.next(), keys.next()) else {
        return Err(HandshakeError::Key);
    };
    // The key is 16 random bytes in base64.
    let key = key.trim_ascii();
    let mut raw = [0u8; 18];
    if !base64::Engine::decode_slice(&base64::engine::general_purpose::STANDARD, key, &mut raw).is_ok_and(|n| n == 16) {
        return Err(HandshakeError::Key);
    }
    Ok(wire::accept_key(key))
}

/// Whether `head` needs more bytes to be a complete request head (not yet [`HEAD_LIMIT`] bytes,
/// and what arrived parses as the start of one).
fn head_wants_more(head: &[u8]) -> bool {
    let mut headers = no_headers();
    head.len() < HEAD_LIMIT
        && matches!(
            httparse::Request::new(&mut []).parse_with_uninit_headers(head, &mut headers),
            Ok(httparse::Status::Partial)
        )
}

/// Room for a head's header fields, left uninitialised: the parser writes only those it finds, so
/// a head does not pay for zeroing 100 entries it does not have (measured: about 300 instructions
/// per parse, twice per connection).
fn no_headers<'b>() -> [MaybeUninit<httparse::Header<'b>>; MAX_HEADERS] {
    [const { MaybeUninit::uninit() }; MAX_HEADERS]
}

/// Reads the first request head of a plain TCP connection: until it is complete, [`HEAD_LIMIT`]
/// bytes have arrived, or the client ends its stream (then what arrived is returned). The first
/// attempt does not wait for readiness (tokio assumes an accepted socket readable), since the
/// request usually arrives with the connection; a read that drains the socket clears its
/// readiness, so the next read of the connection (its first message, which the client sends
/// only after the answer) waits for the bytes instead of trying a `recv` that finds none.
pub async fn read_head(stream: &TcpStream) -> io::Result<Vec<u8>> {
    // Room for nearly every head, not zeroed (each read copies in what arrived). One block of this
    // size, freed after the handshake, is what the next connection's head reuses; a block sized
    // to each head would leave holes between the connections' long-lived allocations.
    let mut buf = Vec::with_capacity(HEAD_START);
    loop {
        let room = HEAD_LIMIT - buf.len();
        match read_up_to(stream, &mut buf, room) {
            Ok(0) => break,
            Ok(_) if !head_wants_more(&buf) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => stream.readable().await?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(buf)
}

/// [`read_head`] for any other stream (TLS). What is read past the head stays in the buffer.
pub async fn read_head_from(stream: &mut (impl AsyncRead + Unpin)) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(HEAD_START);
    while read_stream(stream, &mut buf).await? > 0 && head_wants_more(&buf) {}
    Ok(buf)
}

/// A WebSocket upgrade to Sinew's endpoint, answered without the HTTP server.
pub struct DirectUpgrade {
    accept: String,
    key: String,
    query: ClientQuery,
    /// Where the first `Origin` header's value lies in the head: read from there, not copied.
    origin: Option<Range<usize>>,
    /// Where the head ends (messages may follow it).
    head_len: usize,
}

impl DirectUpgrade {
    /// The request's `Origin` header, read from `head` (the head this upgrade was recognised in):
    /// `None` without one, `Some("")` for a value that is not text.
    pub fn origin<'h>(&self, head: &'h [u8]) -> Option<&'h str> {
        let range = self.origin.clone()?;
        Some(head.get(range).and_then(|v| std::str::from_utf8(v).ok()).unwrap_or_default().trim_ascii())
    }
}

/// Recognises a valid WebSocket upgrade request for [`ROUTE`](super::ROUTE) in a request head.
/// Anything else is left to the HTTP server: other routes, invalid upgrades (answered there with
/// their error status), percent-escaped keys, incomplete heads and heads over the bounds (431).
pub fn direct_upgrade(head: &[u8], path_prefix: &str) -> Option<DirectUpgrade> {
    let mut headers = no_headers();
    let mut req = httparse::Request::new(&mut []);
    let httparse::Status::Complete(head_len) = req.parse_with_uninit_headers(head, &mut headers).ok()? else {
        return None;
    };
    if req.method != Some("GET") || req.version != Some(1) {
        return None;
    }
    let (path, query) = match req.path?.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (req.path?, None),
    };
    let key = app_key_in(path, path_prefix)?;
    let accept = accept_key(&*req.headers).ok()?;
    // Header values are slices of `head`: their offset is the distance between the pointers.
    let origin = req.headers.iter().find(|h| h.name.eq_ignore_ascii_case("origin")).map(|h| {
        let start = h.value.as_ptr().addr().wrapping_sub(head.as_ptr().addr());
        start..start.saturating_add(h.value.len())
    });
    Some(DirectUpgrade { accept, key: key.to_string(), query: ClientQuery::parse(query), origin, head_len })
}

/// The app key in a WebSocket path: `/app/{key}`, `/app/{key}/`, or `{prefix}/app/{key}`.
fn app_key_in<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let key = match path.strip_prefix("/app/") {
        Some(rest) => rest.strip_suffix('/').unwrap_or(rest),
        None if !prefix.is_empty() => path.strip_prefix(prefix)?.strip_prefix("/app/")?,
        None => return None,
    };
    (!key.is_empty() && !key.contains(['/', '%'])).then_some(key)
}

/// Answers an upgrade request `head` recognised by [`direct_upgrade`] on a plain TCP socket: the
/// `101` response and `pusher:connection_established` (or the refusal) go out in one write. `None`
/// when the connection is already over (refused, or the client left).
pub async fn handshake(ctx: &Context, stream: TcpStream, head: Vec<u8>, up: DirectUpgrade) -> Option<Upgraded> {
    let opened = Connection::open(ctx, &up.key, &up.query, up.origin(&head)).await;
    let mut task = Task { opened, config: ctx.config.clone(), shutdown: ctx.shutdown.clone() };
    let tcp = task.answer(stream, head, up).await?;
    Some(Upgraded { task, tcp })
}

/// [`handshake`] on any other stream (TLS), then runs the connection to its end.
pub async fn handshake_stream(ctx: &Context, mut stream: impl Io, head: Vec<u8>, up: DirectUpgrade) {
    let opened = Connection::open(ctx, &up.key, &up.query, up.origin(&head)).await;
    let out = switching_protocols(&up.accept, &opened);
    if !write_stream(&mut stream, &out).await {
        return;
    }
    let early = head.get(up.head_len..).unwrap_or_default().to_vec();
    serve_stream(&ctx.config, stream, early, opened).await;
}

/// The `101` response to an upgrade, followed by what the connection has queued
/// (`pusher:connection_established`), so that both go out in one write.
fn switching_protocols(accept: &str, opened: &Result<Connection, Refusal>) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n");
    out.extend_from_slice(b"sec-websocket-accept: ");
    out.extend_from_slice(accept.as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    if let Ok(conn) = opened {
        let mut queued = Vec::new();
        // A close requested meanwhile stays pending for the outbox's writer.
        conn.outbox().drain(&mut queued);
        for f in &queued {
            out.extend_from_slice(f.wire());
        }
        let stats = conn.app().stats();
        stats.messages_out.fetch_add(queued.len() as u64, Ordering::Relaxed);
        stats.bytes_out.fetch_add(queued.iter().map(|f| f.len() as u64).sum(), Ordering::Relaxed);
    }
    out
}

impl Task {
    /// Answers a directly recognised upgrade (see [`switching_protocols`]). `None` when the
    /// connection is over.
    async fn answer(&mut self, stream: TcpStream, head: Vec<u8>, up: DirectUpgrade) -> Option<TcpState> {
        let out = switching_protocols(&up.accept, &self.opened);
        if !matches!(timeout(WRITE_TIMEOUT, write_all(&stream, &out)).await, Ok(Ok(()))) {
            return None;
        }
        let early = head.get(up.head_len..).unwrap_or_default().to_vec();
        match self.attach(stream, early) {
            Ok(tcp) => Some(tcp),
            Err(rare) => {
                rare.await;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::direct_upgrade;

    /// An upgrade head for the development app with `extra` header lines.
    fn head(extra: &[u8]) -> Vec<u8> {
        let mut h = b"GET /app/app-key?protocol=7 HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\n\
            Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            .to_vec();
        h.extend_from_slice(extra);
        h.extend_from_slice(b"\r\n");
        h
    }

    #[test]
    fn the_origin_is_read_from_the_head() {
        for (extra, origin) in [
            (&b""[..], None),
            (b"Origin: https://app.example.com\r\n", Some("https://app.example.com")),
            (b"oRiGiN:   https://a.example  \r\n", Some("https://a.example")),
            (b"Origin: null\r\nOrigin: https://b.example\r\n", Some("null")),
            (b"Origin:\r\n", Some("")),
            (b"Origin: https://caf\xe9.example\r\n", Some("")),
            (b"X-Origin: https://app.example.com\r\n", None),
        ] {
            let h = head(extra);
            let up =
                direct_upgrade(&h, "").unwrap_or_else(|| panic!("{:?} is an upgrade", String::from_utf8_lossy(&h)));
            assert_eq!(up.origin(&h), origin, "{:?}", String::from_utf8_lossy(extra));
        }
    }
}
