//! `pusher:signin`: the user authentication signature, the user's data and watchlist (4009 on a
//! bad sign-in, 4302 past the watchlist limit).

use crate::protocol::channel;
use crate::protocol::frame::{self, SigninData, UserData};
use crate::protocol::signature;

use super::{Connection, SignedIn};

impl Connection {
    pub(super) fn sign_in(&mut self, d: SigninData) {
        let cfg = self.app.config();
        let s = signature::user_string(&self.socket_id(), &d.user_data);
        if !self.app.signed(|secret| signature::verify_auth(&cfg.key, secret, s.as_bytes(), &d.auth)) {
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
        self.app.users().sign_in(self.conn.id, &self.conn.outbox, &id, &watchlist);
        self.user = Some(Box::new(SignedIn { id, info_json: user.user_info.map(|r| r.get().to_string()), watchlist }));
    }
}
