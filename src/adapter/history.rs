//! Channel history shared by the cluster (see `hub/history.rs` for what history is): positions
//! are counted in Redis, so they are the same on every node, and the kept events live there, so a
//! client resumes on whichever node it reconnects to.
//!
//! Publishing: an event of a channel with history is not delivered by the node it was published
//! on; [`PUBLISH`] gives it the channel's next offset, appends it to the channel's list, trims the
//! list by size and age, and publishes the positioned frame to the channel's topic, all in one
//! script (one round trip, pipelined with the rest of the bus traffic). Every node with a
//! subscriber, the publishing one included, delivers what comes on the topic, so every subscriber
//! sees a channel's events in offset order, whichever nodes published them.
//!
//! Keys, per channel, in the channel topic's slot (`T` is the topic, in braces on a Redis Cluster so
//! that the keys and the sharded topic share a shard):
//! - `T:position`: hash, `epoch` and `last` (the offset of the last event);
//! - `T:history`: list of `offset ms frame`, oldest first.
//!
//! Both expire `history_ttl_seconds` after the last publish: a channel nobody published to for
//! that long starts a new epoch, as on a single node. So does a channel whose keys Redis lost
//! (a restart without persistence, a flush): the script makes a new epoch whenever it finds no
//! position, so an old position is known to be unusable.

use super::error::ClusterError;
use super::link::{Link, as_count, as_string};
use redis::Value;
use redis::cluster_routing::Slot;

/// Gives the next event of a channel its position, keeps it and publishes it.
///
/// KEYS: position hash, history list. ARGV: 1 an epoch to start with when the channel has none,
/// 2 the frame without position (a JSON object), 3 events kept, 4 milliseconds kept, 5 topic,
/// 6 `S` (sharded publish), `P` (plain publish), 7 and 8 what the bus message has before and
/// after the positioned frame (as a JSON string).
/// Returns the offset.
pub const PUBLISH: &str = r#"
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'last', 0)
end
local offset = redis.call('HINCRBY', KEYS[1], 'last', 1)
local o = string.format('%d', offset)
local frame = string.sub(ARGV[2], 1, -2) .. ',"sinew_position":{"epoch":"' .. epoch .. '","offset":' .. o .. '}}'
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[4])
local len = redis.call('RPUSH', KEYS[2], o .. ' ' .. string.format('%d', now) .. ' ' .. frame)
local size = tonumber(ARGV[3])
if len > size then
  redis.call('LTRIM', KEYS[2], len - size, -1)
end
while true do
  local head = redis.call('LINDEX', KEYS[2], 0)
  if not head then break end
  local at = tonumber(string.match(head, '^%d+ (%d+) '))
  if at == nil or now - at <= ttl then break end
  redis.call('LPOP', KEYS[2])
end
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
local payload = ARGV[7] .. cjson.encode(frame) .. ARGV[8]
if ARGV[6] == 'S' then
  redis.call('SPUBLISH', ARGV[5], payload)
else
  redis.call('PUBLISH', ARGV[5], payload)
end
return offset
"#;

/// Reads a channel's history after an offset.
///
/// KEYS: position hash, history list. ARGV: 1 the offset to read after, 2 at most this many
/// events, 3 milliseconds kept, 4 `R` for a resume (which needs every event after the offset or
/// none: then no entry is returned when some are gone or there are more than the limit).
/// Returns `{epoch, last, first, entries...}` (`{false}` without a position), where `first` is the
/// first offset kept (`last + 1` when none is) and the entries are `offset ms frame`, expired ones
/// dropped first.
pub const READ: &str = r#"
local pos = redis.call('HMGET', KEYS[1], 'epoch', 'last')
if not pos[1] then return {false} end
local last = tonumber(pos[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
while true do
  local head = redis.call('LINDEX', KEYS[2], 0)
  if not head then break end
  local at = tonumber(string.match(head, '^%d+ (%d+) '))
  if at == nil or now - at <= ttl then break end
  redis.call('LPOP', KEYS[2])
end
local len = redis.call('LLEN', KEYS[2])
local first = last - len + 1
local since = tonumber(ARGV[1])
local from = math.max(since + 1, first) - first
local out = {pos[1], last, first}
if ARGV[4] == 'R' and (since + 1 < first or last - since > tonumber(ARGV[2])) then return out end
if from < len then
  local items = redis.call('LRANGE', KEYS[2], from, from + tonumber(ARGV[2]) - 1)
  for i = 1, #items do out[#out + 1] = items[i] end
end
return out
"#;

/// What [`READ`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    /// The epoch the offsets count in.
    pub epoch: String,
    /// The first offset kept (`last + 1` when none is).
    pub first: u64,
    /// The latest offset.
    pub last: u64,
    /// Offsets and frames as delivered, oldest first.
    pub events: Vec<(u64, String)>,
}

/// Parses a [`READ`] reply: `None` when the channel has no position.
pub(super) fn parse_read(v: &Value) -> Result<Option<Kept>, ClusterError> {
    let bad = || ClusterError::Unavailable("unexpected reply to the history read".into());
    let Value::Array(items) = v else { return Err(bad()) };
    let Some(epoch) = items.first().and_then(as_string) else { return Ok(None) };
    let (Some(last), Some(first)) = (items.get(1), items.get(2)) else { return Err(bad()) };
    let mut events = Vec::with_capacity(items.len().saturating_sub(3));
    for item in &items[3..] {
        let entry = as_string(item).ok_or_else(bad)?;
        let mut parts = entry.splitn(3, ' ');
        let (Some(offset), Some(_at), Some(frame)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad());
        };
        events.push((offset.parse().map_err(|_| bad())?, frame.to_string()));
    }
    Ok(Some(Kept { epoch, first: as_count(first), last: as_count(last), events }))
}

/// The keys of the channel whose topic is `topic`: on a Redis Cluster in the topic's slot (the
/// script publishes there), `{topic}` as hash tag, or the topic as it is when it already holds a
/// tag of its own (a prefix or app id with braces). (A topic with a `}` and no tag of its own
/// has neither: its script calls fail and its events are delivered by the node they were published
/// on, without positions.)
fn history_keys(topic: &str, cluster: bool) -> [String; 2] {
    let tagged = format!("{{{topic}}}");
    let own = Slot::for_key(format!("{topic}:position")) == Slot::for_key(topic);
    let base = if cluster && !own { tagged } else { topic.to_string() };
    [format!("{base}:position"), format!("{base}:history")]
}

impl Link {
    /// The position hash and history list of a channel.
    pub(super) fn history_keys(&self, app: &str, channel: &str) -> [String; 2] {
        history_keys(&self.keys.channel_topic(app, channel), self.is_cluster())
    }

    /// Where [`PUBLISH`] publishes a channel's positioned events, and whether sharded: the
    /// channel's topic; with NATS carrying channel traffic, the bus every node listens to (a
    /// script cannot publish to NATS, and only a publish from the script keeps the offsets'
    /// order).
    pub(super) fn history_topic(&self, app: &str, channel: &str) -> (String, bool) {
        match &self.nats {
            Some(_) => (self.keys.bus(), false),
            None => (self.keys.channel_topic(app, channel), self.is_cluster()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn the_keys_share_the_topics_slot() {
        for topic in ["sinew:ch:1:private-a", "pre{x}fix:ch:1:a", "p{:ch:1:a"] {
            let [position, history] = history_keys(topic, true);
            assert_eq!(Slot::for_key(&position), Slot::for_key(topic), "{position}");
            assert_eq!(Slot::for_key(&history), Slot::for_key(topic), "{history}");
        }
        assert_eq!(history_keys("sinew:ch:1:a", true)[0], "{sinew:ch:1:a}:position");
        assert_eq!(history_keys("sinew:ch:1:a", false)[1], "sinew:ch:1:a:history");
    }

    #[test]
    fn a_read_reply_parses_into_offsets_and_frames() {
        let reply = Value::Array(vec![
            bulk("e1"),
            Value::Int(7),
            Value::Int(6),
            bulk("6 1700 {\"a\":\"x y\"}"),
            bulk("7 1701 {}"),
        ]);
        let kept = parse_read(&reply).ok().flatten();
        assert_eq!(
            kept,
            Some(Kept {
                epoch: "e1".into(),
                first: 6,
                last: 7,
                events: vec![(6, "{\"a\":\"x y\"}".into()), (7, "{}".into())]
            })
        );
        assert_eq!(parse_read(&Value::Array(vec![Value::Nil])).ok(), Some(None));
        assert!(parse_read(&Value::Array(vec![bulk("e"), Value::Int(1), Value::Int(1), bulk("nope")])).is_err());
        assert!(parse_read(&Value::Int(1)).is_err());
    }
}
