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

/// `GET /ready`: 200 while serving; 503 from the first shutdown signal on (drain delay included),
/// and while a clustered node cannot reach Redis (it keeps serving its own clients meanwhile).
/// With a database app store, says whether the store is reachable.
pub async fn ready(State(ctx): State<Context>) -> impl IntoResponse {
    let adapter = ctx.hub.adapter();
    let adapter = adapter.is_clustered().then(|| if adapter.is_connected() { "connected" } else { "disconnected" });
    // A store that cannot be read does not make the node unready: it serves its apps from memory.
    let store = ctx.apps.store().map(|_| if ctx.apps.is_reachable() { "reachable" } else { "unreachable" });
    let body = |ready: bool| {
        let mut body = json!({ "ready": ready });
        if let Some(state) = adapter {
            body["adapter"] = json!(state);
        }
        if let Some(state) = store {
            body["app_store"] = json!(state);
        }
        body
    };
    if ctx.is_ready() {
        (StatusCode::OK, Json(body(true)))
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(body(false)))
    }
}

/// `GET /usage`: memory and connection counts.
pub async fn usage(State(ctx): State<Context>) -> Json<serde_json::Value> {
    let stats = ctx.hub.stats();
    let hooks = ctx.webhooks.stats();
    let connections: u64 = ctx.hub.apps().iter().map(|a| a.connections().count()).sum();
    let a = ctx.hub.adapter();
    let adapter = match a.stats() {
        Some(s) => {
            let r = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
            json!({
                "kind": a.kind(),
                "node": ctx.hub.node_id(),
                "connected": a.is_connected(),
                "published": r(&s.published),
                "received": r(&s.received),
                "errors": r(&s.errors),
                "reconnects": r(&s.reconnects),
                "dropped": r(&s.dropped),
            })
        }
        None => json!({ "kind": a.kind() }),
    };
    let app_store = match ctx.apps.store() {
        Some(store) => json!({
            "kind": ctx.config.app_store,
            "apps": served_apps(&ctx),
            "queries": store.queries(),
            "reachable": ctx.apps.is_reachable(),
        }),
        None => json!({ "kind": "config", "apps": served_apps(&ctx) }),
    };
    Json(json!({
        "adapter": adapter,
        "app_store": app_store,
        "memory": { "rss": crate::telemetry::resident_bytes() },
        "connections": connections,
        "http_sessions": stats.http_sessions,
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

/// How many apps this node serves.
fn served_apps(ctx: &Context) -> usize {
    ctx.hub.apps().len()
}
