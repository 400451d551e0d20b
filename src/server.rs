//! Binds the listener, assembles the router, runs until shutdown and drains connections.

use crate::api::{self, ApiError};
use crate::ops;
use crate::state::Context;
use crate::transport::{http, ws};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use std::future::Future;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio::time::Duration;

/// How long connections get to say goodbye after shutdown begins.
const DRAIN_GRACE: Duration = Duration::from_secs(5);

/// The full HTTP router: WebSocket endpoint, REST API, operational endpoints, JSON 404s.
pub fn router(ctx: Context) -> Router {
    let prefix = ctx.config.path_prefix.clone();
    let mut r = Router::new()
        .route(ws::ROUTE, get(ws::upgrade))
        .route(&format!("{}/", ws::ROUTE), get(ws::upgrade))
        .merge(api::router())
        .merge(ops::router())
        .merge(http::router(&ctx));
    if !prefix.is_empty() {
        r = r.route(&format!("{prefix}{}", ws::ROUTE), get(ws::upgrade));
    }
    r.fallback(|| async { ApiError::NotFound("Not found".into()) })
        .layer(DefaultBodyLimit::max(ctx.config.max_request_bytes))
        .with_state(ctx)
}

/// A server bound to its address, ready to run.
pub struct Server {
    listener: TcpListener,
    ctx: Context,
}

impl Server {
    /// Binds `host:port` from the configuration (port 0 picks a free port).
    pub async fn bind(ctx: Context) -> std::io::Result<Self> {
        let listener = TcpListener::bind((ctx.config.host.as_str(), ctx.config.port)).await?;
        Ok(Server { listener, ctx })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The shared context (for tests and embedding).
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// Serves until `signal` resolves, then tells every client to reconnect (4200) and waits for the
    /// connection tasks to finish, at most a short grace period.
    pub async fn run(self, signal: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let ctx = self.ctx.clone();
        let purge = tokio::spawn(purge_caches(ctx.clone()));
        let stop = ctx.clone();
        let served = axum::serve(self.listener, router(ctx.clone()))
            .with_graceful_shutdown(async move {
                tokio::select! {
                    () = signal => stop.begin_shutdown(),
                    () = stop.shutdown.cancelled() => {}
                }
            })
            .await;
        ctx.begin_shutdown();
        ctx.tasks.close();
        if tokio::time::timeout(DRAIN_GRACE, ctx.tasks.wait()).await.is_err() {
            tracing::warn!("some connections did not close within the grace period");
        }
        purge.abort();
        served
    }
}

async fn purge_caches(ctx: Context) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        for app in ctx.hub.apps() {
            app.purge_expired_cache();
        }
    }
}
