//! Signed-in users: which connections belong to which user, and watchlist subscriptions.

use super::{ConnId, Frame, Outbox, lock};
use crate::protocol::frame;
use std::collections::HashMap;
use std::sync::Mutex;

/// An app's signed-in users on this node, and who watches them.
#[derive(Debug, Default)]
pub struct Users {
    /// Whether the app sends watchlist events (`watchlist` in its settings).
    watchlist: bool,
    lists: Mutex<Lists>,
}

#[derive(Debug, Default)]
struct Lists {
    /// user id -> that user's signed-in connections.
    online: HashMap<String, HashMap<ConnId, Outbox>>,
    /// watched user id -> connections watching it.
    watchers: HashMap<String, HashMap<ConnId, Outbox>>,
}

impl Users {
    /// No users yet; `watchlist` turns watchlist events on.
    pub fn new(watchlist: bool) -> Self {
        Users { watchlist, lists: Mutex::default() }
    }

    /// Records `conn` as signed in as `user`. When `watchlist` is given, registers it and sends the
    /// current online/offline state of the watched ids. Tells watchers of `user` it came online.
    pub fn sign_in(&self, conn: ConnId, outbox: &Outbox, user: &str, watchlist: &[String]) {
        let mut users = lock(&self.lists);
        let first = {
            let conns = users.online.entry(user.to_string()).or_default();
            conns.insert(conn, outbox.clone());
            conns.len() == 1
        };
        if self.watchlist {
            if first && let Some(watchers) = users.watchers.get(user) {
                let f = Frame::from(frame::watchlist_event("online", &[user]));
                for o in watchers.values() {
                    o.push(&f);
                }
            }
            let (mut on, mut off) = (Vec::new(), Vec::new());
            for id in watchlist {
                users.watchers.entry(id.clone()).or_default().insert(conn, outbox.clone());
                if users.online.contains_key(id) { on.push(id.as_str()) } else { off.push(id.as_str()) }
            }
            if !on.is_empty() {
                outbox.push(&Frame::from(frame::watchlist_event("online", &on)));
            }
            if !off.is_empty() {
                outbox.push(&Frame::from(frame::watchlist_event("offline", &off)));
            }
        }
    }

    /// Forgets a connection signed in as `user` that watched `watchlist`; tells watchers when the
    /// user's last connection is gone.
    pub fn sign_out(&self, conn: ConnId, user: &str, watchlist: &[String]) {
        let mut users = lock(&self.lists);
        let mut last = false;
        if let Some(conns) = users.online.get_mut(user) {
            conns.remove(&conn);
            if conns.is_empty() {
                users.online.remove(user);
                last = true;
            }
        }
        for id in watchlist {
            if let Some(w) = users.watchers.get_mut(id) {
                w.remove(&conn);
                if w.is_empty() {
                    users.watchers.remove(id);
                }
            }
        }
        if last
            && self.watchlist
            && let Some(watchers) = users.watchers.get(user)
        {
            let f = Frame::from(frame::watchlist_event("offline", &[user]));
            for o in watchers.values() {
                o.push(&f);
            }
        }
    }

    /// Closes every connection signed in as `user` with `pusher:error` and close code 4009.
    /// Returns how many were told to close.
    pub fn terminate(&self, user: &str) -> usize {
        let users = lock(&self.lists);
        let Some(conns) = users.online.get(user) else {
            return 0;
        };
        const MSG: &str = "Connection terminated by the server";
        let f = Frame::from(frame::error(Some(4009), MSG));
        for o in conns.values() {
            o.close(Some(f.clone()), 4009, MSG);
        }
        conns.len()
    }

    /// Whether any connection is signed in as `user`.
    pub fn is_online(&self, user: &str) -> bool {
        lock(&self.lists).online.contains_key(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::{Drained, OutboxLimits};
    use std::sync::Arc;

    fn outbox() -> Outbox {
        Outbox::new(OutboxLimits { max_messages: 100, max_bytes: 100_000 }, Arc::default())
    }

    fn events(o: &Outbox) -> Vec<String> {
        let mut b = Vec::new();
        let _ = o.drain(&mut b);
        b.iter().map(|f| f.as_str().to_string()).collect()
    }

    #[test]
    fn watchlist_online_offline() {
        let app = Users::new(true);
        let (a, b) = (outbox(), outbox());
        app.sign_in(1, &a, "alice", &["bob".into()]);
        let ev = events(&a);
        assert_eq!(ev.len(), 1);
        assert!(ev[0].contains("offline") && ev[0].contains("bob"));
        app.sign_in(2, &b, "bob", &[]);
        assert!(events(&a)[0].contains("online"));
        app.sign_out(2, "bob", &[]);
        assert!(events(&a)[0].contains("offline"));
        assert!(!app.is_online("bob"));
    }

    #[tokio::test]
    async fn terminate_closes_only_that_user() {
        let app = Users::new(false);
        let (a, b) = (outbox(), outbox());
        app.sign_in(1, &a, "alice", &[]);
        app.sign_in(2, &b, "bob", &[]);
        assert_eq!(app.terminate("alice"), 1);
        let mut batch = Vec::new();
        assert!(matches!(a.next(&mut batch).await, Drained::Close(c) if c.code == 4009));
        assert!(!b.is_closing());
        assert_eq!(app.terminate("nobody"), 0);
    }
}
