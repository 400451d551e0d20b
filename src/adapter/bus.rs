//! The messages nodes exchange on the cluster bus (one Redis pub/sub channel per cluster).

use serde::{Deserialize, Serialize};

/// One message on the bus. Every variant names its sender so a node skips its own messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum BusMessage {
    /// A REST event for one or more channels; each node encodes one frame per channel.
    Event {
        /// Sending node.
        node: u32,
        /// App id.
        app: String,
        /// Target channels.
        channels: Vec<String>,
        /// Event name.
        event: String,
        /// Event data as published.
        data: String,
        /// Socket id excluded from delivery.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        except: Option<String>,
    },
    /// An encoded frame for the subscribers of one channel (client events, member events).
    Frame {
        /// Sending node.
        node: u32,
        /// App id.
        app: String,
        /// Target channel.
        channel: String,
        /// The frame, ready to send.
        frame: String,
        /// Socket id excluded from delivery.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        except: Option<String>,
        /// Presence member whose own sockets are excluded (member events).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        except_user: Option<String>,
    },
    /// A presence user's first socket joined (`added`) or last socket left, decided in Redis
    /// (published by the cluster state scripts, with node 0).
    Member {
        /// Sending node (0: a script in Redis).
        node: u32,
        /// App id.
        app: String,
        /// Channel name.
        channel: String,
        /// Member key.
        user: String,
        /// Stored member value (id JSON, newline, info JSON).
        value: String,
        /// Joined (true) or left.
        added: bool,
    },
    /// The cluster-wide subscriber count of a channel changed (published by a script, node 0).
    Count {
        /// Sending node.
        node: u32,
        /// App id.
        app: String,
        /// Channel name.
        channel: String,
        /// Subscribers in the cluster.
        count: i64,
    },
    /// Close every connection signed in as `user` (4009).
    Terminate {
        /// Sending node.
        node: u32,
        /// App id.
        app: String,
        /// User id.
        user: String,
    },
    /// An event of a channel with history, with its position, as the history script published it
    /// (node 0): every node delivers it to its subscribers, the publishing node included (see
    /// [`super::history`]).
    Positioned {
        /// Sending node (0: the history script).
        node: u32,
        /// App id.
        app: String,
        /// Target channel.
        channel: String,
        /// The frame, with its position, ready to send.
        frame: String,
        /// Socket id excluded from delivery.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        except: Option<String>,
        /// A REST event of a cache channel: the channel's last event, to keep.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        cache: bool,
    },
    /// Node `to` got a presence member list from the subscribe script that published this
    /// (node 0): every member event that list already reflects came before it on the bus.
    Listed {
        /// Sending node (0: a script in Redis).
        node: u32,
        /// The node that asked for the list.
        to: u32,
        /// The token that node gave the subscribe.
        token: u64,
    },
}

impl BusMessage {
    /// The node that sent it.
    pub fn node(&self) -> u32 {
        match self {
            BusMessage::Event { node, .. }
            | BusMessage::Frame { node, .. }
            | BusMessage::Member { node, .. }
            | BusMessage::Count { node, .. }
            | BusMessage::Terminate { node, .. }
            | BusMessage::Listed { node, .. }
            | BusMessage::Positioned { node, .. } => *node,
        }
    }

    /// The wire form.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// A [`BusMessage::Positioned`] (node 0) cut where its frame goes: the history script
    /// completes it with the frame it positioned, as a JSON string.
    pub fn positioned_around_frame(app: &str, channel: &str, except: Option<&str>, cache: bool) -> (String, String) {
        let head = format!(
            "{{\"t\":\"positioned\",\"node\":0,\"app\":{},\"channel\":{},\"frame\":",
            serde_json::Value::from(app),
            serde_json::Value::from(channel)
        );
        let mut tail = String::new();
        if let Some(s) = except {
            tail.push_str(&format!(",\"except\":{}", serde_json::Value::from(s)));
        }
        if cache {
            tail.push_str(",\"cache\":true");
        }
        tail.push('}');
        (head, tail)
    }

    /// Parses the wire form.
    pub fn decode(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let m = BusMessage::Event {
            node: 7,
            app: "1".into(),
            channels: vec!["a".into(), "b".into()],
            event: "e".into(),
            data: "{\"x\":\"\\u00e9\"}".into(),
            except: Some("7.3".into()),
        };
        assert_eq!(BusMessage::decode(&m.encode()).ok(), Some(m.clone()));
        assert_eq!(m.node(), 7);
        let f = BusMessage::Frame {
            node: 1,
            app: "1".into(),
            channel: "presence-a".into(),
            frame: "{}".into(),
            except: None,
            except_user: Some("u".into()),
        };
        assert_eq!(BusMessage::decode(&f.encode()).ok(), Some(f));
        assert!(BusMessage::decode(b"{\"t\":\"nope\"}").is_err());
        // As the Lua scripts encode it (cjson).
        let m = BusMessage::decode(br#"{"added":true,"channel":"presence-a","value":"\"u\"\nnull","t":"member","app":"1","user":"u","node":0}"#);
        assert!(matches!(m, Ok(BusMessage::Member { added: true, node: 0, .. })));
        let c = BusMessage::decode(br#"{"count":2,"channel":"c","t":"count","app":"1","node":0}"#);
        assert!(matches!(c, Ok(BusMessage::Count { count: 2, .. })));
        let (head, tail) = BusMessage::positioned_around_frame("1", "cache-\"a", Some("1.2"), true);
        let frame = "{\"event\":\"e\",\"data\":\"\u{e9}\"}";
        let whole = format!("{head}{}{tail}", serde_json::Value::from(frame));
        let p = BusMessage::decode(whole.as_bytes());
        assert!(
            matches!(&p, Ok(BusMessage::Positioned { node: 0, app, channel, frame: f, except: Some(e), cache: true })
                if app == "1" && channel == "cache-\"a" && f == frame && e == "1.2"),
            "{p:?}"
        );
        let (head, tail) = BusMessage::positioned_around_frame("1", "c", None, false);
        let p = BusMessage::decode(format!("{head}\"{{}}\"{tail}").as_bytes());
        assert!(matches!(p, Ok(BusMessage::Positioned { except: None, cache: false, .. })), "{p:?}");
        let l = BusMessage::decode(br#"{"t":"listed","to":3,"token":12,"node":0}"#);
        assert!(matches!(l, Ok(BusMessage::Listed { node: 0, to: 3, token: 12 })));
    }
}
