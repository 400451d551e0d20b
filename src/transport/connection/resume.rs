//! `sinew:resume`: a socket subscribed again to a channel with history asks for the events it
//! missed, `{"event":"sinew:resume","channel":C,"data":{"epoch":E,"offset":N}}` (what pusher-js's
//! `pusher.send_event('sinew:resume', {epoch, offset}, channel)` sends). The answer is in
//! `hub/history.rs`; here, what may ask: only a channel this socket is subscribed to (so private
//! and presence authorization was checked), with a well-formed position.

use super::Connection;
use crate::hub::Resumed;
use serde::Deserialize;
use serde_json::value::RawValue;

/// `data` of `sinew:resume`.
#[derive(Debug, Deserialize)]
struct ResumeData {
    epoch: String,
    offset: u64,
}

impl Connection {
    pub(super) async fn resume(&mut self, channel: Option<&str>, data: Option<&RawValue>) {
        let Some(channel) = channel else {
            return self.error(None, "sinew:resume needs a channel");
        };
        if !self.subscriptions.contains(channel) {
            return self.error(None, &format!("sinew:resume: not subscribed to {channel}"));
        }
        let position = data.map(|d| serde_json::from_str::<ResumeData>(d.get()));
        let Some(Ok(position)) = position else {
            return self.error(None, "sinew:resume needs data {\"epoch\": string, \"offset\": number}");
        };
        let answer = self.app.resume(channel, &position.epoch, position.offset, &self.conn.outbox).await;
        self.app.debug(|| match answer {
            Resumed::Replayed(n) => serde_json::json!({"type": "resumed", "channel": channel, "socket_id": self.socket_id(), "replayed": n}),
            Resumed::Failed(why) => serde_json::json!({"type": "resume_failed", "channel": channel, "socket_id": self.socket_id(), "reason": why}),
        });
    }
}
