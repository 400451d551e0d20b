//! The live event feed behind the debug console: a broadcast channel that costs one branch when
//! nobody watches.

use serde_json::Value;
use tokio::sync::broadcast;

/// Events kept for a slow console before it skips ahead.
const BACKLOG: usize = 1024;

/// A cheap handle that publishes debug events to every open console.
#[derive(Clone, Debug)]
pub struct DebugFeed {
    tx: broadcast::Sender<String>,
}

impl Default for DebugFeed {
    fn default() -> Self {
        DebugFeed { tx: broadcast::channel(BACKLOG).0 }
    }
}

impl DebugFeed {
    /// Sends an event built by `event` (only built when a console is watching). The app id and a
    /// timestamp are added.
    pub fn emit(&self, app_id: &str, event: impl FnOnce() -> Value) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        let mut v = event();
        if let Value::Object(m) = &mut v {
            m.insert("app_id".into(), Value::String(app_id.to_string()));
            m.insert("time_ms".into(), Value::from(crate::webhooks::now_ms()));
        }
        let _ = self.tx.send(v.to_string());
    }

    /// A new subscription to the feed.
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.tx.subscribe()
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
