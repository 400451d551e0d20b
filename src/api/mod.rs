//! The signed REST API, as the official Pusher server SDKs call it, served by hyper and axum like
//! every other HTTP request on the public port.

pub mod auth;
pub mod auth_endpoint;
mod channels;
mod error;
mod events;
mod history;
mod refusals;
mod users;

pub use error::ApiError;

use crate::state::Context;
use auth_endpoint::AuthApps;
use axum::Router;
use axum::extract::FromRef;
use axum::http::Method;
use axum::routing::{MethodRouter, get, options, post};
use std::sync::Arc;

/// One REST route: its method and path template, and the handler serving it.
pub struct Route {
    /// HTTP method.
    pub method: &'static str,
    /// Path template in OpenAPI/axum syntax.
    pub path: &'static str,
    handler: fn() -> MethodRouter<Api>,
}

/// Every REST route. The router is built from this list and the OpenAPI document is checked against it.
pub const ROUTES: &[Route] = &[
    Route { method: "POST", path: "/apps/{app_id}/events", handler: || post(events::trigger) },
    Route { method: "POST", path: "/apps/{app_id}/batch_events", handler: || post(events::trigger_batch) },
    Route { method: "GET", path: "/apps/{app_id}/channels", handler: || get(channels::list) },
    Route { method: "GET", path: "/apps/{app_id}/channels/{channel_name}", handler: || get(channels::show) },
    Route { method: "GET", path: "/apps/{app_id}/channels/{channel_name}/users", handler: || get(channels::users) },
    Route { method: "GET", path: "/apps/{app_id}/channels/{channel_name}/history", handler: || get(history::read) },
    Route {
        method: "POST",
        path: "/apps/{app_id}/users/{user_id}/terminate_connections",
        handler: || post(users::terminate_connections),
    },
    Route {
        method: "POST",
        path: "/users/{user_id}/terminate_connections",
        handler: || post(users::terminate_connections_by_key),
    },
    Route { method: "POST", path: "/apps/{app_id}/auth", handler: || post(auth_endpoint::channel_auth) },
    Route { method: "OPTIONS", path: "/apps/{app_id}/auth", handler: || options(auth_endpoint::preflight) },
    Route { method: "POST", path: "/apps/{app_id}/user-auth", handler: || post(auth_endpoint::user_auth) },
    Route { method: "OPTIONS", path: "/apps/{app_id}/user-auth", handler: || options(auth_endpoint::preflight) },
];

/// What the REST handlers share: the context, and the token verifiers of the auth endpoints
/// (owned here: nothing else reads them).
#[derive(Clone)]
struct Api {
    ctx: Context,
    auth: Arc<AuthApps>,
}

impl FromRef<Api> for Context {
    fn from_ref(a: &Api) -> Context {
        a.ctx.clone()
    }
}

impl FromRef<Api> for Arc<AuthApps> {
    fn from_ref(a: &Api) -> Arc<AuthApps> {
        a.auth.clone()
    }
}

/// The REST router; every call is counted by endpoint template and status. `auth` holds the
/// token verifiers (the server reloads their JWKS files).
pub fn router<S>(ctx: &Context, auth: Arc<AuthApps>) -> Router<S> {
    ROUTES
        .iter()
        .fold(Router::new(), |r, route| r.route(route.path, (route.handler)()))
        .layer(axum::middleware::from_fn_with_state(ctx.clone(), count_call))
        .with_state(Api { ctx: ctx.clone(), auth })
}

async fn count_call(
    axum::extract::State(ctx): axum::extract::State<Context>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let endpoint = req.extensions().get::<axum::extract::MatchedPath>().map_or_else(
        || "unmatched".to_string(),
        |p| {
            let m = req.method();
            let method = if [Method::GET, Method::POST, Method::OPTIONS].contains(m) { m.as_str() } else { "OTHER" };
            format!("{method} {}", p.as_str())
        },
    );
    let started = tokio::time::Instant::now();
    let watched = ctx.debug.watching().then(|| (req.method().clone(), req.uri().clone()));
    let res = next.run(req).await;
    ctx.metrics.http_call(&endpoint, res.status().as_u16(), started.elapsed().as_secs_f64());
    match watched {
        Some(request) if res.status().as_u16() >= 400 => refusals::report_refusal(&ctx, request, res).await,
        _ => res,
    }
}
