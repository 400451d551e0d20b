//! Subscription and sign-in signatures, computed the way the official Node SDK computes them.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::Error;
use crate::sign::{hmac_hex, validate_channel, validate_socket_id, validate_user_id};

/// The answer to pusher-js's channel authorization request; serialize it as the response body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelAuth {
    /// `{key}:{hex HMAC}`.
    pub auth: String,
    /// The presence data exactly as signed (presence channels only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel_data: Option<String>,
    /// Base64 of the per-channel key (`private-encrypted-` channels only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared_secret: Option<String>,
}

/// The answer to pusher-js's user authentication request; serialize it as the response body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserAuth {
    /// `{key}:{hex HMAC}`.
    pub auth: String,
    /// The user data exactly as signed.
    pub user_data: String,
}

/// A presence channel member: `user_id` plus optional `user_info`, serialized in that order.
#[derive(Debug, Clone, Serialize)]
pub struct PresenceData<I: Serialize = serde_json::Value> {
    /// The member's id.
    pub user_id: String,
    /// Anything the other members may see about this member.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_info: Option<I>,
}

/// True for channels whose payloads are end-to-end encrypted.
pub fn is_encrypted_channel(channel: &str) -> bool {
    channel.starts_with("private-encrypted-")
}

/// SHA-256 of the channel name followed by the master key: the key pusher-js decrypts with.
pub fn shared_secret(channel: &str, master_key: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(channel.as_bytes());
    h.update(master_key);
    h.finalize().into()
}

/// Decodes a base64 master key of exactly 32 bytes.
pub fn decode_master_key(base64: &str) -> Result<[u8; 32], Error> {
    let bytes = STANDARD.decode(base64.trim()).map_err(|_| Error::InvalidMasterKey)?;
    bytes.try_into().map_err(|_| Error::InvalidMasterKey)
}

/// Signs a private, encrypted or presence channel subscription. `presence` is serialized once
/// with serde_json; that exact text is both signed and returned as `channel_data`.
pub fn authorize_channel<P: Serialize + ?Sized>(
    key: &str,
    secret: &str,
    master_key: Option<&[u8; 32]>,
    socket_id: &str,
    channel: &str,
    presence: Option<&P>,
) -> Result<ChannelAuth, Error> {
    validate_socket_id(socket_id)?;
    validate_channel(channel)?;
    let channel_data = presence.map(serde_json::to_string).transpose()?;
    let to_sign = match &channel_data {
        Some(data) => format!("{socket_id}:{channel}:{data}"),
        None => format!("{socket_id}:{channel}"),
    };
    let shared_secret = if is_encrypted_channel(channel) {
        let mk = master_key.ok_or_else(|| Error::MissingMasterKey(channel.to_string()))?;
        Some(STANDARD.encode(shared_secret(channel, mk)))
    } else {
        None
    };
    Ok(ChannelAuth { auth: format!("{key}:{}", hmac_hex(secret, to_sign.as_bytes())), channel_data, shared_secret })
}

/// Signs a `pusher:signin`. `user_data` must serialize to an object with a non-empty string `id`.
pub fn authenticate_user<U: Serialize + ?Sized>(
    key: &str,
    secret: &str,
    socket_id: &str,
    user_data: &U,
) -> Result<UserAuth, Error> {
    validate_socket_id(socket_id)?;
    let text = serde_json::to_string(user_data)?;
    let parsed: serde_json::Value = serde_json::from_str(&text)?;
    match parsed.get("id") {
        Some(serde_json::Value::String(id)) => validate_user_id(id)?,
        other => return Err(Error::InvalidUserId(other.map(|v| v.to_string()).unwrap_or_default())),
    }
    let to_sign = format!("{socket_id}::user::{text}");
    Ok(UserAuth { auth: format!("{key}:{}", hmac_hex(secret, to_sign.as_bytes())), user_data: text })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn documented_shared_secret() {
        let mk = decode_master_key("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").expect("key");
        assert_eq!(
            STANDARD.encode(shared_secret("private-encrypted-foo", &mk)),
            "E3I6KxLwqP1Rr/p1676Vpnrw23CkRdS5bkX5NazRkeY="
        );
        assert!(decode_master_key("AAEC").is_err());
    }

    #[test]
    fn refuses_what_the_node_sdk_refuses() {
        let none: Option<&serde_json::Value> = None;
        assert!(authorize_channel("k", "s", None, "1.1", "private-encrypted-x", none).is_err());
        assert!(authorize_channel("k", "s", None, "x", "private-x", none).is_err());
        assert!(authenticate_user("k", "s", "1.1", &json!({"id": ""})).is_err());
        assert!(authenticate_user("k", "s", "1.1", &json!({"name": "a"})).is_err());
        assert!(authenticate_user("k", "s", "1.1", &json!([1])).is_err());
    }
}
