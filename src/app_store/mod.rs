//! Apps kept in a database (`app_store = "postgres"` or `"mysql"`), read with `sqlx`: its pools
//! reconnect by themselves, speak TLS through rustls (no OpenSSL to install), and both databases
//! are driven by one crate whose queries are plain strings checked by the tests against the real
//! servers, not at compile time (no database is needed to build Sinew).
//!
//! [`columns`] turns a row into an app (soketi's table as it is, or Sinew's superset of it);
//! [`schema`] is the table `sinew db migrate` creates or completes.

pub mod admin;
pub mod columns;
pub mod directory;
pub mod schema;
pub mod write;

use crate::config::{AppConfig, Config};
use columns::{KNOWN, Row};
use sqlx::Column as _;
use sqlx::mysql::{MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgPool, PgPoolOptions};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Why the store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or refused the query.
    #[error("the app store is unavailable: {0}")]
    Unavailable(String),
    /// The table is missing or lacks a required column.
    #[error("the app store's table {0}")]
    Table(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

enum Pool {
    Postgres(PgPool),
    MySql(MySqlPool),
}

/// An apps table in PostgreSQL or MySQL/MariaDB.
pub struct SqlStore {
    pool: Pool,
    table: String,
    queries: AtomicU64,
}

/// How long a query may wait for a connection before the store counts as unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

impl SqlStore {
    /// The store `config` names (`None` for `app_store = "config"`). Connects lazily: nothing is
    /// asked of the database until the first query.
    pub fn from_config(config: &Config) -> Result<Option<SqlStore>, StoreError> {
        let url = config.database_url.as_str();
        let pool = match config.app_store.as_str() {
            "postgres" => Pool::Postgres(
                PgPoolOptions::new().max_connections(4).acquire_timeout(ACQUIRE_TIMEOUT).connect_lazy(url)?,
            ),
            "mysql" => Pool::MySql(
                MySqlPoolOptions::new().max_connections(4).acquire_timeout(ACQUIRE_TIMEOUT).connect_lazy(url)?,
            ),
            _ => return Ok(None),
        };
        Ok(Some(SqlStore { pool, table: config.app_store_table.clone(), queries: AtomicU64::new(0) }))
    }

    fn postgres(&self) -> bool {
        matches!(self.pool, Pool::Postgres(_))
    }

    /// Queries sent to the database so far.
    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    /// The table's columns (lower case) and their types; empty when the table does not exist.
    async fn columns(&self) -> Result<HashMap<String, String>, StoreError> {
        let names = match &self.pool {
            Pool::Postgres(p) => {
                let sql = "SELECT column_name::text, data_type::text FROM information_schema.columns \
                           WHERE table_name = $1 AND table_schema = current_schema()";
                self.count();
                sqlx::query_as::<_, (String, String)>(sql).bind(&self.table).fetch_all(p).await?
            }
            Pool::MySql(p) => {
                let sql = "SELECT CAST(column_name AS CHAR), CAST(data_type AS CHAR) FROM information_schema.columns \
                           WHERE table_name = ? AND table_schema = DATABASE()";
                self.count();
                sqlx::query_as::<_, (String, String)>(sql).bind(&self.table).fetch_all(p).await?
            }
        };
        Ok(names.into_iter().map(|(n, t)| (n.to_ascii_lowercase(), t)).collect())
    }

    fn count(&self) {
        self.queries.fetch_add(1, Ordering::Relaxed);
    }

    /// Creates the table, or adds the columns an existing one (soketi's) lacks.
    pub async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        let pg = self.postgres();
        let existing = self.columns().await?;
        let statements: Vec<String> = if existing.is_empty() {
            vec![schema::create_table(&self.table, pg)]
        } else {
            for required in ["id", "key", "secret"] {
                if !existing.contains_key(required) {
                    return Err(StoreError::Table(format!("`{}` has no `{required}` column", self.table)));
                }
            }
            schema::COLUMNS
                .iter()
                .filter(|c| !existing.contains_key(c.name))
                .map(|c| schema::add_column(&self.table, c, pg))
                .collect()
        };
        for sql in &statements {
            self.execute(sql).await?;
        }
        Ok(statements)
    }

    async fn execute(&self, sql: &str) -> Result<(), StoreError> {
        self.count();
        match &self.pool {
            Pool::Postgres(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
            Pool::MySql(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
        }
        .map_err(StoreError::from)
    }

    /// `SELECT` of every known column the table has, as text, with an optional `WHERE col = ?`.
    fn select(&self, columns: &HashMap<String, String>, filter: Option<&str>) -> Result<String, StoreError> {
        let pg = self.postgres();
        for required in ["id", "key", "secret"] {
            if !columns.contains_key(required) {
                return Err(StoreError::Table(format!(
                    "`{}` has no `{required}` column (or does not exist)",
                    self.table
                )));
            }
        }
        let list: Vec<String> = KNOWN
            .iter()
            .filter(|c| columns.contains_key(**c))
            .map(|c| {
                let q = schema::quote(c, pg);
                if pg { format!("{q}::text AS {q}") } else { format!("CAST({q} AS CHAR) AS {q}") }
            })
            .collect();
        let mut sql = format!("SELECT {} FROM {}", list.join(", "), schema::quote(&self.table, pg));
        if let Some(col) = filter {
            sql.push_str(&format!(" WHERE {} = {}", schema::quote(col, pg), if pg { "$1" } else { "?" }));
        }
        Ok(sql)
    }

    async fn rows(&self, filter: Option<(&str, &str)>) -> Result<Vec<Row>, StoreError> {
        let columns = self.columns().await?;
        let sql = self.select(&columns, filter.map(|(c, _)| c))?;
        self.count();
        let rows = match &self.pool {
            Pool::Postgres(p) => {
                let mut q = sqlx::query(&sql);
                if let Some((_, v)) = filter {
                    q = q.bind(v);
                }
                q.fetch_all(p).await?.iter().map(read_row).collect::<Result<_, _>>()?
            }
            Pool::MySql(p) => {
                let mut q = sqlx::query(&sql);
                if let Some((_, v)) = filter {
                    q = q.bind(v);
                }
                q.fetch_all(p).await?.iter().map(read_row).collect::<Result<_, _>>()?
            }
        };
        Ok(rows)
    }

    /// Every app in the table that can be served; a row that cannot is logged and left out.
    pub async fn all(&self) -> Result<Vec<AppConfig>, StoreError> {
        Ok(self.rows(None).await?.iter().filter_map(servable).collect())
    }

    /// The app with this key, if the table has one that can be served.
    pub async fn by_key(&self, key: &str) -> Result<Option<AppConfig>, StoreError> {
        Ok(self.rows(Some(("key", key))).await?.iter().find_map(servable))
    }

    /// The app with this id, if the table has one that can be served.
    pub async fn by_id(&self, id: &str) -> Result<Option<AppConfig>, StoreError> {
        Ok(self.rows(Some(("id", id))).await?.iter().find_map(servable))
    }

    /// Writes `app` as a new row (`insert`) or over the row with its id.
    async fn write(&self, app: &AppConfig, insert: bool) -> Result<u64, StoreError> {
        let pg = self.postgres();
        let columns = self.columns().await?;
        let mut values: write::Values = Vec::new();
        for (name, value) in write::row_of(app) {
            match columns.get(name) {
                Some(ty) => values.push((name, value.map(|v| write::typed(&v, ty)))),
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
            values.retain(|(n, _)| *n != "id");
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
        Ok(done)
    }

    /// Deletes the row with this id; false when there was none.
    async fn delete(&self, id: &str) -> Result<bool, StoreError> {
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
        Ok(n > 0)
    }
}

/// One result row as column name to text.
fn read_row<R: sqlx::Row>(row: &R) -> Result<Row, StoreError>
where
    usize: sqlx::ColumnIndex<R>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let mut out = Row::new();
    for (i, column) in row.columns().iter().enumerate() {
        let value: Option<String> = row.try_get(i)?;
        out.insert(column.name().to_ascii_lowercase(), value);
    }
    Ok(out)
}

/// The app of a row, checked like an app of the config file; logged and `None` when it cannot be
/// served.
fn servable(row: &Row) -> Option<AppConfig> {
    let (app, warnings) = match columns::app_of(row) {
        Ok(ok) => ok,
        Err(e) => {
            tracing::error!(error = %e, "app in the store cannot be served");
            return None;
        }
    };
    for w in warnings {
        tracing::warn!(app = %app.id, "{w}");
    }
    if let Err(e) = app.validate(0, &mut HashSet::new(), &mut HashSet::new()) {
        tracing::error!(app = %app.id, error = %e, "app in the store cannot be served");
        return None;
    }
    Some(app)
}

/// Adds the store's apps to `configured` (the config file's and `SINEW_APP_*`'s, which win over
/// a stored app with the same id or key); returns the ids of the stored apps left out.
pub fn merge(configured: &mut Vec<AppConfig>, stored: Vec<AppConfig>) -> Vec<String> {
    let mut ids: HashSet<String> = configured.iter().map(|a| a.id.clone()).collect();
    let mut keys: HashSet<String> = configured.iter().map(|a| a.key.clone()).collect();
    let mut shadowed = Vec::new();
    for app in stored {
        if ids.contains(&app.id) || keys.contains(&app.key) {
            shadowed.push(app.id);
            continue;
        }
        ids.insert(app.id.clone());
        keys.insert(app.key.clone());
        configured.push(app);
    }
    shadowed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_apps_win_over_stored_ones_with_the_same_id_or_key() {
        let app = |id: &str, key: &str| AppConfig {
            id: id.into(),
            key: key.into(),
            secret: "s".into(),
            ..AppConfig::default()
        };
        let mut configured = vec![app("1", "k1")];
        let left_out = merge(&mut configured, vec![app("1", "other"), app("2", "k1"), app("3", "k3")]);
        assert_eq!(left_out, vec!["1", "2"]);
        let ids: Vec<&str> = configured.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids, vec!["1", "3"]);
    }
}
