//! WebSocket transport: the upgrade at `/app/{key}`, then one task per connection that reads client
//! frames into the [`Connection`] and writes its outbox to the socket in batches.

use super::connection::{ClientQuery, Connection, Refusal};
use crate::hub::{Drained, Frame};
use crate::protocol::frame;
use crate::state::Context;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use std::sync::atomic::Ordering;
use tokio::time::{Duration, Instant, sleep_until, timeout};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// Read buffer per connection: client messages are small, so idle sockets stay cheap.
const READ_BUFFER: usize = 4 * 1024;
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
        match on_upgrade.await {
            Ok(upgraded) => {
                let config = WebSocketConfig::default()
                    .read_buffer_size(READ_BUFFER)
                    .write_buffer_size(WRITE_BUFFER)
                    .max_message_size(Some(task_ctx.config.max_message_bytes))
                    .max_frame_size(Some(task_ctx.config.max_message_bytes));
                let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
                serve(task_ctx, ws, &key, &query).await;
            }
            Err(e) => tracing::debug!(error = %e, "websocket upgrade failed"),
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

type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// A Close frame; the reason is cut to the 123 bytes a control frame allows.
fn close_message(code: u16, reason: &str) -> Message {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Message::Close(Some(CloseFrame { code: CloseCode::from(code), reason: Utf8Bytes::from(&reason[..end]) }))
}

async fn refuse(mut ws: Socket, refusal: Refusal) {
    let _ = timeout(WRITE_TIMEOUT, async {
        ws.feed(Message::Text(refusal.frame())).await?;
        ws.send(close_message(refusal.code, &refusal.message)).await
    })
    .await;
}

/// Runs one connection until the client leaves, the server closes it, or shutdown.
async fn serve(ctx: Context, ws: Socket, key: &str, query: &ClientQuery) {
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
    let (mut sink, mut stream) = ws.split();
    let mut batch: Vec<Frame> = Vec::new();
    let mut last_seen = Instant::now();
    let mut pinged = false;
    let mut shutdown_sent = false;
    loop {
        let deadline = if pinged { last_seen + activity + pong_wait } else { last_seen + activity };
        tokio::select! {
            biased;
            drained = outbox.next(&mut batch) => {
                let close = match drained { Drained::Close(c) => Some(c), Drained::Frames => None };
                let stats = conn.app().stats();
                stats.messages_out.fetch_add(batch.len() as u64, Ordering::Relaxed);
                stats.bytes_out.fetch_add(batch.iter().map(|f| f.len() as u64).sum(), Ordering::Relaxed);
                let written = timeout(WRITE_TIMEOUT, async {
                    for f in batch.drain(..) {
                        sink.feed(Message::Text(f)).await?;
                    }
                    match &close {
                        Some(c) => sink.send(close_message(c.code, &c.reason)).await,
                        None => sink.flush().await,
                    }
                })
                .await;
                batch.clear();
                if close.is_some() || !matches!(written, Ok(Ok(()))) {
                    break;
                }
            }
            msg = stream.next() => {
                last_seen = Instant::now();
                pinged = false;
                match msg {
                    Some(Ok(Message::Text(text))) => {
                        let stats = conn.app().stats();
                        stats.messages_in.fetch_add(1, Ordering::Relaxed);
                        stats.bytes_in.fetch_add(text.len() as u64, Ordering::Relaxed);
                        conn.handle_text(text.as_str());
                    }
                    Some(Ok(Message::Binary(_))) => {
                        outbox.push(Frame::from(frame::error(None, "Binary frames are not supported")));
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                    Some(Ok(Message::Close(_))) => {
                        // Answer the client's close frame (the library queued the reply) before leaving.
                        let _ = timeout(Duration::from_secs(1), sink.close()).await;
                        break;
                    }
                    None => break,
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "websocket read failed");
                        if matches!(e, tokio_tungstenite::tungstenite::Error::Capacity(_)) {
                            let _ = timeout(WRITE_TIMEOUT, sink.send(close_message(1009, "Message too big"))).await;
                        }
                        break;
                    }
                }
            }
            () = sleep_until(deadline) => {
                if pinged {
                    outbox.close(None, 4201, "Pong reply not received");
                } else {
                    outbox.push(Frame::from(frame::ping()));
                    pinged = true;
                }
            }
            () = ctx.shutdown.cancelled(), if !shutdown_sent => {
                shutdown_sent = true;
                outbox.close(Some(Frame::from(frame::error(Some(4200), "Server is shutting down"))), 4200, "Server is shutting down");
            }
        }
    }
    tracing::debug!(socket_id = conn.socket_id(), "connection closed");
}
