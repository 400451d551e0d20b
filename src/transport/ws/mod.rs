//! WebSocket transport: the upgrade at `/app/{key}`, then one task per connection.
//!
//! On plain TCP (the usual case) the connection speaks the wire format itself ([`super::wire`]) and
//! attaches its socket to the outbox: a frame published to an idle connection is written by the
//! publishing thread without waking the connection's task, and an idle connection keeps no read or
//! write buffer. Other streams (TLS) go through tungstenite, writing the outbox in batches.

use super::connection::{ClientQuery, Connection, Refusal};
use super::prefixed::PrefixedStream;
use crate::config::Config;
use crate::hub::{AppState, CloseRequest, DirectSink, Drained, Frame, Pumped};
use crate::protocol::frame;
use crate::protocol::websocket::{self as wire, Decoder, Incoming};
use crate::state::Context;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use socket2::SockRef;
use std::cell::RefCell;
use std::future::Future;
use std::io::{self, IoSlice, Read as _};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use tokio::io::Interest;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Duration, timeout};
use tokio_util::sync::CancellationToken;

use super::keepalive::WRITE_TIMEOUT;
use super::write_all;
use crate::hub::clock;

/// A stream connection's write buffer is kept between batches up to this size.
const WRITE_BUFFER: usize = 16 * 1024;
/// Bytes read from a plain TCP socket at a time.
const READ_CHUNK: usize = 4096;
/// Longest request head read before deciding who serves a plain TCP connection; a longer one
/// goes to the HTTP server as it is.
const HEAD_MAX: usize = 4096;
/// Headers parsed in a request head read directly.
const MAX_HEADERS: usize = 64;
/// How long a closed connection waits for the client to close its side.
const LINGER: Duration = Duration::from_secs(2);
/// Frames handed to the kernel in one vectored write.
const WRITE_FRAMES: usize = 32;

/// The WebSocket route (also served under `path_prefix` and with a trailing slash).
pub const ROUTE: &str = "/app/{key}";

/// `GET /app/{key}`: validates the upgrade and hands the socket to a connection task.
pub async fn upgrade(State(ctx): State<Context>, Path(key): Path<String>, mut req: Request) -> Response {
    let accept = match accept_key(req.headers()) {
        Ok(accept) => accept,
        Err(refused) => return refused.into_response(),
    };
    let query = ClientQuery::parse(req.uri().query());
    let on_upgrade = hyper::upgrade::on(&mut req);
    // Opened here rather than in the task, so the task does not carry what opening needs.
    let opened = if ctx.is_draining() {
        Err(Refusal::shutting_down())
    } else {
        Connection::open(&ctx.hub, &key, &query, ctx.config.activity_timeout)
    };
    let task = Task { opened, config: ctx.config.clone(), shutdown: ctx.shutdown.clone() };
    ctx.tasks.spawn(connection_task(task, on_upgrade));
    let mut res = Response::new(Body::empty());
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = res.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    res
}

/// Why an upgrade request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum HandshakeError {
    #[error("expected a WebSocket upgrade request")]
    NotUpgrade,
    #[error("unsupported WebSocket version (13 is supported)")]
    Version,
    #[error("expected one valid Sec-WebSocket-Key")]
    Key,
}

impl IntoResponse for HandshakeError {
    fn into_response(self) -> Response {
        let status = match self {
            HandshakeError::Version => StatusCode::UPGRADE_REQUIRED,
            HandshakeError::NotUpgrade | HandshakeError::Key => StatusCode::BAD_REQUEST,
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
trait Headers {
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

/// Checks the upgrade request (RFC 6455 section 4.2.1) and returns the `Sec-WebSocket-Accept`
/// value.
fn accept_key<H: Headers + ?Sized>(headers: &H) -> Result<String, HandshakeError> {
    let has_token = |name: &str, token: &str| {
        headers
            .values(name)
            .filter_map(|v| std::str::from_utf8(v).ok())
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    if !has_token("connection", "upgrade") || !has_token("upgrade", "websocket") {
        return Err(HandshakeError::NotUpgrade);
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

/// Reads the first request head of a plain TCP connection: until it is complete, [`HEAD_MAX`]
/// bytes have arrived, or the client ends its stream (then what arrived is returned). The first
/// attempt does not wait for readiness (tokio assumes an accepted socket readable), since the
/// request usually arrives with the connection; a read that drains the socket clears its
/// readiness, so the next read of the connection (its first message, which the client sends
/// only after the answer) waits for the bytes instead of trying a `recv` that finds none.
pub async fn read_head(stream: &TcpStream) -> io::Result<Vec<u8>> {
    // Room for the longest head, not zeroed (each read copies in what arrived). One block of this
    // size, freed after the handshake, is what the next connection's head reuses; a block sized
    // to each head would leave holes between the connections' long-lived allocations.
    let mut buf = Vec::with_capacity(HEAD_MAX);
    loop {
        let room = HEAD_MAX - buf.len();
        match read_up_to(stream, &mut buf, room) {
            Ok(0) => break,
            Ok(_) => {
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                if buf.len() == HEAD_MAX
                    || !matches!(httparse::Request::new(&mut headers).parse(&buf), Ok(httparse::Status::Partial))
                {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => stream.readable().await?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(buf)
}

/// A WebSocket upgrade to Sinew's endpoint, answered without the HTTP server.
pub struct DirectUpgrade {
    accept: String,
    key: String,
    query: ClientQuery,
    /// Where the head ends (messages may follow it).
    head_len: usize,
}

/// Recognises a valid WebSocket upgrade request for [`ROUTE`] in a request head. Anything else
/// (other routes, invalid upgrades answered with their error status, escaped keys, incomplete or
/// oversized heads) is left to the HTTP server.
pub fn direct_upgrade(head: &[u8], path_prefix: &str) -> Option<DirectUpgrade> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(head_len) = req.parse(head).ok()? else { return None };
    if req.method != Some("GET") || req.version != Some(1) {
        return None;
    }
    let (path, query) = match req.path?.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (req.path?, None),
    };
    let key = app_key_in(path, path_prefix)?;
    let accept = accept_key(&*req.headers).ok()?;
    Some(DirectUpgrade { accept, key: key.to_string(), query: ClientQuery::parse(query), head_len })
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

/// A plain TCP WebSocket connection past its handshake, ready to run.
pub struct Upgraded {
    task: Task,
    tcp: TcpState,
}

impl Upgraded {
    /// Runs the connection until the client leaves, the server closes it, or shutdown. (An
    /// `async` block that owns the connection: the task stores the connection once, with no
    /// borrowed reference to it beside.)
    #[expect(clippy::manual_async_fn, reason = "an async fn would store its arguments twice")]
    pub fn run(mut self) -> impl Future<Output = ()> + Send {
        async move {
            self.tcp.run(&mut self.task).await;
            self.task.finish();
        }
    }
}

/// Answers an upgrade request `head` recognised by [`direct_upgrade`]: the `101` response and
/// `pusher:connection_established` (or the refusal) go out in one write. `None` when the
/// connection is already over (refused, or the client left).
pub async fn handshake(ctx: &Context, stream: TcpStream, head: Vec<u8>, up: DirectUpgrade) -> Option<Upgraded> {
    let opened = if ctx.is_draining() {
        Err(Refusal::shutting_down())
    } else {
        Connection::open(&ctx.hub, &up.key, &up.query, ctx.config.activity_timeout)
    };
    let mut task = Task { opened, config: ctx.config.clone(), shutdown: ctx.shutdown.clone() };
    let tcp = task.answer(stream, head, up).await?;
    Some(Upgraded { task, tcp })
}

/// What a connection's task owns. Every idle connection holds one, so it is kept small, and the
/// task's future only borrows it.
struct Task {
    opened: Result<Connection, Refusal>,
    config: Arc<Config>,
    shutdown: CancellationToken,
}

impl Task {
    /// Takes the plain TCP stream out of the upgraded connection (when it is one) and attaches it
    /// to the connection's outbox.
    /// The other cases (a refusal, another stream) are returned as a boxed future to run instead.
    fn start(&mut self, upgraded: hyper::upgrade::Upgraded) -> Result<TcpState, RarePath> {
        let parts = match upgraded.downcast::<TokioIo<PrefixedStream>>() {
            Ok(parts) => parts,
            Err(upgraded) => {
                let opened = std::mem::replace(&mut self.opened, Err(Refusal { code: 4200, message: String::new() }));
                return Err(Box::pin(serve_upgraded(self.config.clone(), upgraded, opened)));
            }
        };
        let (stream, unread) = parts.io.into_inner().into_parts();
        // Copied out, so hyper's whole read buffer is not kept for the connection's life. Hyper
        // read its buffer before whatever it left of the replayed head.
        let mut early = parts.read_buf.to_vec();
        drop(parts.read_buf);
        early.extend_from_slice(&unread);
        self.attach(stream, early)
    }

    /// Answers a directly recognised upgrade: the `101` response and what the connection has queued
    /// (`pusher:connection_established`, or the refusal) in one write. `None` when the connection
    /// is over.
    async fn answer(&mut self, stream: TcpStream, head: Vec<u8>, up: DirectUpgrade) -> Option<TcpState> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n");
        out.extend_from_slice(b"sec-websocket-accept: ");
        out.extend_from_slice(up.accept.as_bytes());
        out.extend_from_slice(b"\r\n\r\n");
        if let Ok(conn) = &self.opened {
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

    /// Attaches an upgraded plain TCP stream (and the bytes read past the request) to the
    /// connection's outbox; a refused connection is returned as the boxed future that refuses it.
    fn attach(&mut self, stream: TcpStream, early: Vec<u8>) -> Result<TcpState, RarePath> {
        // Frames are written whole; do not hold one back waiting for an ACK. (On Linux accepted
        // sockets inherit the option from the listener, which `server` sets.)
        #[cfg(not(target_os = "linux"))]
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let conn = match &mut self.opened {
            Ok(c) => c,
            Err(refusal) => {
                let refused = refuse_tcp(stream, refusal.clone(), Decoder::new(early), self.config.max_message_bytes);
                return Err(Box::pin(refused));
            }
        };
        tracing::debug!(socket_id = conn.socket_id(), app = %conn.app().config.id, "connection opened");
        let socket = Arc::new(Socket { stream, app: conn.app().clone() });
        conn.outbox().attach(socket.clone());
        let tcp = TcpState { socket, decoder: Decoder::new(early), input: Input::Open };
        Ok(tcp)
    }

    /// Detaches the socket from a connection that ended.
    fn finish(&self) {
        if let Ok(conn) = &self.opened {
            conn.outbox().detach();
            tracing::debug!(socket_id = conn.socket_id(), "connection closed");
        }
    }
}

/// Waits for the upgrade, then runs the connection. (An `async` block rather than an `async fn`,
/// so the task holds its arguments once.)
#[expect(clippy::manual_async_fn, reason = "an async fn would store its arguments twice")]
fn connection_task(mut task: Task, on_upgrade: hyper::upgrade::OnUpgrade) -> impl Future<Output = ()> + Send {
    async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => return tracing::debug!(error = %e, "websocket upgrade failed"),
        };
        // Rare paths are boxed: a task is as large as its largest state. (Written so that nothing
        // but `tcp` outlives this block.)
        let mut tcp = None;
        {
            let rare = match task.start(upgraded) {
                Ok(t) => {
                    tcp = Some(t);
                    None
                }
                Err(rare) => Some(rare),
            };
            if let Some(rare) = rare {
                return rare.await;
            }
        }
        if let Some(tcp) = tcp.as_mut() {
            tcp.run(&mut task).await;
        }
        task.finish();
    }
}

/// A connection task's rare continuation (refusal, TLS), boxed.
type RarePath = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs a connection over an upgraded stream other than plain TCP (TLS): the same framing and the
/// same [`Connection`] as plain TCP, but this task writes the outbox (TLS is written through the
/// stream's own state, which the publishing thread cannot reach without a lock).
async fn serve_upgraded(config: Arc<Config>, upgraded: hyper::upgrade::Upgraded, opened: Result<Connection, Refusal>) {
    serve_stream(&config, TokioIo::new(upgraded), Vec::new(), opened).await;
}

/// What a connection task needs from its socket.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Appends what `stream` has to `buf` (up to [`READ_CHUNK`] bytes), waiting for bytes. The read
/// space is on the stack only while a read is tried, so a waiting connection holds no buffer.
async fn read_stream(stream: &mut (impl AsyncRead + Unpin), buf: &mut Vec<u8>) -> io::Result<usize> {
    std::future::poll_fn(|cx| {
        let mut space = [0u8; READ_CHUNK];
        let mut read = tokio::io::ReadBuf::new(&mut space);
        match std::pin::Pin::new(&mut *stream).poll_read(cx, &mut read) {
            Poll::Ready(Ok(())) => {
                buf.extend_from_slice(read.filled());
                Poll::Ready(Ok(read.filled().len()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// Writes `bytes` and flushes; a stream that takes nothing for [`WRITE_TIMEOUT`] fails.
async fn write_stream(stream: &mut (impl AsyncWrite + Unpin), bytes: &[u8]) -> bool {
    matches!(
        timeout(WRITE_TIMEOUT, async {
            stream.write_all(bytes).await?;
            stream.flush().await
        })
        .await,
        Ok(Ok(()))
    )
}

/// Runs one connection over `stream` (`early`: bytes read past the upgrade request) until the
/// client leaves, the server closes it, or the stream fails. Liveness and the shutdown notice are
/// the keepalive task's, as for every connection; this task reports what it hears.
async fn serve_stream(config: &Config, stream: impl Io, early: Vec<u8>, opened: Result<Connection, Refusal>) {
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut decoder = Decoder::new(early);
    let max = config.max_message_bytes;
    let mut conn = match opened {
        Ok(c) => c,
        Err(refusal) => {
            let mut out = refusal.frame().wire().to_vec();
            out.extend(wire::close_frame(refusal.code, &refusal.message));
            if write_stream(&mut writer, &out).await {
                linger_stream(&mut reader, &mut writer, Some(&mut decoder), max).await;
            }
            return;
        }
    };
    tracing::debug!(socket_id = conn.socket_id(), app = %conn.app().config.id, "connection opened");
    let outbox = conn.outbox().clone();
    let mut input = Input::Open;
    if !decoder.buf.is_empty() {
        input = handle_input(&mut conn, &mut decoder, max).await;
    }
    let mut batch: Vec<Frame> = Vec::new();
    let mut out: Vec<u8> = Vec::new();
    loop {
        tokio::select! {
            biased;
            drained = outbox.next(&mut batch) => {
                out.clear();
                if let Some(control) = outbox.take_control() {
                    out.extend_from_slice(&control);
                }
                for f in &batch {
                    out.extend_from_slice(f.wire());
                }
                let stats = conn.app().stats();
                stats.messages_out.fetch_add(batch.len() as u64, Ordering::Relaxed);
                stats.bytes_out.fetch_add(batch.iter().map(|f| f.len() as u64).sum(), Ordering::Relaxed);
                batch.clear();
                let close = match drained { Drained::Close(c) => Some(c), Drained::Frames => None };
                if let Some(c) = &close {
                    out.extend(wire::close_frame(c.code, &c.reason));
                }
                let written = write_stream(&mut writer, &out).await;
                if out.capacity() > WRITE_BUFFER {
                    out = Vec::new();
                }
                if close.is_some() && written && input != Input::PeerClosed {
                    let decoder = (input == Input::Open).then_some(&mut decoder);
                    linger_stream(&mut reader, &mut writer, decoder, max).await;
                }
                if close.is_some() || !written {
                    break;
                }
            }
            read = read_stream(&mut reader, &mut decoder.buf), if input == Input::Open => match read {
                Ok(0) => break,
                Ok(_) => {
                    outbox.heard(clock());
                    input = handle_input(&mut conn, &mut decoder, max).await;
                    if decoder.buf.is_empty() {
                        decoder.buf = Vec::new();
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "websocket read failed");
                    break;
                }
            },
        }
    }
    tracing::debug!(socket_id = conn.socket_id(), "connection closed");
}

/// [`linger`] for a stream: ends the server's side (for TLS, its close_notify) and reads until the
/// client's close frame, the end of its stream, or [`LINGER`].
async fn linger_stream(
    reader: &mut (impl AsyncRead + Unpin),
    writer: &mut (impl AsyncWrite + Unpin),
    decoder: Option<&mut Decoder>,
    max: usize,
) {
    if !matches!(timeout(WRITE_TIMEOUT, writer.shutdown()).await, Ok(Ok(()))) {
        return;
    }
    linger_reading(reader, decoder, max).await;
}

thread_local! {
    /// Read space shared by the connections this thread serves: a read copies only the bytes that
    /// arrived into the connection's buffer, instead of growing (and zeroing) the buffer by a whole
    /// chunk for every read.
    static READ_SPACE: RefCell<Box<[u8]>> = RefCell::new(vec![0; READ_CHUNK].into_boxed_slice());
}

/// Appends what `stream` has to `buf` (up to [`READ_CHUNK`] bytes). A read that does not fill the
/// space it was given means the socket is drained: its readiness is cleared then and there, so the
/// next poll waits for new bytes instead of trying a read that can only return `WouldBlock`.
fn read_some(stream: &TcpStream, buf: &mut Vec<u8>) -> io::Result<usize> {
    read_up_to(stream, buf, READ_CHUNK)
}

/// [`read_some`] of at most `limit` bytes (and at most [`READ_CHUNK`]); `limit` is at least 1.
fn read_up_to(stream: &TcpStream, buf: &mut Vec<u8>, limit: usize) -> io::Result<usize> {
    READ_SPACE.with_borrow_mut(|space| {
        let space = &mut space[..limit.clamp(1, READ_CHUNK)];
        let mut got = None;
        let r = stream.try_io(Interest::READABLE, || {
            let n = (&*SockRef::from(stream)).read(space)?;
            if n > 0 && n < space.len() {
                // Readiness is cleared only if no new event arrived since this read began.
                got = Some(n);
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(n)
        });
        let r = match (r, got) {
            (_, Some(n)) => Ok(n),
            (r, None) => r,
        };
        if let Ok(n) = r {
            buf.extend_from_slice(&space[..n]);
        }
        r
    })
}

/// A plain TCP WebSocket connection's socket, written by its outbox.
struct Socket {
    stream: TcpStream,
    app: Arc<AppState>,
}

impl Socket {
    /// Runs a socket write at once, without consulting tokio's readiness (nearly every write
    /// succeeds); only a refused write is repeated through tokio, so that the readiness it waits on
    /// is cleared.
    fn send_now(&self, send: impl Fn() -> io::Result<usize>) -> io::Result<usize> {
        match send() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.stream.try_io(Interest::WRITABLE, send),
            r => r,
        }
    }

    /// Counts `frames` whole frames of `bytes` payload bytes as sent.
    fn count_out(&self, frames: u64, bytes: u64) {
        if frames > 0 {
            let stats = self.app.stats();
            stats.messages_out.fetch_add(frames, Ordering::Relaxed);
            stats.bytes_out.fetch_add(bytes, Ordering::Relaxed);
        }
    }
}

impl DirectSink for Socket {
    fn try_write(&self, frames: &mut dyn Iterator<Item = &Frame>, skip: usize) -> io::Result<usize> {
        let mut picked: [Option<&Frame>; WRITE_FRAMES] = [None; WRITE_FRAMES];
        let mut slices = [IoSlice::new(&[]); WRITE_FRAMES];
        let mut count = 0;
        for ((slot, slice), f) in picked.iter_mut().zip(slices.iter_mut()).zip(frames) {
            let wire = f.wire();
            *slice = IoSlice::new(if count == 0 { &wire[skip.min(wire.len())..] } else { wire });
            *slot = Some(f);
            count += 1;
        }
        // `sendmsg` rather than `writev`: the socket call skips the file layer.
        let written = self.send_now(|| SockRef::from(&self.stream).send_vectored(&slices[..count]))?;
        // Count the frames this write completed.
        let (mut left, mut done, mut bytes) = (written + skip, 0u64, 0u64);
        for f in picked.iter().map_while(|f| *f) {
            if left < f.wire().len() {
                break;
            }
            left -= f.wire().len();
            done += 1;
            bytes += f.len() as u64;
        }
        self.count_out(done, bytes);
        Ok(written)
    }

    fn try_write_one(&self, frame: &Frame) -> io::Result<usize> {
        let wire = frame.wire();
        let written = self.send_now(|| SockRef::from(&self.stream).send(wire))?;
        if written == wire.len() {
            self.count_out(1, frame.len() as u64);
        }
        Ok(written)
    }

    fn try_write_raw(&self, bytes: &[u8]) -> io::Result<usize> {
        self.stream.try_io(Interest::WRITABLE, || SockRef::from(&self.stream).send(bytes))
    }

    fn poll_writable(&self, cx: &mut std::task::Context<'_>) -> Poll<io::Result<()>> {
        self.stream.poll_write_ready(cx)
    }
}

/// Writes the close frame that ends a connection. Unless the client has closed already, the
/// server's side is then ended and the client's close frame awaited (see [`linger`]).
async fn send_close(stream: &TcpStream, close: CloseRequest, input: Input, decoder: &mut Decoder, max: usize) {
    let frame = wire::close_frame(close.code, &close.reason);
    if matches!(timeout(WRITE_TIMEOUT, write_all(stream, &frame)).await, Ok(Ok(()))) && input != Input::PeerClosed {
        linger(stream, (input == Input::Open).then_some(decoder), max).await;
    }
}

/// After the server's close frame: ends the server's side of the TCP connection and reads what the
/// client still sends until its close frame (when `decoder` is given and the stream can still be
/// decoded), the end of its stream, or [`LINGER`]. Closing a socket with unread input resets the
/// connection, and the client could lose the close frame and what came before it.
async fn linger(stream: &TcpStream, decoder: Option<&mut Decoder>, max: usize) {
    if SockRef::from(stream).shutdown(std::net::Shutdown::Write).is_err() {
        return;
    }
    linger_reading(&mut SharedTcp(stream), decoder, max).await;
}

/// A plain TCP stream read through a shared reference (tokio's `AsyncRead` is for an owned one).
struct SharedTcp<'a>(&'a TcpStream);

impl AsyncRead for SharedTcp<'_> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if let Err(e) = std::task::ready!(self.0.poll_read_ready(cx)) {
                return Poll::Ready(Err(e));
            }
            match self.0.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

/// The reading half of a linger, whatever the stream: decodes what it reads until the client's
/// close frame, or (once nothing more can be decoded) just reads, until the end of the stream, a
/// failed read, or [`LINGER`].
async fn linger_reading(reader: &mut (impl AsyncRead + Unpin), mut decoder: Option<&mut Decoder>, max: usize) {
    let mut scratch = Vec::new();
    let _ = timeout(LINGER, async {
        loop {
            if let Some(d) = decoder.as_deref_mut() {
                let decodable = loop {
                    match d.next(max) {
                        Ok(Some(Incoming::Close(_))) => return,
                        Ok(Some(_)) => {}
                        Ok(None) => break true,
                        Err(_) => break false,
                    }
                };
                if !decodable {
                    d.buf = Vec::new();
                    decoder = None;
                }
            }
            let buf = match decoder.as_deref_mut() {
                Some(d) => &mut d.buf,
                None => {
                    scratch.clear();
                    &mut scratch
                }
            };
            match read_stream(reader, buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
}

async fn refuse_tcp(stream: TcpStream, refusal: Refusal, mut decoder: Decoder, max: usize) {
    let mut out = refusal.frame().wire().to_vec();
    out.extend(wire::close_frame(refusal.code, &refusal.message));
    if matches!(timeout(WRITE_TIMEOUT, write_all(&stream, &out)).await, Ok(Ok(()))) {
        linger(&stream, Some(&mut decoder), max).await;
    }
}

/// Where the client's stream stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
    /// Still read.
    Open,
    /// The client sent its close frame.
    PeerClosed,
    /// The client broke the protocol; nothing more is decoded.
    Broken,
}

/// Decodes and handles every complete message in `decoder`, until more bytes are needed or the
/// client's stream has ended (a close frame or a protocol error), after which nothing more is read.
async fn handle_input(conn: &mut Connection, decoder: &mut Decoder, max: usize) -> Input {
    loop {
        match decoder.next(max) {
            Ok(Some(Incoming::Text(text))) => {
                let stats = conn.app().stats();
                stats.messages_in.fetch_add(1, Ordering::Relaxed);
                stats.bytes_in.fetch_add(text.len() as u64, Ordering::Relaxed);
                conn.handle_text(&text).await;
            }
            Ok(Some(Incoming::Binary)) => {
                conn.outbox().push(&Frame::from(frame::error(None, "Binary frames are not supported")));
            }
            Ok(Some(Incoming::Ping(payload))) => conn.outbox().push_control(&wire::encode(wire::OP_PONG, &payload)),
            Ok(Some(Incoming::Pong)) => {}
            Ok(Some(Incoming::Close(code))) => {
                // Answer with the client's code once what is queued is written.
                conn.outbox().close(None, code.unwrap_or(1000), "");
                return Input::PeerClosed;
            }
            Ok(None) => return Input::Open,
            Err(e) => {
                tracing::debug!(error = %e, "websocket read failed");
                conn.outbox().close(None, e.close_code(), &e.to_string());
                return Input::Broken;
            }
        }
    }
}

/// What woke a plain TCP connection's task.
enum Event {
    Pumped(Pumped),
    /// The socket is readable (false: it failed).
    Readable(bool),
}

/// A plain TCP connection's transport state (the protocol state is its [`Connection`]). Its
/// timeouts and the shutdown notice are handled for all connections by [`keepalive`].
struct TcpState {
    socket: Arc<Socket>,
    decoder: Decoder,
    input: Input,
}

impl TcpState {
    /// Runs until the client leaves, the server closes the connection, or [`keepalive`] drops it.
    async fn run(&mut self, task: &mut Task) {
        let Ok(conn) = &mut task.opened else { return };
        let config = &*task.config;
        // Shutdown began before the socket was attached: keepalive's notice may have missed it.
        if task.shutdown.is_cancelled() {
            super::connection::shut_down(conn.outbox());
        }
        // Messages that arrived together with the upgrade request.
        if !self.decoder.buf.is_empty() {
            self.input = Box::pin(handle_input(conn, &mut self.decoder, config.max_message_bytes)).await;
        }
        loop {
            // One hand-written poll instead of `select!`: fewer bytes held by every idle connection.
            let event = std::future::poll_fn(|cx| {
                if let Poll::Ready(p) = conn.outbox().poll_pump(cx) {
                    return Poll::Ready(Event::Pumped(p));
                }
                if self.input == Input::Open
                    && let Poll::Ready(r) = self.socket.stream.poll_read_ready(cx)
                {
                    return Poll::Ready(Event::Readable(r.is_ok()));
                }
                Poll::Pending
            })
            .await;
            match event {
                Event::Pumped(Pumped::Close(c)) => {
                    let max = config.max_message_bytes;
                    return Box::pin(send_close(&self.socket.stream, c, self.input, &mut self.decoder, max)).await;
                }
                Event::Pumped(Pumped::Failed) => {
                    if conn.outbox().is_stalled() {
                        tracing::debug!(socket_id = conn.socket_id(), "write stalled");
                    }
                    return;
                }
                Event::Readable(ok) => {
                    // Boxed: handling a message may wait (a clustered subscribe); every idle
                    // connection's task would otherwise reserve room for that.
                    if !ok || !Box::pin(self.read(conn, config.max_message_bytes)).await {
                        return;
                    }
                }
            }
        }
    }

    /// Reads what the socket has and handles complete messages; false when the connection ends.
    async fn read(&mut self, conn: &mut Connection, max: usize) -> bool {
        match read_some(&self.socket.stream, &mut self.decoder.buf) {
            Ok(0) => false,
            Ok(_) => {
                conn.outbox().heard(clock());
                self.input = handle_input(conn, &mut self.decoder, max).await;
                if self.decoder.buf.is_empty() {
                    // An idle connection keeps no read buffer.
                    self.decoder.buf = Vec::new();
                }
                true
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if self.decoder.buf.is_empty() {
                    self.decoder.buf = Vec::new();
                }
                true
            }
            Err(e) => {
                tracing::debug!(error = %e, "websocket read failed");
                false
            }
        }
    }
}
