//! `POST /apps/{id}/users/{user_id}/terminate_connections`, and the same without the app prefix
//! (`POST /users/{user_id}/terminate_connections`, app taken from `auth_key`) as the official
//! Python SDK sends it.

use super::ApiError;
use super::auth::Signed;
use crate::hub::AppState;
use crate::protocol::channel;
use axum::Json;
use axum::extract::Path;
use serde_json::{Value, json};

/// Closes every connection signed in as `user_id` with 4009.
pub async fn terminate_connections(
    Path((_, user_id)): Path<(String, String)>,
    Signed { app, .. }: Signed,
) -> Result<Json<Value>, ApiError> {
    terminate(&app, &user_id)
}

/// `POST /users/{user_id}/terminate_connections` (the app is the one owning `auth_key`).
pub async fn terminate_connections_by_key(
    Path(user_id): Path<String>,
    Signed { app, .. }: Signed,
) -> Result<Json<Value>, ApiError> {
    terminate(&app, &user_id)
}

fn terminate(app: &AppState, user_id: &str) -> Result<Json<Value>, ApiError> {
    if let Err(e) = channel::validate_user_id(user_id, app.config().max_user_id_length) {
        return Err(ApiError::BadRequest(format!("Invalid user id {user_id}: {e}")));
    }
    let closed = app.terminate_everywhere(user_id);
    tracing::info!(app = %app.id(), user = %user_id, closed, "terminated user connections");
    Ok(Json(json!({})))
}
