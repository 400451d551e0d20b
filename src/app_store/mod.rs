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
pub mod watch;
pub mod write;

use crate::config::{AppConfig, Config};
use columns::{KNOWN, Row};
use sqlx::Column as _;
use sqlx::mysql::{MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgPool, PgPoolOptions};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
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

/// The table's rows as read at one moment.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The apps that can be served.
    pub apps: Vec<AppConfig>,
    /// The ids of rows that cannot (their app, if served, is kept as it was).
    pub unservable: HashSet<String>,
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
    /// The table's columns as last asked, and when: reads use them for [`COLUMNS_KEPT`] (a
    /// read of the rows is then one query), writes and migrations always ask again.
    columns: std::sync::Mutex<Option<KnownColumns>>,
}

/// The table's columns (name to type) and when they were asked for.
type KnownColumns = (std::time::Instant, Arc<HashMap<String, String>>);

/// How long reads trust the column list they last asked for (a failed read forgets it).
const COLUMNS_KEPT: Duration = Duration::from_secs(10);

/// How long a query may wait for a connection before the store counts as unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a read may take: a database that stops answering without closing its connections (a
/// partition) must not hold the lookups queued behind the read forever.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// `read`, or [`StoreError::Unavailable`] when it takes longer than [`READ_TIMEOUT`].
async fn timed<T>(read: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
    tokio::time::timeout(READ_TIMEOUT, read)
        .await
        .unwrap_or_else(|_| Err(StoreError::Unavailable(format!("no answer within {} s", READ_TIMEOUT.as_secs()))))
}

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
        Ok(Some(SqlStore {
            pool,
            table: config.app_store_table.clone(),
            queries: AtomicU64::new(0),
            columns: std::sync::Mutex::new(None),
        }))
    }

    fn postgres(&self) -> bool {
        matches!(self.pool, Pool::Postgres(_))
    }

    /// The PostgreSQL pool, for the change listener.
    fn pg_pool(&self) -> Option<&PgPool> {
        match &self.pool {
            Pool::Postgres(p) => Some(p),
            Pool::MySql(_) => None,
        }
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Whether the table has an `updated_at` column (then [`SqlStore::fingerprint`] tells changes).
    pub async fn tracks_changes(&self) -> Result<bool, StoreError> {
        Ok(timed(self.known_columns()).await?.contains_key("updated_at"))
    }

    /// The row count and the latest `updated_at`: different after any insert, update or delete
    /// (the table must have `updated_at`, kept by the database on MySQL and by Sinew's writes and
    /// trigger on PostgreSQL).
    pub async fn fingerprint(&self) -> Result<(i64, Option<String>), StoreError> {
        timed(self.fingerprint_now()).await
    }

    async fn fingerprint_now(&self) -> Result<(i64, Option<String>), StoreError> {
        let pg = self.postgres();
        let (table, col) = (schema::quote(&self.table, pg), schema::quote("updated_at", pg));
        self.count();
        let found = match &self.pool {
            Pool::Postgres(p) => {
                let sql = format!("SELECT COUNT(*), MAX({col})::text FROM {table}");
                sqlx::query_as::<_, (i64, Option<String>)>(&sql).fetch_one(p).await?
            }
            Pool::MySql(p) => {
                let sql = format!("SELECT COUNT(*), CAST(MAX({col}) AS CHAR) FROM {table}");
                sqlx::query_as::<_, (i64, Option<String>)>(&sql).fetch_one(p).await?
            }
        };
        Ok(found)
    }

    /// Queries sent to the database so far.
    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    /// The table's columns (lower case) and their types, asked now; empty when the table does not
    /// exist. Reads use them from then on (a write or migration may have added one).
    async fn columns(&self) -> Result<HashMap<String, String>, StoreError> {
        *self.columns.lock().unwrap_or_else(|p| p.into_inner()) = None;
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
        let mut statements = statements;
        if pg && !self.announces_changes().await? {
            statements.extend(schema::notify_trigger(&self.table));
        }
        for sql in &statements {
            self.execute(sql).await?;
        }
        Ok(statements)
    }

    /// Whether the PostgreSQL table has the trigger announcing its changes.
    async fn announces_changes(&self) -> Result<bool, StoreError> {
        let Some(p) = self.pg_pool() else { return Ok(false) };
        let sql = "SELECT COUNT(*) FROM information_schema.triggers WHERE event_object_table = $1 \
                   AND trigger_name = $2 AND trigger_schema = current_schema()";
        self.count();
        let (n,): (i64,) =
            sqlx::query_as(sql).bind(&self.table).bind(schema::trigger_name(&self.table)).fetch_one(p).await?;
        Ok(n > 0)
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

    /// The columns as asked less than [`COLUMNS_KEPT`] ago, or asked now.
    async fn known_columns(&self) -> Result<Arc<HashMap<String, String>>, StoreError> {
        let kept = self.columns.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some((asked, columns)) = kept
            && asked.elapsed() < COLUMNS_KEPT
        {
            return Ok(columns);
        }
        let asked = std::time::Instant::now();
        let columns = Arc::new(self.columns().await?);
        if !columns.is_empty() {
            *self.columns.lock().unwrap_or_else(|p| p.into_inner()) = Some((asked, columns.clone()));
        }
        Ok(columns)
    }

    async fn rows(&self, filter: Option<(&str, &str)>) -> Result<Vec<Row>, StoreError> {
        let read = self.rows_with_known_columns(filter).await;
        if read.is_err() {
            // A column renamed or dropped since: ask again next time.
            *self.columns.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
        read
    }

    async fn rows_with_known_columns(&self, filter: Option<(&str, &str)>) -> Result<Vec<Row>, StoreError> {
        let columns = self.known_columns().await?;
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
        Ok(self.snapshot().await?.apps)
    }

    /// Every app in the table that can be served, and the ids of the rows that cannot (logged).
    pub async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let mut snapshot = Snapshot::default();
        for row in timed(self.rows(None)).await? {
            match servable(&row) {
                Some(app) => snapshot.apps.push(app),
                None => {
                    snapshot.unservable.insert(columns::text(&row, "id").unwrap_or_default().to_string());
                }
            }
        }
        Ok(snapshot)
    }

    /// The app with this key, if the table has one that can be served.
    pub async fn by_key(&self, key: &str) -> Result<Option<AppConfig>, StoreError> {
        Ok(timed(self.rows(Some(("key", key)))).await?.iter().find_map(servable))
    }

    /// The app with this id, if the table has one that can be served.
    pub async fn by_id(&self, id: &str) -> Result<Option<AppConfig>, StoreError> {
        Ok(timed(self.rows(Some(("id", id)))).await?.iter().find_map(servable))
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
    let (mut app, warnings) = match columns::app_of(row) {
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
    app.from_store = true;
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
