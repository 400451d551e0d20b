//! What other nodes and the cluster's store hand over: events, frames, counts and terminations
//! delivered to this node's subscribers, and cluster-wide transitions announced (to local
//! subscribers, to the other nodes and as webhooks).

use super::{AppState, ConnId, Event, Frame, Hub, Origin, lock};
use crate::adapter::{Adapter, BusMessage, Change, Inbound, split_member_value};
use crate::protocol::channel::{ChannelKind, ChannelType};
use crate::protocol::frame;
use crate::webhooks::Trigger;
use tokio::sync::mpsc;
use tokio::time::Instant;

impl AppState {
    fn fan_out_except_user(
        &self,
        ch: &super::channels::Channel,
        frame: &Frame,
        except: Option<ConnId>,
        except_user: Option<&str>,
    ) -> usize {
        let Some(user) = except_user else {
            return self.fan_out(ch, frame, except);
        };
        let mut n = 0;
        for (id, sub) in &ch.subscribers {
            if Some(id) != except && sub.user.as_deref() != Some(user) && sub.outbox.push(frame) {
                n += 1;
            }
        }
        n
    }

    /// Queues `frame` for local subscribers of `channel`, skipping a socket and a member's sockets.
    fn publish_except_user(&self, channel: &str, frame: &Frame, except: Option<ConnId>, except_user: Option<&str>) {
        if let Some(ch) = self.channels.get(channel) {
            self.fan_out_except_user(&ch, frame, except, except_user);
        }
    }

    /// Sends a cluster-wide subscriber count to local subscribers (at most every few seconds on
    /// busy channels).
    fn deliver_count(&self, channel: &str, count: i64) {
        let Some(mut ch) = self.channels.get_mut(channel) else { return };
        let now = Instant::now();
        if count > super::subscriptions::COUNT_THROTTLE_SUBSCRIBERS as i64
            && ch.last_count_sent.is_some_and(|t| now.duration_since(t) < super::subscriptions::COUNT_THROTTLE)
        {
            return;
        }
        ch.last_count_sent = Some(now);
        let f = Frame::from(frame::subscription_count(channel, count.max(0) as usize));
        self.fan_out(&ch, &f, None);
    }

    /// Closes this user's connections here and, when clustered, on every node.
    pub fn terminate_everywhere(&self, user: &str) -> usize {
        self.adapter.publish_with(|node| BusMessage::Terminate {
            node,
            app: self.id().to_string(),
            user: user.to_string(),
        });
        self.users.terminate(user)
    }

    /// Announces a cluster-wide transition this node observed. The frames went out on the bus from
    /// Redis itself (in Redis's order); here the webhooks and the debug feed, once per cluster
    /// transition, with the leave delay applied cluster-wide: a departure's webhook waits, and is
    /// dropped if the member or channel came back on any node meanwhile (which also drops that
    /// return's webhook).
    fn announce(&self, channel: &str, change: Change) {
        match change {
            Change::Occupied { rejoin } => {
                if !rejoin {
                    self.emit_decided(Trigger::Occupied { channel: channel.to_string() });
                }
            }
            Change::Vacated { marker } => self.emit_departure(channel, None, marker),
            Change::MemberAdded { user, rejoin, .. } => {
                self.debug(|| serde_json::json!({"type": "member_added", "channel": channel, "user_id": user}));
                if !rejoin {
                    self.emit_decided(Trigger::MemberAdded { channel: channel.to_string(), user_id: user });
                }
            }
            Change::MemberRemoved { user, marker, .. } => {
                self.debug(|| serde_json::json!({"type": "member_removed", "channel": channel, "user_id": user}));
                self.emit_departure(channel, Some(user), marker);
            }
            // Counts decided by the scripts reach every node through the bus; this one comes from a
            // sweep, which cannot know which apps want counts.
            Change::Count(count) => {
                if self.config().subscription_count && ChannelType::of(channel).kind != ChannelKind::Presence {
                    self.deliver_count(channel, count);
                    let app = self.id().to_string();
                    self.adapter.publish_with(|node| BusMessage::Count {
                        node,
                        app,
                        channel: channel.to_string(),
                        count,
                    });
                }
            }
        }
    }

    fn emit_decided(&self, trigger: Trigger) {
        if let Some(h) = &*self.hooks.emitter.load() {
            h.emit_decided(trigger);
        }
    }

    /// Sends `channel_vacated` (no user) or `member_removed` once the leave delay passed, unless
    /// the departure was undone meanwhile.
    fn emit_departure(&self, channel: &str, user: Option<String>, marker: bool) {
        let (Some(hooks), Some(cluster)) = (self.hooks.emitter.load_full(), self.adapter.redis().cloned()) else {
            return;
        };
        let trigger = match &user {
            Some(u) => Trigger::MemberRemoved { channel: channel.to_string(), user_id: u.clone() },
            None => Trigger::Vacated { channel: channel.to_string() },
        };
        if !marker {
            return hooks.emit_decided(trigger);
        }
        let (app, channel) = (self.id().to_string(), channel.to_string());
        tokio::spawn(async move {
            tokio::time::sleep(cluster.leave_delay()).await;
            if cluster.departure_stands(&app, &channel, user.as_deref()).await {
                hooks.emit_decided(trigger);
            }
        });
    }

    /// Asks connections that joined presence channels while Redis was unreachable to reconnect.
    fn resynced(&self) {
        let joined = std::mem::take(&mut *lock(&self.degraded_joins));
        const MSG: &str = "Cluster state restored: reconnect for the full member list";
        for outbox in joined {
            outbox.close(Some(Frame::from(frame::error(Some(4200), MSG))), 4200, MSG);
        }
    }
}

impl Hub {
    /// Starts the cluster adapter (if any) and delivers what it hands over until it stops.
    pub fn start_cluster(&self) {
        let Some(rx) = self.inner.adapter.start() else { return };
        tokio::spawn(self.clone().run_inbound(rx));
    }

    /// This node's adapter.
    pub fn adapter(&self) -> &Adapter {
        &self.inner.adapter
    }

    /// Whether a socket id names an open connection: checked here for this node's sockets, and
    /// assumed for another node's sockets when clustered.
    pub fn is_socket_live(&self, app: &AppState, socket_id: &str) -> bool {
        let ours = socket_id.split_once('.').and_then(|(n, _)| n.parse::<u32>().ok()) == Some(self.inner.node_id);
        match self.local_conn(socket_id) {
            Some(c) => app.connections().is_live(c),
            None => !ours && self.inner.adapter.is_clustered() && super::is_valid_socket_id(socket_id),
        }
    }

    async fn run_inbound(self, mut rx: mpsc::Receiver<Inbound>) {
        while let Some(msg) = rx.recv().await {
            self.apply_inbound(msg);
        }
    }

    fn apply_inbound(&self, msg: Inbound) {
        match msg {
            Inbound::Bus(BusMessage::Event { app, channels, event, data, except, .. }) => {
                let Some(app) = self.app_by_id(&app) else { return };
                let event = Event { name: &event, data: &data, channels: &channels, except: except.as_deref() };
                let _ = self.publish_event(&app, event, Origin::OtherNode);
            }
            Inbound::Bus(BusMessage::Frame { app, channel, frame, except, except_user, .. }) => {
                let Some(app) = self.app_by_id(&app) else { return };
                let except = except.and_then(|s| self.local_conn(&s));
                app.publish_except_user(&channel, &Frame::from(frame), except, except_user.as_deref());
            }
            Inbound::Bus(BusMessage::Member { app, channel, user, value, added, .. }) => {
                let Some(app) = self.app_by_id(&app) else { return };
                let (id, info) = split_member_value(&value);
                let fallback_id;
                let id = if id.is_empty() {
                    fallback_id = frame::json_str(&user);
                    fallback_id.as_str()
                } else {
                    id
                };
                let f = Frame::from(if added {
                    frame::member_added(&channel, id, (info != "null").then_some(info))
                } else {
                    frame::member_removed(&channel, id)
                });
                app.publish_except_user(&channel, &f, None, Some(&user));
            }
            Inbound::Bus(BusMessage::Count { app, channel, count, .. }) => {
                if let Some(app) = self.app_by_id(&app) {
                    app.deliver_count(&channel, count);
                }
            }
            Inbound::Bus(BusMessage::Terminate { app, user, .. }) => {
                if let Some(app) = self.app_by_id(&app) {
                    app.users().terminate(&user);
                }
            }
            Inbound::Bus(BusMessage::Positioned { app, channel, frame, except, cache, .. }) => {
                let Some(app) = self.app_by_id(&app) else { return };
                let except = except.and_then(|s| self.local_conn(&s));
                let f = Frame::from(frame);
                match cache.then(|| serde_json::from_str::<CachedParts>(f.as_str()).ok()).flatten() {
                    Some(e) => app.publish_cached(&channel, &e.event, &e.data, &f, except),
                    None => app.publish(&channel, &f, except),
                };
            }
            Inbound::Bus(BusMessage::Listed { to, token, .. }) => {
                // Everything on the bus before it has been applied above.
                if let Some(cluster) = self.adapter().redis()
                    && to == cluster.node()
                {
                    cluster.listed(token);
                }
            }
            Inbound::Transition(t) => {
                if let Some(app) = self.app_by_id(&t.app) {
                    app.announce(&t.channel, t.change);
                }
            }
            Inbound::Resynced => {
                for app in self.apps() {
                    app.resynced();
                }
            }
        }
    }
}

/// What a cache channel keeps of an event that came with its position (its name and data).
#[derive(serde::Deserialize)]
struct CachedParts {
    event: String,
    data: String,
}
