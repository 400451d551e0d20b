//! The batched subscription writes: each subscribe or unsubscribe is one run of the subscribe
//! script, many of them in one pipeline; the replies go back to the callers and the cluster-wide
//! transitions the script decided are announced.

use super::{NodeState, field};
use crate::adapter::keys::Keys;
use crate::adapter::link::{as_int, as_string, pairs};
use crate::adapter::{Change, SubOutcome, SubRequest};
use redis::Value;
use tokio::sync::oneshot;
use tokio::time::Duration;

/// How long a departure marker lives: the leave delay and a margin, when the app has webhooks.
fn marker_ms(webhooks: bool, leave_delay: Duration) -> u64 {
    if webhooks && !leave_delay.is_zero() { leave_delay.as_millis() as u64 + 10_000 } else { 0 }
}

/// One run of the subscribe script.
pub(super) struct Write<'a> {
    pub(super) app: &'a str,
    pub(super) channel: &'a str,
    pub(super) delta: i64,
    pub(super) member: Option<&'a (String, String)>,
    pub(super) member_delta: i64,
    pub(super) max_members: i64,
    pub(super) want_members: bool,
    pub(super) want_cache: bool,
    pub(super) count_events: bool,
    /// Milliseconds a departure's marker lives (0: no marker).
    pub(super) marker_ms: u64,
    /// Whether the script publishes member events and counts.
    pub(super) publish: bool,
    /// Token of the [`crate::adapter::BusMessage::Listed`] the script publishes (a presence join).
    pub(super) listed: Option<u64>,
}

impl<'a> Write<'a> {
    fn of(req: &'a SubRequest, leave_delay: Duration) -> Self {
        Write {
            app: &req.app,
            channel: &req.channel,
            delta: req.delta,
            member: req.member.as_ref(),
            member_delta: if req.member.is_some() { req.delta } else { 0 },
            max_members: i64::try_from(req.max_members).unwrap_or(i64::MAX),
            want_members: req.want_members,
            want_cache: req.want_cache,
            count_events: req.count_events,
            marker_ms: marker_ms(req.webhooks, leave_delay),
            publish: true,
            listed: req.listed,
        }
    }

    pub(super) fn push(&self, pipe: &mut redis::Pipeline, script: &redis::Script, keys: &Keys, node: u32) {
        let (user, value) = self.member.map_or(("", ""), |(u, v)| (u.as_str(), v.as_str()));
        pipe.cmd("EVALSHA")
            .arg(script.get_hash())
            .arg(7)
            .arg(keys.node_subs(node))
            .arg(keys.app_subs(self.app))
            .arg(keys.node_members(node))
            .arg(keys.members(self.app, self.channel))
            .arg(keys.values(self.app, self.channel))
            .arg(keys.cache(self.app, self.channel))
            .arg(keys.nodes())
            .arg(field(self.app, self.channel))
            .arg(self.channel)
            .arg(self.delta)
            .arg(user)
            .arg(value)
            .arg(self.member_delta)
            .arg(self.max_members)
            .arg(if self.want_members { "1" } else { "0" })
            .arg(if self.want_cache { "1" } else { "0" })
            .arg(keys.bus())
            .arg(self.app)
            .arg(if self.count_events { "1" } else { "0" })
            .arg(node)
            .arg(self.marker_ms)
            .arg(if self.publish { "1" } else { "0" })
            .arg(self.listed.map_or_else(String::new, |t| t.to_string()));
    }
}

impl NodeState {
    /// Writes a batch of subscription changes; replies and announces what the scripts decided.
    pub(super) async fn write(&mut self, subs: Vec<(SubRequest, Option<oneshot::Sender<SubOutcome>>)>) {
        if self.dirty {
            self.reconcile().await;
        }
        if self.dirty {
            for (_, reply) in subs {
                if let Some(r) = reply {
                    let _ = r.send(SubOutcome::Unavailable);
                }
            }
            return;
        }
        let node = self.link.node();
        let keys = self.link.keys.clone();
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        let leave_delay = self.link.settings.leave_delay;
        for (req, _) in &subs {
            Write::of(req, leave_delay).push(&mut pipe, &self.scripts.subscribe, &keys, node);
        }
        let results = match self.run(&pipe).await {
            Ok(r) if r.len() == subs.len() => r,
            _ => {
                self.lost_sync();
                for (_, reply) in subs {
                    if let Some(r) = reply {
                        let _ = r.send(SubOutcome::Unavailable);
                    }
                }
                return;
            }
        };
        for ((req, reply), result) in subs.into_iter().zip(results) {
            let outcome = self.apply_result(&req, &result).await;
            if let Some(r) = reply {
                let _ = r.send(outcome);
            }
        }
    }

    /// Interprets one `SUBSCRIBE` script result and announces its transitions.
    async fn apply_result(&mut self, req: &SubRequest, result: &Value) -> SubOutcome {
        let Value::Array(parts) = result else {
            tracing::error!(?result, "unexpected reply of the subscribe script");
            self.lost_sync();
            return SubOutcome::Unavailable;
        };
        let get = |i: usize| parts.get(i).unwrap_or(&Value::Nil);
        let member = as_int(get(0));
        if member == -2 {
            self.unmirror(req);
            return SubOutcome::Full;
        }
        if member == -3 {
            // Not registered (swept while cut off, or Redis lost its data): written back by the
            // reconciliation once the node registers again.
            self.lost_sync();
            return SubOutcome::Unavailable;
        }
        let marker = marker_ms(req.webhooks, self.link.settings.leave_delay) > 0;
        for change in changes_of(parts, req.member.as_ref(), marker) {
            self.announce(&req.app, &req.channel, change).await;
        }
        let members = if req.want_members { pairs(Some(get(3))) } else { Vec::new() };
        SubOutcome::Applied { members, cache: as_string(get(4)) }
    }
}

/// The cluster-wide transitions in one result of the subscribe script, in announcement order
/// (member events and counts reach clients through the bus; these are for webhooks).
pub(super) fn changes_of(parts: &[Value], member: Option<&(String, String)>, marker: bool) -> Vec<Change> {
    let get = |i: usize| parts.get(i).unwrap_or(&Value::Nil);
    let (flag, before, after) = (as_int(get(0)), as_int(get(1)), as_int(get(2)));
    let mut changes = Vec::new();
    if before <= 0 && after > 0 {
        changes.push(Change::Occupied { rejoin: as_int(get(6)) == 1 });
    }
    if let Some((user, value)) = member {
        if flag == 1 || flag == 2 {
            changes.push(Change::MemberAdded { user: user.clone(), value: value.clone(), rejoin: flag == 2 });
        } else if flag == -1 {
            let stored = as_string(get(5)).unwrap_or_else(|| value.clone());
            changes.push(Change::MemberRemoved { user: user.clone(), value: stored, marker });
        }
    }
    if before > 0 && after <= 0 {
        changes.push(Change::Vacated { marker });
    }
    changes
}
