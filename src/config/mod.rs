//! Configuration: an optional TOML file, then `SINEW_*` environment overrides, then validation.
//!
//! Every top-level key `foo` can be overridden by `SINEW_FOO`; every app key `bar` by `SINEW_APP_BAR`,
//! which applies to the first app (the development app when the file defines none).

use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::Path;

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
    /// `local` (one node, the default) or `redis` (many nodes sharing one Redis).
    pub adapter: String,
    /// Redis URL for `adapter = "redis"` (`redis://[user:pass@]host:port[/db]`, `rediss://` for TLS).
    pub redis_url: String,
    /// Prefix of every Redis key and pub/sub channel, so several clusters can share one Redis.
    pub redis_prefix: String,
    /// Seconds after which a node that stopped heartbeating is considered dead and its members removed.
    pub cluster_node_timeout_seconds: u64,
    /// Seconds a gracefully stopped node's presence members stay while their clients reconnect elsewhere.
    pub cluster_handover_seconds: u64,
    /// Applications served by this node.
    pub apps: Vec<AppConfig>,
}

/// How webhooks are batched, retried and dead-lettered.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookSettings {
    /// Milliseconds to wait for more events before sending a batch.
    pub batch_window_ms: u64,
    /// Events per POST at most.
    pub max_batch_size: usize,
    /// `channel_vacated` and `member_removed` wait this long and are cancelled by a quick rejoin.
    pub leave_delay_ms: u64,
    /// Seconds a batch is retried before it goes to the dead-letter file.
    pub retry_window_seconds: u64,
    /// First retry delay in milliseconds; doubles (with jitter) up to `max_backoff_ms`.
    pub initial_backoff_ms: u64,
    /// Longest delay between two attempts.
    pub max_backoff_ms: u64,
    /// Per-request timeout in seconds.
    pub timeout_seconds: u64,
    /// Events waiting per endpoint; beyond it they go to the dead-letter file.
    pub queue_size: usize,
    /// JSON-lines file receiving what could not be delivered (replay with `sinew webhooks replay`).
    pub dead_letter_file: String,
    /// Seconds the shutdown waits for pending webhooks before dead-lettering them.
    pub shutdown_grace_seconds: u64,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            batch_window_ms: 50,
            max_batch_size: 50,
            leave_delay_ms: 3000,
            retry_window_seconds: 300,
            initial_backoff_ms: 1000,
            max_backoff_ms: 30_000,
            timeout_seconds: 10,
            queue_size: 10_000,
            dead_letter_file: "sinew-webhooks-dead-letter.jsonl".into(),
            shutdown_grace_seconds: 5,
        }
    }
}

/// One webhook endpoint of an app.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookTarget {
    /// Where to POST.
    pub url: String,
    /// Event names to send (empty: all).
    #[serde(default)]
    pub event_types: Vec<String>,
    /// Only events of channels starting with this prefix.
    #[serde(default)]
    pub channel_prefix: Option<String>,
}

/// Webhook event names Sinew can send.
pub const WEBHOOK_EVENTS: &[&str] =
    &["channel_occupied", "channel_vacated", "member_added", "member_removed", "client_event", "cache_miss"];

/// One application: credentials, switches and limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AppConfig {
    /// App id, used in REST paths.
    pub id: String,
    /// Public key, used by clients in `/app/{key}`.
    pub key: String,
    /// Secret used for every signature.
    pub secret: String,
    /// Disabled apps refuse connections (4003) and REST calls (403).
    pub enabled: bool,
    /// Whether clients may send `client-*` events.
    pub client_events: bool,
    /// Concurrent connections allowed (0 = unlimited).
    pub max_connections: u64,
    /// Client events per second per connection.
    pub max_client_events_per_second: u32,
    /// Largest event `data`, in bytes.
    pub max_event_data_bytes: usize,
    /// Channels per REST trigger.
    pub max_channels_per_event: usize,
    /// Events per batch trigger.
    pub max_batch_size: usize,
    /// Longest channel name.
    pub max_channel_name_length: usize,
    /// Longest event name.
    pub max_event_name_length: usize,
    /// Channels one connection may be subscribed to at once.
    pub max_subscriptions_per_connection: usize,
    /// Distinct members per presence channel.
    pub max_presence_members: usize,
    /// Largest presence `user_info`, in bytes.
    pub max_presence_user_info_bytes: usize,
    /// Longest presence or signed-in user id.
    pub max_user_id_length: usize,
    /// Seconds a cache channel keeps its last event.
    pub cache_ttl_seconds: u64,
    /// Whether signed-in users receive watchlist online/offline events.
    pub watchlist: bool,
    /// Ids accepted in one user's watchlist.
    pub max_watchlist_size: usize,
    /// Whether subscribers receive `pusher_internal:subscription_count`.
    pub subscription_count: bool,
    /// Webhook endpoints.
    pub webhooks: Vec<WebhookTarget>,
    /// Shared secret accepted for HS256/384/512 tokens at `/apps/{id}/auth` (empty: none).
    pub jwt_secret: String,
    /// PEM file with an RSA, EC or Ed25519 public key for RS*/PS*/ES*/EdDSA tokens (empty: none).
    pub jwt_public_key: String,
    /// JWKS file with public keys, reloaded when it changes or on SIGHUP (empty: none).
    pub jwt_jwks_file: String,
    /// Algorithms accepted (empty: every algorithm the configured keys support).
    pub jwt_algorithms: Vec<String>,
    /// Required `iss` (empty: not checked).
    pub jwt_issuer: String,
    /// Required `aud` (empty: not checked).
    pub jwt_audience: String,
    /// Clock leeway for `exp`, `nbf` and `iat`, in seconds.
    pub jwt_leeway_seconds: u64,
    /// Header carrying the token (`Bearer <token>` in `Authorization` by default).
    pub jwt_header: String,
    /// Cookie carrying the token when the header is absent (empty: no cookie).
    pub jwt_cookie: String,
    /// Requests per second accepted by the auth endpoints of this app.
    pub auth_rate_limit_per_second: u32,
    /// Origins allowed to call the auth endpoints from a browser (`*` for any; empty: same-origin only).
    pub allowed_origins: Vec<String>,
    /// 32-byte master key (base64) from which encrypted channels' shared secrets are derived.
    pub encryption_master_key_base64: String,
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
            redis_prefix: "sinew".into(),
            cluster_node_timeout_seconds: 20,
            cluster_handover_seconds: 5,
            apps: Vec::new(),
        }
    }
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            id: String::new(),
            key: String::new(),
            secret: String::new(),
            enabled: true,
            client_events: false,
            max_connections: 0,
            max_client_events_per_second: 10,
            max_event_data_bytes: 10 * 1024,
            max_channels_per_event: 100,
            max_batch_size: 10,
            max_channel_name_length: 200,
            max_event_name_length: 200,
            max_subscriptions_per_connection: 1000,
            max_presence_members: 100,
            max_presence_user_info_bytes: 1024,
            max_user_id_length: 128,
            cache_ttl_seconds: 30 * 60,
            watchlist: false,
            max_watchlist_size: 100,
            subscription_count: false,
            webhooks: Vec::new(),
            jwt_secret: String::new(),
            jwt_public_key: String::new(),
            jwt_jwks_file: String::new(),
            jwt_algorithms: Vec::new(),
            jwt_issuer: String::new(),
            jwt_audience: String::new(),
            jwt_leeway_seconds: 30,
            jwt_header: "authorization".into(),
            jwt_cookie: String::new(),
            auth_rate_limit_per_second: 100,
            allowed_origins: Vec::new(),
            encryption_master_key_base64: String::new(),
        }
    }
}

impl AppConfig {
    /// The development app used when no app is configured.
    pub fn development() -> Self {
        AppConfig {
            id: "1".into(),
            key: "app-key".into(),
            secret: "app-secret".into(),
            client_events: true,
            ..AppConfig::default()
        }
    }
}

impl Config {
    /// Loads the file (if any), applies overrides from `vars`, and validates the result.
    pub fn load(path: Option<&Path>, vars: impl IntoIterator<Item = (String, String)>) -> Result<Config, ConfigError> {
        let mut table = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|source| ConfigError::Read { path: p.display().to_string(), source })?;
                text.parse::<toml::Table>().map_err(|e| ConfigError::Parse(e.to_string()))?
            }
            None => toml::Table::new(),
        };
        apply_env(&mut table, vars)?;
        let config: Config =
            toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| ConfigError::Parse(e.to_string()))?;
        config.validated()
    }

    fn validated(mut self) -> Result<Config, ConfigError> {
        if self.apps.is_empty() {
            self.apps.push(AppConfig::development());
        }
        let invalid = |key: String, reason: &str| ConfigError::Invalid { key, reason: reason.into() };
        const HOUR: u64 = 3600;
        const DAY: u64 = 24 * HOUR;
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
        if !matches!(self.adapter.as_str(), "local" | "redis") {
            return Err(invalid("adapter".into(), "must be `local` or `redis`"));
        }
        if self.adapter == "redis" && redis::Client::open(self.redis_url.as_str()).is_err() {
            return Err(invalid("redis_url".into(), "is not a valid redis:// or rediss:// URL"));
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
            let k = |name: &str| format!("apps[{i}].{name}");
            for (name, value) in [("id", &app.id), ("key", &app.key), ("secret", &app.secret)] {
                if value.is_empty() {
                    return Err(invalid(k(name), "is required"));
                }
            }
            if !app.id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                return Err(invalid(k("id"), "may only use A-Z a-z 0-9 - _"));
            }
            if app.key.contains(['/', '?', '#', ':']) {
                return Err(invalid(k("key"), "may not contain / ? # or :"));
            }
            if !ids.insert(app.id.clone()) {
                return Err(invalid(k("id"), "duplicate app id"));
            }
            if !keys.insert(app.key.clone()) {
                return Err(invalid(k("key"), "duplicate app key"));
            }
            if app.cache_ttl_seconds > 30 * DAY {
                return Err(invalid(k("cache_ttl_seconds"), "must be at most 30 days"));
            }
            if app.jwt_leeway_seconds > DAY {
                return Err(invalid(k("jwt_leeway_seconds"), "must be at most 1 day"));
            }
            if !app.encryption_master_key_base64.is_empty() {
                use base64::Engine;
                let decoded = base64::engine::general_purpose::STANDARD.decode(&app.encryption_master_key_base64);
                if decoded.map(|k| k.len()) != Ok(32) {
                    return Err(invalid(k("encryption_master_key_base64"), "must be 32 bytes in base64"));
                }
            }
            for (j, w) in app.webhooks.iter().enumerate() {
                if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                    return Err(invalid(k(&format!("webhooks[{j}].url")), "must be an http:// or https:// URL"));
                }
                if let Some(bad) = w.event_types.iter().find(|e| !WEBHOOK_EVENTS.contains(&e.as_str())) {
                    return Err(invalid(
                        k(&format!("webhooks[{j}].event_types")),
                        &format!("unknown event type `{bad}`; known: {}", WEBHOOK_EVENTS.join(", ")),
                    ));
                }
            }
            for (name, value) in [
                ("max_event_data_bytes", app.max_event_data_bytes),
                ("max_channels_per_event", app.max_channels_per_event),
                ("max_batch_size", app.max_batch_size),
                ("max_channel_name_length", app.max_channel_name_length),
                ("max_event_name_length", app.max_event_name_length),
                ("max_presence_members", app.max_presence_members),
                ("max_subscriptions_per_connection", app.max_subscriptions_per_connection),
                ("max_user_id_length", app.max_user_id_length),
            ] {
                if value == 0 {
                    return Err(invalid(k(name), "must be positive"));
                }
            }
        }
        Ok(self)
    }
}

/// Applies `SINEW_*` overrides to the parsed table, typing each value by the key's default.
fn apply_env(table: &mut toml::Table, vars: impl IntoIterator<Item = (String, String)>) -> Result<(), ConfigError> {
    let server_template = to_table(&Config::default());
    let app_template = to_table(&AppConfig::development());
    let mut vars: Vec<_> = vars.into_iter().filter(|(k, _)| k.starts_with("SINEW_")).collect();
    vars.sort();
    for (var, value) in vars {
        if var == "SINEW_WEBHOOK_URL" {
            // Single-app shortcut: one endpoint for every event type of the first app.
            let mut target = toml::Table::new();
            target.insert("url".into(), toml::Value::String(value));
            first_app(table)?.insert("webhooks".into(), toml::Value::Array(vec![toml::Value::Table(target)]));
            continue;
        }
        let name = var["SINEW_".len()..].to_ascii_lowercase();
        if let Some(app_key) = name.strip_prefix("app_")
            && let Some(template) = app_template.get(app_key)
        {
            let typed = typed_value(&var, &value, template)?;
            first_app(table)?.insert(app_key.to_string(), typed);
        } else if let Some(rest) = name.strip_prefix("webhooks_")
            && let Some(template) = server_template.get("webhooks").and_then(|w| w.get(rest))
        {
            let typed = typed_value(&var, &value, template)?;
            let section = table.entry("webhooks").or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let toml::Value::Table(t) = section {
                t.insert(rest.to_string(), typed);
            }
        } else if let Some(template) =
            server_template.get(&name).filter(|_| !matches!(name.as_str(), "apps" | "webhooks"))
        {
            let typed = typed_value(&var, &value, template)?;
            table.insert(name, typed);
        }
        // Other SINEW_* variables belong to tools around Sinew (test harnesses, scripts): ignored.
    }
    Ok(())
}

fn to_table<T: Serialize>(value: &T) -> toml::Table {
    toml::Table::try_from(value).unwrap_or_default()
}

/// The first `[[apps]]` table, created as the development app when the file has none.
fn first_app(table: &mut toml::Table) -> Result<&mut toml::Table, ConfigError> {
    let apps = table.entry("apps").or_insert_with(|| toml::Value::Array(Vec::new()));
    let toml::Value::Array(apps) = apps else {
        return Err(ConfigError::Parse("`apps` must be an array of tables".into()));
    };
    if apps.is_empty() {
        apps.push(toml::Value::Table(to_table(&AppConfig::development())));
    }
    match apps.first_mut() {
        Some(toml::Value::Table(t)) => Ok(t),
        _ => Err(ConfigError::Parse("`apps` must be an array of tables".into())),
    }
}

fn typed_value(var: &str, value: &str, template: &toml::Value) -> Result<toml::Value, ConfigError> {
    let err = |reason: &str| ConfigError::Env { var: var.into(), reason: format!("{reason}, got `{value}`") };
    Ok(match template {
        toml::Value::Integer(_) => toml::Value::Integer(value.trim().parse().map_err(|_| err("expected an integer"))?),
        toml::Value::Boolean(_) => toml::Value::Boolean(match value.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" => false,
            _ => return Err(err("expected true or false")),
        }),
        toml::Value::Array(_) => toml::Value::Array(
            value.split(',').map(str::trim).filter(|v| !v.is_empty()).map(|v| toml::Value::String(v.into())).collect(),
        ),
        _ => toml::Value::String(value.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn load_str(toml_text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = std::env::temp_dir().join(format!("sinew-config-test-{}", rand::random::<u64>()));
        std::fs::write(&dir, toml_text).map_err(|source| ConfigError::Read { path: String::new(), source })?;
        let r = Config::load(Some(&dir), env(vars));
        let _ = std::fs::remove_file(&dir);
        r
    }

    #[test]
    fn defaults_to_development_app() {
        let c = Config::load(None, Vec::new()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.port, 6001);
        assert_eq!(c.host, "0.0.0.0");
        assert_eq!(c.apps.len(), 1);
        assert_eq!((c.apps[0].id.as_str(), c.apps[0].key.as_str()), ("1", "app-key"));
        assert!(c.apps[0].client_events);
    }

    #[test]
    fn env_overrides_server_and_app() {
        let c = Config::load(
            None,
            env(&[
                ("SINEW_PORT", "7000"),
                ("SINEW_HOST", "127.0.0.1"),
                ("SINEW_APP_ID", "42"),
                ("SINEW_APP_KEY", "k"),
                ("SINEW_APP_SECRET", "s"),
                ("SINEW_APP_CLIENT_EVENTS", "false"),
                ("SINEW_APP_MAX_CONNECTIONS", "5"),
                ("SINEW_BIN", "/ignored"),
            ]),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((c.port, c.host.as_str()), (7000, "127.0.0.1"));
        let app = &c.apps[0];
        assert_eq!((app.id.as_str(), app.key.as_str(), app.secret.as_str()), ("42", "k", "s"));
        assert!(!app.client_events);
        assert_eq!(app.max_connections, 5);
    }

    #[test]
    fn webhook_shortcut_and_settings_from_env() {
        let c = Config::load(
            None,
            env(&[("SINEW_WEBHOOK_URL", "http://127.0.0.1:9/hook"), ("SINEW_WEBHOOKS_LEAVE_DELAY_MS", "10")]),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.apps[0].webhooks[0].url, "http://127.0.0.1:9/hook");
        assert!(c.apps[0].webhooks[0].event_types.is_empty());
        assert_eq!(c.webhooks.leave_delay_ms, 10);
        let bad = Config::load(None, env(&[("SINEW_WEBHOOK_URL", "ftp://x")])).err().map(|e| e.to_string());
        assert!(bad.unwrap_or_default().contains("apps[0].webhooks[0].url"));
        let bad = load_str("[[apps]]\nid=\"a\"\nkey=\"k\"\nsecret=\"s\"\n[[apps.webhooks]]\nurl=\"http://x\"\nevent_types=[\"nope\"]\n", &[])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(bad.contains("event_types") && bad.contains("nope"), "{bad}");
    }

    #[test]
    fn bad_env_value_names_the_variable() {
        let e = Config::load(None, env(&[("SINEW_PORT", "abc")])).err().map(|e| e.to_string());
        assert!(e.unwrap_or_default().contains("SINEW_PORT"));
        let e = Config::load(None, env(&[("SINEW_APP_CLIENT_EVENTS", "maybe")])).err().map(|e| e.to_string());
        assert!(e.unwrap_or_default().contains("SINEW_APP_CLIENT_EVENTS"));
    }

    #[test]
    fn shutdown_drain_from_file_and_env() {
        assert_eq!(Config::default().shutdown_drain_seconds, 0);
        let c = load_str("shutdown_drain_seconds = 15\n", &[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.shutdown_drain_seconds, 15);
        let c = Config::load(None, env(&[("SINEW_SHUTDOWN_DRAIN_SECONDS", "7")])).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.shutdown_drain_seconds, 7);
        let e = Config::load(None, env(&[("SINEW_SHUTDOWN_DRAIN_SECONDS", "301")])).err().map(|e| e.to_string());
        assert!(e.unwrap_or_default().contains("shutdown_drain_seconds"));
    }

    #[test]
    fn http_fallback_settings() {
        let c = Config::load(None, env(&[("SINEW_HTTP_PATH", "/fallback"), ("SINEW_HTTP_SESSION_TIMEOUT", "2")]))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((c.http_path.as_str(), c.http_session_timeout, c.http_heartbeat_interval), ("/fallback", 2, 25));
        for (var, value) in [
            ("SINEW_HTTP_PATH", "pusher"),
            ("SINEW_HTTP_PATH", "/pusher/"),
            ("SINEW_HTTP_PATH", "/"),
            ("SINEW_HTTP_PATH", "/{x}"),
            ("SINEW_HTTP_HEARTBEAT_INTERVAL", "30"),
            ("SINEW_HTTP_HEARTBEAT_INTERVAL", "0"),
            ("SINEW_HTTP_SESSION_TIMEOUT", "0"),
        ] {
            let e = Config::load(None, env(&[(var, value)])).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains(&var["SINEW_".len()..].to_ascii_lowercase()), "{var}={value}: {e}");
        }
    }

    #[test]
    fn file_with_apps_and_errors() {
        let ok = load_str(
            "port = 7001\n[[apps]]\nid = \"a\"\nkey = \"ka\"\nsecret = \"sa\"\n[[apps]]\nid = \"b\"\nkey = \"kb\"\nsecret = \"sb\"\nmax_batch_size = 3\n",
            &[],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok.apps.len(), 2);
        assert_eq!(ok.apps[1].max_batch_size, 3);
        assert!(!ok.apps[0].client_events);

        let unknown = load_str("prot = 1\n", &[]).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(unknown.contains("prot"), "{unknown}");
        let unknown_app = load_str("[[apps]]\nid=\"a\"\nkey=\"k\"\nsecret=\"s\"\nclient_evnts=true\n", &[])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(unknown_app.contains("client_evnts"), "{unknown_app}");
        let bad_type = load_str("port = \"x\"\n", &[]).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(bad_type.contains("port"), "{bad_type}");
        let dup =
            load_str("[[apps]]\nid=\"a\"\nkey=\"k\"\nsecret=\"s\"\n[[apps]]\nid=\"b\"\nkey=\"k\"\nsecret=\"s\"\n", &[])
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
        assert!(dup.contains("apps[1].key") && dup.contains("duplicate"), "{dup}");
        let missing = load_str("[[apps]]\nid=\"a\"\nkey=\"k\"\n", &[]).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(missing.contains("apps[0].secret"), "{missing}");
    }

    #[test]
    fn adapter_settings() {
        let c = Config::load(None, env(&[("SINEW_ADAPTER", "redis"), ("SINEW_REDIS_URL", "redis://r:6380/2")]))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((c.adapter.as_str(), c.redis_url.as_str()), ("redis", "redis://r:6380/2"));
        assert_eq!(Config::load(None, Vec::new()).map(|c| c.adapter).ok().as_deref(), Some("local"));
        let err =
            |vars: &[(&str, &str)]| Config::load(None, env(vars)).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err(&[("SINEW_ADAPTER", "nats")]).contains("adapter"));
        assert!(err(&[("SINEW_ADAPTER", "redis"), ("SINEW_REDIS_URL", "http://x")]).contains("redis_url"));
        assert!(err(&[("SINEW_CLUSTER_NODE_TIMEOUT_SECONDS", "1")]).contains("cluster_node_timeout_seconds"));
    }
}
