//! The apps table Sinew creates and completes (`sinew db migrate`): soketi's columns, so that a
//! soketi table is already most of it, plus Sinew's own. On an existing table (soketi's) only the
//! missing columns are added, each with a default, so the rows in it keep working unchanged.

/// A column: name, PostgreSQL type, MySQL/MariaDB type.
pub struct Column {
    pub name: &'static str,
    pub postgres: &'static str,
    pub mysql: &'static str,
}

const fn col(name: &'static str, postgres: &'static str, mysql: &'static str) -> Column {
    Column { name, postgres, mysql }
}

/// Every column of Sinew's table, in order. `id`, `key` and `secret` form the key and are only
/// created with the table.
pub const COLUMNS: &[Column] = &[
    col("id", "varchar(255) PRIMARY KEY", "varchar(255) NOT NULL PRIMARY KEY"),
    col("key", "varchar(255) NOT NULL UNIQUE", "varchar(255) NOT NULL UNIQUE"),
    col("secret", "varchar(255) NOT NULL", "varchar(255) NOT NULL"),
    col("max_connections", "integer NOT NULL DEFAULT -1", "integer NOT NULL DEFAULT -1"),
    col("enable_client_messages", "boolean NOT NULL DEFAULT false", "tinyint(1) NOT NULL DEFAULT 0"),
    col("enabled", "boolean NOT NULL DEFAULT true", "tinyint(1) NOT NULL DEFAULT 1"),
    col("max_backend_events_per_sec", "integer NOT NULL DEFAULT -1", "integer NOT NULL DEFAULT -1"),
    col("max_client_events_per_sec", "integer NOT NULL DEFAULT -1", "integer NOT NULL DEFAULT -1"),
    col("max_read_req_per_sec", "integer NOT NULL DEFAULT -1", "integer NOT NULL DEFAULT -1"),
    col("webhooks", "json", "json"),
    col("sinew_settings", "json", "json"),
    col(
        "updated_at",
        "timestamptz NOT NULL DEFAULT now()",
        "timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3)",
    ),
];

/// The statements creating the table (when it does not exist), for `postgres` or MySQL.
pub fn create_table(table: &str, postgres: bool) -> String {
    let cols: Vec<String> = COLUMNS
        .iter()
        .map(|c| format!("{} {}", quote(c.name, postgres), if postgres { c.postgres } else { c.mysql }))
        .collect();
    format!("CREATE TABLE IF NOT EXISTS {} ({})", quote(table, postgres), cols.join(", "))
}

/// The PostgreSQL `NOTIFY` channel on which a change to an apps table is announced (the payload is
/// the table's name).
pub const NOTIFY_CHANNEL: &str = "sinew_apps_changed";

/// The name of the trigger announcing `table`'s changes (PostgreSQL keeps 63 bytes of a name).
pub fn trigger_name(table: &str) -> String {
    let mut name = format!("sinew_{table}_changed");
    name.truncate(63);
    name
}

/// The PostgreSQL function and trigger announcing every change to `table` on [`NOTIFY_CHANNEL`],
/// made again on every migration (so a table renamed or restored keeps it).
pub fn notify_trigger(table: &str) -> Vec<String> {
    let t = quote(table, true);
    let trigger = quote(&trigger_name(table), true);
    vec![
        format!(
            "CREATE OR REPLACE FUNCTION sinew_announce_apps_change() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN PERFORM pg_notify('{NOTIFY_CHANNEL}', TG_TABLE_NAME); RETURN NULL; END $$"
        ),
        format!("DROP TRIGGER IF EXISTS {trigger} ON {t}"),
        format!(
            "CREATE TRIGGER {trigger} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {t} \
             FOR EACH STATEMENT EXECUTE PROCEDURE sinew_announce_apps_change()"
        ),
    ]
}

/// The statement adding `column` to an existing table.
pub fn add_column(table: &str, column: &Column, postgres: bool) -> String {
    let ty = if postgres { column.postgres } else { column.mysql };
    format!("ALTER TABLE {} ADD COLUMN {} {ty}", quote(table, postgres), quote(column.name, postgres))
}

/// An identifier quoted for the dialect (names are checked to be `[A-Za-z0-9_]` before).
pub fn quote(name: &str, postgres: bool) -> String {
    if postgres { format!("\"{name}\"") } else { format!("`{name}`") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_dialects_quote_their_way() {
        let pg = create_table("apps", true);
        assert!(
            pg.starts_with("CREATE TABLE IF NOT EXISTS \"apps\" (\"id\" varchar(255) PRIMARY KEY, \"key\""),
            "{pg}"
        );
        let my = create_table("apps", false);
        assert!(my.contains("`enabled` tinyint(1) NOT NULL DEFAULT 1"), "{my}");
        let add = add_column("apps", &COLUMNS[10], true);
        assert_eq!(add, "ALTER TABLE \"apps\" ADD COLUMN \"sinew_settings\" json");
    }
}
