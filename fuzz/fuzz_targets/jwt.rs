//! JSON Web Token checks as the token auth endpoints (`/apps/{id}/auth`, `/apps/{id}/user-auth`)
//! run them: the form body's `socket_id`, the token from the `Authorization` header or the cookie
//! (`api::auth_endpoint::token`), `jwt::Verifier::verify`, and the channel grants.
//!
//! Input: byte 0 picks the mode and the app's settings. Raw mode: the rest is
//! `authorization-header \n cookie-header \n form-body`. Signed mode: the rest is a claims object
//! (JSON) that the target signs with HS256/384/512, with the app's secret and with another one.
//!
//! Checked: no panic; a token signed with another secret, or with an algorithm the app does not
//! allow, is refused; an accepted token has a non-empty `sub`.
#![no_main]

use http::{HeaderMap, HeaderValue, header};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use libfuzzer_sys::fuzz_target;
use sinew::api::auth_endpoint::token;
use sinew::config::AppConfig;
use sinew::hub::is_valid_socket_id;
use sinew::jwt::{Verifier, channel_granted};
use std::sync::OnceLock;

const SECRET: &str = "a-shared-secret-of-32-bytes-at-least!";

/// Two apps: one that accepts any HMAC algorithm, one restricted to HS256 with an issuer and an
/// audience, and a cookie.
fn apps() -> &'static [(AppConfig, Verifier); 2] {
    static APPS: OnceLock<[(AppConfig, Verifier); 2]> = OnceLock::new();
    APPS.get_or_init(|| {
        let open = AppConfig { jwt_secret: SECRET.into(), ..AppConfig::development() };
        let strict = AppConfig {
            jwt_secret: SECRET.into(),
            jwt_algorithms: vec!["HS256".into()],
            jwt_issuer: "https://id.example.com".into(),
            jwt_audience: "sinew".into(),
            jwt_cookie: "session".into(),
            jwt_leeway_seconds: 0,
            ..AppConfig::development()
        };
        [open, strict].map(|app| {
            let v = Verifier::for_app(&app).unwrap().unwrap();
            (app, v)
        })
    })
}

fuzz_target!(|data: &[u8]| {
    let [mode, rest @ ..] = data else { return };
    let (app, verifier) = &apps()[usize::from(mode & 1)];
    if mode & 2 == 0 {
        raw(app, verifier, rest);
    } else {
        signed(app, verifier, *mode, rest);
    }
});

fn raw(app: &AppConfig, verifier: &Verifier, data: &[u8]) {
    let mut parts = data.splitn(3, |&b| b == b'\n');
    let (auth, cookie, body) = (parts.next().unwrap_or_default(), parts.next(), parts.next().unwrap_or_default());
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_bytes(auth) {
        headers.insert(header::AUTHORIZATION, v);
    }
    if let Some(Ok(v)) = cookie.map(HeaderValue::from_bytes) {
        headers.insert(header::COOKIE, v);
    }
    let form: std::collections::HashMap<String, String> = form_urlencoded::parse(body).into_owned().collect();
    let socket_id = form.get("socket_id").cloned().unwrap_or_default();
    let _ = is_valid_socket_id(&socket_id);
    if let Some(t) = token(app, &headers, None) {
        check(verifier, &t, form.get("channel_name").map(String::as_str));
    }
    // Also as a token on its own.
    if let Ok(t) = std::str::from_utf8(auth) {
        check(verifier, t, None);
    }
}

fn signed(app: &AppConfig, verifier: &Verifier, mode: u8, claims: &[u8]) {
    let Ok(claims) = serde_json::from_slice::<serde_json::Value>(claims) else { return };
    let alg = [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512][usize::from(mode >> 2) % 3];
    let sign = |secret: &str| {
        jsonwebtoken::encode(&Header::new(alg), &claims, &EncodingKey::from_secret(secret.as_bytes())).ok()
    };
    let Some(good) = sign(SECRET) else { return };
    let accepted = check(verifier, &good, None);
    if accepted && !app.jwt_algorithms.is_empty() {
        assert!(app.jwt_algorithms.iter().any(|a| a == &format!("{alg:?}")), "{alg:?} accepted");
    }
    if let Some(bad) = sign("another-secret-entirely-32-bytes!!") {
        assert!(!check(verifier, &bad, None), "a token signed with another secret was accepted");
    }
    // A flipped byte in the signature.
    if let Some((head, sig)) = good.rsplit_once('.')
        && let Some(c) = sig.chars().next()
    {
        let flipped = if c == 'A' { 'B' } else { 'A' };
        let tampered = format!("{head}.{flipped}{}", &sig[c.len_utf8()..]);
        assert!(!check(verifier, &tampered, None), "a tampered token was accepted");
    }
}

/// Verifies `token`; on success checks the claims and a grant. True when accepted.
fn check(verifier: &Verifier, token: &str, channel: Option<&str>) -> bool {
    match verifier.verify(token) {
        Ok(claims) => {
            assert!(!claims.sub.is_empty());
            if let Some(ch) = channel {
                let _ = channel_granted(&claims.channels, ch);
            }
            true
        }
        Err(_) => false,
    }
}
