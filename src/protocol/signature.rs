//! HMAC-SHA256 signatures: channel and user authorization, and the REST request signature.

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &str) -> HmacSha256 {
    match HmacSha256::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    }
}

/// Lowercase hex HMAC-SHA256 of `message` keyed with `secret`.
pub fn sign(secret: &str, message: &[u8]) -> String {
    let mut m = mac(secret);
    m.update(message);
    hex::encode(m.finalize().into_bytes())
}

/// Verifies a hex signature over `message` in constant time. Wrong length or bad hex fails.
pub fn verify_hex(secret: &str, message: &[u8], signature_hex: &str) -> bool {
    if signature_hex.len() != 64 {
        return false;
    }
    let Ok(sig) = hex::decode(signature_hex) else {
        return false;
    };
    let mut m = mac(secret);
    m.update(message);
    m.verify_slice(&sig).is_ok()
}

/// Verifies an `auth` value of the form `{key}:{hex}` over `message`.
pub fn verify_auth(key: &str, secret: &str, message: &[u8], auth: &str) -> bool {
    let Some((given_key, sig)) = auth.split_once(':') else {
        return false;
    };
    // Evaluate both halves so the timing does not reveal which part was wrong.
    let key_ok = constant_time_eq(given_key.as_bytes(), key.as_bytes());
    let sig_ok = verify_hex(secret, message, sig);
    key_ok & sig_ok
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The string signed for a private or encrypted channel subscription.
pub fn private_string(socket_id: &str, channel: &str) -> String {
    format!("{socket_id}:{channel}")
}

/// The string signed for a presence channel subscription (`channel_data` exactly as received).
pub fn presence_string(socket_id: &str, channel: &str, channel_data: &str) -> String {
    format!("{socket_id}:{channel}:{channel_data}")
}

/// The string signed for `pusher:signin` (`user_data` exactly as received).
pub fn user_string(socket_id: &str, user_data: &str) -> String {
    format!("{socket_id}::user::{user_data}")
}

/// Lowercase hex MD5 of a request body.
pub fn body_md5(body: &[u8]) -> String {
    hex::encode(Md5::digest(body))
}

/// The string a REST request signs: `METHOD\nPATH\nk=v&...` over every query parameter except
/// `auth_signature`, keys lowercased and sorted, values decoded and not re-escaped.
pub fn rest_string(method: &str, path: &str, params: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, &str)> = params
        .iter()
        .filter(|(k, _)| k != "auth_signature")
        .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str()))
        .collect();
    pairs.sort();
    let query = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
    format!("{}\n{}\n{}", method.to_ascii_uppercase(), path, query)
}

/// Credentials and moment of a signed REST request.
pub struct Signer<'a> {
    /// The app key.
    pub key: &'a str,
    /// The app secret.
    pub secret: &'a str,
    /// Seconds since the Unix epoch.
    pub timestamp: u64,
}

impl Signer<'_> {
    /// The query string of a signed REST request: `params` followed by `auth_key`,
    /// `auth_timestamp`, `auth_version`, `body_md5` (for a non-empty body) and `auth_signature`,
    /// form-encoded.
    pub fn query(&self, method: &str, path: &str, mut params: Vec<(String, String)>, body: &[u8]) -> String {
        params.push(("auth_key".into(), self.key.to_string()));
        params.push(("auth_timestamp".into(), self.timestamp.to_string()));
        params.push(("auth_version".into(), "1.0".into()));
        if !body.is_empty() {
            params.push(("body_md5".into(), body_md5(body)));
        }
        let sig = sign(self.secret, rest_string(method, path, &params).as_bytes());
        params.push(("auth_signature".into(), sig));
        form_urlencoded::Serializer::new(String::new()).extend_pairs(&params).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "278d425bdf160c739803";
    const SECRET: &str = "7ad3773142a6692b25b8";

    #[test]
    fn private_vector() {
        let s = private_string("1234.1234", "private-foobar");
        assert_eq!(sign(SECRET, s.as_bytes()), "58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4");
        let auth = format!("{KEY}:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4");
        assert!(verify_auth(KEY, SECRET, s.as_bytes(), &auth));
        assert!(!verify_auth("other", SECRET, s.as_bytes(), &auth));
        assert!(!verify_auth(KEY, SECRET, b"1234.1234:private-other", &auth));
        assert!(!verify_auth(KEY, SECRET, s.as_bytes(), "no-colon"));
        assert!(!verify_auth(KEY, SECRET, s.as_bytes(), &format!("{KEY}:58df")));
        assert!(!verify_auth(KEY, SECRET, s.as_bytes(), &format!("{KEY}:{}", "zz".repeat(32))));
    }

    #[test]
    fn user_and_presence_vectors() {
        let u = user_string("1234.1234", r#"{"id":"12345"}"#);
        assert_eq!(sign(SECRET, u.as_bytes()), "4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba");
        let p =
            presence_string("1234.1234", "presence-foobar", r#"{"user_id":10,"user_info":{"name":"Mr. Channels"}}"#);
        assert_eq!(sign(SECRET, p.as_bytes()), "31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80");
    }

    #[test]
    fn webhook_vector() {
        let body = r#"{"time_ms":1327078148132,"events":[{"name":"channel_occupied","channel":"test-channel"}]}"#;
        assert_eq!(sign(SECRET, body.as_bytes()), "5dd6562a9f744b72a688bcdfea41c14c2c56d12c44c99e32c08face4cc1e8aeb");
    }

    #[test]
    fn rest_vector() {
        let body = r#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
        assert_eq!(body_md5(body.as_bytes()), "ec365a775a4cd0599faeb73354201b6f");
        let params = vec![
            ("auth_version".to_string(), "1.0".to_string()),
            ("auth_key".to_string(), KEY.to_string()),
            ("auth_signature".to_string(), "ignored".to_string()),
            ("auth_timestamp".to_string(), "1353088179".to_string()),
            ("body_md5".to_string(), "ec365a775a4cd0599faeb73354201b6f".to_string()),
        ];
        let s = rest_string("post", "/apps/3/events", &params);
        assert_eq!(
            s,
            "POST\n/apps/3/events\nauth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0&body_md5=ec365a775a4cd0599faeb73354201b6f"
        );
        assert_eq!(sign(SECRET, s.as_bytes()), "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c");
    }

    /// Sign-then-verify for any secret and message.
    mod round_trip {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn signatures_verify_and_tampering_fails(
                secret in any::<String>(),
                key in "[^:]*",
                message in prop::collection::vec(any::<u8>(), 0..300),
                flip in 0usize..64,
            ) {
                let sig = sign(&secret, &message);
                prop_assert_eq!(sig.len(), 64);
                prop_assert!(verify_hex(&secret, &message, &sig));
                let auth = format!("{key}:{sig}");
                prop_assert!(verify_auth(&key, &secret, &message, &auth));
                // One hex digit changed, another secret, another message, another key: refused.
                let mut bad = sig.clone().into_bytes();
                bad[flip] = if bad[flip] == b'0' { b'1' } else { b'0' };
                let bad = String::from_utf8(bad).unwrap_or_default();
                prop_assert!(!verify_hex(&secret, &message, &bad));
                let other_secret = format!("{secret}x");
                prop_assert!(!verify_hex(&other_secret, &message, &sig));
                let mut other = message.clone();
                other.push(0);
                prop_assert!(!verify_hex(&secret, &other, &sig));
                let other_key = format!("{key}x");
                prop_assert!(!verify_auth(&other_key, &secret, &message, &auth));
                // Upper-case hex is the same signature.
                prop_assert!(verify_hex(&secret, &message, &sig.to_ascii_uppercase()));
            }
        }
    }
}
