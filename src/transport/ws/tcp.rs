//! A plain TCP WebSocket connection: its socket attached to the outbox (written by whichever thread
//! pushes), the thread's read space, and the close and linger that end it.

use super::input::{Input, handle_input, linger_reading};
use super::{READ_CHUNK, RarePath, Task};
use crate::hub::{AppState, CloseRequest, DirectSink, Frame, Pumped, clock};
use crate::protocol::websocket::{self as wire, Decoder};
use crate::transport::connection::{Connection, Refusal};
use crate::transport::keepalive::WRITE_TIMEOUT;
use crate::transport::write_all;
use socket2::SockRef;
use std::cell::RefCell;
use std::io::{self, IoSlice, Read as _};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use tokio::io::{AsyncRead, Interest};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Frames handed to the kernel in one vectored write.
const WRITE_FRAMES: usize = 32;

impl Task {
    /// Attaches an upgraded plain TCP stream (and the bytes read past the request) to the
    /// connection's outbox; a refused connection is returned as the boxed future that refuses it.
    pub(super) fn attach(&mut self, stream: TcpStream, early: Vec<u8>) -> Result<TcpState, RarePath> {
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
        tracing::debug!(socket_id = conn.socket_id(), app = %conn.app().id(), "connection opened");
        let socket = Arc::new(Socket { stream, app: conn.app().clone() });
        conn.outbox().attach(socket.clone());
        let tcp = TcpState { socket, decoder: Decoder::new(early), input: Input::Open };
        Ok(tcp)
    }
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
pub(super) fn read_up_to(stream: &TcpStream, buf: &mut Vec<u8>, limit: usize) -> io::Result<usize> {
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
/// decoded), the end of its stream, or [`LINGER`](super::LINGER). Closing a socket with
/// unread input resets the connection, and the client could lose the close frame and what came
/// before it.
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

async fn refuse_tcp(stream: TcpStream, refusal: Refusal, mut decoder: Decoder, max: usize) {
    let mut out = refusal.frame().wire().to_vec();
    out.extend(wire::close_frame(refusal.code, &refusal.message));
    if matches!(timeout(WRITE_TIMEOUT, write_all(&stream, &out)).await, Ok(Ok(()))) {
        linger(&stream, Some(&mut decoder), max).await;
    }
}

/// What woke a plain TCP connection's task.
enum Event {
    Pumped(Pumped),
    /// The socket is readable (false: it failed).
    Readable(bool),
}

/// A plain TCP connection's transport state (the protocol state is its [`Connection`]). Its
/// timeouts and the shutdown notice are handled for all connections by
/// [`keepalive`](crate::transport::keepalive).
pub(super) struct TcpState {
    socket: Arc<Socket>,
    decoder: Decoder,
    input: Input,
}

impl TcpState {
    /// Runs until the client leaves, the server closes the connection, or
    /// [`keepalive`](crate::transport::keepalive) drops it.
    pub(super) async fn run(&mut self, task: &mut Task) {
        let Ok(conn) = &mut task.opened else { return };
        let config = &*task.config;
        // Shutdown began before the socket was attached: keepalive's notice may have missed it.
        if task.shutdown.is_cancelled() {
            crate::transport::connection::shut_down(conn.outbox());
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
