//! One application's settings: credentials, switches and limits, their defaults, the development
//! app used when none is configured, and the checks of each app.

use super::webhooks::WebhookTarget;
use super::{ConfigError, DAY, invalid};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

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
    /// Whether the app came from the app store (whose changes replace it while running) rather than
    /// the config file (which only a restart changes). Not a setting.
    #[serde(skip)]
    pub from_store: bool,
    /// Concurrent connections allowed (0 = unlimited).
    pub max_connections: u64,
    /// Client events per second per connection.
    pub max_client_events_per_second: u32,
    /// REST event deliveries per second for the whole app on one node, each event counted once
    /// per channel it names (0 = unlimited; beyond it: 429).
    pub max_backend_events_per_second: u32,
    /// REST read requests (channel info, channel list, presence users) per second for the whole
    /// app on one node (0 = unlimited; beyond it: 429).
    pub max_read_requests_per_second: u32,
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
    /// Browser origins allowed to connect and to call the auth endpoints: `*`, `scheme://host[:port]`,
    /// `scheme://*.host` (subdomains), or either without a scheme (http and https). A connection
    /// from an origin not listed is refused with 4009. Empty: any origin may connect, and only the
    /// same origin may call the auth endpoints. See `origins.rs`.
    pub allowed_origins: Vec<String>,
    /// 32-byte master key (base64) from which encrypted channels' shared secrets are derived.
    pub encryption_master_key_base64: String,
    /// Channel name prefixes whose events are kept for resuming (`["private-", "presence-"]`; `"*"`
    /// is every channel). Empty: no history (the default). See `hub/history.rs`.
    pub history_channels: Vec<String>,
    /// Events kept per channel with history.
    pub history_size: usize,
    /// Seconds an event is kept for resuming.
    pub history_ttl_seconds: u64,
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            id: String::new(),
            key: String::new(),
            secret: String::new(),
            enabled: true,
            from_store: false,
            client_events: false,
            max_connections: 0,
            max_client_events_per_second: 10,
            max_backend_events_per_second: 0,
            max_read_requests_per_second: 0,
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
            history_channels: Vec::new(),
            history_size: 100,
            history_ttl_seconds: 600,
            encryption_master_key_base64: String::new(),
        }
    }
}

impl AppConfig {
    /// Whether `channel`'s events are kept for resuming.
    pub fn history_for(&self, channel: &str) -> bool {
        !self.history_channels.is_empty()
            && self.history_channels.iter().any(|p| p == "*" || channel.starts_with(p.as_str()))
    }

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

    /// Checks the app at index `i` of `apps`. `ids` and `keys` hold those of the apps checked
    /// before it (duplicates are refused); its own are added.
    pub fn validate(&self, i: usize, ids: &mut HashSet<String>, keys: &mut HashSet<String>) -> Result<(), ConfigError> {
        let k = |name: &str| format!("apps[{i}].{name}");
        for (name, value) in [("id", &self.id), ("key", &self.key), ("secret", &self.secret)] {
            if value.is_empty() {
                return Err(invalid(k(name), "is required"));
            }
        }
        if !self.id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(invalid(k("id"), "may only use A-Z a-z 0-9 - _"));
        }
        if self.key.contains(['/', '?', '#', ':']) {
            return Err(invalid(k("key"), "may not contain / ? # or :"));
        }
        if !ids.insert(self.id.clone()) {
            return Err(invalid(k("id"), "duplicate app id"));
        }
        if !keys.insert(self.key.clone()) {
            return Err(invalid(k("key"), "duplicate app key"));
        }
        if self.cache_ttl_seconds > 30 * DAY {
            return Err(invalid(k("cache_ttl_seconds"), "must be at most 30 days"));
        }
        if self.jwt_leeway_seconds > DAY {
            return Err(invalid(k("jwt_leeway_seconds"), "must be at most 1 day"));
        }
        if !self.encryption_master_key_base64.is_empty() {
            use base64::Engine;
            let decoded = base64::engine::general_purpose::STANDARD.decode(&self.encryption_master_key_base64);
            if decoded.map(|k| k.len()) != Ok(32) {
                return Err(invalid(k("encryption_master_key_base64"), "must be 32 bytes in base64"));
            }
        }
        for (j, origin) in self.allowed_origins.iter().enumerate() {
            super::origins::check_entry(origin)
                .map_err(|why| invalid(k(&format!("allowed_origins[{j}]")), &format!("{origin:?} {why}")))?;
        }
        for (j, w) in self.webhooks.iter().enumerate() {
            w.validate(&k(&format!("webhooks[{j}]")))?;
        }
        if !(1..=100_000).contains(&self.history_size) {
            return Err(invalid(k("history_size"), "must be between 1 and 100000"));
        }
        if !(1..=7 * DAY).contains(&self.history_ttl_seconds) {
            return Err(invalid(k("history_ttl_seconds"), "must be between 1 and 604800 (7 days)"));
        }
        for (name, value) in [
            ("max_event_data_bytes", self.max_event_data_bytes),
            ("max_channels_per_event", self.max_channels_per_event),
            ("max_batch_size", self.max_batch_size),
            ("max_channel_name_length", self.max_channel_name_length),
            ("max_event_name_length", self.max_event_name_length),
            ("max_presence_members", self.max_presence_members),
            ("max_subscriptions_per_connection", self.max_subscriptions_per_connection),
            ("max_user_id_length", self.max_user_id_length),
        ] {
            if value == 0 {
                return Err(invalid(k(name), "must be positive"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

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
    fn allowed_origins_are_checked_at_load() {
        let file = |origins: &str| {
            format!("[[apps]]\nid = \"a\"\nkey = \"k\"\nsecret = \"s\"\nallowed_origins = [\"*\", {origins}]\n")
        };
        let ok = Config::parse(&file(r#""https://*.example.com", "localhost:3000""#), Vec::new());
        assert_eq!(ok.map(|c| c.apps[0].allowed_origins.len()).map_err(|e| e.to_string()), Ok(3));
        for (bad, why) in [
            (r#""https://app.example.com/""#, "path"),
            (r#""https://a.*.example.com""#, "`*`"),
            (r#""https://a.example.com, https://b.example.com""#, "spaces"),
            (r#""null""#, "null"),
        ] {
            let e = Config::parse(&file(bad), Vec::new()).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains("apps[0].allowed_origins[1]") && e.contains(why), "{bad}: {e}");
        }
    }
}
