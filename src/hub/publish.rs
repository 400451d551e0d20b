//! The one publish path: an event for one or more channels of an app, published here (the REST
//! API) or on another node, goes through [`Hub::publish_event`]: one frame built per
//! channel and queued for every local subscriber, the last event of a cache channel stored under
//! the channel's guard, and, for an event published here, one bus message for the other nodes
//! whatever the number of channels and subscribers.
//!
//! A client event is a frame its connection built (it names the sender's `user_id`): it goes to the
//! channel's other subscribers here and, as that frame, to the other nodes
//! ([`AppState::publish_frame`]).

use super::{AppState, ConnId, Frame, Hub};
use crate::adapter::{BusMessage, PositionedEvent};
use crate::protocol::channel::ChannelType;
use crate::protocol::frame;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::oneshot;

/// An event as published: its name, its data (the JSON string pusher-js hands to callbacks) and
/// its channels, with the socket id of a publisher that must not receive it.
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    /// Event name.
    pub name: &'a str,
    /// Event data.
    pub data: &'a str,
    /// Every channel it goes to.
    pub channels: &'a [String],
    /// The socket id that is left out (the REST call's `socket_id`), on whichever node it is.
    pub except: Option<&'a str>,
}

/// Where an event was published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// On this node: it is counted, shown in the debug console and sent to the other nodes.
    Here,
    /// On another node, which did all of that: only this node's subscribers are left.
    OtherNode,
}

impl Hub {
    /// Delivers `event` to this node's subscribers of its channels and, for an event published
    /// here, to the rest of the cluster. In a cluster, an event of a channel with history is
    /// positioned in Redis first: the answer resolves once it is (so that a publisher that waits
    /// for each answer sees its events in the order it published them, whichever nodes it
    /// published them on); `None` when nothing waits in Redis.
    pub fn publish_event(&self, app: &AppState, event: Event<'_>, origin: Origin) -> Option<oneshot::Receiver<()>> {
        let except = event.except.and_then(|s| self.local_conn(s));
        // Channels whose events Redis positions and sends to every node (this one included), by
        // index, and what tells the caller Redis took them all (dropped with the last of them).
        let mut positioned: Vec<usize> = Vec::new();
        let mut waiting: Option<(Arc<oneshot::Sender<()>>, oneshot::Receiver<()>)> = None;
        for (i, channel) in event.channels.iter().enumerate() {
            let text = frame::channel_event(event.name, channel, event.data);
            let cache = ChannelType::of(channel).cache;
            let deliver = |f: &Frame| {
                if cache {
                    app.publish_cached(channel, event.name, event.data, f, except);
                } else {
                    app.publish(channel, f, except);
                }
            };
            match (app.keeps_history(channel), app.adapter().redis()) {
                (true, None) => {
                    let positioned = |epoch: &str, offset| Frame::from(frame::with_position(&text, epoch, offset));
                    app.history().record(channel, app.history_keep(), positioned, deliver);
                }
                (true, Some(cluster)) if origin == Origin::Here => {
                    let (done, _) = waiting.get_or_insert_with(|| {
                        let (tx, rx) = oneshot::channel();
                        (Arc::new(tx), rx)
                    });
                    let ev = app.positioned_event(channel, &text, event.except, cache);
                    match cluster.publish_positioned(ev, Some(done.clone())) {
                        Ok(()) => positioned.push(i),
                        // The queue to Redis is full: delivered here without a position.
                        Err(_) => deliver(&Frame::from(text)),
                    }
                }
                _ => deliver(&Frame::from(text)),
            }
            if cache && origin == Origin::Here {
                app.share_cached(channel, event.name, event.data);
            }
        }
        let waiting = waiting.map(|(_, rx)| rx);
        if origin == Origin::OtherNode {
            return waiting;
        }
        if positioned.len() < event.channels.len() {
            app.adapter().publish_with(|node| BusMessage::Event {
                node,
                app: app.id().to_string(),
                channels: match positioned.is_empty() {
                    true => event.channels.to_vec(),
                    false => {
                        let rest = event.channels.iter().enumerate().filter(|(i, _)| !positioned.contains(i));
                        rest.map(|(_, c)| c.clone()).collect()
                    }
                },
                event: event.name.to_string(),
                data: event.data.to_string(),
                except: event.except.map(str::to_string),
            });
        }
        app.stats().events_published.fetch_add(1, Ordering::Relaxed);
        app.debug(|| {
            serde_json::json!({"type": "rest_publish", "channels": event.channels, "event": event.name,
                "socket_id": event.except, "data": super::preview(event.data, 200)})
        });
        waiting
    }
}

impl AppState {
    /// Delivers a frame a connection built (a client event) to the other subscribers of `channel`
    /// on this node, then to its subscribers on the other nodes.
    pub fn publish_frame(&self, channel: &str, frame: &Frame, sender: ConnId) {
        match (self.keeps_history(channel), self.adapter().redis()) {
            (false, _) => {}
            (true, None) => {
                let positioned = |epoch: &str, offset| Frame::from(frame::with_position(frame.as_str(), epoch, offset));
                self.history().record(channel, self.history_keep(), positioned, |f| {
                    self.publish(channel, f, Some(sender));
                });
                return;
            }
            (true, Some(cluster)) => {
                let except = super::socket_id(cluster.node(), sender);
                // Nobody waits for a client event to be positioned. When the queue to Redis is
                // full, it goes out without a position below.
                if cluster
                    .publish_positioned(self.positioned_event(channel, frame.as_str(), Some(&except), false), None)
                    .is_ok()
                {
                    return;
                }
            }
        }
        self.publish(channel, frame, Some(sender));
        self.adapter().publish_with(|node| BusMessage::Frame {
            node,
            app: self.id().to_string(),
            channel: channel.to_string(),
            frame: frame.as_str().to_string(),
            except: None,
            except_user: None,
        });
    }

    /// An event of `channel` (its frame without position) for the cluster's history.
    fn positioned_event<'a>(
        &'a self,
        channel: &'a str,
        frame: &'a str,
        except: Option<&'a str>,
        cache: bool,
    ) -> PositionedEvent<'a> {
        let keep = self.history_keep();
        PositionedEvent {
            app: self.id(),
            channel,
            frame,
            except,
            cache,
            new_epoch: frame::new_epoch(),
            size: keep.size,
            ttl_ms: keep.ttl_ms(),
        }
    }
}
