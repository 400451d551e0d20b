//! The `SINEW_*` environment overrides, applied to the parsed TOML table before it is typed: every
//! top-level key `foo` by `SINEW_FOO`, every app key `bar` by `SINEW_APP_BAR` (the first app, created
//! as the development app when the file has none), every `[webhooks]` key `baz` by
//! `SINEW_WEBHOOKS_BAZ`, and `SINEW_WEBHOOK_URL` as a one-endpoint shortcut.
//!
//! A `SINEW_*` variable that names no setting stops start-up, with the closest real name (a
//! misspelled variable must not be ignored silently); the few that Sinew's own tools read are
//! let through. An empty variable counts as not set (compose files and CI templates write
//! `SINEW_WEBHOOK_URL=`).

use super::{AppConfig, Config, ConfigError};
use serde::Serialize;

/// `SINEW_*` variables read by Sinew's test and benchmark tools, not by the server.
const TOOL_VARS: [&str; 5] =
    ["SINEW_BIN", "SINEW_DEMO_BIN", "SINEW_BENCH_BIN", "SINEW_SCHEMATHESIS_EXAMPLES", "SINEW_SCHEMATHESIS_ALL_CHECKS"];

/// Which variable set which config key (`port`, `apps[0].key`, `webhooks.timeout_seconds`,
/// `apps[0].webhooks` for `SINEW_WEBHOOK_URL`), so that a value refused later is reported under
/// the variable that carried it.
#[derive(Debug, Default)]
pub(super) struct EnvSources(Vec<(String, String)>);

impl EnvSources {
    /// The variable that set `key` or the table or array `key` lies in.
    pub(super) fn var_for(&self, key: &str) -> Option<&str> {
        self.0.iter().find_map(|(k, var)| {
            let inside =
                key.strip_prefix(k.as_str()).is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']));
            inside.then_some(var.as_str())
        })
    }
}

/// Applies `SINEW_*` overrides to the parsed table, typing each value by the key's default.
pub(super) fn apply_env(
    table: &mut toml::Table,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<EnvSources, ConfigError> {
    let server_template = to_table(&Config::default());
    let app_template = to_table(&AppConfig::development());
    let mut sources = EnvSources::default();
    let mut vars: Vec<_> = vars
        .into_iter()
        .filter(|(k, v)| k.starts_with("SINEW_") && !v.is_empty() && !TOOL_VARS.contains(&k.as_str()))
        .collect();
    vars.sort();
    for (var, value) in vars {
        if var == "SINEW_WEBHOOK_URL" {
            // Single-app shortcut: one endpoint for every event type of the first app.
            let mut target = toml::Table::new();
            target.insert("url".into(), toml::Value::String(value));
            first_app(table)?.insert("webhooks".into(), toml::Value::Array(vec![toml::Value::Table(target)]));
            sources.0.push(("apps[0].webhooks".into(), var));
            continue;
        }
        let name = var["SINEW_".len()..].to_ascii_lowercase();
        if let Some(app_key) = name.strip_prefix("app_")
            && let Some(template) = app_template.get(app_key)
        {
            let typed = typed_value(&var, &value, template)?;
            first_app(table)?.insert(app_key.to_string(), typed);
            sources.0.push((format!("apps[0].{app_key}"), var));
        } else if let Some(rest) = name.strip_prefix("webhooks_")
            && let Some(template) = server_template.get("webhooks").and_then(|w| w.get(rest))
        {
            let typed = typed_value(&var, &value, template)?;
            let section = table.entry("webhooks").or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let toml::Value::Table(t) = section {
                t.insert(rest.to_string(), typed);
            }
            sources.0.push((format!("webhooks.{rest}"), var));
        } else if let Some(template) =
            server_template.get(&name).filter(|_| !matches!(name.as_str(), "apps" | "webhooks"))
        {
            let typed = typed_value(&var, &value, template)?;
            table.insert(name.clone(), typed);
            sources.0.push((name, var));
        } else {
            return Err(unknown_var(&var, &server_template, &app_template));
        }
    }
    Ok(sources)
}

/// The error for a `SINEW_*` variable that names no setting, with the closest name that does.
fn unknown_var(var: &str, server: &toml::Table, app: &toml::Table) -> ConfigError {
    let webhooks = server.get("webhooks").and_then(toml::Value::as_table);
    let names = server
        .keys()
        .filter(|k| !matches!(k.as_str(), "apps" | "webhooks"))
        .map(|k| format!("SINEW_{}", k.to_ascii_uppercase()))
        .chain(app.keys().map(|k| format!("SINEW_APP_{}", k.to_ascii_uppercase())))
        .chain(
            webhooks.into_iter().flat_map(|w| w.keys()).map(|k| format!("SINEW_WEBHOOKS_{}", k.to_ascii_uppercase())),
        )
        .chain(std::iter::once("SINEW_WEBHOOK_URL".to_string()));
    let closest = names
        .map(|n| (strsim::levenshtein(var, &n), n))
        .min_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)))
        .filter(|(distance, _)| *distance <= var.len() / 3 + 1);
    let reason = match closest {
        Some((_, name)) => format!("no setting has this name; did you mean {name}?"),
        None => "no setting has this name (see the README's Configuration section)".to_string(),
    };
    ConfigError::Env { var: var.to_string(), reason }
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
                ("SINEW_TLS_CERT", ""),
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
    fn a_misspelled_variable_stops_start_up_with_the_closest_name() {
        for (var, closest) in [
            ("SINEW_DEBUG_CONSOL_TOKEN", "SINEW_DEBUG_CONSOLE_TOKEN"),
            ("SINEW_PROT", "SINEW_PORT"),
            ("SINEW_APP_CLIENT_EVENT", "SINEW_APP_CLIENT_EVENTS"),
            ("SINEW_WEBHOOKS_TIMEOUT_SECOND", "SINEW_WEBHOOKS_TIMEOUT_SECONDS"),
        ] {
            let e = Config::load(None, env(&[(var, "x")])).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains(var) && e.contains(&format!("did you mean {closest}?")), "{var}: {e}");
        }
        let e = Config::load(None, env(&[("SINEW_NOTHING_LIKE_IT_AT_ALL", "1")])).err().map(|e| e.to_string());
        assert!(e.unwrap_or_default().contains("SINEW_NOTHING_LIKE_IT_AT_ALL"));
        // The tools' own variables are not settings and not errors.
        assert!(Config::load(None, env(&[("SINEW_BIN", "/x"), ("SINEW_BENCH_BIN", "/y")])).is_ok());
    }

    #[test]
    fn an_empty_variable_is_not_set() {
        let c = Config::load(None, env(&[("SINEW_WEBHOOK_URL", ""), ("SINEW_PORT", ""), ("SINEW_PROT", "")]))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.port, Config::default().port);
        assert!(c.apps[0].webhooks.is_empty());
    }

    #[test]
    fn a_refused_value_is_reported_under_its_variable() {
        let e = Config::load(None, env(&[("SINEW_WEBHOOK_URL", "not a url")])).err().map(|e| e.to_string());
        let e = e.unwrap_or_default();
        assert!(e.contains("SINEW_WEBHOOK_URL") && !e.starts_with("invalid config key"), "{e}");
        let e = Config::load(None, env(&[("SINEW_ACTIVITY_TIMEOUT", "0")])).err().map(|e| e.to_string());
        assert!(e.unwrap_or_default().contains("SINEW_ACTIVITY_TIMEOUT"));
    }

    #[test]
    fn bad_env_value_names_the_variable() {
        let e = Config::load(None, env(&[("SINEW_PORT", "abc")])).err().map(|e| e.to_string());
        assert!(e.unwrap_or_default().contains("SINEW_PORT"));
        let e = Config::load(None, env(&[("SINEW_APP_CLIENT_EVENTS", "maybe")])).err().map(|e| e.to_string());
        assert!(e.unwrap_or_default().contains("SINEW_APP_CLIENT_EVENTS"));
    }
}
