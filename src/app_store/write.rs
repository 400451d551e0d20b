//! Writing to the table: an app as a row, inserted or over its row, or the row deleted, and every
//! change announced to the other nodes (PostgreSQL `NOTIFY`). The row is the inverse of
//! [`super::columns::app_of`]. soketi's core columns
//! carry what they can (`-1` for unlimited); every other setting that differs from its default
//! goes into `sinew_settings`, which is laid over the columns when the row is read (so soketi's
//! optional `max_*` columns are left as they are, and `sinew_settings` wins over them).

use super::columns::{self, Row};
use super::{Pool, SqlStore, StoreError, schema};
use crate::config::AppConfig;
use serde_json::{Map, Value, json};

impl SqlStore {
    /// Writes `app` as a new row (`insert`) or over the row with its id, leaving the columns in
    /// `leave` as they are (so that a change to some settings does not write back, say, a secret
    /// rotated meanwhile). Returns the rows written.
    pub(super) async fn write(&self, app: &AppConfig, insert: bool, leave: &[&str]) -> Result<u64, StoreError> {
        let pg = self.postgres();
        let columns = self.columns().await?;
        let mut values: Values = Vec::new();
        for (name, value) in row_of(app) {
            match columns.get(name) {
                Some(ty) => values.push((name, value.map(|v| typed(&v, ty)))),
                None if name == "sinew_settings" && value.is_some() => {
                    return Err(StoreError::Table(format!(
                        "`{}` has no sinew_settings column for settings beyond soketi's: run `sinew db migrate`",
                        self.table
                    )));
                }
                None if matches!(name, "id" | "key" | "secret") => {
                    return Err(StoreError::Table(format!("`{}` has no `{name}` column", self.table)));
                }
                None => {}
            }
        }
        // What the table can hold must read back as the same app.
        let stored: Row = values.iter().map(|(n, v)| (n.to_string(), v.clone())).collect();
        let same = columns::app_of(&stored)
            .is_ok_and(|(back, _)| serde_json::to_value(&back).ok() == serde_json::to_value(app).ok());
        if !same {
            return Err(StoreError::Table(format!(
                "`{}` lacks columns for some of this app's settings: run `sinew db migrate`",
                self.table
            )));
        }
        let param = |i: usize, name: &str| match columns.get(name).filter(|_| pg) {
            Some(ty) => format!("CAST(${i} AS {ty})"),
            None if pg => format!("${i}"),
            None => "?".into(),
        };
        let table = schema::quote(&self.table, pg);
        let sql = if insert {
            let names: Vec<String> = values.iter().map(|(n, _)| schema::quote(n, pg)).collect();
            let params: Vec<String> = values.iter().enumerate().map(|(i, (n, _))| param(i + 1, n)).collect();
            format!("INSERT INTO {table} ({}) VALUES ({})", names.join(", "), params.join(", "))
        } else {
            values.retain(|(n, _)| *n != "id" && !leave.contains(n));
            let mut sets: Vec<String> = values
                .iter()
                .enumerate()
                .map(|(i, (n, _))| format!("{} = {}", schema::quote(n, pg), param(i + 1, n)))
                .collect();
            if pg && columns.contains_key("updated_at") {
                sets.push("\"updated_at\" = now()".into());
            }
            let id = if pg { format!("${}", values.len() + 1) } else { "?".into() };
            values.push(("id", Some(app.id.clone())));
            format!("UPDATE {table} SET {} WHERE {} = {id}", sets.join(", "), schema::quote("id", pg))
        };
        self.count();
        let done = match &self.pool {
            Pool::Postgres(p) => {
                let mut q = sqlx::query(&sql);
                for (_, v) in &values {
                    q = q.bind(v.clone());
                }
                q.execute(p).await?.rows_affected()
            }
            Pool::MySql(p) => {
                let mut q = sqlx::query(&sql);
                for (_, v) in &values {
                    q = q.bind(v.clone());
                }
                q.execute(p).await?.rows_affected()
            }
        };
        self.announce().await;
        Ok(done)
    }

    /// Deletes the row with this id; false when there was none.
    pub(super) async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        let pg = self.postgres();
        let sql = format!(
            "DELETE FROM {} WHERE {} = {}",
            schema::quote(&self.table, pg),
            schema::quote("id", pg),
            if pg { "$1" } else { "?" }
        );
        self.count();
        let n = match &self.pool {
            Pool::Postgres(p) => sqlx::query(&sql).bind(id).execute(p).await?.rows_affected(),
            Pool::MySql(p) => sqlx::query(&sql).bind(id).execute(p).await?.rows_affected(),
        };
        self.announce().await;
        Ok(n > 0)
    }

    /// Tells every node listening on PostgreSQL that the table changed (the trigger `sinew db
    /// migrate` adds does it for hand-made changes too; nothing to do on MySQL, which is polled).
    async fn announce(&self) {
        if let Some(p) = self.pg_pool() {
            self.count();
            let sent =
                sqlx::query("SELECT pg_notify($1, $2)").bind(schema::NOTIFY_CHANNEL).bind(&self.table).execute(p).await;
            if let Err(e) = sent {
                tracing::warn!(error = %e, "could not announce the app change; other nodes see it at their next reload");
            }
        }
    }
}

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
