//! The `SINEW_*` environment overrides, applied to the parsed TOML table before it is typed: every
//! top-level key `foo` by `SINEW_FOO`, every app key `bar` by `SINEW_APP_BAR` (the first app, created
//! as the development app when the file has none), every `[webhooks]` key `baz` by
//! `SINEW_WEBHOOKS_BAZ`, and `SINEW_WEBHOOK_URL` as a one-endpoint shortcut.

use super::{AppConfig, Config, ConfigError};
use serde::Serialize;

/// Applies `SINEW_*` overrides to the parsed table, typing each value by the key's default.
pub(super) fn apply_env(
    table: &mut toml::Table,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    let server_template = to_table(&Config::default());
    let app_template = to_table(&AppConfig::development());
    let mut vars: Vec<_> = vars.into_iter().filter(|(k, _)| k.starts_with("SINEW_")).collect();
    vars.sort();
    for (var, value) in vars {
        if var == "SINEW_WEBHOOK_URL" {
            // Single-app shortcut: one endpoint for every event type of the first app.
            let mut target = toml::Table::new();
            target.insert("url".into(), toml::Value::String(value));
            first_app(table)?.insert("webhooks".into(), toml::Value::Array(vec![toml::Value::Table(target)]));
            continue;
        }
        let name = var["SINEW_".len()..].to_ascii_lowercase();
        if let Some(app_key) = name.strip_prefix("app_")
            && let Some(template) = app_template.get(app_key)
        {
            let typed = typed_value(&var, &value, template)?;
            first_app(table)?.insert(app_key.to_string(), typed);
        } else if let Some(rest) = name.strip_prefix("webhooks_")
            && let Some(template) = server_template.get("webhooks").and_then(|w| w.get(rest))
        {
            let typed = typed_value(&var, &value, template)?;
            let section = table.entry("webhooks").or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let toml::Value::Table(t) = section {
                t.insert(rest.to_string(), typed);
            }
        } else if let Some(template) =
            server_template.get(&name).filter(|_| !matches!(name.as_str(), "apps" | "webhooks"))
        {
            let typed = typed_value(&var, &value, template)?;
            table.insert(name, typed);
        }
        // Other SINEW_* variables belong to tools around Sinew (test harnesses, scripts): ignored.
    }
    Ok(())
}

fn to_table<T: Serialize>(value: &T) -> toml::Table {
    toml::Table::try_from(value).unwrap_or_default()
}

/// The first `[[apps]]` table, created as the development app when the file has none.
fn first_app(table: &mut toml::Table) -> Result<&mut toml::Table, ConfigError> {
    let apps = table.entry("apps").or_insert_with(|| toml::Value::Array(Vec::new()));
    let toml::Value::Array(apps) = apps else {
        return Err(ConfigError::Parse("`apps` must be an array of tables".into()));
    };
    if apps.is_empty() {
        apps.push(toml::Value::Table(to_table(&AppConfig::development())));
    }
    match apps.first_mut() {
        Some(toml::Value::Table(t)) => Ok(t),
        _ => Err(ConfigError::Parse("`apps` must be an array of tables".into())),
    }
}

fn typed_value(var: &str, value: &str, template: &toml::Value) -> Result<toml::Value, ConfigError> {
    let err = |reason: &str| ConfigError::Env { var: var.into(), reason: format!("{reason}, got `{value}`") };
    Ok(match template {
        toml::Value::Integer(_) => toml::Value::Integer(value.trim().parse().map_err(|_| err("expected an integer"))?),
        toml::Value::Boolean(_) => toml::Value::Boolean(match value.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" => false,
            _ => return Err(err("expected true or false")),
        }),
        toml::Value::Array(_) => toml::Value::Array(
            value.split(',').map(str::trim).filter(|v| !v.is_empty()).map(|v| toml::Value::String(v.into())).collect(),
        ),
        _ => toml::Value::String(value.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::config::testing::env;

    #[test]
    fn env_overrides_server_and_app() {
        let c = Config::load(
            None,
            env(&[
                ("SINEW_PORT", "7000"),
                ("SINEW_HOST", "127.0.0.1"),
                ("SINEW_APP_ID", "42"),
                ("SINEW_APP_KEY", "k"),
                ("SINEW_APP_SECRET", "s"),
                ("SINEW_APP_CLIENT_EVENTS", "false"),
                ("SINEW_APP_MAX_CONNECTIONS", "5"),
                ("SINEW_BIN", "/ignored"),
            ]),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((c.port, c.host.as_str()), (7000, "127.0.0.1"));
        let app = &c.apps[0];
        assert_eq!((app.id.as_str(), app.key.as_str(), app.secret.as_str()), ("42", "k", "s"));
        assert!(!app.client_events);
        assert_eq!(app.max_connections, 5);
    }

    #[test]
    fn bad_env_value_names_the_variable() {
        let e = Config::load(None, env(&[("SINEW_PORT", "abc")])).err().map(|e| e.to_string());
        assert!(e.unwrap_or_default().contains("SINEW_PORT"));
        let e = Config::load(None, env(&[("SINEW_APP_CLIENT_EVENTS", "maybe")])).err().map(|e| e.to_string());
        assert!(e.unwrap_or_default().contains("SINEW_APP_CLIENT_EVENTS"));
    }
}
