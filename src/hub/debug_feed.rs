//! The live event feed behind the debug console: a broadcast channel that costs one relaxed
//! atomic load when nobody watches. Every event is built by a closure that runs only while a
//! console is open, so an unwatched server neither allocates nor formats anything for it.

use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::broadcast;

/// Events kept for a slow console before it skips ahead.
const BACKLOG: usize = 1024;

/// A cheap handle that publishes debug events to every open console.
#[derive(Clone, Debug)]
pub struct DebugFeed {
    tx: broadcast::Sender<String>,
    /// Open consoles. Counted here rather than asked of the channel, whose receiver count takes a
    /// lock shared by every thread that emits.
    consoles: Arc<AtomicUsize>,
}

impl Default for DebugFeed {
    fn default() -> Self {
        DebugFeed { tx: broadcast::channel(BACKLOG).0, consoles: Arc::default() }
    }
}

/// One open console's view of the feed; the feed counts it until it is dropped.
#[derive(Debug)]
pub struct Console {
    rx: broadcast::Receiver<String>,
    consoles: Arc<AtomicUsize>,
}

impl Console {
    /// The next event (JSON text), or how many were skipped because this console fell behind.
    pub async fn recv(&mut self) -> Result<String, broadcast::error::RecvError> {
        self.rx.recv().await
    }

    /// The next event if one is waiting, without waiting.
    pub fn try_recv(&mut self) -> Result<String, broadcast::error::TryRecvError> {
        self.rx.try_recv()
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        self.consoles.fetch_sub(1, Ordering::Relaxed);
    }
}

impl DebugFeed {
    /// True while at least one console is open (one relaxed atomic load).
    pub fn watching(&self) -> bool {
        self.consoles.load(Ordering::Relaxed) > 0
    }

    /// Sends an event built by `event` (only built when a console is watching). The app id and a
    /// timestamp (milliseconds) are added.
    pub fn emit(&self, app_id: &str, event: impl FnOnce() -> Value) {
        if !self.watching() {
            return;
        }
        self.send(app_id, event());
    }

    fn send(&self, app_id: &str, mut v: Value) {
        if let Value::Object(m) = &mut v {
            m.insert("app_id".into(), Value::String(app_id.to_string()));
            m.insert("time_ms".into(), Value::from(crate::webhooks::now_ms()));
        }
        let _ = self.tx.send(v.to_string());
    }

    /// Opens a console on the feed: events are built from now until it is dropped.
    pub fn subscribe(&self) -> Console {
        self.consoles.fetch_add(1, Ordering::Relaxed);
        Console { rx: self.tx.subscribe(), consoles: self.consoles.clone() }
    }
}

/// Webhook deliveries reach the console through this (the webhooks layer knows no hub types).
impl crate::webhooks::Watcher for DebugFeed {
    fn watching(&self) -> bool {
        DebugFeed::watching(self)
    }

    fn report(&self, app_id: &str, event: Value) {
        self.send(app_id, event);
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary (for payload previews).
pub fn preview(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// A JSON text (such as a presence member's `user_info`) as a value for the console; text that
/// does not parse is shown as a string.
pub fn json_or_text(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(preview(text, 1000)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builds_nothing_while_nobody_watches() {
        let feed = DebugFeed::default();
        let mut built = false;
        feed.emit("1", || {
            built = true;
            json!({})
        });
        assert!(!built && !feed.watching());
    }

    #[test]
    fn adds_the_app_and_a_millisecond_time() {
        let feed = DebugFeed::default();
        let mut console = feed.subscribe();
        feed.emit("7", || json!({"type": "x"}));
        let v: Value = serde_json::from_str(&console.rx.try_recv().unwrap_or_default()).unwrap_or_default();
        assert_eq!(v["app_id"], "7");
        assert!(v["time_ms"].as_u64().is_some_and(|t| t > 1_600_000_000_000));
    }

    #[test]
    fn stops_building_once_the_last_console_closes() {
        let feed = DebugFeed::default();
        let (a, b) = (feed.subscribe(), feed.subscribe());
        assert!(feed.watching());
        drop(a);
        assert!(feed.watching());
        drop(b);
        assert!(!feed.watching());
    }
}
