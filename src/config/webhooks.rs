//! Webhooks: the server-wide delivery settings (batching, retries, dead letters) and the endpoints
//! each app declares, with the event names Sinew can send.

use super::{ConfigError, invalid};
use serde::{Deserialize, Serialize};

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

impl WebhookTarget {
    /// Checks the endpoint; `key` names it in errors (e.g. `apps[0].webhooks[1]`).
    pub(super) fn validate(&self, key: &str) -> Result<(), ConfigError> {
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(invalid(format!("{key}.url"), "must be an http:// or https:// URL"));
        }
        if let Some(bad) = self.event_types.iter().find(|e| !WEBHOOK_EVENTS.contains(&e.as_str())) {
            return Err(invalid(
                format!("{key}.event_types"),
                &format!("unknown event type `{bad}`; known: {}", WEBHOOK_EVENTS.join(", ")),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::config::testing::{env, load_str};

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
}
