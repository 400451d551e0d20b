//! Webhook verification: the `X-Pusher-Key` header names the app and `X-Pusher-Signature` is the
//! hex HMAC-SHA256 of the raw body keyed with the app secret.

use serde::Deserialize;

use crate::WebhookError;
use crate::sign::verify_hmac_hex;

/// A verified webhook.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Webhook {
    /// When the server sent it, in milliseconds since the epoch.
    pub time_ms: u64,
    /// The events, e.g. `{"name":"channel_occupied","channel":"..."}`.
    pub events: Vec<serde_json::Value>,
}

/// Checks the key and signature headers against the raw body, then parses it.
pub fn verify(
    key: &str,
    secret: &str,
    key_header: Option<&str>,
    signature_header: Option<&str>,
    body: &[u8],
) -> Result<Webhook, WebhookError> {
    let given_key = key_header.ok_or(WebhookError::MissingKey)?;
    if given_key != key {
        return Err(WebhookError::WrongKey);
    }
    let signature = signature_header.ok_or(WebhookError::MissingSignature)?;
    if !verify_hmac_hex(secret, body, signature.trim()) {
        return Err(WebhookError::BadSignature);
    }
    serde_json::from_slice(body).map_err(|e| WebhookError::Body(e.to_string()))
}
