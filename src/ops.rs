//! Operational endpoints on the main port: `/up`, `/ready`, `/usage`.

use crate::state::Context;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use std::sync::atomic::Ordering;

/// Operational routes as `(method, path)`; all are `GET`.
pub const ROUTES: &[(&str, &str)] = &[("GET", "/up"), ("GET", "/ready"), ("GET", "/usage")];

/// The router for [`ROUTES`].
pub fn router() -> Router<Context> {
    Router::new().route("/up", get(up)).route("/ready", get(ready)).route("/usage", get(usage))
}

/// `GET /up`: the process is alive.
pub async fn up() -> &'static str {
    "OK"
}

/// `GET /ready`: 200 while serving, 503 from the first shutdown signal on (drain delay included).
pub async fn ready(State(ctx): State<Context>) -> impl IntoResponse {
    if !ctx.is_ready() {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "ready": false })))
    } else {
        (StatusCode::OK, Json(json!({ "ready": true })))
    }
}

/// `GET /usage`: memory and connection counts.
pub async fn usage(State(ctx): State<Context>) -> Json<serde_json::Value> {
    let stats = ctx.hub.stats();
    let hooks = ctx.webhooks.stats();
    let connections: u64 = ctx.hub.apps().map(|a| a.connection_count()).sum();
    Json(json!({
        "memory": { "rss": resident_bytes() },
        "connections": connections,
        "http_sessions": ctx.http_sessions.len(),
        "connections_opened": stats.connections_opened,
        "connections_closed": stats.connections_closed,
        "outbox_overflows": stats.outbox_overflows,
        "events_published": stats.events_published,
        "deliveries": stats.deliveries,
        "client_events_rate_limited": stats.rate_limited,
        "webhooks": {
            "sent": hooks.sent.load(Ordering::Relaxed),
            "retried": hooks.retried.load(Ordering::Relaxed),
            "failed": hooks.failed.load(Ordering::Relaxed),
            "dead_lettered": hooks.dead_lettered.load(Ordering::Relaxed),
            "lost": hooks.lost.load(Ordering::Relaxed),
        },
    }))
}

/// Resident set size of this process in bytes (Linux `/proc/self/statm`; 0 elsewhere).
pub fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()))
        .map_or(0, |pages| pages * 4096)
}
