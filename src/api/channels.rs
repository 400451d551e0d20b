//! `GET /apps/{id}/channels`, `GET /apps/{id}/channels/{name}` and `GET .../{name}/users`.

use super::ApiError;
use super::auth::{self, Signed};
use crate::hub::AppState;
use crate::protocol::channel::{self, ChannelKind, ChannelType};
use axum::Json;
use axum::extract::Path;
use axum::http::Uri;
use serde_json::{Map, Value, json};

fn info_attrs(uri: &Uri) -> Vec<String> {
    auth::query_param(uri, "info")
        .map(|s| s.split(',').map(|a| a.trim().to_string()).filter(|a| !a.is_empty()).collect())
        .unwrap_or_default()
}

/// `GET /apps/{app_id}/channels`: occupied channels, optionally by prefix, with `user_count` for presence.
pub async fn list(Signed { app, uri, .. }: Signed) -> Result<Json<Value>, ApiError> {
    take_read(&app)?;
    let prefix = auth::query_param(&uri, "filter_by_prefix").unwrap_or_default();
    let mut user_count = false;
    let mut subscription_count = false;
    for attr in info_attrs(&uri) {
        match attr.as_str() {
            "user_count" if prefix.starts_with("presence-") => user_count = true,
            "user_count" => {
                return Err(ApiError::BadRequest(
                    "info=user_count needs filter_by_prefix starting with presence-".into(),
                ));
            }
            "subscription_count" => subscription_count = true,
            other => return Err(ApiError::BadRequest(format!("Unsupported info attribute {other}"))),
        }
    }
    let mut channels = Map::new();
    for (name, summary) in app.channel_list(&prefix, user_count).await? {
        let mut attrs = Map::new();
        if user_count {
            attrs.insert("user_count".into(), json!(summary.user_count));
        }
        if subscription_count {
            attrs.insert("subscription_count".into(), json!(summary.subscription_count));
        }
        channels.insert(name, Value::Object(attrs));
    }
    Ok(Json(json!({ "channels": channels })))
}

/// `GET /apps/{app_id}/channels/{channel_name}`: occupancy and the requested counts.
pub async fn show(
    Path((_, name)): Path<(String, String)>,
    Signed { app, uri, .. }: Signed,
) -> Result<Json<Value>, ApiError> {
    take_read(&app)?;
    channel::validate_name(&name, app.config().max_channel_name_length, true)
        .map_err(|e| ApiError::BadRequest(format!("Invalid channel name {name}: {e}")))?;
    let ty = ChannelType::of(&name);
    let summary = app.channel_info(&name).await?;
    let mut out = Map::new();
    out.insert("occupied".into(), json!(summary.is_some()));
    for attr in info_attrs(&uri) {
        match attr.as_str() {
            "user_count" if ty.kind == ChannelKind::Presence => {
                out.insert("user_count".into(), json!(summary.as_ref().map_or(0, |s| s.user_count)));
            }
            "user_count" => return Err(ApiError::BadRequest("info=user_count is only for presence channels".into())),
            "subscription_count" => {
                out.insert("subscription_count".into(), json!(summary.as_ref().map_or(0, |s| s.subscription_count)));
            }
            "cache" if ty.cache => {
                if let Some((event, data, ttl)) = app.cached_event(&name).await? {
                    out.insert("cache".into(), json!({ "event": event, "data": data, "ttl": ttl }));
                }
            }
            "cache" => return Err(ApiError::BadRequest("info=cache is only for cache channels".into())),
            other => return Err(ApiError::BadRequest(format!("Unsupported info attribute {other}"))),
        }
    }
    Ok(Json(Value::Object(out)))
}

/// `GET /apps/{app_id}/channels/{channel_name}/users`: the distinct members of a presence channel.
pub async fn users(
    Path((_, name)): Path<(String, String)>,
    Signed { app, .. }: Signed,
) -> Result<Json<Value>, ApiError> {
    take_read(&app)?;
    channel::validate_name(&name, app.config().max_channel_name_length, false)
        .map_err(|e| ApiError::BadRequest(format!("Invalid channel name {name}: {e}")))?;
    if ChannelType::of(&name).kind != ChannelKind::Presence {
        return Err(ApiError::BadRequest("Only presence channels have users".into()));
    }
    let users: Vec<Value> = app.channel_members(&name).await?.into_iter().map(|id| json!({ "id": id })).collect();
    Ok(Json(json!({ "users": users })))
}

/// Takes one read from the app's REST read allowance of this second.
pub(super) fn take_read(app: &AppState) -> Result<(), ApiError> {
    if app.take_rest_read() {
        Ok(())
    } else {
        Err(ApiError::over_rate("reads", app.config().max_read_requests_per_second))
    }
}
