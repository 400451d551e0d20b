//! This node's life in the cluster: heartbeats (which also register the node and notice when
//! Redis forgot it), sweeping the nodes that stopped heartbeating, and the handover on a graceful
//! stop.

use super::NodeState;
use crate::adapter::Change;
use crate::adapter::link::{as_int, as_string};
use redis::Value;
use tokio::time::Instant;

impl NodeState {
    /// One heartbeat: registers this node (or renews its deadline), writes its state back when
    /// needed, and sweeps the nodes past their deadline.
    pub(super) async fn heartbeat(&mut self) {
        if self.draining {
            return;
        }
        if self.dirty {
            self.reconcile().await;
        }
        let ttl = self.link.settings.node_timeout.as_millis() as u64;
        let Ok(reply) = self.beat(ttl).await else {
            self.link.set_store_up(false);
            self.healthy_since = None;
            return;
        };
        let healthy_since = *self.healthy_since.get_or_insert_with(Instant::now);
        let added = reply.first().map_or(0, as_int);
        if added == 1 && self.registered && !self.dirty {
            tracing::warn!("this node's cluster state was missing from Redis; writing it again");
            self.lost_registration = true;
            self.dirty = true;
            self.last_attempt = None;
            self.reconcile().await;
        }
        self.registered = true;
        if !self.dirty {
            self.link.set_store_up(true);
        }
        // After this node could not reach Redis, the others' deadlines may have passed only because
        // Redis was unreachable for them too (a pause or a network cut keeps the data): give them a
        // whole node timeout to heartbeat again before sweeping anyone.
        if healthy_since.elapsed() < self.link.settings.node_timeout {
            return;
        }
        let me = self.link.node().to_string();
        let dead: Vec<String> = match reply.get(1) {
            Some(Value::Array(ids)) => ids.iter().filter_map(as_string).filter(|id| *id != me).collect(),
            _ => Vec::new(),
        };
        for node in dead {
            self.sweep(&node).await;
        }
    }

    pub(super) async fn beat(&self, ttl_ms: u64) -> Result<Vec<Value>, ()> {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        pipe.cmd("EVALSHA")
            .arg(self.scripts.heartbeat.get_hash())
            .arg(1)
            .arg(self.link.keys.nodes())
            .arg(self.link.node())
            .arg(ttl_ms);
        match self.run(&pipe).await?.into_iter().next() {
            Some(Value::Array(parts)) => Ok(parts),
            _ => Err(()),
        }
    }

    /// Removes a dead node's contribution and announces the departures (only the first sweeper does).
    async fn sweep(&mut self, node: &str) {
        let keys = self.link.keys.clone();
        let Ok(id) = node.parse::<u32>() else { return };
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        pipe.cmd("EVALSHA")
            .arg(self.scripts.sweep.get_hash())
            .arg(4)
            .arg(keys.nodes())
            .arg(keys.node_subs(id))
            .arg(keys.node_members(id))
            .arg(keys.draining())
            .arg(node)
            .arg(keys.prefix())
            .arg(keys.bus());
        let Ok(reply) = self.run(&pipe).await else { return };
        let Some(Value::Array(parts)) = reply.into_iter().next() else {
            return; // another node swept it first
        };
        let mut vacated = Vec::new();
        if let Some(Value::Array(fields)) = parts.first() {
            vacated.extend(fields.iter().filter_map(as_string));
        }
        let mut removed = 0;
        if let Some(Value::Array(items)) = parts.get(1) {
            for pair in items.chunks(2) {
                let (Some(f), Some(value)) = (pair.first().and_then(as_string), pair.get(1).and_then(as_string)) else {
                    continue;
                };
                let mut it = f.splitn(3, '\n');
                if let (Some(app), Some(channel), Some(user)) = (it.next(), it.next(), it.next()) {
                    removed += 1;
                    let change = Change::MemberRemoved { user: user.to_string(), value, marker: false };
                    self.announce(app, channel, change).await;
                }
            }
        }
        for f in &vacated {
            if let Some((app, channel)) = f.split_once('\n') {
                self.announce(app, channel, Change::Vacated { marker: false }).await;
            }
        }
        // Channels the dead node shared with others: their subscription count dropped.
        if let Some(Value::Array(items)) = parts.get(2) {
            for pair in items.chunks(2) {
                if let (Some(f), Some(n)) = (pair.first().and_then(as_string), pair.get(1))
                    && let Some((app, channel)) = f.split_once('\n')
                {
                    self.announce(app, channel, Change::Count(as_int(n))).await;
                }
            }
        }
        tracing::info!(
            node,
            vacated = vacated.len(),
            members_removed = removed,
            "swept a node that stopped heartbeating"
        );
    }

    /// Stops recording departures and keeps this node's members for the handover period; when no
    /// other node is left to take its clients over, leaves nothing behind.
    pub(super) async fn handover(&mut self) {
        if self.draining {
            return;
        }
        self.draining = true;
        let keys = self.link.keys.clone();
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        pipe.cmd("EVALSHA")
            .arg(self.scripts.handover.get_hash())
            .arg(2)
            .arg(keys.nodes())
            .arg(keys.draining())
            .arg(self.link.node())
            .arg(self.link.settings.handover.as_millis() as u64);
        match self.run(&pipe).await.map(|r| r.into_iter().next()) {
            Ok(Some(Value::Array(nodes))) => {
                // No other node is left to take the clients over: leave nothing behind.
                for node in nodes.iter().filter_map(as_string) {
                    self.sweep(&node).await;
                }
            }
            Ok(_) => {}
            Err(()) => tracing::warn!(
                "cannot hand this node's members over in Redis; the others sweep them after the node timeout"
            ),
        }
    }
}
