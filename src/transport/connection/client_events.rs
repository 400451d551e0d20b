//! Client events (`client-*`): who may send them, on which channels, how large, and how many per
//! second (4301 past the limit); delivered to the channel's other subscribers here and on other
//! nodes, and reported as a `client_event` webhook.

use crate::hub::{Frame, clock};
use crate::protocol::channel::ChannelType;
use crate::protocol::frame;
use crate::webhooks::Trigger;
use serde_json::value::RawValue;
use std::sync::atomic::Ordering;

use super::Connection;

impl Connection {
    pub(super) fn client_event(&mut self, event: &str, channel: Option<&str>, data: Option<&RawValue>) {
        let cfg = self.app.config();
        if !cfg.client_events {
            return self.error(None, "Client events are not enabled for this app");
        }
        let Some(channel) = channel else {
            return self.error(None, "Client event without a channel");
        };
        if !ChannelType::of(channel).allows_client_events() {
            return self.error(None, &format!("Client events are not allowed on channel {channel}"));
        }
        let Some(member) = self.subscriptions.member(channel) else {
            return self.error(None, &format!("Client event on channel {channel}, which this socket has not joined"));
        };
        if event.len() > cfg.max_event_name_length {
            return self.error(None, &format!("Event name is longer than {} characters", cfg.max_event_name_length));
        }
        let data_json = data.map(RawValue::get);
        if data_json.is_some_and(|d| d.len() > cfg.max_event_data_bytes) {
            return self.error(None, &format!("Event data is larger than {} bytes", cfg.max_event_data_bytes));
        }
        if !self.client_events.take(clock(), cfg.max_client_events_per_second) {
            self.app.stats().rate_limited.fetch_add(1, Ordering::Relaxed);
            return self.error(
                Some(4301),
                &format!("Client event rejected: more than {} per second", cfg.max_client_events_per_second),
            );
        }
        let f = Frame::from(frame::client_event(event, channel, data_json, member));
        self.app.publish_frame(channel, &f, self.conn.id);
        self.app.debug(|| {
            serde_json::json!({"type": "client_event", "channel": channel, "event": event, "socket_id": self.socket_id(),
                "user_id": member, "data": crate::hub::preview(data_json.unwrap_or(""), 200)})
        });
        self.app.emit(|| Trigger::ClientEvent {
            channel: channel.to_string(),
            event: event.to_string(),
            data: client_data_string(data),
            socket_id: self.socket_id(),
            user_id: member.map(str::to_string),
        });
    }
}

/// The `client_event` webhook's `data`: a string as sent, anything else JSON-encoded.
fn client_data_string(data: Option<&RawValue>) -> String {
    match data {
        Some(raw) => match serde_json::from_str::<String>(raw.get()) {
            Ok(s) => s,
            Err(_) => raw.get().to_string(),
        },
        None => String::new(),
    }
}
