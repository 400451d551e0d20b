//! `GET /apps/{id}/channels/{name}/history`: what a backend reads of a channel's history (the
//! events a reconnecting client would be sent again), signed like every REST call and counted as
//! a read. `since` (an offset, default 0) and `limit` (default 100, at most 1,000) page through it.

use super::ApiError;
use super::auth::{self, Signed};
use crate::protocol::channel;
use axum::Json;
use axum::extract::Path;
use serde_json::{Map, Value, json};

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

/// `GET /apps/{app_id}/channels/{channel_name}/history`.
pub async fn read(
    Path((_, name)): Path<(String, String)>,
    Signed { app, uri, .. }: Signed,
) -> Result<Json<Value>, ApiError> {
    super::channels::take_read(&app)?;
    channel::validate_name(&name, app.config().max_channel_name_length, true)
        .map_err(|e| ApiError::BadRequest(format!("Invalid channel name {name}: {e}")))?;
    let number = |param: &str, default: u64| -> Result<u64, ApiError> {
        auth::query_param(&uri, param).map_or(Ok(default), |v| {
            v.parse().map_err(|_| ApiError::BadRequest(format!("{param} must be a whole number")))
        })
    };
    let since = number("since", 0)?;
    let limit = usize::try_from(number("limit", DEFAULT_LIMIT as u64)?).unwrap_or(MAX_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!("limit must be between 1 and {MAX_LIMIT}")));
    }
    if !app.keeps_history(&name) {
        return Err(ApiError::BadRequest(format!("The app keeps no history for channel {name}")));
    }
    let page = app.read_history(&name, since, limit).await?;
    let Some(page) = page else {
        return Ok(Json(json!({ "epoch": null, "first": 1, "last": 0, "events": [] })));
    };
    let events: Vec<Value> = page
        .events
        .iter()
        .map(|(offset, frame)| {
            let mut event = serde_json::from_str::<Map<String, Value>>(frame.as_str()).unwrap_or_default();
            event.remove("sinew_position");
            event.insert("offset".into(), json!(offset));
            Value::Object(event)
        })
        .collect();
    Ok(Json(json!({ "epoch": page.epoch, "first": page.first, "last": page.last, "events": events })))
}
