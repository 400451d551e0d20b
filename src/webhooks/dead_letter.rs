//! The dead-letter file: one JSON line per undeliverable batch, written by a dedicated thread so
//! callers never block on disk, and its replay.

use super::WebhookStats;
use super::delivery;
use crate::config::{Config, WebhookTarget};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::time::Duration;

/// Lines waiting for the writer thread; beyond this they are counted as lost and logged.
const PENDING_LINES: usize = 10_000;

/// One line of the dead-letter file.
#[derive(Debug, Serialize, Deserialize)]
pub struct DeadLetterLine {
    /// When it was written (Unix ms).
    pub time_ms: u64,
    /// The app whose events these are.
    pub app_id: String,
    /// The endpoint that failed; `None` means every endpoint of the app (filters applied).
    pub url: Option<String>,
    /// Why delivery stopped.
    pub reason: String,
    /// The webhook events, as they would appear in a body's `events`.
    pub events: Vec<Value>,
}

/// Hands undeliverable events to the writer thread without blocking.
#[derive(Clone)]
pub struct DeadLetter {
    tx: SyncSender<Msg>,
    stats: Arc<WebhookStats>,
}

enum Msg {
    /// A serialized line and how many events it holds.
    Line(String, usize),
    /// Answered once everything queued before it is on disk.
    Flush(std::sync::mpsc::Sender<()>),
}

impl DeadLetter {
    /// Starts the writer thread for `path` (the file is created on first write).
    pub fn new(path: &str, stats: Arc<WebhookStats>) -> Self {
        let (tx, rx) = sync_channel::<Msg>(PENDING_LINES);
        let path = PathBuf::from(path);
        let thread_stats = stats.clone();
        let spawned = std::thread::Builder::new().name("sinew-dead-letter".into()).spawn(move || {
            while let Ok(first) = rx.recv() {
                // Opened per batch, so a file moved away (by a replay) is recreated at the path.
                let mut file: Option<BufWriter<std::fs::File>> = None;
                let mut lines = Vec::new();
                let mut flushes = Vec::new();
                for m in std::iter::once(first).chain(rx.try_iter()) {
                    match m {
                        Msg::Line(l, n) => lines.push((l, n)),
                        Msg::Flush(done) => flushes.push(done),
                    }
                }
                let written = (|| {
                    if lines.is_empty() {
                        // A flush with nothing to write leaves no empty file behind.
                        return Ok(());
                    }
                    if file.is_none() {
                        let f = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
                        file = Some(BufWriter::new(f));
                    }
                    let Some(f) = file.as_mut() else { return Ok(()) };
                    for (line, _) in &lines {
                        writeln!(f, "{line}")?;
                    }
                    f.flush()
                })();
                let events: usize = lines.iter().map(|(_, n)| n).sum();
                match written {
                    Ok(()) => {
                        thread_stats.dead_lettered.fetch_add(lines.len() as u64, Ordering::Relaxed);
                    }
                    Err(e) => {
                        thread_stats.lost.fetch_add(events as u64, Ordering::Relaxed);
                        for (line, _) in &lines {
                            tracing::error!(path = %path.display(), error = %e, lost = %line, "cannot write the webhook dead-letter file");
                        }
                    }
                }
                for done in flushes {
                    let _ = done.send(());
                }
            }
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the dead-letter writer; undeliverable webhooks will only be logged");
        }
        DeadLetter { tx, stats }
    }

    /// Queues one line for the file. If the writer is overwhelmed the events are logged and counted
    /// as lost.
    pub fn write(&self, app_id: &str, url: Option<&str>, reason: &str, events: &[Value]) {
        let line = DeadLetterLine {
            time_ms: delivery::now_ms(),
            app_id: app_id.to_string(),
            url: url.map(str::to_string),
            reason: reason.to_string(),
            events: events.to_vec(),
        };
        let text = serde_json::to_string(&line).unwrap_or_default();
        if let Err(e) = self.tx.try_send(Msg::Line(text, events.len())) {
            let text = match e {
                TrySendError::Full(Msg::Line(t, _)) | TrySendError::Disconnected(Msg::Line(t, _)) => t,
                _ => String::new(),
            };
            self.stats.lost.fetch_add(events.len() as u64, Ordering::Relaxed);
            tracing::error!(lost = %text, "dead-letter writer overwhelmed; webhook events only logged");
        }
    }
}

impl DeadLetter {
    /// Waits (up to `wait`) until every line queued so far is on disk.
    pub async fn flush(&self, wait: Duration) {
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        if self.tx.send(Msg::Flush(done_tx)).is_err() {
            return;
        }
        let _ = tokio::task::spawn_blocking(move || done_rx.recv_timeout(wait)).await;
    }
}

/// What a replay did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Lines delivered.
    pub delivered: usize,
    /// Lines still undeliverable (appended back to the file).
    pub remaining: usize,
}

/// Errors of `sinew webhooks replay`.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The file could not be read, moved or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

fn wants(target: &WebhookTarget, event: &Value) -> bool {
    let name = event["name"].as_str().unwrap_or("");
    let channel = event["channel"].as_str().unwrap_or("");
    (target.event_types.is_empty() || target.event_types.iter().any(|e| e == name))
        && target.channel_prefix.as_deref().is_none_or(|p| channel.starts_with(p))
}

/// Sends every line of a dead-letter file again (signed with the app's current secret).
///
/// The file is first moved aside, so lines a running server appends meanwhile are never lost;
/// lines that still fail are appended back, one per endpoint that failed.
pub async fn replay(config: &Config, path: &Path) -> Result<ReplaySummary, ReplayError> {
    let io = |p: &Path| {
        let p = p.display().to_string();
        move |source| ReplayError::Io { path: p, source }
    };
    let work = path.with_extension("replaying");
    if !work.exists() {
        std::fs::rename(path, &work).map_err(io(path))?;
    }
    let text = std::fs::read_to_string(&work).map_err(io(&work))?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(config.webhooks.timeout_seconds))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new());
    let mut summary = ReplaySummary::default();
    let mut keep: Vec<String> = Vec::new();
    for raw in text.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(line) = serde_json::from_str::<DeadLetterLine>(raw) else {
            eprintln!("keeping a line that is not a dead-letter record: {raw}");
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
        // (url, the events that endpoint should get)
        let sends: Vec<(String, Vec<Value>)> = match &line.url {
            Some(u) => vec![(u.clone(), line.events.clone())],
            None => app
                .webhooks
                .iter()
                .map(|t| (t.url.clone(), line.events.iter().filter(|e| wants(t, e)).cloned().collect::<Vec<_>>()))
                .filter(|(_, evs)| !evs.is_empty())
                .collect(),
        };
        let mut failed = false;
        for (url, events) in sends {
            if let Err(reason) = delivery::post(&client, &url, &app.key, &app.secret, delivery::body(&events)).await {
                eprintln!("{url}: {reason}");
                failed = true;
                let again = DeadLetterLine {
                    url: Some(url),
                    reason,
                    events,
                    time_ms: delivery::now_ms(),
                    app_id: line.app_id.clone(),
                };
                keep.push(serde_json::to_string(&again).unwrap_or_else(|_| raw.to_string()));
            }
        }
        if failed {
            summary.remaining += 1;
        } else {
            summary.delivered += 1;
        }
    }
    if !keep.is_empty() {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(io(path))?;
        f.write_all((keep.join("\n") + "\n").as_bytes()).map_err(io(path))?;
    }
    std::fs::remove_file(&work).map_err(io(&work))?;
    Ok(summary)
}
