//! A database of a test's own in the machine's PostgreSQL or MariaDB (`POSTGRES_URL`, `MYSQL_URL`
//! to point elsewhere), and the `sinew` binary run against it: shared by the app-store and admin
//! API tests.

use crate::common::Rest;
use sqlx::Executor;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Db {
    Postgres,
    MariaDb,
}

/// A database of the test's own, dropped by [`TestDb::drop_db`].
pub struct TestDb {
    db: Db,
    name: String,
}

impl TestDb {
    fn server(db: Db) -> String {
        match db {
            Db::Postgres => {
                std::env::var("POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
            }
            Db::MariaDb => std::env::var("MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into()),
        }
    }

    pub async fn create(db: Db) -> TestDb {
        let name = format!("sinew_test_{}", rand::random::<u32>());
        let t = TestDb { db, name };
        t.admin(&format!("CREATE DATABASE {}", t.name)).await;
        t
    }

    async fn admin(&self, sql: &str) {
        match self.db {
            Db::Postgres => {
                let pool = sqlx::PgPool::connect(&format!("{}/postgres", Self::server(self.db))).await.unwrap();
                pool.execute(sql).await.unwrap();
                pool.close().await;
            }
            Db::MariaDb => {
                let pool = sqlx::MySqlPool::connect(&format!("{}/", Self::server(self.db))).await.unwrap();
                pool.execute(sql).await.unwrap();
                pool.close().await;
            }
        }
    }

    pub fn url(&self) -> String {
        format!("{}/{}", Self::server(self.db), self.name)
    }

    pub fn store(&self) -> &'static str {
        if self.db == Db::Postgres { "postgres" } else { "mysql" }
    }

    /// Runs statements in the test's database.
    pub async fn run(&self, statements: &[&str]) {
        match self.db {
            Db::Postgres => {
                let pool = sqlx::PgPool::connect(&self.url()).await.unwrap();
                for s in statements {
                    pool.execute(*s).await.unwrap_or_else(|e| panic!("{s}: {e}"));
                }
                pool.close().await;
            }
            Db::MariaDb => {
                let pool = sqlx::MySqlPool::connect(&self.url()).await.unwrap();
                for s in statements {
                    pool.execute(*s).await.unwrap_or_else(|e| panic!("{s}: {e}"));
                }
                pool.close().await;
            }
        }
    }

    /// Runs the `sinew` binary with `args` against the store at `url` (the test's own database when
    /// `None`): whether it succeeded, its stdout, its stderr.
    pub fn sinew(&self, args: &[&str], url: Option<&str>) -> (bool, String, String) {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sinew"))
            .args(args)
            .env("SINEW_APP_STORE", self.store())
            .env("SINEW_DATABASE_URL", url.map_or_else(|| self.url(), str::to_string))
            .env("SINEW_PORT", "0")
            .env("SINEW_METRICS_ENABLED", "false")
            .output()
            .unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).to_string();
        (out.status.success(), text(&out.stdout), text(&out.stderr))
    }

    /// Runs the `sinew` binary with `args` against the test's database and returns its stdout;
    /// panics, with what it printed, when it fails.
    pub fn cli(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.sinew(args, None);
        assert!(ok, "sinew {args:?}: {out}{err}");
        out
    }

    pub async fn drop_db(self) {
        let force = if self.db == Db::Postgres { " WITH (FORCE)" } else { "" };
        self.admin(&format!("DROP DATABASE {}{force}", self.name)).await;
    }
}

/// soketi's table, as soketi's own fixtures create it for each database.
pub fn soketi_table(db: Db) -> &'static str {
    match db {
        Db::Postgres => {
            "CREATE TABLE apps (id varchar(255) PRIMARY KEY, \"key\" varchar(255) NOT NULL, secret varchar(255) NOT NULL, \
             max_connections integer NOT NULL, enable_client_messages smallint NOT NULL, enabled smallint NOT NULL, \
             max_backend_events_per_sec integer NOT NULL, max_client_events_per_sec integer NOT NULL, \
             max_read_req_per_sec integer NOT NULL, webhooks json)"
        }
        Db::MariaDb => {
            "CREATE TABLE `apps` (`id` varchar(255) NOT NULL, `key` varchar(255) NOT NULL, `secret` varchar(255) NOT NULL, \
             `max_connections` integer(10) NOT NULL, `enabled` tinyint(1) NOT NULL, `enable_client_messages` tinyint(1) NOT NULL, \
             `max_backend_events_per_sec` integer(10) NOT NULL, `max_client_events_per_sec` integer(10) NOT NULL, \
             `max_read_req_per_sec` integer(10) NOT NULL, `webhooks` json, PRIMARY KEY (`id`))"
        }
    }
}

pub fn insert(db: Db, id: &str, key: &str, secret: &str, enabled: u8, backend_limit: i32) -> String {
    let k = if db == Db::Postgres { "\"key\"" } else { "`key`" };
    format!(
        "INSERT INTO apps (id, {k}, secret, max_connections, enable_client_messages, enabled, max_backend_events_per_sec, \
         max_client_events_per_sec, max_read_req_per_sec, webhooks) VALUES ('{id}', '{key}', '{secret}', -1, 1, {enabled}, \
         {backend_limit}, -1, -1, '[]')"
    )
}

pub fn rest(addr: std::net::SocketAddr, id: &str, key: &str, secret: &str) -> Rest {
    Rest { base: format!("http://{addr}"), app_id: id.into(), key: key.into(), secret: secret.into() }
}
