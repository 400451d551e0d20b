//! `POST /apps/{id}/auth` and `POST /apps/{id}/user-auth`: Sinew verifies the caller's JSON Web
//! Token and answers pusher-js's `channelAuthorization` / `userAuthentication` requests itself.

use crate::config::AppConfig;
use crate::hub::{AppState, clock, is_valid_socket_id};
use crate::jwt::{Claims, TokenError, Verifier, channel_granted};
use crate::protocol::channel::{self, ChannelKind, ChannelType};
use crate::protocol::{frame, signature};
use crate::rate_limit::RateWindow;
use crate::state::Context;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Per-app state of the auth endpoints: the token verifier and a request-rate window.
pub struct AuthApp {
    verifier: Verifier,
    window: Mutex<RateWindow>,
}

/// The apps that accept tokens, by app id.
#[derive(Default)]
pub struct AuthApps {
    apps: HashMap<String, AuthApp>,
}

impl AuthApps {
    /// Loads the verifier of every app that configures JWT keys (apps whose keys fail to load are
    /// logged and left out; start-up checks them first).
    pub fn new(apps: &[AppConfig]) -> Self {
        let mut out = HashMap::new();
        for app in apps {
            match Verifier::for_app(app) {
                Ok(Some(verifier)) => {
                    out.insert(app.id.clone(), AuthApp { verifier, window: Mutex::new(RateWindow::new(clock())) });
                }
                Ok(None) => {}
                Err(e) => tracing::error!(app = %app.id, error = %e, "JWT keys not loaded"),
            }
        }
        AuthApps { apps: out }
    }

    /// Reloads JWKS files that changed (or all, with `force`, as on SIGHUP).
    pub fn refresh(&self, force: bool) {
        for a in self.apps.values() {
            a.verifier.refresh_jwks(force);
        }
    }

    /// Whether any app has a JWKS file to watch.
    pub fn is_empty(&self) -> bool {
        self.apps.is_empty()
    }
}

/// The `Access-Control-Allow-Origin` value for a request, `Ok(None)` without an `Origin`, or
/// `Err(())` when the origin is neither listed in `allowed_origins` nor this server itself.
fn allowed_origin(app: &AppConfig, headers: &HeaderMap) -> Result<Option<HeaderValue>, ()> {
    let Some(origin) = headers.get(header::ORIGIN) else { return Ok(None) };
    // A value that is not text matches only `*`.
    let listed = app.origin_listed(origin.to_str().unwrap_or_default());
    if listed || same_origin(headers, origin) { Ok(Some(origin.clone())) } else { Err(()) }
}

/// Whether `origin` is this server itself (a page served from the same host and port).
fn same_origin(headers: &HeaderMap, origin: &HeaderValue) -> bool {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    origin.to_str().is_ok_and(|o| o.strip_prefix("http://").or_else(|| o.strip_prefix("https://")) == host)
}

/// Credentials (the token cookie) may only be shared with an origin named explicitly (not by `*`
/// nor by a `*.` subdomain pattern).
fn credentials_allowed(app: &AppConfig, origin: &HeaderValue) -> bool {
    !app.jwt_cookie.is_empty() && origin.to_str().is_ok_and(|o| app.origin_named(o))
}

fn with_cors(mut res: Response, origin: Option<HeaderValue>, app: &AppConfig) -> Response {
    if let Some(o) = origin {
        let credentials = credentials_allowed(app, &o);
        let h = res.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
        if credentials {
            h.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        }
    }
    res
}

fn fail(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

/// `OPTIONS` preflight for both endpoints.
pub async fn preflight(State(ctx): State<Context>, Path(app_id): Path<String>, headers: HeaderMap) -> Response {
    let Some(app) = ctx.hub.app_by_id(&app_id) else { return fail(StatusCode::NOT_FOUND, "unknown app") };
    let Ok(origin) = allowed_origin(&app.config(), &headers) else {
        return fail(StatusCode::FORBIDDEN, "origin not allowed");
    };
    let mut res = StatusCode::NO_CONTENT.into_response();
    let h = res.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST, OPTIONS"));
    let requested = headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS).cloned();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        requested.unwrap_or_else(|| HeaderValue::from_static("Authorization, Content-Type")),
    );
    h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    with_cors(res, origin, &app.config())
}

/// What both endpoints check before signing: app, origin, rate, token, form and live socket.
struct Checked {
    origin: Option<HeaderValue>,
    form: HashMap<String, String>,
    socket_id: String,
    claims: Claims,
}

/// A refusal of the auth endpoints: status, message, and the CORS origin to echo.
struct Refusal {
    status: StatusCode,
    message: String,
    origin: Option<HeaderValue>,
}

impl Refusal {
    fn into_response(self, app: Option<&AppConfig>) -> Response {
        let res = fail(self.status, &self.message);
        match app {
            Some(a) => with_cors(res, self.origin, a),
            None => res,
        }
    }
}

/// The app and what [`check`] found, or the refusal to answer with.
fn checked(
    ctx: &Context,
    auth: &AuthApps,
    app_id: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Arc<AppState>, Checked), Box<Response>> {
    let Some(app) = ctx.hub.app_by_id(app_id) else {
        return Err(Box::new(fail(StatusCode::NOT_FOUND, "unknown app")));
    };
    match check(ctx, auth, &app, headers, body) {
        Ok(c) => Ok((app, c)),
        Err(r) => Err(Box::new(r.into_response(Some(&app.config())))),
    }
}

fn check(ctx: &Context, auth: &AuthApps, app: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<Checked, Refusal> {
    let cfg = &*app.config_owned();
    let origin = allowed_origin(cfg, headers).map_err(|()| Refusal {
        status: StatusCode::FORBIDDEN,
        message: "origin not allowed".into(),
        origin: None,
    })?;
    let refuse =
        |status: StatusCode, message: &str| Refusal { status, message: message.to_string(), origin: origin.clone() };
    let auth = auth
        .apps
        .get(&cfg.id)
        .ok_or_else(|| refuse(StatusCode::NOT_FOUND, "token authorization is not enabled for this app"))?;
    if !take_slot(auth, cfg.auth_rate_limit_per_second) {
        return Err(refuse(StatusCode::TOO_MANY_REQUESTS, "too many authorization requests"));
    }
    // The token before the form: no answer to a caller without a valid token depends on which
    // sockets are live (an outsider could otherwise probe them). The rate window comes first, as
    // it bounds the work of verifying.
    let token = token(cfg, headers, origin.as_ref())
        .ok_or_else(|| refuse(StatusCode::UNAUTHORIZED, &TokenError::Missing.to_string()))?;
    let claims = auth.verifier.verify(&token).map_err(|e| refuse(StatusCode::UNAUTHORIZED, &e.to_string()))?;
    let form: HashMap<String, String> = form_urlencoded::parse(body).into_owned().collect();
    let socket_id = form.get("socket_id").cloned().unwrap_or_default();
    if !is_valid_socket_id(&socket_id) {
        return Err(refuse(StatusCode::BAD_REQUEST, "socket_id is missing or malformed"));
    }
    let live = ctx.hub.is_socket_live(app, &socket_id);
    if !live {
        return Err(refuse(StatusCode::FORBIDDEN, "socket_id is not a live connection of this app"));
    }
    Ok(Checked { origin, form, socket_id, claims })
}

/// Takes one request slot in the app's one-second window.
fn take_slot(auth: &AuthApp, per_second: u32) -> bool {
    auth.window.lock().unwrap_or_else(|p| p.into_inner()).take(clock(), per_second)
}

/// The token from the configured header (`Bearer` prefix optional) or cookie. The cookie is only
/// read without an `Origin`, from the same origin, or from an origin listed by name (never `*`).
/// (Public for the fuzz targets.)
#[doc(hidden)]
pub fn token(cfg: &AppConfig, headers: &HeaderMap, origin: Option<&HeaderValue>) -> Option<String> {
    let from_header = headers.get(cfg.jwt_header.as_str()).and_then(|v| v.to_str().ok()).map(|v| {
        let v = v.trim();
        v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")).unwrap_or(v).trim().to_string()
    });
    let cookie_ok = origin.is_none_or(|o| same_origin(headers, o) || credentials_allowed(cfg, o));
    let from_cookie = || {
        if cfg.jwt_cookie.is_empty() || !cookie_ok {
            return None;
        }
        headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(
            |c| {
                let (k, v) = c.trim().split_once('=')?;
                (k == cfg.jwt_cookie).then(|| v.to_string())
            },
        )
    };
    from_header.filter(|t| !t.is_empty()).or_else(from_cookie)
}

/// `POST /apps/{app_id}/auth`: signs a private, encrypted or presence subscription.
pub async fn channel_auth(
    State(ctx): State<Context>,
    State(auth): State<Arc<AuthApps>>,
    Path(app_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (app, c) = match checked(&ctx, &auth, &app_id, &headers, &body) {
        Ok(ok) => ok,
        Err(refused) => return *refused,
    };
    let cfg = &*app.config_owned();
    let reply = |r: Response| with_cors(r, c.origin.clone(), cfg);
    let name = c.form.get("channel_name").cloned().unwrap_or_default();
    if let Err(e) = channel::validate_name(&name, cfg.max_channel_name_length, false) {
        return reply(fail(StatusCode::BAD_REQUEST, &format!("invalid channel_name: {e}")));
    }
    let kind = ChannelType::of(&name).kind;
    if !matches!(kind, ChannelKind::Private | ChannelKind::Encrypted | ChannelKind::Presence) {
        return reply(fail(
            StatusCode::BAD_REQUEST,
            "only private, encrypted and presence channels need authorization",
        ));
    }
    if !channel_granted(&c.claims.channels, &name) {
        return reply(fail(StatusCode::FORBIDDEN, "channel not granted"));
    }
    let sign = |s: String| format!("{}:{}", cfg.key, signature::sign(&cfg.secret, s.as_bytes()));
    let out = match kind {
        ChannelKind::Presence => {
            let mut data = format!("{{\"user_id\":{}", frame::json_str(&c.claims.sub));
            if let Some(info) = &c.claims.user_info {
                data.push_str(&format!(",\"user_info\":{info}"));
            }
            data.push('}');
            let auth = sign(signature::presence_string(&c.socket_id, &name, &data));
            json!({ "auth": auth, "channel_data": data })
        }
        ChannelKind::Encrypted => {
            let Ok(master) = base64::engine::general_purpose::STANDARD.decode(&cfg.encryption_master_key_base64) else {
                return reply(fail(StatusCode::BAD_REQUEST, "encrypted channels need an encryption master key"));
            };
            if master.len() != 32 {
                return reply(fail(StatusCode::BAD_REQUEST, "encrypted channels need an encryption master key"));
            }
            let mut h = Sha256::new();
            h.update(name.as_bytes());
            h.update(&master);
            let shared = base64::engine::general_purpose::STANDARD.encode(h.finalize());
            json!({ "auth": sign(signature::private_string(&c.socket_id, &name)), "shared_secret": shared })
        }
        _ => json!({ "auth": sign(signature::private_string(&c.socket_id, &name)) }),
    };
    reply(axum::Json(out).into_response())
}

/// `POST /apps/{app_id}/user-auth`: signs a `pusher:signin` for the token's subject.
pub async fn user_auth(
    State(ctx): State<Context>,
    State(auth): State<Arc<AuthApps>>,
    Path(app_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (app, c) = match checked(&ctx, &auth, &app_id, &headers, &body) {
        Ok(ok) => ok,
        Err(refused) => return *refused,
    };
    let cfg = &*app.config_owned();
    let mut user = serde_json::Map::new();
    user.insert("id".into(), Value::String(c.claims.sub.clone()));
    if let Some(info) = &c.claims.user_info {
        user.insert("user_info".into(), info.clone());
    }
    if let Some(w) = &c.claims.watchlist {
        user.insert("watchlist".into(), json!(w));
    }
    let user_data = Value::Object(user).to_string();
    let auth = format!(
        "{}:{}",
        cfg.key,
        signature::sign(&cfg.secret, signature::user_string(&c.socket_id, &user_data).as_bytes())
    );
    with_cors(axum::Json(json!({ "auth": auth, "user_data": user_data })).into_response(), c.origin.clone(), cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_secret_vector() {
        // Spec 5.5: master key bytes 0..31, channel private-encrypted-foo.
        let master: Vec<u8> = (0u8..32).collect();
        let mut h = Sha256::new();
        h.update(b"private-encrypted-foo");
        h.update(&master);
        let got = base64::engine::general_purpose::STANDARD.encode(h.finalize());
        assert_eq!(got, "E3I6KxLwqP1Rr/p1676Vpnrw23CkRdS5bkX5NazRkeY=");
    }
}
