//! The context every request handler and connection task shares.

use crate::app_store::SqlStore;
use crate::app_store::directory::Directory;
use crate::config::Config;
use crate::hub::{DebugFeed, Hub};
use crate::telemetry::metrics::Metrics;
use crate::webhooks::Webhooks;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Shared handles: state, settings, and the shutdown signal. Cheap to clone.
#[derive(Clone)]
pub struct Context {
    /// Channels, members, users.
    pub hub: Hub,
    /// Validated settings.
    pub config: Arc<Config>,
    /// Cancelled when the server starts shutting down.
    pub shutdown: CancellationToken,
    /// Tracks connection tasks so shutdown can wait for them.
    pub tasks: TaskTracker,
    /// Webhook delivery.
    pub webhooks: Arc<Webhooks>,
    /// Prometheus registry.
    pub metrics: Arc<Metrics>,
    /// Live feed of the debug console.
    pub debug: DebugFeed,
    /// The app store behind the hub's apps (apps inserted in its table are found on first use).
    pub apps: Arc<Directory>,
    draining: Arc<AtomicBool>,
    unready: Arc<AtomicBool>,
}

impl Context {
    /// Builds the context for a validated configuration.
    pub fn new(config: Config) -> Self {
        let webhooks = Arc::new(Webhooks::new(&config));
        let debug = DebugFeed::default();
        let store = SqlStore::from_config(&config).unwrap_or_else(|e| {
            tracing::error!(error = %e, "app store refused; serving the apps read at start-up only");
            None
        });
        Context {
            apps: Arc::new(Directory::new(store, std::time::Duration::from_secs(config.secret_grace_seconds))),
            hub: Hub::new(&config, &webhooks, &debug),
            debug,
            webhooks,
            metrics: Arc::new(Metrics::new(&config.metrics_prefix)),
            config: Arc::new(config),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            draining: Arc::new(AtomicBool::new(false)),
            unready: Arc::new(AtomicBool::new(false)),
        }
    }

    /// True once shutdown began: new connections are refused.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// False once a shutdown signal arrived (`/ready` answers 503), during the drain delay too, and
    /// while a clustered node cannot reach Redis.
    pub fn is_ready(&self) -> bool {
        !self.unready.load(Ordering::Acquire) && !self.is_draining() && self.hub.adapter().is_connected()
    }

    /// Flips readiness off; connections are still served and accepted.
    pub fn begin_drain(&self) {
        self.unready.store(true, Ordering::Release);
    }

    /// Flips readiness off and tells every connection to close with 4200.
    pub fn begin_shutdown(&self) {
        self.unready.store(true, Ordering::Release);
        if !self.draining.swap(true, Ordering::AcqRel) {
            // Before any connection closes, so their departures are handed over, not announced.
            self.hub.adapter().begin_handover();
        }
        self.shutdown.cancel();
    }
}
