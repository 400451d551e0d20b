//! REST errors: each maps to one HTTP status and a JSON body `{"error": "..."}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// A refused REST request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed body, missing field, invalid channel name, too many channels or events.
    #[error("{0}")]
    BadRequest(String),
    /// Missing or invalid signature, unknown key, stale timestamp, body_md5 mismatch.
    #[error("{0}")]
    Unauthorized(String),
    /// The app is disabled.
    #[error("{0}")]
    Forbidden(String),
    /// Unknown app id or route.
    #[error("{0}")]
    NotFound(String),
    /// Event data over the app's limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The cluster state in Redis could not be read.
    #[error("{0}")]
    Unavailable(String),
}

impl From<crate::adapter::ClusterError> for ApiError {
    fn from(e: crate::adapter::ClusterError) -> Self {
        ApiError::Unavailable(e.to_string())
    }
}

impl ApiError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The JSON body of this error's response.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({ "error": self.to_string() })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status(), Json(self.body())).into_response()
    }
}
