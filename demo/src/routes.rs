//! HTTP routes: the page and its scripts, the notes API, and channel authorization.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::json;
use sinew_sdk::{Client, ModelChange, PresenceData};
use std::collections::HashMap;
use std::sync::Arc;

use crate::store::{Note, NoteInput, Store, StoreError};

/// The Spine model class the notes are published as.
pub const CLASS: &str = "Note";

/// Everything the handlers share.
pub struct App {
    /// The notes.
    pub store: Store,
    /// Publishes to Sinew and signs subscriptions.
    pub sinew: Client,
    /// The channel changes go to.
    pub channel: String,
    /// `window.DEMO = {...}` for the page.
    pub client_config: String,
    /// Script files served under /vendor/, by name.
    pub vendor: HashMap<&'static str, String>,
}

type Shared = State<Arc<App>>;

/// The router.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(|| async { html(include_str!("../public/index.html")) }))
        .route("/app.js", get(|| async { js(include_str!("../public/app.js").to_string()) }))
        .route(
            "/style.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css")], include_str!("../public/style.css")) }),
        )
        .route("/config.js", get(|State(app): Shared| async move { js(app.client_config.clone()) }))
        .route("/vendor/{name}", get(vendor))
        .route("/notes", get(list).post(create))
        .route("/notes/{id}", put(update).delete(destroy))
        .route("/pusher/auth", post(authorize))
        .with_state(app)
}

fn html(body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

fn js(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "no-store")], body)
        .into_response()
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, axum::Json(json!({ "error": message.to_string() }))).into_response()
}

fn store_error(e: StoreError) -> Response {
    match e {
        StoreError::NotFound(_) => error(StatusCode::NOT_FOUND, e),
        StoreError::BadTitle => error(StatusCode::UNPROCESSABLE_ENTITY, e),
        StoreError::File { .. } => {
            eprintln!("sinew-demo: {e}");
            error(StatusCode::INTERNAL_SERVER_ERROR, e)
        }
    }
}

async fn vendor(State(app): Shared, Path(name): Path<String>) -> Response {
    match app.vendor.get(name.as_str()) {
        Some(body) => js(body.clone()),
        None => error(StatusCode::NOT_FOUND, format!("no script {name}")),
    }
}

async fn list(State(app): Shared) -> Response {
    axum::Json(app.store.list()).into_response()
}

/// The browser's socket id from `X-Pusher-Socket-ID`, so its own change is not echoed back.
fn origin_socket(headers: &HeaderMap) -> Result<Option<String>, String> {
    let Some(value) = headers.get("x-pusher-socket-id") else { return Ok(None) };
    let id = value.to_str().map_err(|_| "X-Pusher-Socket-ID is not text".to_string())?;
    sinew_sdk::sign::validate_socket_id(id).map_err(|e| format!("X-Pusher-Socket-ID: {e}"))?;
    Ok(Some(id.to_string()))
}

/// Publishes after the store has the change. A failed publish is logged: the note is saved and
/// other pages catch up on their next resync.
async fn publish(app: &App, change: ModelChange, socket: Option<String>) {
    if let Err(e) = app.sinew.publish_change(&app.channel, &change, socket.as_deref()).await {
        eprintln!("sinew-demo: publishing {} of {} {} failed: {e}", change.kind.as_str(), CLASS, change.id);
    }
}

async fn saved(
    app: &App,
    status: StatusCode,
    note: Note,
    change: Result<ModelChange, sinew_sdk::Error>,
    socket: Option<String>,
) -> Response {
    match change {
        Ok(change) => publish(app, change, socket).await,
        Err(e) => eprintln!("sinew-demo: cannot describe note {}: {e}", note.id),
    }
    (status, axum::Json(note)).into_response()
}

async fn create(State(app): Shared, headers: HeaderMap, axum::Json(input): axum::Json<NoteInput>) -> Response {
    let socket = match origin_socket(&headers) {
        Ok(s) => s,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    match app.store.create(input).await {
        Ok(note) => {
            let change = ModelChange::create(CLASS, &note.id, &note);
            saved(&app, StatusCode::CREATED, note, change, socket).await
        }
        Err(e) => store_error(e),
    }
}

async fn update(
    State(app): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
    axum::Json(input): axum::Json<NoteInput>,
) -> Response {
    let socket = match origin_socket(&headers) {
        Ok(s) => s,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    match app.store.update(&id, input).await {
        Ok(note) => {
            let change = ModelChange::update(CLASS, &note.id, &note);
            saved(&app, StatusCode::OK, note, change, socket).await
        }
        Err(e) => store_error(e),
    }
}

async fn destroy(State(app): Shared, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let socket = match origin_socket(&headers) {
        Ok(s) => s,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    match app.store.destroy(&id).await {
        Ok(note) => {
            publish(&app, ModelChange::destroy(CLASS, &note.id), socket).await;
            axum::Json(json!({})).into_response()
        }
        Err(e) => store_error(e),
    }
}

/// pusher-js's channel authorization request: form fields `socket_id` and `channel_name`.
/// Only the notes channel is signed; on a presence channel every page joins as a guest.
async fn authorize(State(app): Shared, body: Bytes) -> Response {
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let (Some(socket_id), Some(channel)) = (form.get("socket_id"), form.get("channel_name")) else {
        return error(StatusCode::BAD_REQUEST, "socket_id and channel_name are required");
    };
    if *channel != app.channel {
        return error(StatusCode::FORBIDDEN, format!("not allowed to subscribe to {channel}"));
    }
    let signed = if channel.starts_with("presence-") {
        let member = PresenceData { user_id: format!("guest-{socket_id}"), user_info: Some(json!({"name": "guest"})) };
        app.sinew.authorize_channel(socket_id, channel, Some(&member))
    } else {
        app.sinew.authorize_channel::<serde_json::Value>(socket_id, channel, None)
    };
    match signed {
        Ok(auth) => axum::Json(auth).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}
