//! The admin HTTP API (`/admin/apps`): what the `sinew apps` commands do to the app store, over
//! HTTP, for an operator's tooling. Off unless `admin_token` is set; then served on the main port,
//! or on a listener of its own at `host:admin_port` (and not on the main port).
//!
//! Every route wants `Authorization: Bearer <admin_token>`, checked before the body is read.
//! Answers are JSON: an app is its `[[apps]]` settings, secret included (the operator needs it to
//! sign), and a refusal is `{"error": "..."}`. Neither bodies nor the token are ever logged; a
//! change is logged with the app's id only.
//!
//! With `app_store = "config"` the apps are the config file's: they can be read here, and every
//! change is refused with 409 (the file is the place to change them).
//!
//! After each change the store's table is read again, so that this node serves a new app at once.

use crate::api::ApiError;
use crate::app_store::SqlStore;
use crate::app_store::StoreError;
use crate::app_store::admin::AdminError;
use crate::config::AppConfig;
use crate::state::Context;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;

/// Admin routes as `(method, path)`, listed for the check against `openapi/admin.yaml`.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/admin/apps"),
    ("POST", "/admin/apps"),
    ("GET", "/admin/apps/{id}"),
    ("PATCH", "/admin/apps/{id}"),
    ("PUT", "/admin/apps/{id}"),
    ("DELETE", "/admin/apps/{id}"),
    ("POST", "/admin/apps/{id}/enable"),
    ("POST", "/admin/apps/{id}/disable"),
    ("POST", "/admin/apps/{id}/rotate"),
];

/// Why an admin request was refused; each maps to one status.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// No `Authorization: Bearer` header, or not the admin token.
    #[error("a valid admin token is required (Authorization: Bearer <admin_token>)")]
    Unauthorized,
    /// The body is not JSON, not an object, or over `max_request_bytes`.
    #[error("{1}")]
    Body(StatusCode, String),
    /// A write while the apps come from the config file.
    #[error(
        "app_store is `config`: apps are changed in the config file; set app_store to `postgres` or `mysql` to manage them here"
    )]
    ConfigStore,
    /// What the store refused.
    #[error(transparent)]
    Admin(#[from] AdminError),
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        Refusal::Admin(AdminError::Store(e))
    }
}

impl Refusal {
    /// The HTTP status of this refusal.
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::Unauthorized => StatusCode::UNAUTHORIZED,
            Refusal::Body(status, _) => *status,
            Refusal::ConfigStore | Refusal::Admin(AdminError::Taken(_)) => StatusCode::CONFLICT,
            Refusal::Admin(AdminError::Invalid(_)) => StatusCode::BAD_REQUEST,
            Refusal::Admin(AdminError::NotFound(_)) => StatusCode::NOT_FOUND,
            Refusal::Admin(AdminError::Store(StoreError::Unavailable(_))) => StatusCode::SERVICE_UNAVAILABLE,
            // The table lacks a column: the message says to run `sinew db migrate`.
            Refusal::Admin(AdminError::Store(StoreError::Table(_))) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = Json(json!({ "error": self.to_string() }));
        if matches!(self, Refusal::Unauthorized) {
            return (self.status(), [(header::WWW_AUTHENTICATE, "Bearer")], body).into_response();
        }
        (self.status(), body).into_response()
    }
}

/// What the admin handlers share: the context, and the SHA-256 of the admin token (compared with
/// the SHA-256 of the token given, so the comparison takes the same time whatever either's length).
#[derive(Clone)]
struct Admin {
    ctx: Context,
    token: [u8; 32],
}

/// The admin routes; empty when no `admin_token` is configured. The server merges them into the
/// main port's router when `admin_port` is 0, else serves them with [`serve`].
pub fn router<S: Clone + Send + Sync + 'static>(ctx: &Context) -> Router<S> {
    if ctx.config.admin_token.is_empty() {
        return Router::new();
    }
    let admin = Admin { ctx: ctx.clone(), token: Sha256::digest(ctx.config.admin_token.as_bytes()).into() };
    Router::new()
        .route("/admin/apps", get(list).post(create))
        .route("/admin/apps/{id}", get(show).patch(update).put(update).delete(delete))
        .route("/admin/apps/{id}/enable", post(enable))
        .route("/admin/apps/{id}/disable", post(disable))
        .route("/admin/apps/{id}/rotate", post(rotate))
        // Only matched routes ask for the token: any other path is the plain 404 of the server.
        .route_layer(axum::middleware::from_fn_with_state(admin.clone(), require_token))
        .layer(DefaultBodyLimit::max(ctx.config.max_request_bytes))
        .with_state(admin)
}

/// Serves the admin routes on their own listener until shutdown begins.
pub async fn serve(listener: TcpListener, ctx: Context) {
    let app: Router = router(&ctx).fallback(|| async { ApiError::NotFound("Not found".into()) });
    let stop = ctx.shutdown.clone();
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(async move { stop.cancelled().await }).await {
        tracing::error!(error = %e, "admin API listener failed");
    }
}

/// Whether `headers` carry `Authorization: Bearer <token>` whose SHA-256 is `want`.
fn authorized(headers: &HeaderMap, want: &[u8; 32]) -> bool {
    let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some((scheme, given)) = value.split_once(' ') else { return false };
    let given: [u8; 32] = Sha256::digest(given.trim().as_bytes()).into();
    // The scheme is case-insensitive (RFC 6750); the digests are compared in constant time.
    let same = given.iter().zip(want).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
    scheme.eq_ignore_ascii_case("bearer") & same
}

async fn require_token(State(admin): State<Admin>, req: Request, next: Next) -> Response {
    if !authorized(req.headers(), &admin.token) {
        return Refusal::Unauthorized.into_response();
    }
    next.run(req).await
}

impl Admin {
    /// The store to change, or the refusal of a change to the config file's apps.
    fn store(&self) -> Result<&SqlStore, Refusal> {
        self.ctx.apps.store().ok_or(Refusal::ConfigStore)
    }

    /// Refuses an id or key that an app of the config file has (it wins over the store's, so an
    /// app made with it would never be served). `id` is the app's own when it is being updated.
    fn clear_of_config_apps(&self, settings: &Map<String, Value>, own: Option<&str>) -> Result<(), Refusal> {
        let given = |name: &str| match settings.get(name) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        let hub = &self.ctx.hub;
        let configured = |app: Option<std::sync::Arc<crate::hub::AppState>>| {
            app.is_some_and(|a| !a.config().from_store && Some(a.id()) != own)
        };
        if let Some(id) = given("id").filter(|id| configured(hub.app_by_id(id))) {
            return Err(AdminError::Taken(format!("id `{id}` (an app of the config file)")).into());
        }
        if let Some(key) = given("key").filter(|key| configured(hub.app_by_key(key))) {
            return Err(AdminError::Taken(format!("key `{key}` (an app of the config file)")).into());
        }
        Ok(())
    }

    /// After a change has landed: logs it (the id only) and reads the table again so this node
    /// serves it. A failed read is not the caller's failure: the change is in the table.
    async fn changed(&self, what: &str, id: &str) {
        tracing::info!(app = %id, "app {what} through the admin API");
        if let Err(e) = self.ctx.apps.refresh(&self.ctx.hub).await {
            tracing::warn!(app = %id, error = %e, "app store not read again after an admin change");
        }
    }
}

/// The body as a JSON object of app settings.
fn settings(body: Result<Bytes, BytesRejection>) -> Result<Map<String, Value>, Refusal> {
    let bytes = body.map_err(|e| Refusal::Body(e.status(), e.body_text()))?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Refusal::Body(StatusCode::BAD_REQUEST, "the body must be a JSON object of app settings".into())),
        Err(e) => Err(Refusal::Body(StatusCode::BAD_REQUEST, format!("the body is not valid JSON: {e}"))),
    }
}

/// `GET /admin/apps`: the apps of the store's table (the config file's with the config store).
async fn list(State(admin): State<Admin>) -> Result<Json<Value>, Refusal> {
    let apps = match admin.ctx.apps.store() {
        Some(store) => store.all().await?,
        None => admin.ctx.config.apps.clone(),
    };
    Ok(Json(json!({ "apps": apps })))
}

/// `GET /admin/apps/{id}`.
async fn show(State(admin): State<Admin>, Path(id): Path<String>) -> Result<Json<AppConfig>, Refusal> {
    let found = match admin.ctx.apps.store() {
        Some(store) => store.by_id(&id).await?,
        None => admin.ctx.config.apps.iter().find(|a| a.id == id).cloned(),
    };
    found.map(Json).ok_or_else(|| AdminError::NotFound(id).into())
}

/// `POST /admin/apps`: 201 with the new app and its secret.
async fn create(
    State(admin): State<Admin>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<AppConfig>), Refusal> {
    let store = admin.store()?;
    let settings = settings(body)?;
    admin.clear_of_config_apps(&settings, None)?;
    let app = store.create_app(&settings).await?;
    admin.changed("created", &app.id).await;
    Ok((StatusCode::CREATED, Json(app)))
}

/// `PATCH` or `PUT /admin/apps/{id}`: the settings given are laid over the app's.
async fn update(
    State(admin): State<Admin>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<AppConfig>, Refusal> {
    let store = admin.store()?;
    let settings = settings(body)?;
    admin.clear_of_config_apps(&settings, Some(&id))?;
    let app = store.update_app(&id, &settings).await?;
    admin.changed("updated", &app.id).await;
    Ok(Json(app))
}

/// `POST /admin/apps/{id}/enable`.
async fn enable(State(admin): State<Admin>, Path(id): Path<String>) -> Result<Json<AppConfig>, Refusal> {
    let app = admin.store()?.set_enabled(&id, true).await?;
    admin.changed("enabled", &app.id).await;
    Ok(Json(app))
}

/// `POST /admin/apps/{id}/disable`.
async fn disable(State(admin): State<Admin>, Path(id): Path<String>) -> Result<Json<AppConfig>, Refusal> {
    let app = admin.store()?.set_enabled(&id, false).await?;
    admin.changed("disabled", &app.id).await;
    Ok(Json(app))
}

/// `POST /admin/apps/{id}/rotate`: the app with its new secret.
async fn rotate(State(admin): State<Admin>, Path(id): Path<String>) -> Result<Json<AppConfig>, Refusal> {
    let app = admin.store()?.rotate_secret(&id).await?;
    admin.changed("given a new secret", &app.id).await;
    Ok(Json(app))
}

/// `DELETE /admin/apps/{id}`: 204.
async fn delete(State(admin): State<Admin>, Path(id): Path<String>) -> Result<StatusCode, Refusal> {
    admin.store()?.delete_app(&id).await?;
    admin.changed("deleted", &id).await;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, value.parse().unwrap());
        h
    }

    #[test]
    fn only_the_bearer_token_is_authorized() {
        let want: [u8; 32] = Sha256::digest(b"s3cret").into();
        assert!(authorized(&with("Bearer s3cret"), &want));
        assert!(authorized(&with("bearer s3cret"), &want));
        for wrong in ["Bearer s3cre", "Bearer s3cret2", "Basic s3cret", "s3cret", "Bearer "] {
            assert!(!authorized(&with(wrong), &want), "{wrong}");
        }
        assert!(!authorized(&HeaderMap::new(), &want));
    }

    #[test]
    fn refusals_map_to_their_statuses() {
        let status = |r: Refusal| r.status().as_u16();
        assert_eq!(status(Refusal::Unauthorized), 401);
        assert_eq!(status(Refusal::ConfigStore), 409);
        assert_eq!(status(AdminError::Taken("id `1`".into()).into()), 409);
        assert_eq!(status(AdminError::Invalid("x".into()).into()), 400);
        assert_eq!(status(AdminError::NotFound("1".into()).into()), 404);
        assert_eq!(status(StoreError::Unavailable("down".into()).into()), 503);
        let res = Refusal::Unauthorized.into_response();
        assert_eq!(res.headers().get(header::WWW_AUTHENTICATE).map(|v| v.as_bytes()), Some(&b"Bearer"[..]));
    }

    #[test]
    fn a_body_must_be_a_json_object() {
        assert!(settings(Ok(Bytes::from_static(br#"{"max_connections":5}"#))).is_ok());
        for bad in [&b"[1]"[..], b"not json", b""] {
            let e = settings(Ok(Bytes::from_static(bad))).unwrap_err();
            assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        }
    }
}
