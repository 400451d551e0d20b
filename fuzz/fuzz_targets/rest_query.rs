//! The REST API's signed-request check (`api::auth::check_signature`: query parameters,
//! `auth_key`, `auth_timestamp`, `auth_version`, `body_md5`, `auth_signature`) and the signing
//! the SDKs do (`protocol::signature::Signer`).
//!
//! Input: method, path, query and body separated by `\n` (the body is the rest, any bytes).
//!
//! Checked: no panic on any request; a request signed with the app's credentials (the fuzzed
//! path, parameters and body) is accepted; one signed with another secret, or changed after
//! signing, is refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sinew::api::auth::{Credentials, check_signature};
use sinew::protocol::signature::Signer;

/// The app the seeds were captured with (the development app).
const CREDS: Credentials<'static> = Credentials { key: "app-key", secret: "app-secret" };
const NOW: i64 = 1_353_088_179;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(4, |&b| b == b'\n');
    let (Some(method), Some(path), Some(query)) = (parts.next(), parts.next(), parts.next()) else { return };
    let body = parts.next().unwrap_or_default();
    let (Ok(method), Ok(path), Ok(query)) =
        (std::str::from_utf8(method), std::str::from_utf8(path), std::str::from_utf8(query))
    else {
        return;
    };

    // Whatever arrives: checked without panicking, at any clock, and at the request's own
    // `auth_timestamp` (so that captured requests reach the signature check).
    let own = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "auth_timestamp")
        .and_then(|(_, v)| v.parse::<i64>().ok())
        .unwrap_or(NOW);
    for now in [NOW, own, 0, i64::MAX, i64::MIN] {
        let _ = check_signature(CREDS, method, path, Some(query), body, now);
    }
    let _ = check_signature(CREDS, method, path, None, body, NOW);

    // Sign the fuzzed request the way the SDKs do, then check it. Parameters the signer adds
    // itself are left out (the first of a repeated key is the one checked).
    let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .filter(|(k, _)| !k.starts_with("auth_") && k != "body_md5")
        .collect();
    let signer = Signer { key: CREDS.key, secret: CREDS.secret, timestamp: NOW as u64 };
    let signed = signer.query(method, path, params.clone(), body);
    if let Err(e) = check_signature(CREDS, method, path, Some(&signed), body, NOW) {
        panic!("a correctly signed request was refused: {e} ({method} {path}?{signed})");
    }
    // Within the window, not outside it.
    assert!(check_signature(CREDS, method, path, Some(&signed), body, NOW + 600).is_ok());
    assert!(check_signature(CREDS, method, path, Some(&signed), body, NOW + 601).is_err());
    // Another secret, another body, another path: refused.
    let wrong = Signer { secret: "not-the-secret", ..signer };
    let forged = wrong.query(method, path, params, body);
    assert!(check_signature(CREDS, method, path, Some(&forged), body, NOW).is_err());
    let mut other_body = body.to_vec();
    other_body.push(b'x');
    assert!(check_signature(CREDS, method, path, Some(&signed), &other_body, NOW).is_err());
    let other_path = format!("{path}/x");
    assert!(check_signature(CREDS, method, &other_path, Some(&signed), body, NOW).is_err());
});
