//! The app store settings: which store, where, which table, how often it is read again; and the
//! admin API's.

use super::{Config, ConfigError, DAY, HOUR, invalid};

pub(super) fn check(c: &Config) -> Result<(), ConfigError> {
    for (key, value, min, max) in [
        ("app_store_reload_seconds", c.app_store_reload_seconds, 1, DAY),
        ("app_store_poll_seconds", c.app_store_poll_seconds, 1, HOUR),
        ("secret_grace_seconds", c.secret_grace_seconds, 0, 7 * DAY),
    ] {
        if !(min..=max).contains(&value) {
            return Err(invalid(key.into(), &format!("must be between {min} and {max}")));
        }
    }
    if c.admin_port != 0 && (c.admin_port == c.port || (c.metrics_enabled && c.admin_port == c.metrics_port)) {
        return Err(invalid("admin_port".into(), "must differ from port and metrics_port"));
    }
    let schemes: &[&str] = match c.app_store.as_str() {
        "config" => return Ok(()),
        "postgres" => &["postgres://", "postgresql://"],
        "mysql" => &["mysql://", "mariadb://"],
        _ => return Err(invalid("app_store".into(), "must be `config`, `postgres` or `mysql`")),
    };
    if !schemes.iter().any(|s| c.database_url.starts_with(s)) {
        let reason = format!("must start with {} for app_store = \"{}\"", schemes.join(" or "), c.app_store);
        return Err(invalid("database_url".into(), &reason));
    }
    let t = &c.app_store_table;
    if t.is_empty() || t.len() > 63 || !t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(invalid("app_store_table".into(), "must be 1 to 63 characters of A-Z a-z 0-9 _"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn load(vars: &[(&str, &str)]) -> Result<Config, String> {
        Config::load(None, vars.iter().map(|(k, v)| (k.to_string(), v.to_string()))).map_err(|e| e.to_string())
    }

    #[test]
    fn a_database_store_needs_its_url_and_serves_no_development_app() {
        let c = load(&[("SINEW_APP_STORE", "postgres"), ("SINEW_DATABASE_URL", "postgres://u@127.0.0.1:5432/db")])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((c.app_store.as_str(), c.app_store_table.as_str()), ("postgres", "apps"));
        assert!(c.apps.is_empty());
        let c = load(&[
            ("SINEW_APP_STORE", "mysql"),
            ("SINEW_DATABASE_URL", "mysql://root@127.0.0.1:3306/db"),
            ("SINEW_APP_STORE_TABLE", "pusher_apps"),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.app_store_table, "pusher_apps");
        assert!(load(&[("SINEW_APP_STORE", "postgres")]).unwrap_err().contains("database_url"));
        assert!(
            load(&[("SINEW_APP_STORE", "mysql"), ("SINEW_DATABASE_URL", "postgres://x/y")])
                .unwrap_err()
                .contains("mysql://")
        );
        assert!(load(&[("SINEW_APP_STORE", "dynamo")]).unwrap_err().contains("app_store"));
        let bad_table = [
            ("SINEW_APP_STORE", "postgres"),
            ("SINEW_DATABASE_URL", "postgres://x/y"),
            ("SINEW_APP_STORE_TABLE", "apps; drop"),
        ];
        assert!(load(&bad_table).unwrap_err().contains("app_store_table"));
        // The config store keeps the development app.
        assert_eq!(load(&[]).unwrap_or_else(|e| panic!("{e}")).apps.len(), 1);
    }

    #[test]
    fn reload_poll_grace_and_admin_settings_come_from_the_environment() {
        let c = load(&[
            ("SINEW_APP_STORE_RELOAD_SECONDS", "7"),
            ("SINEW_APP_STORE_POLL_SECONDS", "2"),
            ("SINEW_SECRET_GRACE_SECONDS", "0"),
            ("SINEW_ADMIN_TOKEN", "t0ken"),
            ("SINEW_ADMIN_PORT", "6011"),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((c.app_store_reload_seconds, c.app_store_poll_seconds, c.secret_grace_seconds), (7, 2, 0));
        assert_eq!((c.admin_token.as_str(), c.admin_port), ("t0ken", 6011));
        let d = load(&[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((d.app_store_reload_seconds, d.app_store_poll_seconds, d.admin_port), (30, 5, 0));
        assert!(d.admin_token.is_empty());
        assert!(load(&[("SINEW_APP_STORE_RELOAD_SECONDS", "0")]).unwrap_err().contains("RELOAD_SECONDS"));
        assert!(load(&[("SINEW_ADMIN_PORT", "6001")]).unwrap_err().contains("ADMIN_PORT"));
    }
}
