//! One Pusher connection's protocol state machine, shared by every transport.
//!
//! The transport feeds it client messages; everything it answers goes into the connection's
//! [`Outbox`](crate::hub::Outbox), so replies and broadcasts leave in one ordered stream.
//!
//! Here: opening (app key, origin, quota, protocol version, `connection_established`), the message
//! dispatch, and closing. Each client message has a file of its own: [`subscribe`] (private,
//! encrypted, presence and user channel checks), [`sign_in`], [`client_events`] (with their rate
//! limit).

mod client_events;
mod resume;
mod sign_in;
mod subscribe;

use crate::hub::{AppState, ConnRef, Frame, Outbox, clock};
use crate::protocol::frame::{self, SigninData, SubscribeData, UnsubscribeData};
use crate::rate_limit::RateWindow;
use crate::state::Context;
use crate::transport::subscriptions::Subscriptions;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Why a connection was refused before `connection_established`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Refusal {
    /// Pusher close code (4001, 4003, 4004, 4006, 4007, 4009, 4200).
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
    /// Opens a connection for any transport: refused with 4200 once the server is shutting down;
    /// otherwise the app (4001), the request's `Origin` (4009, see
    /// [`AppConfig::connection_origin_allowed`](crate::config::AppConfig::connection_origin_allowed)),
    /// the app's switch (4003), the protocol version and the quota are checked in that order, the
    /// connection is registered and `connection_established` queued. `origin` is the request's
    /// `Origin` header (`Some("")` for one that is not text), `None` when it has none.
    pub async fn open(
        ctx: &Context,
        app_key: &str,
        query: &ClientQuery,
        origin: Option<&str>,
    ) -> Result<Self, Refusal> {
        if ctx.is_draining() {
            return Err(Refusal::shutting_down());
        }
        let (hub, activity_timeout) = (&ctx.hub, ctx.config.activity_timeout);
        let app = match hub.app_by_key(app_key) {
            Some(app) => app,
            // Not served yet: perhaps just inserted in the app store. While the store cannot be
            // read, 4100 (pusher-js tries again) rather than 4001 (it would give up for good).
            None => match ctx.apps.find_key(hub, app_key).await {
                Ok(Some(app)) => app,
                Ok(None) => return Err(Refusal::new(4001, format!("App key {app_key} does not exist"))),
                Err(e) => {
                    tracing::warn!(error = %e, "unknown app key while the app store is unavailable");
                    return Err(Refusal::new(4100, "App store unavailable: try again shortly"));
                }
            },
        };
        if !app.config().connection_origin_allowed(origin) {
            return Err(Refusal::new(4009, "Origin not allowed"));
        }
        if !app.config().enabled {
            return Err(Refusal::new(4003, "Application is disabled"));
        }
        check_protocol(query.protocol.as_deref())?;
        check_version(query.version.as_deref())?;
        if !app.connections().try_reserve(app.config().max_connections) {
            return Err(Refusal::new(4004, "Application is over its connection quota"));
        }
        let conn = hub.new_connection(&app);
        app.connections().set_live(&conn, true);
        // An app disabled or deleted since the checks above closed the connections it saw live,
        // which may not have included this one: look again now that it is live.
        if !app.config().enabled || app.is_removed() {
            app.connections().set_live(&conn, false);
            app.connections().release();
            return Err(if app.is_removed() {
                Refusal::new(4001, format!("App key {app_key} does not exist"))
            } else {
                Refusal::new(4003, "Application is disabled")
            });
        }
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
        self.app.debug(|| serde_json::json!({"type": "subscription_refused", "channel": channel, "socket_id": self.socket_id(), "status": status, "reason": message}));
        self.send(frame::subscription_error(channel, message, status));
        self.error(None, message);
    }

    /// Handles one text message from the client. Only a subscribe (for the cluster to record it)
    /// and a resume (for Redis to read the history) on a clustered node wait; everything else
    /// completes at once.
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
            "sinew:resume" => Box::pin(self.resume(msg.channel.as_deref(), msg.data)).await,
            other => self.error(None, &format!("Unsupported event {other}")),
        }
    }
}
impl Drop for Connection {
    fn drop(&mut self) {
        for channel in self.subscriptions.channels() {
            self.app.leave(self.conn.id, channel);
        }
        if let Some(user) = &self.user {
            self.app.users().sign_out(self.conn.id, &user.id, &user.watchlist);
        }
        self.app.debug(|| {
            let close = self.conn.outbox.close_request();
            let (code, reason) = close.map_or((None, "no close frame (connection lost)".into()), |c| (Some(c.code), c.reason));
            serde_json::json!({"type": "connection_closed", "socket_id": self.socket_id(), "code": code, "reason": reason})
        });
        self.app.connections().set_live(&self.conn, false);
        self.app.connections().release();
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
