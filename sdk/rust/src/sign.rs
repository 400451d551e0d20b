//! Signatures and the checks the official SDKs apply before signing.

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;

use crate::Error;

type HmacSha256 = Hmac<Sha256>;

/// Query parameters that only the signature may set.
pub const RESERVED_PARAMS: [&str; 5] = ["auth_key", "auth_timestamp", "auth_version", "auth_signature", "body_md5"];

fn mac(secret: &str, message: &[u8]) -> HmacSha256 {
    let mut m = match HmacSha256::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    m.update(message);
    m
}

/// Lowercase hex HMAC-SHA256 of `message` keyed with `secret`.
pub fn hmac_hex(secret: &str, message: &[u8]) -> String {
    hex::encode(mac(secret, message).finalize().into_bytes())
}

/// Checks a hex HMAC-SHA256 in constant time; bad hex or a wrong length fails.
pub fn verify_hmac_hex(secret: &str, message: &[u8], signature: &str) -> bool {
    match hex::decode(signature) {
        Ok(sig) if sig.len() == 32 => mac(secret, message).verify_slice(&sig).is_ok(),
        _ => false,
    }
}

/// Lowercase hex MD5 of a request body.
pub fn body_md5(body: &[u8]) -> String {
    hex::encode(Md5::digest(body))
}

/// The signed query string of a REST request, unescaped, exactly as the official Node SDK builds it:
/// `auth_key`, `auth_timestamp`, `auth_version=1.0`, `body_md5` (when `body` is not empty) and
/// `params`, sorted by key, joined with `&`, then `&auth_signature=` the HMAC of
/// `METHOD\nPATH\nQUERY`.
pub fn signed_query(
    key: &str,
    secret: &str,
    method: &str,
    path: &str,
    params: &[(&str, &str)],
    body: &[u8],
    timestamp: u64,
) -> Result<String, Error> {
    let pairs = signed_pairs(key, secret, method, path, params, body, timestamp)?;
    Ok(pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&"))
}

/// The same parameters as [`signed_query`], as pairs (the signature last), for URL encoding.
pub fn signed_pairs(
    key: &str,
    secret: &str,
    method: &str,
    path: &str,
    params: &[(&str, &str)],
    body: &[u8],
    timestamp: u64,
) -> Result<Vec<(String, String)>, Error> {
    let mut pairs: Vec<(String, String)> = vec![
        ("auth_key".into(), key.into()),
        ("auth_timestamp".into(), timestamp.to_string()),
        ("auth_version".into(), "1.0".into()),
    ];
    if !body.is_empty() {
        pairs.push(("body_md5".into(), body_md5(body)));
    }
    for (k, v) in params {
        if RESERVED_PARAMS.contains(k) {
            return Err(Error::ReservedParameter((*k).to_string()));
        }
        pairs.retain(|(existing, _)| existing != k);
        pairs.push(((*k).to_string(), (*v).to_string()));
    }
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    let query = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
    let to_sign = format!("{}\n{}\n{}", method.to_ascii_uppercase(), path, query);
    pairs.push(("auth_signature".into(), hmac_hex(secret, to_sign.as_bytes())));
    Ok(pairs)
}

/// Rejects channel names the REST API and the official SDKs refuse.
pub fn validate_channel(channel: &str) -> Result<(), Error> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "_-=@,.;".contains(c);
    if channel.is_empty() || channel.len() > 200 || !channel.chars().all(ok_char) {
        return Err(Error::InvalidChannel(channel.to_string()));
    }
    Ok(())
}

/// Rejects socket ids that are not `digits.digits`.
pub fn validate_socket_id(socket_id: &str) -> Result<(), Error> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match socket_id.split_once('.') {
        Some((a, b)) if digits(a) && digits(b) => Ok(()),
        _ => Err(Error::InvalidSocketId(socket_id.to_string())),
    }
}

/// Rejects an empty user id.
pub fn validate_user_id(user_id: &str) -> Result<(), Error> {
    if user_id.is_empty() {
        return Err(Error::InvalidUserId(user_id.to_string()));
    }
    Ok(())
}

/// Rejects an empty event name or one longer than 200 bytes.
pub fn validate_event_name(name: &str) -> Result<(), Error> {
    if name.is_empty() || name.len() > 200 {
        return Err(Error::InvalidEventName(name.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_rest_example() {
        let body = br#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
        let q = signed_query(
            "278d425bdf160c739803",
            "7ad3773142a6692b25b8",
            "POST",
            "/apps/3/events",
            &[],
            body,
            1353088179,
        )
        .expect("signs");
        assert!(q.ends_with("&auth_signature=da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"), "{q}");
    }

    #[test]
    fn reserved_and_invalid_inputs_are_refused() {
        assert!(matches!(
            signed_query("k", "s", "GET", "/", &[("auth_key", "x")], b"", 1),
            Err(Error::ReservedParameter(_))
        ));
        assert!(validate_channel("private-a:b").is_err());
        assert!(validate_channel(&"a".repeat(201)).is_err());
        assert!(validate_channel("#server-to-user-1").is_err());
        assert!(validate_socket_id("1.").is_err());
        assert!(validate_socket_id("12.34").is_ok());
        assert!(!verify_hmac_hex("s", b"m", "zz"));
    }
}
