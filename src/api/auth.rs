//! The signed-request check every REST call passes before its handler runs.

use super::ApiError;
use crate::hub::AppState;
use crate::protocol::signature;
use crate::state::Context;
use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Requests whose `auth_timestamp` is further than this from the server clock are refused.
pub const TIMESTAMP_WINDOW_SECS: i64 = 600;

/// MD5 of the empty body, which the Python SDK sends on GET requests.
const EMPTY_MD5: &str = "d41d8cd98f00b204e9800998ecf8427e";

/// A REST request whose signature checked out: the app it names (by the `{app_id}` in its path,
/// or by `auth_key` on the routes without one), with its URI and body. Taking it as a handler's
/// argument is the check: the handler runs only for a signed request.
pub struct Signed {
    /// The app the request is for.
    pub app: Arc<AppState>,
    /// The request's URI (its query holds the `info` and filter parameters).
    pub uri: Uri,
    /// The request's body.
    pub body: Bytes,
}

impl<S> FromRequest<S> for Signed
where
    Context: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        let ctx = Context::from_ref(state);
        let (mut parts, body) = req.into_parts();
        let app_id = RawPathParams::from_request_parts(&mut parts, state)
            .await
            .ok()
            .and_then(|p| p.iter().find(|(name, _)| *name == "app_id").map(|(_, id)| id.to_string()));
        let (method, uri) = (parts.method.clone(), parts.uri.clone());
        let body =
            Bytes::from_request(Request::from_parts(parts, body), state).await.map_err(IntoResponse::into_response)?;
        let app = match app_id {
            Some(id) => {
                // An app id not served yet may have just been inserted in the app store.
                ctx.apps
                    .find_id(&ctx.hub, &id)
                    .await
                    .map_err(|e| ApiError::Unavailable(e.to_string()).into_response())?;
                verify(&ctx, &id, &method, &uri, &body)
            }
            None => {
                if let Some(key) = query_param(&uri, "auth_key") {
                    ctx.apps
                        .find_key(&ctx.hub, &key)
                        .await
                        .map_err(|e| ApiError::Unavailable(e.to_string()).into_response())?;
                }
                verify_by_key(&ctx, &method, &uri, &body)
            }
        }
        .map_err(IntoResponse::into_response)?;
        Ok(Signed { app, uri, body })
    }
}

/// Checks a request's signature for the app in its path and returns that app.
///
/// Order: unknown app id (404), then key, timestamp, body_md5 and signature (401), then disabled (403).
fn verify(ctx: &Context, app_id: &str, method: &Method, uri: &Uri, body: &[u8]) -> Result<Arc<AppState>, ApiError> {
    let app = ctx.hub.app_by_id(app_id).ok_or_else(|| ApiError::NotFound(format!("Unknown app id {app_id}")))?;
    verify_for(app, method.as_str(), uri.path(), uri.query(), body)
}

/// Like [`verify`] for routes without an app id in the path: the app is the one whose key is
/// `auth_key` (the Python SDK posts `terminate_connections` to `/users/{id}/...` this way).
fn verify_by_key(ctx: &Context, method: &Method, uri: &Uri, body: &[u8]) -> Result<Arc<AppState>, ApiError> {
    let key = query_param(uri, "auth_key").ok_or_else(|| ApiError::Unauthorized("Missing auth_key".into()))?;
    let app = ctx.hub.app_by_key(&key).ok_or_else(|| ApiError::Unauthorized("Unknown auth_key".into()))?;
    verify_for(app, method.as_str(), uri.path(), uri.query(), body)
}

fn verify_for(
    app: Arc<AppState>,
    method: &str,
    path: &str,
    query: Option<&str>,
    body: &[u8],
) -> Result<Arc<AppState>, ApiError> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let config = app.config();
    let credentials = Credentials { key: &config.key, secret: &config.secret };
    let checked = check_signature(credentials, method, path, query, body, now);
    // A secret rotated a moment ago still signs during its grace period.
    match (checked, app.retired_secret()) {
        (Err(e), Some(old)) => {
            check_signature(Credentials { secret: &old, ..credentials }, method, path, query, body, now)
                .map_err(|_| e)?
        }
        (checked, _) => checked?,
    }
    if !config.enabled {
        return Err(ApiError::Forbidden("Application is disabled".into()));
    }
    drop(config);
    Ok(app)
}

/// The key and secret a REST request is checked against.
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a> {
    /// The app key (`auth_key` must equal it).
    pub key: &'a str,
    /// The app secret (the HMAC key).
    pub secret: &'a str,
}

/// Checks a REST request's signature parameters against an app's credentials at time `now`
/// (seconds since the Unix epoch): `auth_key`, `auth_timestamp` within the window,
/// `auth_version`, `body_md5` and `auth_signature`, in that order. Pure: no clock, no app lookup
/// (public for the fuzz targets).
pub fn check_signature(
    credentials: Credentials<'_>,
    method: &str,
    path: &str,
    query: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), ApiError> {
    let params: Vec<(String, String)> = query
        .map(|q| form_urlencoded::parse(q.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
        .unwrap_or_default();
    let get = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let unauthorized = |m: &str| ApiError::Unauthorized(m.to_string());

    let key = get("auth_key").ok_or_else(|| unauthorized("Missing auth_key"))?;
    if key != credentials.key {
        return Err(unauthorized("auth_key does not belong to this app"));
    }
    let ts: i64 = get("auth_timestamp")
        .ok_or_else(|| unauthorized("Missing auth_timestamp"))?
        .parse()
        .map_err(|_| unauthorized("auth_timestamp is not a number"))?;
    if now.abs_diff(ts) > TIMESTAMP_WINDOW_SECS.unsigned_abs() {
        return Err(ApiError::Unauthorized(format!(
            "Timestamp expired: {ts} is not within {TIMESTAMP_WINDOW_SECS}s of server time {now}"
        )));
    }
    if let Some(v) = get("auth_version")
        && v != "1.0"
    {
        return Err(unauthorized("auth_version must be 1.0"));
    }
    let md5_ok = match get("body_md5") {
        Some(md5) if body.is_empty() => md5 == EMPTY_MD5,
        Some(md5) => md5 == signature::body_md5(body),
        None => body.is_empty(),
    };
    if !md5_ok {
        return Err(unauthorized("body_md5 is missing or does not match the body"));
    }
    let sig = get("auth_signature").ok_or_else(|| unauthorized("Missing auth_signature"))?;
    let to_sign = signature::rest_string(method, path, &params);
    if !signature::verify_hex(credentials.secret, to_sign.as_bytes(), sig) {
        return Err(unauthorized("Invalid signature"));
    }
    Ok(())
}

/// The query parameter `name`, decoded.
pub fn query_param(uri: &Uri, name: &str) -> Option<String> {
    form_urlencoded::parse(uri.query()?.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::signature::Signer;
    use proptest::prelude::*;

    const CREDS: Credentials<'static> = Credentials { key: "278d425bdf160c739803", secret: "7ad3773142a6692b25b8" };
    const NOW: i64 = 1_353_088_179;

    #[test]
    fn the_pusher_rest_vector_checks_out() {
        let q = "auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0&body_md5=ec365a775a4cd0599faeb73354201b6f&auth_signature=da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c";
        let body = br#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
        assert!(check_signature(CREDS, "POST", "/apps/3/events", Some(q), body, NOW).is_ok());
        assert!(check_signature(CREDS, "POST", "/apps/3/events", Some(q), body, NOW + 601).is_err());
        assert!(check_signature(CREDS, "POST", "/apps/4/events", Some(q), body, NOW).is_err());
        assert!(check_signature(CREDS, "POST", "/apps/3/events", Some(q), b"{}", NOW).is_err());
        assert!(check_signature(CREDS, "POST", "/apps/3/events", None, body, NOW).is_err());
    }

    proptest! {
        /// Sign-then-verify: a request signed as the SDKs sign it (any method, path, parameters and
        /// body) passes the check; signed with another secret, or sent with another body, it does not.
        #[test]
        fn signed_requests_verify(
            method in prop::sample::select(vec!["GET", "POST", "post"]),
            path in "/[ -~é]{0,40}",
            params in prop::collection::vec(("[a-zA-Z_ &=+%é]{1,10}", any::<String>()), 0..5),
            body in prop::collection::vec(any::<u8>(), 0..100),
            skew in -600i64..=600,
        ) {
            let params: Vec<(String, String)> =
                params.into_iter().filter(|(k, _)| !k.starts_with("auth_") && k != "body_md5").collect();
            let signer = Signer { key: CREDS.key, secret: CREDS.secret, timestamp: NOW as u64 };
            let q = signer.query(method, &path, params.clone(), &body);
            let checked = check_signature(CREDS, method, &path, Some(&q), &body, NOW + skew);
            prop_assert!(checked.is_ok(), "{:?} for {}", checked.err(), q);
            let forged = Signer { secret: "another", ..signer }.query(method, &path, params, &body);
            prop_assert!(check_signature(CREDS, method, &path, Some(&forged), &body, NOW).is_err());
            let mut other = body.clone();
            other.push(b'!');
            prop_assert!(check_signature(CREDS, method, &path, Some(&q), &other, NOW).is_err());
        }
    }
}
