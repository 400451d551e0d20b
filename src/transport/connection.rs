//! One Pusher connection's protocol state machine, shared by every transport.
//!
//! The transport feeds it client messages; everything it answers goes into the connection's
//! [`Outbox`](crate::hub::Outbox), so replies and broadcasts leave in one ordered stream.

use crate::hub::{AppState, ConnRef, Frame, Hub, Member, Outbox, SubscribeError, clock};
use crate::protocol::channel::{self, ChannelKind, ChannelType};
use crate::protocol::frame::{self, ChannelData, SigninData, SubscribeData, UnsubscribeData, UserData};
use crate::protocol::signature;
use crate::rate_limit::RateWindow;
use crate::transport::subscriptions::Subscriptions;
use crate::webhooks::Trigger;
use serde_json::value::RawValue;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Why a connection was refused before `connection_established`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Refusal {
    /// Pusher close code (4001, 4003, 4004, 4007, 4200).
    pub code: u16,
    /// Human-readable reason.
    pub message: String,
}

/// The reason given with code 4200 when the server shuts down.
const SHUTDOWN_MESSAGE: &str = "Server is shutting down";

/// Asks the connection behind `outbox` to reconnect because the server is shutting down: a
/// `pusher:error` with 4200, then the close with 4200.
pub fn shut_down(outbox: &Outbox) {
    outbox.close(Some(Frame::from(frame::error(Some(4200), SHUTDOWN_MESSAGE))), 4200, SHUTDOWN_MESSAGE);
}

impl Refusal {
    fn new(code: u16, message: impl Into<String>) -> Self {
        Refusal { code, message: message.into() }
    }

    /// The refusal of a connection that arrives while the server shuts down (4200).
    pub fn shutting_down() -> Self {
        Refusal::new(4200, SHUTDOWN_MESSAGE)
    }

    /// The `pusher:error` frame announcing the refusal.
    pub fn frame(&self) -> Frame {
        Frame::from(frame::error(Some(self.code), &self.message))
    }
}

/// Checks the `version` query parameter (the client library's version): when present it must look
/// like a version number (`8.6.0`, `7.0.3-beta`).
pub fn check_version(version: Option<&str>) -> Result<(), Refusal> {
    match version {
        None | Some("") => Ok(()),
        Some(v)
            if v.starts_with(|c: char| c.is_ascii_digit())
                && v.len() <= 64
                && v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | '_')) =>
        {
            Ok(())
        }
        Some(v) => Err(Refusal::new(4006, format!("Invalid version string {v}"))),
    }
}

/// Checks the `protocol` query parameter: 5 to 7 are served; missing means 7.
pub fn check_protocol(protocol: Option<&str>) -> Result<(), Refusal> {
    match protocol {
        None | Some("") => Ok(()),
        Some(p) => match p.parse::<u32>() {
            Ok(5..=7) => Ok(()),
            _ => Err(Refusal::new(4007, format!("Unsupported protocol version {p}; this server speaks 5 to 7"))),
        },
    }
}

/// The query parameters a client sends when it connects.
#[derive(Debug, Clone, Default)]
pub struct ClientQuery {
    /// `protocol` (5 to 7 are served).
    pub protocol: Option<String>,
    /// `version` of the client library.
    pub version: Option<String>,
}

impl ClientQuery {
    /// Reads `protocol` and `version` from a raw query string (form-urlencoded; the last of a
    /// repeated key wins). Pairs with nothing to decode, which is what clients send, are read
    /// in place; only the two values kept are copied.
    pub fn parse(query: Option<&str>) -> Self {
        let mut out = ClientQuery::default();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            if pair.bytes().any(|b| b == b'%' || b == b'+') {
                for (k, v) in form_urlencoded::parse(pair.as_bytes()) {
                    out.set(&k, &v);
                }
            } else {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                out.set(k, v);
            }
        }
        out
    }

    fn set(&mut self, key: &str, value: &str) {
        match key {
            "protocol" => self.protocol = Some(value.to_owned()),
            "version" => self.version = Some(value.to_owned()),
            _ => {}
        }
    }
}

struct SignedIn {
    id: String,
    info_json: Option<String>,
    watchlist: Vec<String>,
}

/// A live Pusher connection. Dropping it unsubscribes everything and releases its slot.
pub struct Connection {
    app: Arc<AppState>,
    conn: ConnRef,
    /// This node's id, the first half of the socket id (not stored as a string: every idle
    /// connection would hold it).
    node: u32,
    /// Subscribed channels, with the presence member key where there is one.
    subscriptions: Subscriptions,
    /// Boxed: most connections never sign in, and every idle connection's task holds this.
    user: Option<Box<SignedIn>>,
    /// Client events in the current one-second window ([`clock`] milliseconds; packs with `node`).
    client_events: RateWindow,
}

impl Connection {
    /// Validates the app and quota, registers the connection and queues `connection_established`.
    pub fn open(hub: &Hub, app_key: &str, query: &ClientQuery, activity_timeout: u64) -> Result<Self, Refusal> {
        let app =
            hub.app_by_key(app_key).ok_or_else(|| Refusal::new(4001, format!("App key {app_key} does not exist")))?;
        if !app.config.enabled {
            return Err(Refusal::new(4003, "Application is disabled"));
        }
        check_protocol(query.protocol.as_deref())?;
        check_version(query.version.as_deref())?;
        if !app.try_reserve_connection() {
            return Err(Refusal::new(4004, "Application is over its connection quota"));
        }
        let conn = hub.new_connection(&app);
        app.set_live(&conn, true);
        let socket_id = hub.socket_id(conn.id);
        conn.outbox.push(&Frame::from(frame::connection_established(&socket_id, activity_timeout)));
        app.debug(|| serde_json::json!({"type": "connection_opened", "socket_id": socket_id}));
        Ok(Connection {
            app,
            conn,
            node: hub.node_id(),
            subscriptions: Subscriptions::default(),
            user: None,
            client_events: RateWindow::new(clock()),
        })
    }

    /// The socket id sent to the client.
    pub fn socket_id(&self) -> String {
        crate::hub::socket_id(self.node, self.conn.id)
    }

    /// The connection's outbound queue.
    pub fn outbox(&self) -> &crate::hub::Outbox {
        &self.conn.outbox
    }

    /// The app this connection belongs to.
    pub fn app(&self) -> &Arc<AppState> {
        &self.app
    }

    fn send(&self, text: String) {
        self.conn.outbox.push(&Frame::from(text));
    }

    fn error(&self, code: Option<u16>, message: &str) {
        self.send(frame::error(code, message));
    }

    fn close_with(&self, code: u16, message: &str) {
        self.conn.outbox.close(Some(Frame::from(frame::error(Some(code), message))), code, message);
    }

    fn subscription_error(&self, channel: &str, message: &str, status: u16) {
        self.send(frame::subscription_error(channel, message, status));
        self.error(None, message);
    }

    /// Handles one text message from the client. Only a subscribe on a clustered node waits (for
    /// the cluster to record it); everything else completes at once.
    pub async fn handle_text(&mut self, text: &str) {
        let msg = match frame::parse_client_message(text) {
            Ok(m) => m,
            Err(e) => return self.error(None, &e.to_string()),
        };
        let event = msg.event.as_ref();
        match event {
            "pusher:ping" => self.send(frame::pong()),
            "pusher:pong" => {}
            "pusher:subscribe" => match frame::decode_data::<SubscribeData>(event, msg.data) {
                // Boxed: the subscribe future is large and rare; every connection task would
                // otherwise reserve room for it.
                Ok(d) => Box::pin(self.subscribe(d)).await,
                Err(e) => self.error(None, &e.to_string()),
            },
            "pusher:unsubscribe" => match frame::decode_data::<UnsubscribeData>(event, msg.data) {
                Ok(d) => self.unsubscribe(&d.channel),
                Err(e) => self.error(None, &e.to_string()),
            },
            "pusher:signin" => match frame::decode_data::<SigninData>(event, msg.data) {
                Ok(d) => self.sign_in(d),
                Err(e) => self.close_with(4009, &e.to_string()),
            },
            e if e.starts_with("client-") => self.client_event(e, msg.channel.as_deref(), msg.data),
            other => self.error(None, &format!("Unsupported event {other}")),
        }
    }

    async fn subscribe(&mut self, d: SubscribeData) {
        let name = d.channel.as_str();
        if let Err(e) = channel::validate_name(name, self.app.config.max_channel_name_length, true) {
            return self.subscription_error(name, &format!("Invalid channel name {name}: {e}"), 400);
        }
        if self.subscriptions.contains(name) {
            return self.error(None, &format!("Existing subscription to channel {name}"));
        }
        let max = self.app.config.max_subscriptions_per_connection;
        if self.subscriptions.len() >= max {
            return self.subscription_error(name, &format!("A connection may join at most {max} channels"), 403);
        }
        let ty = ChannelType::of(name);
        let auth = d.auth.as_deref().unwrap_or("");
        let cfg = &self.app.config;
        let member = match ty.kind {
            ChannelKind::Public => None,
            ChannelKind::User => {
                let allowed = self.user.as_ref().is_some_and(|u| Some(u.id.as_str()) == channel::user_channel_id(name));
                if !allowed {
                    return self.subscription_error(name, "Only the user signed in as this id may subscribe", 403);
                }
                None
            }
            ChannelKind::Private | ChannelKind::Encrypted => {
                let s = signature::private_string(&self.socket_id(), name);
                if !signature::verify_auth(&cfg.key, &cfg.secret, s.as_bytes(), auth) {
                    return self.subscription_error(name, &format!("Invalid signature for channel {name}"), 401);
                }
                None
            }
            ChannelKind::Presence => match self.presence_member(name, auth, d.channel_data.as_deref()) {
                Ok(m) => Some(m),
                Err((msg, status)) => return self.subscription_error(name, &msg, status),
            },
        };
        let key = member.as_ref().map(|m| m.key.clone());
        // Recorded before waiting, so a connection dropped meanwhile still leaves the channel.
        self.subscriptions.insert(name, key.as_deref());
        match self.app.join(&self.conn, name, member).await {
            Ok(()) => {
                self.app.debug(|| {
                    serde_json::json!({"type": "subscribed", "channel": name, "socket_id": self.socket_id(), "user_id": key})
                });
            }
            Err(e @ SubscribeError::AlreadySubscribed(_)) => self.error(None, &e.to_string()),
            Err(e @ SubscribeError::MembersLimit { .. }) => {
                self.subscriptions.remove(name);
                self.subscription_error(name, &e.to_string(), 403);
            }
        }
    }

    /// Verifies a presence subscription and returns the member it adds.
    fn presence_member(&self, name: &str, auth: &str, channel_data: Option<&str>) -> Result<Member, (String, u16)> {
        let cfg = &self.app.config;
        let Some(data) = channel_data else {
            // Signed-in sockets may join without channel_data; the member is the signed-in user.
            let s = signature::private_string(&self.socket_id(), name);
            return match &self.user {
                Some(u) if signature::verify_auth(&cfg.key, &cfg.secret, s.as_bytes(), auth) => {
                    Ok(Member { key: u.id.clone(), id_json: frame::json_str(&u.id), info_json: u.info_json.clone() })
                }
                Some(_) => Err((format!("Invalid signature for channel {name}"), 401)),
                None => Err((format!("Presence channel {name} needs channel_data or a signed-in user"), 403)),
            };
        };
        let s = signature::presence_string(&self.socket_id(), name, data);
        if !signature::verify_auth(&cfg.key, &cfg.secret, s.as_bytes(), auth) {
            return Err((format!("Invalid signature for channel {name}"), 401));
        }
        let parsed: ChannelData =
            serde_json::from_str(data).map_err(|_| ("channel_data is not a JSON object".to_string(), 400))?;
        let id_raw = parsed.user_id.ok_or_else(|| ("channel_data has no user_id".to_string(), 403))?;
        let key = frame::user_id_key(id_raw)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| ("user_id must be a non-empty string or a number".to_string(), 403))?;
        if key.len() > cfg.max_user_id_length {
            return Err((format!("user_id is longer than {} characters", cfg.max_user_id_length), 403));
        }
        let info = parsed.user_info.map(|r| r.get().to_string());
        if info.as_ref().is_some_and(|i| i.len() > cfg.max_presence_user_info_bytes) {
            return Err((format!("user_info is larger than {} bytes", cfg.max_presence_user_info_bytes), 403));
        }
        Ok(Member { key, id_json: id_raw.get().to_string(), info_json: info })
    }

    fn unsubscribe(&mut self, channel: &str) {
        if self.subscriptions.remove(channel) {
            self.app.leave(self.conn.id, channel);
            self.app.debug(
                || serde_json::json!({"type": "unsubscribed", "channel": channel, "socket_id": self.socket_id()}),
            );
        }
    }

    fn sign_in(&mut self, d: SigninData) {
        let cfg = &self.app.config;
        let s = signature::user_string(&self.socket_id(), &d.user_data);
        if !signature::verify_auth(&cfg.key, &cfg.secret, s.as_bytes(), &d.auth) {
            return self.close_with(4009, "Invalid signature for pusher:signin");
        }
        let Ok(user) = serde_json::from_str::<UserData>(&d.user_data) else {
            return self.close_with(4009, "user_data is not a JSON object");
        };
        let id = match user.id {
            Some(serde_json::Value::String(s)) if !s.is_empty() => s,
            _ => return self.close_with(4009, "user_data.id must be a non-empty string"),
        };
        if let Err(e) = channel::validate_user_id(&id, cfg.max_user_id_length) {
            return self.close_with(4009, &format!("user_data.id is not a valid user id: {e}"));
        }
        if let Some(current) = &self.user {
            if current.id != id {
                return self.close_with(4009, "Already signed in as another user");
            }
            return self.send(frame::signin_success(&d.user_data));
        }
        let mut watchlist: Vec<String> = user
            .watchlist
            .unwrap_or_default()
            .into_iter()
            .filter_map(|v| match v {
                serde_json::Value::String(s) => Some(s),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect();
        let over = watchlist.len() > cfg.max_watchlist_size;
        watchlist.truncate(cfg.max_watchlist_size);
        self.send(frame::signin_success(&d.user_data));
        if over {
            self.error(
                Some(4302),
                &format!("Watchlist limit exceeded: only the first {} ids are watched", cfg.max_watchlist_size),
            );
        }
        self.app.sign_in(self.conn.id, &self.conn.outbox, &id, &watchlist);
        self.user = Some(Box::new(SignedIn { id, info_json: user.user_info.map(|r| r.get().to_string()), watchlist }));
    }

    fn client_event(&mut self, event: &str, channel: Option<&str>, data: Option<&RawValue>) {
        let cfg = &self.app.config;
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
        self.app.publish(channel, &f, Some(self.conn.id));
        self.app.publish_to_cluster(channel, &f, None);
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

impl Drop for Connection {
    fn drop(&mut self) {
        for channel in self.subscriptions.channels() {
            self.app.leave(self.conn.id, channel);
        }
        if let Some(user) = &self.user {
            self.app.sign_out(self.conn.id, &user.id, &user.watchlist);
        }
        self.app.debug(|| serde_json::json!({"type": "connection_closed", "socket_id": self.socket_id()}));
        self.app.set_live(&self.conn, false);
        self.app.release_connection();
        self.app.stats().connections_closed.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::ClientQuery;

    /// What a full form-urlencoded parse keeps.
    fn reference(query: &str) -> (Option<String>, Option<String>) {
        let (mut protocol, mut version) = (None, None);
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            match k.as_ref() {
                "protocol" => protocol = Some(v.into_owned()),
                "version" => version = Some(v.into_owned()),
                _ => {}
            }
        }
        (protocol, version)
    }

    #[test]
    fn query_reads_like_a_full_form_urlencoded_parse() {
        for q in [
            "",
            "protocol=7&client=js&version=8.4.0&flash=false",
            "protocol=7&protocol=5",
            "version=1.0+beta&protocol=%37",
            "proto%63ol=6&version",
            "&&protocol=&version==x&=",
            "version=%E2%9C%93&protocol=%ZZ",
            "client=js&version=8%2B1&protocol=7&",
            "version=caf\u{e9}&protocol=7",
        ] {
            let parsed = ClientQuery::parse(Some(q));
            assert_eq!((parsed.protocol, parsed.version), reference(q), "query {q:?}");
        }
        let none = ClientQuery::parse(None);
        assert_eq!((none.protocol, none.version), (None, None));
    }
}
