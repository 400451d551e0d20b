//! Configuration: an optional TOML file, then `SINEW_*` environment overrides, then validation.
//!
//! Every top-level key `foo` can be overridden by `SINEW_FOO`; every app key `bar` by `SINEW_APP_BAR`,
//! which applies to the first app (the development app when the file defines none).
//!
//! Files: this one holds [`Config`] (the server-wide settings), loading and validation; `app.rs`
//! [`AppConfig`] with its defaults and checks; `webhooks.rs` the webhook settings and endpoints;
//! `env.rs` the `SINEW_*` overrides.

mod app;
mod env;
mod origins;
mod store;
mod topology;
mod webhooks;

pub use app::AppConfig;
pub use topology::{SentinelSettings, Topology};
pub use webhooks::{WEBHOOK_EVENTS, WebhookSettings, WebhookTarget};

use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::Path;

/// Seconds in an hour, for the bounds of durations.
const HOUR: u64 = 3600;
/// Seconds in a day.
const DAY: u64 = 24 * HOUR;

/// Why a configuration was refused; each message names the offending key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The path given.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or a key is unknown or has the wrong type.
    #[error("invalid config: {0}")]
    Parse(String),
    /// An environment variable has a value of the wrong type.
    #[error("invalid value for {var}: {reason}")]
    Env {
        /// The variable name.
        var: String,
        /// What was expected.
        reason: String,
    },
    /// A key has a value that is not allowed.
    #[error("invalid config key `{key}`: {reason}")]
    Invalid {
        /// The key, e.g. `apps[0].key`.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

/// The error for a key with a value that is not allowed.
fn invalid(key: String, reason: &str) -> ConfigError {
    ConfigError::Invalid { key, reason: reason.into() }
}

/// Server-wide settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to bind.
    pub host: String,
    /// Port for WebSocket and REST (0 picks a free port).
    pub port: u16,
    /// PEM certificate chain; with `tls_key`, the main port speaks TLS only (`wss://`, `https://`).
    /// Both files are read again when they change and on SIGHUP.
    pub tls_cert: String,
    /// PEM private key for `tls_cert`.
    pub tls_key: String,
    /// Optional prefix before `/app/{key}` (pusher-js `wsPath`).
    pub path_prefix: String,
    /// Seconds of client silence before the server pings; sent to clients as `activity_timeout`.
    pub activity_timeout: u64,
    /// Seconds to wait for any frame after a server ping before closing with 4201.
    pub pong_timeout: u64,
    /// Log filter (tracing `EnvFilter` syntax).
    pub log: String,
    /// `pretty` or `json`.
    pub log_format: String,
    /// Largest WebSocket message accepted from a client, in bytes.
    pub max_message_bytes: usize,
    /// Largest REST request body, in bytes.
    pub max_request_bytes: usize,
    /// Messages a connection may have queued before it is disconnected with 4100.
    pub outbox_max_messages: usize,
    /// Bytes a connection may have queued before it is disconnected with 4100.
    pub outbox_max_bytes: usize,
    /// Admin token of the debug console at `/debug?token=...` (empty: the console is off).
    pub debug_console_token: String,
    /// Seconds connections get to close (after `pusher:error` 4200) once shutdown begins.
    pub shutdown_grace_seconds: u64,
    /// Seconds between the first SIGTERM/SIGINT and the start of the shutdown: `/ready` answers 503
    /// while connections are still served and accepted, so a load balancer can stop routing here.
    pub shutdown_drain_seconds: u64,
    /// Serve Prometheus metrics at `/metrics` on `metrics_port`.
    pub metrics_enabled: bool,
    /// Address for the metrics listener (empty: same as `host`).
    pub metrics_host: String,
    /// Port for `/metrics` (0 picks a free port).
    pub metrics_port: u16,
    /// Prefix of every metric name.
    pub metrics_prefix: String,
    /// Webhook delivery settings (the endpoints themselves are per app).
    pub webhooks: WebhookSettings,
    /// Path prefix of the HTTP fallback endpoints (pusher-js `httpPath`).
    pub http_path: String,
    /// Seconds of idleness before an HTTP fallback receiver gets an `h` heartbeat (below 30).
    pub http_heartbeat_interval: u64,
    /// Seconds an HTTP fallback session lives without a receive request attached.
    pub http_session_timeout: u64,
    /// `local` (one node, the default), `redis` (many nodes sharing one Redis) or `nats` (channel
    /// traffic over NATS, cluster state in Redis).
    pub adapter: String,
    /// Redis URL for `adapter = "redis"` (`redis://[user:pass@]host:port[/db]`, `rediss://` for TLS,
    /// `redis+sentinel://[user:pass@]host:port,.../master[/db]` behind Sentinels).
    pub redis_url: String,
    /// `redis_url` lists the seed nodes of a Redis Cluster (comma-separated): cluster state then
    /// lives in one hash slot and channel traffic uses sharded pub/sub.
    pub redis_cluster: bool,
    /// Sentinel addresses (`host:port`), when not in `redis_url`; `redis_url` then gives the master's
    /// user, password, database and TLS.
    pub redis_sentinels: Vec<String>,
    /// The name the Sentinels monitor the master under (with `redis_sentinels`).
    pub redis_master_name: String,
    /// The Sentinels' own password, when they require one.
    pub redis_sentinel_password: String,
    /// Prefix of every Redis key and pub/sub channel, so several clusters can share one Redis.
    pub redis_prefix: String,
    /// NATS server URL(s) for `adapter = "nats"` (`nats://[user:pass@]host:4222`, comma-separated
    /// for several servers of one NATS cluster).
    pub nats_url: String,
    /// Seconds after which a node that stopped heartbeating is considered dead and its members removed.
    pub cluster_node_timeout_seconds: u64,
    /// Seconds a gracefully stopped node's presence members stay while their clients reconnect elsewhere.
    pub cluster_handover_seconds: u64,
    /// Where apps come from besides `[[apps]]`: `config` (only those), `postgres` or `mysql` (the
    /// table `app_store_table` at `database_url`; see `crate::app_store`).
    pub app_store: String,
    /// `postgres://user[:password]@host:5432/db` or `mysql://user[:password]@host:3306/db`.
    pub database_url: String,
    /// The apps table (soketi's `apps` table is read as it is).
    pub app_store_table: String,
    /// Seconds between full re-reads of the apps table (the only way a change reaches a table
    /// without Sinew's change tracking, such as soketi's).
    pub app_store_reload_seconds: u64,
    /// Seconds between looks at the table's `updated_at` (how MySQL tables announce changes;
    /// PostgreSQL ones notify at once).
    pub app_store_poll_seconds: u64,
    /// Seconds a rotated secret still signs requests, subscriptions and sign-ins.
    pub secret_grace_seconds: u64,
    /// Bearer token of the admin API (`/admin/apps`); empty: the admin API is off.
    pub admin_token: String,
    /// Port of the admin API; 0: on the main port.
    pub admin_port: u16,
    /// Applications served by this node.
    pub apps: Vec<AppConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            host: "0.0.0.0".into(),
            port: 6001,
            tls_cert: String::new(),
            tls_key: String::new(),
            path_prefix: String::new(),
            activity_timeout: 120,
            pong_timeout: 30,
            log: "info".into(),
            log_format: "pretty".into(),
            max_message_bytes: 64 * 1024,
            max_request_bytes: 1024 * 1024,
            outbox_max_messages: 1000,
            outbox_max_bytes: 1024 * 1024,
            debug_console_token: String::new(),
            shutdown_grace_seconds: 5,
            shutdown_drain_seconds: 0,
            metrics_enabled: true,
            metrics_host: String::new(),
            metrics_port: 9601,
            metrics_prefix: "sinew_".into(),
            webhooks: WebhookSettings::default(),
            http_path: "/pusher".into(),
            http_heartbeat_interval: 25,
            http_session_timeout: 5,
            adapter: "local".into(),
            redis_url: "redis://127.0.0.1:6379".into(),
            redis_cluster: false,
            redis_sentinels: Vec::new(),
            redis_master_name: String::new(),
            redis_sentinel_password: String::new(),
            redis_prefix: "sinew".into(),
            nats_url: String::new(),
            cluster_node_timeout_seconds: 20,
            cluster_handover_seconds: 5,
            app_store: "config".into(),
            database_url: String::new(),
            app_store_table: "apps".into(),
            app_store_reload_seconds: 30,
            app_store_poll_seconds: 5,
            secret_grace_seconds: 300,
            admin_token: String::new(),
            admin_port: 0,
            apps: Vec::new(),
        }
    }
}

impl Config {
    /// Loads the file (if any), applies overrides from `vars`, and validates the result.
    pub fn load(path: Option<&Path>, vars: impl IntoIterator<Item = (String, String)>) -> Result<Config, ConfigError> {
        let text = match path {
            Some(p) => std::fs::read_to_string(p)
                .map_err(|source| ConfigError::Read { path: p.display().to_string(), source })?,
            None => String::new(),
        };
        Config::parse(&text, vars)
    }

    /// Parses the text of a config file (empty: no file), applies overrides from `vars`, and
    /// validates the result: [`Config::load`] without the file read.
    pub fn parse(text: &str, vars: impl IntoIterator<Item = (String, String)>) -> Result<Config, ConfigError> {
        let mut table = text.parse::<toml::Table>().map_err(|e| ConfigError::Parse(e.to_string()))?;
        let sources = env::apply_env(&mut table, vars)?;
        let config: Config =
            toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| ConfigError::Parse(e.to_string()))?;
        config.validated().map_err(|e| match e {
            // A value that came from a variable is reported under the variable's name.
            ConfigError::Invalid { key, reason } => match sources.var_for(&key) {
                Some(var) => {
                    ConfigError::Env { var: var.to_string(), reason: format!("{reason} (config key `{key}`)") }
                }
                None => ConfigError::Invalid { key, reason },
            },
            other => other,
        })
    }

    /// Where the cluster's Redis is, from `redis_url` and the Sentinel settings.
    pub fn redis_topology(&self) -> Result<Topology, String> {
        Topology::from_settings(
            &self.redis_url,
            self.redis_cluster,
            &self.redis_sentinels,
            &self.redis_master_name,
            &self.redis_sentinel_password,
        )
    }

    fn validated(mut self) -> Result<Config, ConfigError> {
        store::check(&self)?;
        // With a database, the apps are its own (plus any of the file or SINEW_APP_* variables).
        if self.apps.is_empty() && self.app_store == "config" {
            self.apps.push(AppConfig::development());
        }
        let w = &self.webhooks;
        for (key, value, min, max) in [
            ("activity_timeout", self.activity_timeout, 1, HOUR),
            ("pong_timeout", self.pong_timeout, 1, HOUR),
            ("shutdown_grace_seconds", self.shutdown_grace_seconds, 0, HOUR),
            ("shutdown_drain_seconds", self.shutdown_drain_seconds, 0, 300),
            ("webhooks.batch_window_ms", w.batch_window_ms, 0, 60_000),
            ("webhooks.leave_delay_ms", w.leave_delay_ms, 0, HOUR * 1000),
            ("webhooks.retry_window_seconds", w.retry_window_seconds, 0, 7 * DAY),
            ("webhooks.initial_backoff_ms", w.initial_backoff_ms, 1, DAY * 1000),
            ("webhooks.max_backoff_ms", w.max_backoff_ms, 1, DAY * 1000),
            ("webhooks.timeout_seconds", w.timeout_seconds, 1, HOUR),
            ("webhooks.shutdown_grace_seconds", w.shutdown_grace_seconds, 0, HOUR),
        ] {
            if value < min || value > max {
                return Err(invalid(key.into(), &format!("must be between {min} and {max}")));
            }
        }
        if self.tls_cert.is_empty() != self.tls_key.is_empty() {
            let key = if self.tls_cert.is_empty() { "tls_cert" } else { "tls_key" };
            return Err(invalid(key.into(), "tls_cert and tls_key go together"));
        }
        if !self.metrics_prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(invalid("metrics_prefix".into(), "may only use A-Z a-z 0-9 _"));
        }
        if !matches!(self.log_format.as_str(), "pretty" | "json") {
            return Err(invalid("log_format".into(), "must be `pretty` or `json`"));
        }
        if self.outbox_max_messages == 0 || self.outbox_max_bytes == 0 {
            return Err(invalid("outbox_max_messages".into(), "outbox limits must be positive"));
        }
        if self.webhooks.max_batch_size == 0 || self.webhooks.queue_size == 0 {
            return Err(invalid("webhooks.max_batch_size".into(), "webhook batch and queue sizes must be positive"));
        }
        if !self.path_prefix.is_empty() && (!self.path_prefix.starts_with('/') || self.path_prefix.ends_with('/')) {
            return Err(invalid("path_prefix".into(), "must start with `/` and not end with `/`"));
        }
        if self.http_path.len() < 2 || !self.http_path.starts_with('/') || self.http_path.ends_with('/') {
            return Err(invalid("http_path".into(), "must start with `/`, not end with `/`, and not be `/` alone"));
        }
        if self.http_path.contains(['{', '}', '*', '?', '#']) {
            return Err(invalid("http_path".into(), "may not contain { } * ? or #"));
        }
        if !(1..30).contains(&self.http_heartbeat_interval) {
            return Err(invalid("http_heartbeat_interval".into(), "must be 1 to 29 seconds (pusher-js waits 30)"));
        }
        if !matches!(self.adapter.as_str(), "local" | "redis" | "nats") {
            return Err(invalid("adapter".into(), "must be `local`, `redis` or `nats`"));
        }
        if self.adapter == "nats" {
            let urls: Vec<&str> = self.nats_url.split(',').map(str::trim).filter(|u| !u.is_empty()).collect();
            if urls.is_empty() {
                return Err(invalid("nats_url".into(), "is needed with adapter = \"nats\""));
            }
            if let Some(Err(e)) = urls.iter().map(|u| u.parse::<async_nats::ServerAddr>()).find(Result::is_err) {
                return Err(invalid("nats_url".into(), &format!("is not a valid NATS URL: {e}")));
            }
        }
        if self.adapter != "local"
            && let Err(e) = self.redis_topology()
        {
            let key = if self.redis_sentinels.is_empty() { "redis_url" } else { "redis_sentinels" };
            return Err(invalid(key.into(), &e));
        }
        if self.redis_prefix.is_empty() || !self.redis_prefix.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid("redis_prefix".into(), "must be non-empty printable ASCII without spaces"));
        }
        if !(3..=3600).contains(&self.cluster_node_timeout_seconds) {
            return Err(invalid("cluster_node_timeout_seconds".into(), "must be between 3 and 3600"));
        }
        if self.cluster_handover_seconds > 600 {
            return Err(invalid("cluster_handover_seconds".into(), "must be at most 600"));
        }
        if self.http_session_timeout == 0 {
            return Err(invalid("http_session_timeout".into(), "must be at least 1 second"));
        }
        let (mut ids, mut keys) = (HashSet::new(), HashSet::new());
        for (i, app) in self.apps.iter().enumerate() {
            app.validate(i, &mut ids, &mut keys)?;
        }
        Ok(self)
    }
}

/// Helpers of the unit tests of this module's files.
#[cfg(test)]
mod testing {
    use super::{Config, ConfigError};

    /// Environment variables from pairs.
    pub(super) fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// Loads `toml_text` as a config file, with the environment variables `vars`.
    pub(super) fn load_str(toml_text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = std::env::temp_dir().join(format!("sinew-config-test-{}", rand::random::<u64>()));
        std::fs::write(&dir, toml_text).map_err(|source| ConfigError::Read { path: String::new(), source })?;
        let r = Config::load(Some(&dir), env(vars));
        let _ = std::fs::remove_file(&dir);
        r
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
