//! `POST /apps/{id}/users/{user_id}/terminate_connections`.

use super::{ApiError, auth};
use crate::protocol::channel;
use crate::state::Context;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Method, Uri};
use serde_json::{Value, json};

/// Closes every connection signed in as `user_id` with 4009.
pub async fn terminate_connections(
    State(ctx): State<Context>,
    Path((app_id, user_id)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let app = auth::verify(&ctx, &app_id, &method, &uri, &body)?;
    if let Err(e) = channel::validate_user_id(&user_id, app.config.max_user_id_length) {
        return Err(ApiError::BadRequest(format!("Invalid user id {user_id}: {e}")));
    }
    let closed = app.terminate_user(&user_id);
    tracing::info!(app = %app.config.id, user = %user_id, closed, "terminated user connections");
    Ok(Json(json!({})))
}
