//! The node's background tasks, started with the server and stopped after it: the keepalive
//! sweep, the app store's watcher, cache purging, the metrics recorder's upkeep and listener, JWKS
//! reloads, certificate reloads and the admin API's own listener.

use crate::api::ApiError;
use crate::api::auth_endpoint::AuthApps;
use crate::state::Context;
use crate::tls::Tls;
use axum::Router;
use axum::routing::get;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Duration;

/// The running background tasks.
pub struct Tasks(Vec<JoinHandle<()>>);

impl Tasks {
    /// Starts every background task the settings ask for; `metrics` and `admin` are the listeners
    /// of their own ports, when bound.
    pub fn spawn(
        ctx: &Context,
        auth: &Arc<AuthApps>,
        tls: Option<&Tls>,
        metrics: Option<TcpListener>,
        admin: Option<TcpListener>,
    ) -> Tasks {
        let every = crate::app_store::watch::Intervals {
            reload: Duration::from_secs(ctx.config.app_store_reload_seconds),
            poll: Duration::from_secs(ctx.config.app_store_poll_seconds),
        };
        let mut tasks = vec![
            tokio::spawn(purge_caches(ctx.clone())),
            tokio::spawn(metrics_upkeep(ctx.clone())),
            tokio::spawn(watch_jwks(auth.clone())),
            tokio::spawn(crate::transport::keepalive::run_supervised(ctx.clone())),
            tokio::spawn(crate::app_store::watch::run(ctx.apps.clone(), ctx.hub.clone(), every, ctx.shutdown.clone())),
        ];
        tasks.extend(tls.map(|tls| tokio::spawn(tls.certificates().watch())));
        tasks.extend(metrics.map(|l| tokio::spawn(serve_metrics(l, ctx.clone()))));
        tasks.extend(admin.map(|l| tokio::spawn(crate::admin_api::serve(l, ctx.clone()))));
        Tasks(tasks)
    }

    /// Stops them all.
    pub fn abort(self) {
        for t in self.0 {
            t.abort();
        }
    }
}

/// `GET /metrics` on its own listener.
async fn serve_metrics(listener: TcpListener, ctx: Context) {
    let app = Router::new()
        .route(
            "/metrics",
            get(|axum::extract::State(ctx): axum::extract::State<Context>| async move {
                ctx.metrics.render(&ctx.hub, ctx.webhooks.stats())
            }),
        )
        .fallback(|| async { ApiError::NotFound("Not found".into()) })
        .with_state(ctx.clone());
    let stop = ctx.shutdown.clone();
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(async move { stop.cancelled().await }).await {
        tracing::error!(error = %e, "metrics listener failed");
    }
}

/// Reloads changed JWKS files every few seconds, and all of them on SIGHUP.
async fn watch_jwks(auth: Arc<AuthApps>) {
    if auth.is_empty() {
        return;
    }
    let mut hup = crate::signals::Hangup::new();
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = tick.tick() => auth.refresh(false),
            () = hup.recv() => auth.refresh(true),
        }
    }
}

/// How often the metrics recorder folds its latency samples into buckets.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

/// Runs the metrics recorder's upkeep every [`METRICS_UPKEEP`].
async fn metrics_upkeep(ctx: Context) {
    let mut tick = tokio::time::interval(METRICS_UPKEEP);
    loop {
        tick.tick().await;
        ctx.metrics.upkeep();
    }
}

async fn purge_caches(ctx: Context) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        for app in ctx.hub.apps() {
            app.cache().purge_expired();
            app.history().purge_expired(app.history_keep());
        }
    }
}
