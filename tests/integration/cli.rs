//! Every CLI command, run as the real binary.

use crate::common::TestServer;
use std::process::Command;

fn sinew(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sinew"));
    cmd.args(args);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("SINEW_")) {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn apps_new_prints_usable_credentials() {
    let (code, out, _) = sinew(&["apps", "new"], &[]);
    assert_eq!(code, 0);
    let toml_part = out.split("\n\n").next().unwrap();
    let dir = std::env::temp_dir().join(format!("sinew-cli-{}.toml", std::process::id()));
    std::fs::write(&dir, toml_part).unwrap();
    let (code, out, err) = sinew(&["--config", dir.to_str().unwrap(), "config", "check"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("configuration OK: 1 app(s)"));
    let _ = std::fs::remove_file(&dir);
}

#[test]
fn config_check_fails_naming_the_key() {
    let (code, _, err) = sinew(&["config", "check"], &[("SINEW_PORT", "not-a-port")]);
    assert_ne!(code, 0);
    assert!(err.contains("SINEW_PORT"), "{err}");
    let dir = std::env::temp_dir().join(format!("sinew-cli-bad-{}.toml", std::process::id()));
    std::fs::write(&dir, "[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\nclient_evnts = true\n").unwrap();
    let (code, _, err) = sinew(&["--config", dir.to_str().unwrap(), "config", "check"], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("client_evnts"), "{err}");
    let _ = std::fs::remove_file(&dir);
}

#[test]
fn config_print_redacts_secrets() {
    let (code, out, _) =
        sinew(&["config", "print"], &[("SINEW_APP_SECRET", "very-secret"), ("SINEW_APP_JWT_SECRET", "jwt-secret")]);
    assert_eq!(code, 0);
    assert!(!out.contains("very-secret") && !out.contains("jwt-secret"), "{out}");
    assert!(out.contains("<redacted>") && out.contains("key = \"app-key\""), "{out}");
}

#[test]
fn config_print_shows_the_drain_delay() {
    let (code, out, _) = sinew(&["config", "print"], &[]);
    assert_eq!(code, 0);
    assert!(out.contains("shutdown_drain_seconds = 0\n"), "{out}");
    let (code, out, err) = sinew(&["config", "print"], &[("SINEW_SHUTDOWN_DRAIN_SECONDS", "12")]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("shutdown_drain_seconds = 12\n"), "{out}");
    let (code, _, err) = sinew(&["config", "check"], &[("SINEW_SHUTDOWN_DRAIN_SECONDS", "301")]);
    assert_ne!(code, 0);
    assert!(err.contains("shutdown_drain_seconds"), "{err}");
}

#[tokio::test]
async fn sign_prints_a_command_the_server_accepts() {
    let s = TestServer::default().await;
    let mut c = s.client().await;
    c.subscribe("signed").await;
    let port = s.addr.port().to_string();
    let body = r#"{"name":"from-cli","channel":"signed","data":"{\"ok\":true}"}"#;
    let (code, out, err) = sinew(&["sign", "POST", "/apps/1/events", body], &[("SINEW_PORT", &port)]);
    assert_eq!(code, 0, "{err}");
    let url = out.split('\'').nth(1).unwrap();
    assert!(url.starts_with(&format!("http://127.0.0.1:{port}/apps/1/events?")), "{out}");
    let res = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(c.recv().await["event"], "from-cli");
    let (code, out, _) = sinew(&["sign", "GET", "/apps/1/channels?filter_by_prefix=sig"], &[("SINEW_PORT", &port)]);
    assert_eq!(code, 0);
    let url = out.split('\'').nth(1).unwrap();
    let body: serde_json::Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    assert_eq!(body, serde_json::json!({"channels":{"signed":{}}}));
    s.stop().await;
}

#[test]
fn log_format_json_is_accepted() {
    let (code, _, err) = sinew(&["--log-format", "json", "config", "check"], &[]);
    assert_eq!(code, 0, "{err}");
    let (code, _, _) = sinew(&["--log-format", "xml", "config", "check"], &[]);
    assert_ne!(code, 0);
}

/// The start-up banner of `sinew` serving with `env`: its stdout until the development app's SDK
/// line (or the end of the banner), then the process is stopped.
fn banner(env: &[(&str, &str)]) -> String {
    use std::io::{BufRead, BufReader};
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sinew"));
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("SINEW_")) {
        cmd.env_remove(k);
    }
    cmd.env("SINEW_PORT", "0").env("SINEW_METRICS_ENABLED", "false").env("SINEW_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.stdout(std::process::Stdio::piped()).spawn().unwrap();
    let mut out = String::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines().map_while(Result::ok) {
        out.push_str(&line);
        out.push('\n');
        if line.contains("server SDK") || line.contains("client_events=") && !out.contains("development app") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    out
}

#[test]
fn the_banner_prints_reachable_urls_the_console_and_a_public_secret_warning() {
    let out = banner(&[("SINEW_HOST", "0.0.0.0"), ("SINEW_DEBUG_CONSOLE_TOKEN", "t0ken")]);
    assert!(out.contains("reachable at http://127.0.0.1:"), "{out}");
    assert!(out.contains("/debug?token=<debug_console_token>") && !out.contains("t0ken"), "{out}");
    assert!(out.contains("WARNING: the development app's secret is public"), "{out}");
    // On loopback, or with real credentials, no warning.
    let out = banner(&[("SINEW_HOST", "127.0.0.1")]);
    assert!(out.contains("reachable at http://127.0.0.1:") && !out.contains("WARNING"), "{out}");
    assert!(!out.contains("debug console"), "{out}");
    let creds = [("SINEW_HOST", "0.0.0.0"), ("SINEW_APP_ID", "7"), ("SINEW_APP_KEY", "k7"), ("SINEW_APP_SECRET", "s7")];
    let out = banner(&creds);
    assert!(!out.contains("WARNING"), "{out}");
}
