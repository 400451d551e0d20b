//! The dead-letter file: one JSON line per undeliverable batch, and its replay.

use super::delivery;
use crate::config::Config;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One line of the dead-letter file.
#[derive(Debug, Serialize, Deserialize)]
pub struct DeadLetterLine {
    /// When it was written (Unix ms).
    pub time_ms: u64,
    /// The app whose events these are.
    pub app_id: String,
    /// The endpoint that failed; `None` means every endpoint of the app.
    pub url: Option<String>,
    /// Why delivery stopped.
    pub reason: String,
    /// The webhook events, as they would appear in a body's `events`.
    pub events: Vec<Value>,
}

/// Appends undeliverable events to a JSON-lines file.
#[derive(Clone)]
pub struct DeadLetter {
    path: Arc<PathBuf>,
    lock: Arc<Mutex<()>>,
}

impl DeadLetter {
    /// A writer for `path` (created on first write).
    pub fn new(path: &str) -> Self {
        DeadLetter { path: Arc::new(PathBuf::from(path)), lock: Arc::new(Mutex::new(())) }
    }

    /// Appends one line; a write failure is logged with the events it lost.
    pub fn write(&self, app_id: &str, url: Option<&str>, reason: &str, events: &[Value]) {
        let line = DeadLetterLine {
            time_ms: delivery::now_ms(),
            app_id: app_id.to_string(),
            url: url.map(str::to_string),
            reason: reason.to_string(),
            events: events.to_vec(),
        };
        let text = serde_json::to_string(&line).unwrap_or_default();
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path.as_path())
            .and_then(|mut f| writeln!(f, "{text}"));
        if let Err(e) = written {
            tracing::error!(path = %self.path.display(), error = %e, lost = %text, "cannot write the webhook dead-letter file");
        }
    }
}

/// What a replay did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Lines delivered.
    pub delivered: usize,
    /// Lines still undeliverable (kept in the file).
    pub remaining: usize,
}

/// Errors of `sinew webhooks replay`.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The file could not be read or rewritten.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Sends every line of a dead-letter file again (signed with the app's current secret). Delivered
/// lines are removed from the file; the others stay.
pub async fn replay(config: &Config, path: &Path) -> Result<ReplaySummary, ReplayError> {
    let io = |source| ReplayError::Io { path: path.display().to_string(), source };
    let text = std::fs::read_to_string(path).map_err(io)?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(config.webhooks.timeout_seconds))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new());
    let mut summary = ReplaySummary::default();
    let mut keep = Vec::new();
    for raw in text.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(line) = serde_json::from_str::<DeadLetterLine>(raw) else {
            eprintln!("skipping a line that is not a dead-letter record: {raw}");
            keep.push(raw.to_string());
            summary.remaining += 1;
            continue;
        };
        let Some(app) = config.apps.iter().find(|a| a.id == line.app_id) else {
            eprintln!("app {} is not configured; keeping its line", line.app_id);
            keep.push(raw.to_string());
            summary.remaining += 1;
            continue;
        };
        let urls: Vec<String> = match &line.url {
            Some(u) => vec![u.clone()],
            None => app.webhooks.iter().map(|w| w.url.clone()).collect(),
        };
        let mut ok = !urls.is_empty();
        for url in &urls {
            let body = delivery::body(&line.events);
            if let Err(reason) = delivery::post(&client, url, &app.key, &app.secret, body).await {
                eprintln!("{url}: {reason}");
                ok = false;
            }
        }
        if ok {
            summary.delivered += 1;
        } else {
            keep.push(raw.to_string());
            summary.remaining += 1;
        }
    }
    let rest = if keep.is_empty() { String::new() } else { keep.join("\n") + "\n" };
    std::fs::write(path, rest).map_err(io)?;
    Ok(summary)
}
