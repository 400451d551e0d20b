//! WebSocket transport: the upgrade at `/app/{key}`, then one task per connection.
//!
//! A connection's first request head is read directly, on plain TCP and through TLS alike
//! (`server.rs`): a valid upgrade to this endpoint is answered at once, the `101` and
//! `pusher:connection_established` in one write. An upgrade that is not the first request of its
//! connection (a proxy reusing a kept-alive connection) comes through the HTTP server's route
//! here, with the same checks; both end in the same connection task.
//!
//! On plain TCP (the usual case) the connection attaches its socket to the outbox: a frame
//! published to an idle connection is written by the publishing thread without waking the
//! connection's task, and an idle connection keeps no read or write buffer. Other streams (TLS)
//! speak the same wire format ([`wire`](crate::protocol::websocket)), with the connection's task
//! writing the outbox in batches.
//!
//! Files: this one holds the route, the upgrade through the HTTP server, the connection task and
//! the constants the files share; `handshake.rs` the upgrade request's checks, the bounds of a
//! request head, and the upgrade read and answered directly; `tcp.rs` a plain TCP connection (its
//! socket attached to the outbox); `stream.rs` a connection over any other stream (TLS);
//! `input.rs` what a client sends, for both.

mod handshake;
mod input;
mod stream;
mod tcp;

pub use handshake::{
    DirectUpgrade, HEAD_LIMIT, MAX_HEADERS, direct_upgrade, handshake, handshake_stream, read_head, read_head_from,
};
pub use stream::Io;

use super::connection::{ClientQuery, Connection, Refusal};
use super::prefixed::PrefixedStream;
use crate::config::Config;
use crate::state::Context;
use crate::tls::TlsConnection;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::sync::Arc;
use tokio::time::Duration;
use tokio_util::sync::CancellationToken;

use handshake::{HandshakeError, accept_key};
use stream::serve_stream;
use tcp::TcpState;

/// Bytes read from a plain TCP socket at a time.
const READ_CHUNK: usize = 4096;
/// How long a closed connection waits for the client to close its side.
const LINGER: Duration = Duration::from_secs(2);

/// The WebSocket route (also served under `path_prefix` and with a trailing slash).
pub const ROUTE: &str = "/app/{key}";

/// `GET /app/{key}`: validates the upgrade and hands the socket to a connection task.
pub async fn upgrade(State(ctx): State<Context>, Path(key): Path<String>, mut req: Request) -> Response {
    // RFC 6455 4.1: the upgrade is an HTTP/1.1 request (HTTP/1.0 has no `101`).
    if req.version() != axum::http::Version::HTTP_11 {
        return HandshakeError::NotHttp11.into_response();
    }
    let accept = match accept_key(req.headers()) {
        Ok(accept) => accept,
        Err(refused) => return refused.into_response(),
    };
    let query = ClientQuery::parse(req.uri().query());
    let on_upgrade = hyper::upgrade::on(&mut req);
    // Opened here rather than in the task, so the task does not carry what opening needs.
    let origin = req.headers().get(header::ORIGIN).map(|v| v.to_str().unwrap_or_default());
    let opened = Connection::open(&ctx, &key, &query, origin).await;
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
                return Err(Box::pin(serve_other(self.config.clone(), upgraded, opened)));
            }
        };
        let (stream, early) = unread(parts);
        self.attach(stream, early)
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

/// The stream of an upgraded connection and the bytes read from it that hyper did not consume.
fn unread<S>(parts: hyper::upgrade::Parts<TokioIo<PrefixedStream<S>>>) -> (S, Vec<u8>) {
    let (stream, unread) = parts.io.into_inner().into_parts();
    // Copied out, so hyper's whole read buffer is not kept for the connection's life. Hyper read
    // its buffer before whatever it left of the replayed head.
    let mut early = parts.read_buf.to_vec();
    drop(parts.read_buf);
    early.extend_from_slice(&unread);
    (stream, early)
}

/// Runs an upgraded connection whose stream is not plain TCP: TLS (its stream taken back from
/// hyper), or any other stream hyper serves.
async fn serve_other(config: Arc<Config>, upgraded: hyper::upgrade::Upgraded, opened: Result<Connection, Refusal>) {
    match upgraded.downcast::<TokioIo<PrefixedStream<TlsConnection>>>() {
        Ok(parts) => {
            let (stream, early) = unread(parts);
            serve_stream(&config, stream, early, opened).await;
        }
        Err(upgraded) => serve_stream(&config, TokioIo::new(upgraded), Vec::new(), opened).await,
    }
}

/// A connection task's rare continuation (refusal, TLS), boxed.
type RarePath = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;
