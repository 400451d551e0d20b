//! `pusher:subscribe` and `pusher:unsubscribe`: channel name and limits, the signature of
//! private and encrypted channels, the `channel_data` of presence channels (or the signed-in user),
//! and user channels (`#server-to-user-`) for the signed-in user alone.

use crate::hub::{Member, SubscribeError};
use crate::protocol::channel::{self, ChannelKind, ChannelType};
use crate::protocol::frame::{self, ChannelData, SubscribeData};
use crate::protocol::signature;

use super::Connection;

impl Connection {
    pub(super) async fn subscribe(&mut self, d: SubscribeData) {
        let name = d.channel.as_str();
        if let Err(e) = channel::validate_name(name, self.app.config().max_channel_name_length, true) {
            return self.subscription_error(name, &format!("Invalid channel name {name}: {e}"), 400);
        }
        if self.subscriptions.contains(name) {
            return self.error(None, &format!("Existing subscription to channel {name}"));
        }
        let max = self.app.config().max_subscriptions_per_connection;
        if self.subscriptions.len() >= max {
            return self.subscription_error(name, &format!("A connection may join at most {max} channels"), 403);
        }
        let ty = ChannelType::of(name);
        let auth = d.auth.as_deref().unwrap_or("");
        let cfg = self.app.config();
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
                if !self.app.signed(|secret| signature::verify_auth(&cfg.key, secret, s.as_bytes(), auth)) {
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
        let cfg = self.app.config();
        let Some(data) = channel_data else {
            // Signed-in sockets may join without channel_data; the member is the signed-in user.
            let s = signature::private_string(&self.socket_id(), name);
            return match &self.user {
                Some(u) if self.app.signed(|secret| signature::verify_auth(&cfg.key, secret, s.as_bytes(), auth)) => {
                    Ok(Member { key: u.id.clone(), id_json: frame::json_str(&u.id), info_json: u.info_json.clone() })
                }
                Some(_) => Err((format!("Invalid signature for channel {name}"), 401)),
                None => Err((format!("Presence channel {name} needs channel_data or a signed-in user"), 403)),
            };
        };
        let s = signature::presence_string(&self.socket_id(), name, data);
        if !self.app.signed(|secret| signature::verify_auth(&cfg.key, secret, s.as_bytes(), auth)) {
            return Err((format!("Invalid signature for channel {name}"), 401));
        }
        let parsed: ChannelData =
            serde_json::from_str(data).map_err(|_| ("channel_data is not a JSON object".to_string(), 400))?;
        let id_raw = parsed.user_id.ok_or_else(|| ("channel_data has no user_id".to_string(), 403))?;
        let key = frame::user_id_key(id_raw)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| ("user_id must be a non-empty string or a number".to_string(), 403))?;
        if let Err(e) = channel::validate_user_id(&key, cfg.max_user_id_length) {
            return Err((format!("user_id is not a valid user id: {e}"), 403));
        }
        let info = parsed.user_info.map(|r| r.get().to_string());
        if info.as_ref().is_some_and(|i| i.len() > cfg.max_presence_user_info_bytes) {
            return Err((format!("user_info is larger than {} bytes", cfg.max_presence_user_info_bytes), 403));
        }
        Ok(Member { key, id_json: id_raw.get().to_string(), info_json: info })
    }

    pub(super) fn unsubscribe(&mut self, channel: &str) {
        if self.subscriptions.remove(channel) {
            self.app.leave(self.conn.id, channel);
            self.app.debug(
                || serde_json::json!({"type": "unsubscribed", "channel": channel, "socket_id": self.socket_id()}),
            );
        }
    }
}
