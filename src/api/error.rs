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
    /// The app's REST rate limit for this second is used up.
    #[error("{0}")]
    TooManyRequests(String),
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
    /// The refusal of a REST call over one of the app's per-second limits.
    pub fn over_rate(what: &str, limit: u32) -> Self {
        ApiError::TooManyRequests(format!("Over the app's limit of {limit} {what} per second"))
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
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
