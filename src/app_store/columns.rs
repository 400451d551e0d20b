//! One row of an apps table, read as text, turned into an [`AppConfig`].
//!
//! The table is soketi's (`id, key, secret, max_connections, enable_client_messages, enabled,
//! max_backend_events_per_sec, max_client_events_per_sec, max_read_req_per_sec, webhooks` and the
//! optional `max_*` columns; `-1` meaning unlimited), optionally with Sinew's own columns added by
//! `sinew db migrate`: `sinew_settings` (a JSON object of any other app keys, named as in the
//! config file's `[[apps]]`) and `updated_at`. Every column is selected as text, so the same code
//! reads PostgreSQL's `boolean`/`smallint`/`json` and MySQL's `tinyint(1)`/`json` alike.

use crate::config::{AppConfig, WebhookTarget};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Columns read when the table has them, in this order; the first three are required.
pub const KNOWN: &[&str] = &[
    "id",
    "key",
    "secret",
    "max_connections",
    "enable_client_messages",
    "enabled",
    "max_backend_events_per_sec",
    "max_client_events_per_sec",
    "max_read_req_per_sec",
    "webhooks",
    "max_presence_members_per_channel",
    "max_presence_member_size_in_kb",
    "max_channel_name_length",
    "max_event_channels_at_once",
    "max_event_name_length",
    "max_event_payload_in_kb",
    "max_event_batch_size",
    "sinew_settings",
];

/// Why a row could not be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("app `{id}`: column `{column}` {reason}")]
pub struct RowError {
    pub id: String,
    pub column: String,
    pub reason: String,
}

/// One row: column name to text value (`None` for SQL NULL).
pub type Row = HashMap<String, Option<String>>;

/// The app a row describes. Warnings (soketi settings Sinew does not have) are returned beside it.
pub fn app_of(row: &Row) -> Result<(AppConfig, Vec<String>), RowError> {
    let id = text(row, "id").unwrap_or_default().to_string();
    let err = |column: &str, reason: String| RowError { id: id.clone(), column: column.into(), reason };
    let mut app = AppConfig {
        id: id.clone(),
        key: text(row, "key").unwrap_or_default().into(),
        secret: text(row, "secret").unwrap_or_default().into(),
        ..AppConfig::default()
    };
    let mut warnings = Vec::new();
    let int = |column: &str| -> Result<Option<i64>, RowError> {
        text(row, column)
            .map(|v| v.trim().parse::<i64>().map_err(|_| err(column, format!("is not a whole number: `{v}`"))))
            .transpose()
    };
    let flag = |column: &str| -> Result<Option<bool>, RowError> {
        text(row, column)
            .map(|v| match v.trim().to_ascii_lowercase().as_str() {
                "1" | "t" | "true" => Ok(true),
                "0" | "f" | "false" => Ok(false),
                other => Err(err(column, format!("is not a boolean: `{other}`"))),
            })
            .transpose()
    };
    // soketi's -1 (and Sinew's 0) mean unlimited.
    let limit = |v: i64| -> u64 { u64::try_from(v).unwrap_or(0) };
    let limit32 = |v: i64| -> u32 { u32::try_from(v.max(0)).unwrap_or(u32::MAX) };
    if let Some(v) = int("max_connections")? {
        app.max_connections = limit(v);
    }
    if let Some(v) = flag("enable_client_messages")? {
        app.client_events = v;
    }
    if let Some(v) = flag("enabled")? {
        app.enabled = v;
    }
    if let Some(v) = int("max_backend_events_per_sec")? {
        app.max_backend_events_per_second = limit32(v);
    }
    if let Some(v) = int("max_client_events_per_sec")? {
        app.max_client_events_per_second = if v < 0 { u32::MAX } else { limit32(v) };
    }
    if let Some(v) = int("max_read_req_per_sec")? {
        app.max_read_requests_per_second = limit32(v);
    }
    let positive = |column: &str, v: i64, scale: i64| -> Result<usize, RowError> {
        usize::try_from(v.saturating_mul(scale))
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| err(column, "must be positive".into()))
    };
    for (column, scale) in [
        ("max_presence_members_per_channel", 1),
        ("max_presence_member_size_in_kb", 1024),
        ("max_channel_name_length", 1),
        ("max_event_channels_at_once", 1),
        ("max_event_name_length", 1),
        ("max_event_payload_in_kb", 1024),
        ("max_event_batch_size", 1),
    ] {
        let Some(v) = int(column)? else { continue };
        let n = positive(column, v, scale)?;
        match column {
            "max_presence_members_per_channel" => app.max_presence_members = n,
            "max_presence_member_size_in_kb" => app.max_presence_user_info_bytes = n,
            "max_channel_name_length" => app.max_channel_name_length = n,
            "max_event_channels_at_once" => app.max_channels_per_event = n,
            "max_event_name_length" => app.max_event_name_length = n,
            "max_event_payload_in_kb" => app.max_event_data_bytes = n,
            _ => app.max_batch_size = n,
        }
    }
    if let Some(hooks) = text(row, "webhooks").filter(|h| !h.trim().is_empty()) {
        let parsed: Value = serde_json::from_str(hooks).map_err(|e| err("webhooks", format!("is not JSON: {e}")))?;
        app.webhooks = webhooks_of(&parsed, &mut warnings).map_err(|reason| err("webhooks", reason))?;
    }
    if let Some(settings) = text(row, "sinew_settings").filter(|s| !s.trim().is_empty()) {
        app = with_settings(app, settings).map_err(|reason| err("sinew_settings", reason))?;
    }
    Ok((app, warnings))
}

/// The column's text, when the row has the column and it is not NULL.
pub fn text<'a>(row: &'a Row, column: &str) -> Option<&'a str> {
    row.get(column).and_then(|v| v.as_deref())
}

/// soketi's webhook list: `url`, `event_types`, `filter.channel_name_starts_with` are served;
/// what Sinew cannot honour (`lambda` targets, `channel_name_ends_with`, custom `headers`) is
/// reported, and a webhook that has no `url` is refused.
fn webhooks_of(list: &Value, warnings: &mut Vec<String>) -> Result<Vec<WebhookTarget>, String> {
    let Value::Array(items) = list else { return Err("must be a JSON array".into()) };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Some(url) = item.get("url").and_then(Value::as_str) else {
            if item.get("lambda_function").is_some() || item.get("lambda").is_some() {
                warnings.push(format!("webhooks[{i}]: AWS Lambda targets are not supported; skipped"));
                continue;
            }
            return Err(format!("webhooks[{i}] has no `url`"));
        };
        let event_types = match item.get("event_types") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(v)) => v.iter().filter_map(Value::as_str).map(str::to_string).collect(),
            Some(_) => return Err(format!("webhooks[{i}].event_types must be an array")),
        };
        let filter = item.get("filter");
        let channel_prefix =
            filter.and_then(|f| f.get("channel_name_starts_with")).and_then(Value::as_str).map(str::to_string);
        if filter.and_then(|f| f.get("channel_name_ends_with")).and_then(Value::as_str).is_some_and(|s| !s.is_empty()) {
            warnings
                .push(format!("webhooks[{i}]: filter.channel_name_ends_with is not supported; every channel is sent"));
        }
        if item.get("headers").and_then(Value::as_object).is_some_and(|h| !h.is_empty()) {
            warnings.push(format!("webhooks[{i}]: custom headers are not sent"));
        }
        out.push(WebhookTarget { url: url.to_string(), event_types, channel_prefix });
    }
    Ok(out)
}

/// `settings` (a JSON object of app keys as in the config file) laid over `app`. Credentials
/// come from their own columns and cannot be set here.
fn with_settings(app: AppConfig, settings: &str) -> Result<AppConfig, String> {
    let overlay: Map<String, Value> =
        serde_json::from_str(settings).map_err(|e| format!("is not a JSON object: {e}"))?;
    if let Some(k) = overlay.keys().find(|k| matches!(k.as_str(), "id" | "key" | "secret")) {
        return Err(format!("may not set `{k}` (it has its own column)"));
    }
    let Value::Object(mut base) = serde_json::to_value(&app).map_err(|e| e.to_string())? else {
        return Err("cannot be merged".into());
    };
    base.extend(overlay);
    serde_json::from_value(Value::Object(base)).map_err(|e| e.to_string())
}

#[cfg(test)]
#[path = "columns_tests.rs"]
mod tests;
