//! The command line: `serve` (the default), `apps new`, `config check`, `config print`, `sign`,
//! `webhooks replay` and `db migrate`.

use crate::config::Config;
use crate::protocol::signature;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

/// Sinew: a realtime gateway that speaks the Pusher Channels protocol.
#[derive(Debug, Parser)]
#[command(name = "sinew", version, about)]
pub struct Cli {
    /// TOML configuration file; every key can also be set with SINEW_* variables.
    #[arg(long, short, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Log format: `pretty` or `json` (overrides `log_format`).
    #[arg(long, value_name = "FORMAT", global = true, value_parser = ["pretty", "json"])]
    pub log_format: Option<String>,
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Sub-commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// App credentials.
    #[command(subcommand)]
    Apps(AppsCommand),
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a signed curl command for a REST API call.
    Sign {
        /// HTTP method, e.g. POST or GET.
        method: String,
        /// Request path with an optional query, e.g. `/apps/1/events` or `/apps/1/channels?filter_by_prefix=presence-`.
        path: String,
        /// Request body (JSON), for POST.
        body: Option<String>,
        /// App id to sign as (default: the one in the path, else the first app).
        #[arg(long)]
        app: Option<String>,
    },
    /// Webhook tools.
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
    /// The app store's database.
    #[command(subcommand)]
    Db(DbCommand),
}

/// `sinew db ...`
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Create the apps table, or add the columns an existing one (such as soketi's) lacks.
    Migrate,
}

/// `sinew apps ...`
#[derive(Debug, Subcommand)]
pub enum AppsCommand {
    /// Print fresh random credentials as TOML and as environment variables.
    New,
    /// List the apps of the store (secrets are not printed).
    List,
    /// Create an app in the store with fresh credentials; prints its secret once.
    Create {
        /// Settings as in `[[apps]]`, `name=value` (JSON values, or text): `--set id=7 --set client_events=true`.
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
    },
    /// Change settings of an app of the store.
    Update {
        /// The app's id.
        id: String,
        /// Settings as in `[[apps]]`, `name=value`.
        #[arg(long = "set", value_name = "NAME=VALUE", required = true)]
        set: Vec<String>,
    },
    /// Let the app's clients connect again.
    Enable {
        /// The app's id.
        id: String,
    },
    /// Refuse the app's connections (4003) and REST calls (403).
    Disable {
        /// The app's id.
        id: String,
    },
    /// Give the app a new random secret; prints it.
    Rotate {
        /// The app's id.
        id: String,
    },
    /// Delete the app from the store.
    Delete {
        /// The app's id.
        id: String,
    },
}

/// `name=value` pairs as a JSON object: a value that parses as JSON is taken as such (`5`, `true`,
/// `["a"]`), anything else as text.
pub fn settings(pairs: &[String]) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    let mut out = serde_json::Map::new();
    for pair in pairs {
        let Some((name, value)) = pair.split_once('=') else {
            return Err(format!("`{pair}` is not NAME=VALUE"));
        };
        let value = serde_json::from_str(value).unwrap_or_else(|_| serde_json::Value::String(value.to_string()));
        out.insert(name.trim().to_string(), value);
    }
    Ok(out)
}

/// `sinew config ...`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration (file and SINEW_* variables) and exit.
    Check,
    /// Print the effective configuration as TOML, secrets redacted.
    Print,
}

/// `sinew webhooks ...`
#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Send the events of a dead-letter file again; delivered lines are removed from it.
    Replay {
        /// The dead-letter file (JSON lines).
        file: PathBuf,
    },
}

/// Random credentials for a new app, as TOML and as environment variables.
pub fn new_app() -> String {
    let id = rand::random_range(100_000u32..1_000_000_000);
    let key = hex::encode(rand::random::<[u8; 10]>());
    let secret = hex::encode(rand::random::<[u8; 10]>());
    format!(
        "[[apps]]\nid = \"{id}\"\nkey = \"{key}\"\nsecret = \"{secret}\"\n\nSINEW_APP_ID={id}\nSINEW_APP_KEY={key}\nSINEW_APP_SECRET={secret}\n"
    )
}

const REDACTED: &str = "<redacted>";

/// The configuration as TOML with every secret replaced.
pub fn print_config(config: &Config) -> String {
    let mut c = config.clone();
    for s in [&mut c.debug_console_token, &mut c.redis_sentinel_password] {
        if !s.is_empty() {
            *s = REDACTED.into();
        }
    }
    redact_url_credentials(&mut c.redis_url);
    redact_url_credentials(&mut c.database_url);
    for app in &mut c.apps {
        for w in &mut app.webhooks {
            redact_url_credentials(&mut w.url);
        }
        for s in [&mut app.secret, &mut app.jwt_secret, &mut app.encryption_master_key_base64] {
            if !s.is_empty() {
                *s = REDACTED.into();
            }
        }
    }
    toml::to_string(&c).unwrap_or_else(|e| format!("# cannot print the configuration: {e}\n"))
}

/// Replaces credentials in a URL (`https://user:password@host/...`).
fn redact_url_credentials(url: &mut String) {
    if let Some((scheme, rest)) = url.split_once("://")
        && let Some((authority, path)) = rest.split_once('/').or(Some((rest, "")))
        && let Some((_, host)) = authority.rsplit_once('@')
    {
        let slash = if rest.contains('/') { "/" } else { "" };
        *url = format!("{scheme}://{REDACTED}@{host}{slash}{path}");
    }
}

/// Why `sign` could not build a command.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// No configured app matches.
    #[error("no app with id {0} in the configuration")]
    UnknownApp(String),
    /// The path does not start with `/`.
    #[error("the path must start with /")]
    BadPath,
}

/// A curl command for `method path [body]`, signed with the app's secret at the current time.
pub fn sign_command(
    config: &Config,
    method: &str,
    path: &str,
    body: Option<&str>,
    app: Option<&str>,
) -> Result<String, SignError> {
    if !path.starts_with('/') {
        return Err(SignError::BadPath);
    }
    let (path_only, query) = path.split_once('?').unwrap_or((path, ""));
    let from_path = path_only.strip_prefix("/apps/").and_then(|r| r.split('/').next());
    let wanted = app.or(from_path);
    let app = match wanted {
        Some(id) => config.apps.iter().find(|a| a.id == id).ok_or_else(|| SignError::UnknownApp(id.to_string()))?,
        None => config.apps.first().ok_or_else(|| SignError::UnknownApp(String::new()))?,
    };
    let method = method.to_ascii_uppercase();
    let body = body.unwrap_or("");
    let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let ts = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let signer = signature::Signer { key: &app.key, secret: &app.secret, timestamp: ts };
    let q = signer.query(&method, path_only, params, body.as_bytes());
    let host = match config.host.as_str() {
        "0.0.0.0" | "::" | "" => "127.0.0.1",
        h => h,
    };
    let url = format!("http://{host}:{}{path_only}?{q}", config.port);
    let mut cmd = format!("curl -sS -X {method} {}", shell_quote(&url));
    if !body.is_empty() {
        cmd.push_str(&format!(" -H 'Content-Type: application/json' --data-raw {}", shell_quote(body)));
    }
    Ok(cmd)
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_app_prints_toml_and_env() {
        let out = new_app();
        assert!(out.starts_with("[[apps]]\nid = \""));
        assert!(out.contains("SINEW_APP_KEY="));
        let t: toml::Table = out.split("\n\n").next().unwrap_or("").parse().unwrap_or_default();
        assert_eq!(t["apps"][0]["key"].as_str().map(str::len), Some(20));
    }

    #[test]
    fn print_redacts_secrets() {
        let mut c = Config::load(None, Vec::new()).unwrap_or_else(|e| panic!("{e}"));
        c.apps[0].jwt_secret = "shh".into();
        c.debug_console_token = "admin-token".into();
        c.apps[0].webhooks = vec![crate::config::WebhookTarget {
            url: "https://u:pw@h.example/x".into(),
            event_types: vec![],
            channel_prefix: None,
        }];
        let out = print_config(&c);
        assert!(!out.contains("app-secret") && !out.contains("shh") && !out.contains("admin-token"), "{out}");
        assert!(!out.contains("pw@") && out.contains("@h.example/x"), "{out}");
        assert!(out.contains(REDACTED));
        assert!(out.contains("key = \"app-key\""));
    }

    #[test]
    fn sign_builds_a_curl_command() {
        let c = Config::load(None, Vec::new()).unwrap_or_else(|e| panic!("{e}"));
        let cmd = sign_command(&c, "post", "/apps/1/events", Some(r#"{"name":"it's"}"#), None).unwrap_or_default();
        assert!(cmd.starts_with("curl -sS -X POST 'http://127.0.0.1:6001/apps/1/events?auth_key=app-key&"), "{cmd}");
        assert!(cmd.contains("body_md5=") && cmd.contains("auth_signature="));
        assert!(cmd.ends_with(r#"--data-raw '{"name":"it'\''s"}'"#), "{cmd}");
        assert!(matches!(sign_command(&c, "GET", "/apps/9/channels", None, None), Err(SignError::UnknownApp(_))));
        assert!(matches!(sign_command(&c, "GET", "apps", None, None), Err(SignError::BadPath)));
    }
}
