//! The opt-in debug console: a page at `/debug` (admin token required) showing, per app and live,
//! connections and their close codes, subscriptions and refused subscriptions, channels occupied
//! and vacated, presence members with their `user_info`, REST publishes and refused REST calls,
//! client events and webhook deliveries (one row per batch, updated by each attempt); with
//! search, filters, pause and clear, and a form to publish a test event. Fed by server-sent
//! events; no build step. Nothing is built for it while no console is open.

use crate::hub::{Frame, preview};
use crate::protocol::{channel, frame};
use crate::state::Context;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::sync::atomic::Ordering;

/// The page: plain HTML and its script, no build step.
const PAGE: &str = concat!(include_str!("console.html"), include_str!("console.js"), "</script>\n</body>\n</html>\n");

/// Console routes (`GET`, except the publish form), listed for the OpenAPI check.
pub const ROUTES: &[(&str, &str)] =
    &[("GET", "/debug"), ("GET", "/debug/events"), ("GET", "/debug/state"), ("POST", "/debug/publish")];

#[derive(Deserialize)]
struct TokenQuery {
    #[serde(default)]
    token: String,
}

fn authorized(ctx: &Context, token: &str) -> bool {
    let want = ctx.config.debug_console_token.as_bytes();
    !want.is_empty() && token.len() == want.len() && token.bytes().zip(want).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

fn denied() -> Response {
    (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "a valid debug console token is required"}))).into_response()
}

/// The console routes; empty when no `debug_console_token` is configured.
pub fn router(ctx: &Context) -> Router<Context> {
    if ctx.config.debug_console_token.is_empty() {
        return Router::new();
    }
    Router::new()
        .route("/debug", get(page))
        .route("/debug/events", get(events))
        .route("/debug/state", get(state))
        .route("/debug/publish", post(publish))
}

async fn page(State(ctx): State<Context>, Query(q): Query<TokenQuery>) -> Response {
    if !authorized(&ctx, &q.token) {
        return denied();
    }
    ([(header::CACHE_CONTROL, "no-store")], Html(PAGE)).into_response()
}

async fn events(State(ctx): State<Context>, Query(q): Query<TokenQuery>) -> Response {
    if !authorized(&ctx, &q.token) {
        return denied();
    }
    let rx = ctx.debug.subscribe();
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let item = match rx.recv().await {
            Ok(text) => Event::default().data(text),
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                Event::default().data(json!({"type": "skipped", "count": n}).to_string())
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok::<Event, Infallible>(item), rx))
    });
    sse(stream).into_response()
}

fn sse(stream: impl Stream<Item = Result<Event, Infallible>> + Send + 'static) -> impl IntoResponse {
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn state(State(ctx): State<Context>, Query(q): Query<TokenQuery>) -> Response {
    if !authorized(&ctx, &q.token) {
        return denied();
    }
    let apps: Vec<Value> = ctx
        .hub
        .apps()
        .iter()
        .map(|app| {
            let channels: Vec<Value> = app
                .channels()
                .with_prefix("")
                .into_iter()
                .map(|(name, s)| {
                    let members = if s.user_count > 0 { app.channels().member_ids(&name) } else { Vec::new() };
                    json!({"name": name, "subscription_count": s.subscription_count, "members": members})
                })
                .collect();
            json!({
                "id": app.id(),
                "key": app.config().key,
                "connections": app.connections().count(),
                "stats": app.stats().snapshot(),
                "channels": channels,
            })
        })
        .collect();
    let w = ctx.webhooks.stats();
    let webhooks = json!({
        "sent": w.sent.load(Ordering::Relaxed),
        "retried": w.retried.load(Ordering::Relaxed),
        "failed": w.failed.load(Ordering::Relaxed),
        "dead_lettered": w.dead_lettered.load(Ordering::Relaxed),
        "lost": w.lost.load(Ordering::Relaxed),
    });
    axum::Json(json!({"apps": apps, "webhooks": webhooks})).into_response()
}

#[derive(Deserialize)]
struct PublishForm {
    app_id: String,
    channel: String,
    event: String,
    #[serde(default)]
    data: String,
}

async fn publish(State(ctx): State<Context>, Query(q): Query<TokenQuery>, body: axum::body::Bytes) -> Response {
    // The token first: nothing about the body is told to a caller without it.
    if !authorized(&ctx, &q.token) {
        return denied();
    }
    let p: PublishForm = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => {
            let error = format!("expected a JSON object with app_id, channel, event and data: {e}");
            return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": error}))).into_response();
        }
    };
    let Some(app) = ctx.hub.app_by_id(&p.app_id) else {
        return (StatusCode::NOT_FOUND, axum::Json(json!({"error": "unknown app"}))).into_response();
    };
    if let Err(e) = channel::validate_name(&p.channel, app.config().max_channel_name_length, true) {
        return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": e.to_string()}))).into_response();
    }
    if p.event.is_empty() || p.event.starts_with("pusher") || p.data.len() > app.config().max_event_data_bytes {
        return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "invalid event name or data too large"})))
            .into_response();
    }
    let f = Frame::from(frame::channel_event(&p.event, &p.channel, &p.data));
    let delivered = app.publish(&p.channel, &f, None);
    app.debug(
        || json!({"type": "debug_publish", "channel": p.channel, "event": p.event, "data": preview(&p.data, 200)}),
    );
    axum::Json(json!({"delivered": delivered})).into_response()
}
