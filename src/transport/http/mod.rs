//! HTTP fallback transports for clients whose WebSockets are blocked: pusher-js `xhr_streaming` and
//! `xhr_polling`, under `{http_path}/app/{key}/{server}/{session}/` on the main port.
//!
//! A session is a full Pusher [`Connection`](super::connection::Connection); see [`session`] for how
//! its outbox reaches the receive requests and [`framing`] for the wire format.

pub mod framing;
pub mod session;

pub use session::Sessions;

use crate::state::Context;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRef, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use session::{Kind, Opened};
use std::convert::Infallible;

/// Fallback routes as `(method, path)` with the default `http_path` (`/pusher`).
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/pusher/app/{key}/{server}/{session}/xhr_streaming"),
    ("OPTIONS", "/pusher/app/{key}/{server}/{session}/xhr_streaming"),
    ("POST", "/pusher/app/{key}/{server}/{session}/xhr"),
    ("OPTIONS", "/pusher/app/{key}/{server}/{session}/xhr"),
    ("POST", "/pusher/app/{key}/{server}/{session}/xhr_send"),
    ("OPTIONS", "/pusher/app/{key}/{server}/{session}/xhr_send"),
];

/// Longest `{server}` or `{session}` path segment accepted.
const MAX_SEGMENT: usize = 64;

/// What the fallback handlers share: the context and this node's sessions (owned here: nothing
/// else needs them).
#[derive(Clone)]
struct Fallback {
    ctx: Context,
    sessions: Sessions,
}

impl FromRef<Fallback> for Context {
    fn from_ref(f: &Fallback) -> Context {
        f.ctx.clone()
    }
}

impl FromRef<Fallback> for Sessions {
    fn from_ref(f: &Fallback) -> Sessions {
        f.sessions.clone()
    }
}

/// The fallback router, under the configured `http_path`, with the registry of its sessions.
pub fn router<S>(ctx: &Context) -> Router<S> {
    let base = format!("{}/app/{{key}}/{{server}}/{{session}}", ctx.config.http_path);
    // One xhr_send body carries JSON-encoded messages, so escaping may double their size.
    let send_limit = ctx.config.max_message_bytes * 2 + 1024;
    Router::new()
        .route(&format!("{base}/xhr_streaming"), post(receive::<true>).options(preflight))
        .route(&format!("{base}/xhr"), post(receive::<false>).options(preflight))
        .route(&format!("{base}/xhr_send"), post(send).options(preflight))
        .layer(DefaultBodyLimit::max(send_limit))
        .with_state(Fallback { ctx: ctx.clone(), sessions: Sessions::default() })
}

type SessionPath = Path<(String, String, String)>;

/// A valid `{server}` or `{session}` segment: non-empty, short, without `.`.
fn valid_segment(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_SEGMENT && !s.contains(['.', '/'])
}

/// Adds the CORS headers of a fallback response, echoing the request's `Origin` when it has one.
fn cors(req: &HeaderMap, res: &mut HeaderMap) {
    match req.get(header::ORIGIN) {
        Some(origin) if origin.as_bytes() != b"null" => {
            res.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            res.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        }
        _ => {
            res.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        }
    }
    res.insert(header::VARY, HeaderValue::from_static("Origin"));
}

fn plain(req: &HeaderMap, status: StatusCode, text: &'static str) -> Response {
    let mut res = (status, text).into_response();
    cors(req, res.headers_mut());
    res
}

/// `OPTIONS` on a fallback path: the CORS preflight answer.
async fn preflight(headers: HeaderMap) -> Response {
    let mut res = StatusCode::NO_CONTENT.into_response();
    let h = res.headers_mut();
    cors(&headers, h);
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST, OPTIONS"));
    let allow = headers
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("Content-Type"));
    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, allow);
    h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400"));
    res
}

/// `POST .../xhr_streaming` (`STREAMING`): opens or re-attaches a session and streams its frames;
/// `POST .../xhr`: opens a session or returns its next batch of frames.
async fn receive<const STREAMING: bool>(
    State(ctx): State<Context>,
    State(sessions): State<Sessions>,
    Path((key, server, conn)): SessionPath,
    uri: Uri,
    req_headers: HeaderMap,
) -> Response {
    let kind = if STREAMING { Kind::Streaming } else { Kind::Polling };
    let headers = &req_headers;
    if !valid_segment(&server) || !valid_segment(&conn) {
        return plain(headers, StatusCode::NOT_FOUND, "Session not found");
    }
    let session = format!("{server}/{conn}");
    let origin = headers.get(header::ORIGIN).map(|v| v.to_str().unwrap_or_default());
    let body = match sessions.receive(&ctx, &key, &session, kind, uri.query(), origin).await {
        Opened::Body(rx) => Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|chunk| (Ok::<Bytes, Infallible>(chunk), rx))
        })),
        Opened::Refused(bytes) => Body::from(bytes),
    };
    let mut res = Response::new(body);
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/javascript; charset=UTF-8"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache, no-transform, must-revalidate, max-age=0"),
    );
    // Asks reverse proxies such as nginx not to buffer the stream.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    cors(headers, h);
    res
}

/// `POST .../xhr_send`: a JSON array of Pusher messages (each a JSON string) for the session.
async fn send(
    State(ctx): State<Context>,
    State(sessions): State<Sessions>,
    Path((key, server, conn)): SessionPath,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let session = format!("{server}/{conn}");
    if !valid_segment(&server) || !valid_segment(&conn) || !sessions.contains(&key, &session) {
        return plain(&headers, StatusCode::NOT_FOUND, "Session not found");
    }
    let messages = match parse_send_body(&body, ctx.config.max_message_bytes) {
        Ok(messages) => messages,
        Err(SendBodyError::Empty) => return plain(&headers, StatusCode::BAD_REQUEST, "Payload expected."),
        Err(SendBodyError::Broken) => return plain(&headers, StatusCode::BAD_REQUEST, "Broken JSON encoding."),
        Err(SendBodyError::TooBig) => {
            // pusher-js ignores xhr_send answers: close the session, as a WebSocket gets 1009.
            sessions.close(&key, &session, 1009, "Message too big").await;
            return plain(&headers, StatusCode::PAYLOAD_TOO_LARGE, "Message too big.");
        }
    };
    if !sessions.send(&key, &session, messages).await {
        return plain(&headers, StatusCode::NOT_FOUND, "Session not found");
    }
    plain(&headers, StatusCode::NO_CONTENT, "")
}

/// Why an `xhr_send` body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendBodyError {
    /// No body (400).
    Empty,
    /// Not a JSON array of strings (400).
    Broken,
    /// A message longer than `max_message_bytes` (413, and the session closes with 1009).
    TooBig,
}

/// Reads an `xhr_send` body: a JSON array of Pusher messages, each a JSON string no longer than
/// `max_message_bytes` (public for the fuzz targets).
pub fn parse_send_body(body: &[u8], max_message_bytes: usize) -> Result<Vec<String>, SendBodyError> {
    if body.is_empty() {
        return Err(SendBodyError::Empty);
    }
    let messages = serde_json::from_slice::<Vec<String>>(body).map_err(|_| SendBodyError::Broken)?;
    if messages.iter().any(|m| m.len() > max_message_bytes) {
        return Err(SendBodyError::TooBig);
    }
    Ok(messages)
}
