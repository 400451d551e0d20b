//! One endpoint's delivery task: batches events, signs each batch, POSTs it, retries with
//! exponential backoff and jitter, and dead-letters what fails for the whole retry window.

use super::{DeadLetter, Watch, WebhookStats};
use crate::config::WebhookSettings;
use crate::protocol::signature;
use bytes::Bytes;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep};
use tokio_util::sync::CancellationToken;

/// Where and as whom to deliver.
pub struct Target {
    /// App the events belong to.
    pub app_id: Arc<str>,
    /// Endpoint URL.
    pub url: String,
    /// Sent as `X-Pusher-Key`.
    pub key: String,
    /// Signs the body for `X-Pusher-Signature`.
    pub secret: String,
}

/// A running delivery task's state.
pub struct Delivery {
    pub target: Target,
    pub settings: WebhookSettings,
    pub client: reqwest::Client,
    pub dead: DeadLetter,
    pub stats: Arc<WebhookStats>,
    pub hard_stop: CancellationToken,
    pub watch: Watch,
}

/// Numbers the batches shown in the debug console (taken only while it watches).
static NEXT_BATCH: AtomicU64 = AtomicU64::new(1);

/// How one POST went: the HTTP status when there was an answer, and why it failed.
struct Attempt {
    status: Option<u16>,
    error: Option<String>,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The body of one webhook POST.
pub fn body(events: &[Value]) -> Bytes {
    Bytes::from(json!({ "time_ms": now_ms(), "events": events }).to_string())
}

/// Sends one signed POST; Ok on any 2xx, Err with a reason otherwise.
pub async fn post(client: &reqwest::Client, url: &str, key: &str, secret: &str, body: Bytes) -> Result<(), String> {
    let a = attempt(client, url, key, secret, body).await;
    a.error.map_or(Ok(()), Err)
}

async fn attempt(client: &reqwest::Client, url: &str, key: &str, secret: &str, body: Bytes) -> Attempt {
    let sig = signature::sign(secret, &body);
    let res = client
        .post(url)
        .header("Content-Type", "application/json")
        .header("X-Pusher-Key", key)
        .header("X-Pusher-Signature", sig)
        .body(body)
        .send()
        .await;
    match res {
        Ok(res) if res.status().is_success() => Attempt { status: Some(res.status().as_u16()), error: None },
        Ok(res) => {
            Attempt { status: Some(res.status().as_u16()), error: Some(format!("HTTP {}", res.status().as_u16())) }
        }
        Err(e) => {
            let error = if e.is_timeout() { "timeout".to_string() } else { format!("request failed: {e}") };
            Attempt { status: None, error: Some(error) }
        }
    }
}

impl Delivery {
    /// Runs until the queue is closed and drained (or the hard stop).
    pub async fn run(self, mut rx: mpsc::Receiver<Value>) {
        let window = Duration::from_millis(self.settings.batch_window_ms);
        let max = self.settings.max_batch_size;
        let mut batch: Vec<Value> = Vec::new();
        loop {
            let first = tokio::select! {
                ev = rx.recv() => ev,
                () = self.hard_stop.cancelled() => None,
            };
            let Some(first) = first else { break };
            batch.push(first);
            let until = Instant::now() + window;
            while batch.len() < max {
                tokio::select! {
                    ev = rx.recv() => match ev {
                        Some(ev) => batch.push(ev),
                        None => break,
                    },
                    () = tokio::time::sleep_until(until) => break,
                }
            }
            self.deliver(&batch).await;
            batch.clear();
        }
        // Hard stop: whatever is still queued goes to the dead-letter file.
        rx.close();
        while let Ok(ev) = rx.try_recv() {
            batch.push(ev);
        }
        if !batch.is_empty() {
            self.dead_letter(&batch, "shutdown before delivery");
        }
    }

    async fn deliver(&self, batch: &[Value]) {
        let t = &self.target;
        let body = body(batch);
        let started = Instant::now();
        let retry_window = Duration::from_secs(self.settings.retry_window_seconds);
        let mut backoff = Duration::from_millis(self.settings.initial_backoff_ms.max(1));
        let max_backoff = Duration::from_millis(self.settings.max_backoff_ms.max(1));
        let mut batch_id = None;
        let mut n = 0u32;
        loop {
            n = n.saturating_add(1);
            let attempt = tokio::select! {
                a = attempt(&self.client, &t.url, &t.key, &t.secret, body.clone()) => a,
                () = self.hard_stop.cancelled() => Attempt { status: None, error: Some("shutdown before delivery".into()) },
            };
            let Some(reason) = &attempt.error else {
                self.stats.sent.fetch_add(1, Ordering::Relaxed);
                return self.report(&mut batch_id, batch, n, &attempt, None);
            };
            if self.hard_stop.is_cancelled() || started.elapsed() + backoff > retry_window {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                self.report(&mut batch_id, batch, n, &attempt, None);
                return self.dead_letter(batch, reason);
            }
            self.stats.retried.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(url = %t.url, %reason, "webhook attempt failed; retrying");
            // Jitter: wait between half and all of the current backoff.
            let jittered = backoff / 2 + backoff.mul_f64(rand::random::<f64>() / 2.0);
            self.report(&mut batch_id, batch, n, &attempt, Some(jittered));
            tokio::select! {
                () = sleep(jittered) => {}
                () = self.hard_stop.cancelled() => {}
            }
            backoff = (backoff * 2).min(max_backoff);
        }
    }

    /// Tells the debug console (when one watches) how attempt `n` of a batch went: one row per
    /// batch, updated by each attempt. `retry_in` is the wait before the next attempt; none after
    /// the last (delivered, or dead-lettered when it failed).
    fn report(&self, batch_id: &mut Option<u64>, batch: &[Value], n: u32, a: &Attempt, retry_in: Option<Duration>) {
        let Some(w) = self.watch.get().filter(|w| w.watching()) else { return };
        let id = *batch_id.get_or_insert_with(|| NEXT_BATCH.fetch_add(1, Ordering::Relaxed));
        let mut names: Vec<&str> = batch.iter().filter_map(|e| e["name"].as_str()).collect();
        let mut channels: Vec<&str> = batch.iter().filter_map(|e| e["channel"].as_str()).collect();
        names.sort_unstable();
        names.dedup();
        channels.sort_unstable();
        channels.dedup();
        let retry_ms = retry_in.map(|d| d.as_millis() as u64);
        let outcome = match (&a.error, retry_in) {
            (None, _) => "delivered",
            (Some(_), Some(_)) => "retrying",
            (Some(_), None) => "dead_lettered",
        };
        w.report(
            &self.target.app_id,
            json!({
                "type": "webhook", "batch": id, "url": shown_url(&self.target.url), "attempt": n,
                "status": a.status, "error": a.error, "outcome": outcome, "events": batch.len(),
                "names": names, "channels": channels, "next_retry_in_ms": retry_ms,
                "next_retry_at_ms": retry_ms.map(|ms| now_ms() + ms), "dead_lettered": outcome == "dead_lettered",
            }),
        );
    }

    fn dead_letter(&self, batch: &[Value], reason: &str) {
        tracing::error!(app = %self.target.app_id, url = %self.target.url, reason, events = batch.len(), "webhook batch dead-lettered");
        self.dead.write(&self.target.app_id, Some(&self.target.url), reason, batch);
    }
}

/// The endpoint as the console shows it: without a user name or password in the URL.
fn shown_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_password(None);
            let _ = u.set_username("");
            u.to_string()
        }
        Err(_) => "(unparsable URL)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn shown_url_drops_credentials() {
        assert_eq!(super::shown_url("https://u:p@hooks.example/a?b=1"), "https://hooks.example/a?b=1");
        assert_eq!(super::shown_url("http://127.0.0.1:9/x"), "http://127.0.0.1:9/x");
    }
}
