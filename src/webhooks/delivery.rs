//! One endpoint's delivery task: batches events, signs each batch, POSTs it, retries with
//! exponential backoff and jitter, and dead-letters what fails for the whole retry window.

use super::{DeadLetter, WebhookStats};
use crate::config::WebhookSettings;
use crate::protocol::signature;
use bytes::Bytes;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;
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
    let sig = signature::sign(secret, &body);
    let res = client
        .post(url)
        .header("Content-Type", "application/json")
        .header("X-Pusher-Key", key)
        .header("X-Pusher-Signature", sig)
        .body(body)
        .send()
        .await
        .map_err(|e| if e.is_timeout() { "timeout".to_string() } else { format!("request failed: {e}") })?;
    if res.status().is_success() { Ok(()) } else { Err(format!("HTTP {}", res.status().as_u16())) }
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
        loop {
            let attempt = tokio::select! {
                r = post(&self.client, &t.url, &t.key, &t.secret, body.clone()) => r,
                () = self.hard_stop.cancelled() => Err("shutdown before delivery".to_string()),
            };
            let reason = match attempt {
                Ok(()) => {
                    self.stats.sent.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(reason) => reason,
            };
            if self.hard_stop.is_cancelled() || started.elapsed() + backoff > retry_window {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                return self.dead_letter(batch, &reason);
            }
            self.stats.retried.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(url = %t.url, %reason, "webhook attempt failed; retrying");
            // Jitter: wait between half and all of the current backoff.
            let jittered = backoff / 2 + backoff.mul_f64(rand::random::<f64>() / 2.0);
            tokio::select! {
                () = sleep(jittered) => {}
                () = self.hard_stop.cancelled() => {}
            }
            backoff = (backoff * 2).min(max_backoff);
        }
    }

    fn dead_letter(&self, batch: &[Value], reason: &str) {
        tracing::error!(app = %self.target.app_id, url = %self.target.url, reason, events = batch.len(), "webhook batch dead-lettered");
        self.dead.write(&self.target.app_id, Some(&self.target.url), reason, batch);
    }
}
