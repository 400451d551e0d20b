//! WebSocket transport: the upgrade at `/app/{key}`, then one task per connection that reads client
//! frames into the [`Connection`] and writes its outbox to the socket in batches.

use super::connection::{ClientQuery, Connection, Refusal};
use crate::hub::{CloseRequest, Drained, Frame};
use crate::protocol::frame;
use crate::state::Context;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{FutureExt, SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use std::sync::atomic::Ordering;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::{Duration, Instant, sleep_until, timeout};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

/// Read buffer per connection: client messages are small, so idle sockets stay cheap (larger
/// messages are read in several steps). Tungstenite zeroes this much before every read attempt.
const READ_BUFFER: usize = 1024;
/// Frames are buffered up to this size before a write; each batch is flushed at its end.
const WRITE_BUFFER: usize = 16 * 1024;
/// A socket whose writes stall this long is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// The WebSocket route (also served under `path_prefix` and with a trailing slash).
pub const ROUTE: &str = "/app/{key}";

/// `GET /app/{key}`: validates the upgrade and hands the socket to a connection task.
pub async fn upgrade(State(ctx): State<Context>, Path(key): Path<String>, mut req: Request) -> Response {
    let headers = req.headers();
    let Some(accept) = accept_key(headers) else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({"error": "expected a WebSocket upgrade request"})),
        )
            .into_response();
    };
    let query = ClientQuery::parse(req.uri().query());
    let on_upgrade = hyper::upgrade::on(&mut req);
    let task_ctx = ctx.clone();
    ctx.tasks.spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => return tracing::debug!(error = %e, "websocket upgrade failed"),
        };
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER)
            .write_buffer_size(WRITE_BUFFER)
            .max_message_size(Some(task_ctx.config.max_message_bytes))
            .max_frame_size(Some(task_ctx.config.max_message_bytes));
        // The plain TCP stream underneath, when it is one: no boxed I/O layer on every read and write.
        match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => {
                let (io, early) = (parts.io.into_inner(), parts.read_buf.to_vec());
                // Frames are written in whole batches; do not hold one back waiting for an ACK.
                if let Err(e) = io.set_nodelay(true) {
                    tracing::debug!(error = %e, "cannot set TCP_NODELAY");
                }
                let ws = if early.is_empty() {
                    WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await
                } else {
                    WebSocketStream::from_partially_read(io, early, Role::Server, Some(config)).await
                };
                serve(task_ctx, ws, &key, &query).await;
            }
            Err(upgraded) => {
                let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
                serve(task_ctx, ws, &key, &query).await;
            }
        }
    });
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

fn accept_key(headers: &HeaderMap) -> Option<String> {
    let has_token = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    if !has_token(header::CONNECTION, "upgrade") || !has_token(header::UPGRADE, "websocket") {
        return None;
    }
    if headers.get(header::SEC_WEBSOCKET_VERSION).and_then(|v| v.to_str().ok()) != Some("13") {
        return None;
    }
    let key = headers.get(header::SEC_WEBSOCKET_KEY)?;
    Some(derive_accept_key(key.as_bytes()))
}

/// What a connection task needs from its socket.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A Close frame; the reason is cut to the 123 bytes a control frame allows.
fn close_message(code: u16, reason: &str) -> Message {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Message::Close(Some(CloseFrame { code: CloseCode::from(code), reason: Utf8Bytes::from(&reason[..end]) }))
}

async fn refuse(mut ws: WebSocketStream<impl Io>, refusal: Refusal) {
    let _ = timeout(WRITE_TIMEOUT, async {
        ws.feed(Message::Text(refusal.frame())).await?;
        ws.send(close_message(refusal.code, &refusal.message)).await
    })
    .await;
}

/// Feeds `batch[*done..]` (then the close frame, if any) and flushes. `done` counts what was handed
/// to the socket, so an interrupted call can be resumed without repeating or losing a frame.
async fn write_from(
    ws: &mut WebSocketStream<impl Io>,
    batch: &[Frame],
    close: Option<&CloseRequest>,
    done: &mut usize,
) -> Result<(), WsError> {
    while let Some(f) = batch.get(*done) {
        ws.feed(Message::Text(f.clone())).await?;
        *done += 1;
    }
    if let Some(c) = close
        && *done == batch.len()
    {
        ws.feed(close_message(c.code, &c.reason)).await?;
        *done += 1;
    }
    ws.flush().await
}

/// Writes a drained batch; a socket that accepts nothing for [`WRITE_TIMEOUT`] fails.
async fn write_batch(ws: &mut WebSocketStream<impl Io>, batch: &[Frame], close: Option<&CloseRequest>) -> bool {
    let mut done = 0;
    // Nearly every write completes at once; only a stalled one arms the timer.
    if let Some(r) = write_from(ws, batch, close, &mut done).now_or_never() {
        return r.is_ok();
    }
    matches!(timeout(WRITE_TIMEOUT, write_from(ws, batch, close, &mut done)).await, Ok(Ok(())))
}

/// Runs one connection until the client leaves, the server closes it, or shutdown.
async fn serve(ctx: Context, mut ws: WebSocketStream<impl Io>, key: &str, query: &ClientQuery) {
    if ctx.is_draining() {
        return refuse(ws, Refusal { code: 4200, message: "Server is shutting down".into() }).await;
    }
    let activity = Duration::from_secs(ctx.config.activity_timeout);
    let pong_wait = Duration::from_secs(ctx.config.pong_timeout);
    let mut conn = match Connection::open(&ctx.hub, key, query, ctx.config.activity_timeout) {
        Ok(c) => c,
        Err(refusal) => return refuse(ws, refusal).await,
    };
    tracing::debug!(socket_id = conn.socket_id(), app = %conn.app().config.id, "connection opened");
    let outbox = conn.outbox().clone();
    let mut batch: Vec<Frame> = Vec::new();
    let mut last_seen = Instant::now();
    let mut pinged = false;
    let mut shutdown_sent = false;
    // Both futures live as long as the connection: a read does not touch the timer wheel (the timer
    // checks `last_seen` when it fires), and the shutdown waiter is registered once.
    let idle = sleep_until(last_seen + activity);
    let shutdown = ctx.shutdown.clone().cancelled_owned();
    tokio::pin!(idle, shutdown);
    loop {
        tokio::select! {
            biased;
            drained = outbox.next(&mut batch) => {
                let close = match drained { Drained::Close(c) => Some(c), Drained::Frames => None };
                let stats = conn.app().stats();
                stats.messages_out.fetch_add(batch.len() as u64, Ordering::Relaxed);
                stats.bytes_out.fetch_add(batch.iter().map(|f| f.len() as u64).sum(), Ordering::Relaxed);
                let written = write_batch(&mut ws, &batch, close.as_ref()).await;
                batch.clear();
                if close.is_some() || !written {
                    break;
                }
            }
            msg = ws.next() => {
                last_seen = Instant::now();
                pinged = false;
                match msg {
                    Some(Ok(Message::Text(text))) => {
                        let stats = conn.app().stats();
                        stats.messages_in.fetch_add(1, Ordering::Relaxed);
                        stats.bytes_in.fetch_add(text.len() as u64, Ordering::Relaxed);
                        conn.handle_text(text.as_str()).await;
                    }
                    Some(Ok(Message::Binary(_))) => {
                        outbox.push(Frame::from(frame::error(None, "Binary frames are not supported")));
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                    Some(Ok(Message::Close(_))) => {
                        // Answer the client's close frame (the library queued the reply) before leaving.
                        let _ = timeout(Duration::from_secs(1), ws.flush()).await;
                        break;
                    }
                    None => break,
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "websocket read failed");
                        if matches!(e, WsError::Capacity(_)) {
                            let _ = timeout(WRITE_TIMEOUT, ws.send(close_message(1009, "Message too big"))).await;
                        }
                        break;
                    }
                }
            }
            () = &mut idle => {
                let due = if pinged { last_seen + activity + pong_wait } else { last_seen + activity };
                if Instant::now() < due {
                    idle.as_mut().reset(due);
                } else if pinged {
                    outbox.close(None, 4201, "Pong reply not received");
                    idle.as_mut().reset(due + WRITE_TIMEOUT);
                } else {
                    outbox.push(Frame::from(frame::ping()));
                    pinged = true;
                    idle.as_mut().reset(last_seen + activity + pong_wait);
                }
            }
            () = &mut shutdown, if !shutdown_sent => {
                shutdown_sent = true;
                outbox.close(Some(Frame::from(frame::error(Some(4200), "Server is shutting down"))), 4200, "Server is shutting down");
            }
        }
    }
    tracing::debug!(socket_id = conn.socket_id(), "connection closed");
}
