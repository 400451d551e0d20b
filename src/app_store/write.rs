//! An app written back as a row: the inverse of [`super::columns::app_of`]. soketi's core columns
//! carry what they can (`-1` for unlimited); every other setting that differs from its default
//! goes into `sinew_settings`, which is laid over the columns when the row is read (so soketi's
//! optional `max_*` columns are left as they are, and `sinew_settings` wins over them).

use crate::config::AppConfig;
use serde_json::{Map, Value, json};

/// Settings with a column of their own (credentials and soketi's core columns).
const CORE: &[&str] = &[
    "id",
    "key",
    "secret",
    "max_connections",
    "client_events",
    "enabled",
    "max_backend_events_per_second",
    "max_client_events_per_second",
    "max_read_requests_per_second",
    "webhooks",
];

/// A column's value as text (`None`: SQL NULL), typed by the database on the way in.
pub type Values = Vec<(&'static str, Option<String>)>;

/// The row of `app`, as column values.
pub fn row_of(app: &AppConfig) -> Values {
    let unlimited = |n: u64| if n == 0 { -1 } else { i64::try_from(n).unwrap_or(i64::MAX) };
    let client_rate =
        if app.max_client_events_per_second == u32::MAX { -1 } else { i64::from(app.max_client_events_per_second) };
    let hooks: Vec<Value> = app
        .webhooks
        .iter()
        .map(|w| {
            let mut h = json!({"url": w.url, "event_types": w.event_types});
            if let Some(p) = &w.channel_prefix {
                h["filter"] = json!({"channel_name_starts_with": p});
            }
            h
        })
        .collect();
    let settings = settings_of(app);
    vec![
        ("id", Some(app.id.clone())),
        ("key", Some(app.key.clone())),
        ("secret", Some(app.secret.clone())),
        ("max_connections", Some(unlimited(app.max_connections).to_string())),
        ("enable_client_messages", Some(app.client_events.to_string())),
        ("enabled", Some(app.enabled.to_string())),
        ("max_backend_events_per_sec", Some(unlimited(app.max_backend_events_per_second.into()).to_string())),
        ("max_client_events_per_sec", Some(client_rate.to_string())),
        ("max_read_req_per_sec", Some(unlimited(app.max_read_requests_per_second.into()).to_string())),
        ("webhooks", Some(Value::Array(hooks).to_string())),
        ("sinew_settings", (!settings.is_empty()).then(|| Value::Object(settings).to_string())),
    ]
}

/// The settings of `app` that have no column and differ from the default.
pub fn settings_of(app: &AppConfig) -> Map<String, Value> {
    let (Ok(Value::Object(mine)), Ok(Value::Object(default))) =
        (serde_json::to_value(app), serde_json::to_value(AppConfig::default()))
    else {
        return Map::new();
    };
    mine.into_iter().filter(|(k, v)| !CORE.contains(&k.as_str()) && default.get(k) != Some(v)).collect()
}

/// Text for a boolean in a column of `data_type` (PostgreSQL's `boolean` wants `true`, a
/// `smallint` or MySQL's `tinyint(1)` wants `1`).
pub fn typed(value: &str, data_type: &str) -> String {
    let boolean = data_type.eq_ignore_ascii_case("boolean");
    match value {
        "true" if !boolean => "1".into(),
        "false" if !boolean => "0".into(),
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app_store::columns::{Row, app_of};
    use crate::config::WebhookTarget;

    fn read_back(values: &Values) -> AppConfig {
        let row: Row = values.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        app_of(&row).unwrap_or_else(|e| panic!("{e}")).0
    }

    #[test]
    fn an_app_survives_the_round_trip() {
        let app = AppConfig {
            max_connections: 0,
            max_backend_events_per_second: 20,
            max_client_events_per_second: u32::MAX,
            subscription_count: true,
            max_presence_members: 7,
            allowed_origins: vec!["https://a.example".into()],
            webhooks: vec![WebhookTarget {
                url: "https://h.example".into(),
                event_types: vec!["member_added".into()],
                channel_prefix: Some("presence-".into()),
            }],
            ..AppConfig::development()
        };
        let values = row_of(&app);
        assert_eq!(values.iter().find(|(k, _)| *k == "max_connections").unwrap().1.as_deref(), Some("-1"));
        let back = read_back(&values);
        assert_eq!(serde_json::to_value(&back).unwrap(), serde_json::to_value(&app).unwrap());
    }

    #[test]
    fn defaults_leave_sinew_settings_empty_and_booleans_follow_the_column_type() {
        let app = AppConfig { id: "a".into(), key: "k".into(), secret: "s".into(), ..AppConfig::default() };
        let values = row_of(&app);
        assert_eq!(values.last().unwrap(), &("sinew_settings", None));
        assert_eq!(typed("true", "boolean"), "true");
        assert_eq!(typed("true", "smallint"), "1");
        assert_eq!(typed("false", "tinyint"), "0");
        assert_eq!(typed("12", "integer"), "12");
    }
}
