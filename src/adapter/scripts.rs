//! The Lua scripts that change cluster state atomically in Redis.
//!
//! Key layout (prefix `P`):
//! - `P:nodes`: sorted set, node id -> deadline (ms, Redis clock) after which the node counts as dead;
//! - `P:draining`: set of nodes that stopped gracefully and are handing their members over;
//! - `P:node:N:subs`: hash, `app\nchannel` -> subscriptions node N holds;
//! - `P:node:N:members`: hash, `app\nchannel\nuser` -> sockets node N holds for that member;
//! - `P:app:A:subs`: hash, channel -> subscriptions in the cluster;
//! - `P:app:A:members:C`: hash, member key -> sockets in the cluster;
//! - `P:app:A:values:C`: hash, member key -> stored member value (id JSON, newline, info JSON);
//! - `P:app:A:cache:C`: string, the last event of a cache channel, expiring with its TTL;
//! - `P:app:A:members:C:leaving:U`, `P:app:A:subs:vacating:C`: markers of a departure whose webhook
//!   waits for the leave delay (consumed by a quick return);
//! - `P:swept:N`: node N was swept (kept a day);
//! - `P:bus`: the pub/sub channel.

/// Applies one subscribe/unsubscribe (or a reconciliation delta) of this node.
///
/// KEYS: node subs, app subs, node members, channel members, channel values, cache key, nodes.
/// ARGV: 1 node field (`app\nchannel`), 2 channel, 3 channel delta, 4 member key (`''` for none),
/// 5 member value, 6 member delta, 7 max members, 8 want members (`1`), 9 want cache (`1`),
/// 10 bus channel, 11 app id, 12 count events (`1`), 13 node id, 14 leave marker milliseconds (0:
/// none), 15 publish (`1`; `0` when restoring state Redis lost, which nobody saw change), 16 listed
/// token (`''`: none).
/// A node never takes away more than it contributed, so replays after a failure are harmless, and
/// a node missing from `nodes` (swept, or Redis lost it) writes nothing until it registers again.
/// Member events and counts are published to the bus by the script itself, so every node sees
/// them in the order Redis decided them. A last socket leaving (or last subscriber) leaves a marker
/// that a quick return anywhere in the cluster consumes, so the delayed webhook can be dropped.
/// With a listed token it then publishes `listed` for the calling node: a member event published
/// before the member list it returns reaches that node before this message.
/// Returns `{member, before, after, members, cache, removed value, rejoined}` where member is 1
/// (first socket of the user in the cluster), 2 (the same, back within the leave delay), -1 (last
/// one gone), 0, -2 (channel full: nothing changed) or -3 (node not registered: nothing changed),
/// and rejoined is 1 when the channel was occupied again within the leave delay.
pub const SUBSCRIBE: &str = r#"
if not redis.call('ZSCORE', KEYS[7], ARGV[13]) then return {-3, 0, 0, false, false, false, 0} end
local cdelta = tonumber(ARGV[3])
local user = ARGV[4]
local ttl = tonumber(ARGV[14])
local publish = ARGV[15] == '1'
local member = 0
local value = false
if user ~= '' then
  local nf = ARGV[1] .. '\n' .. user
  local udelta = tonumber(ARGV[6])
  local mine = tonumber(redis.call('HGET', KEYS[3], nf) or '0')
  if mine + udelta < 0 then udelta = -mine end
  if udelta ~= 0 then
    local total = tonumber(redis.call('HGET', KEYS[4], user) or '0')
    if udelta > 0 and total <= 0 and redis.call('HLEN', KEYS[4]) >= tonumber(ARGV[7]) then
      return {-2, 0, 0, false, false, false, 0}
    end
    local n = redis.call('HINCRBY', KEYS[4], user, udelta)
    if mine + udelta <= 0 then redis.call('HDEL', KEYS[3], nf) else redis.call('HSET', KEYS[3], nf, mine + udelta) end
    local marker = KEYS[4] .. ':leaving:' .. user
    if total <= 0 and n > 0 then
      redis.call('HSET', KEYS[5], user, ARGV[5])
      member = 1
      if ttl > 0 and redis.call('DEL', marker) == 1 then member = 2 end
    elseif n <= 0 and total > 0 then
      value = redis.call('HGET', KEYS[5], user)
      redis.call('HDEL', KEYS[4], user)
      redis.call('HDEL', KEYS[5], user)
      member = -1
      if ttl > 0 then redis.call('SET', marker, '1', 'PX', ttl) end
    elseif n <= 0 then
      redis.call('HDEL', KEYS[4], user)
      redis.call('HDEL', KEYS[5], user)
    end
  end
end
local mine = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if mine + cdelta < 0 then cdelta = -mine end
local before = tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0')
local after = before
local rejoined = 0
if cdelta ~= 0 then
  after = redis.call('HINCRBY', KEYS[2], ARGV[2], cdelta)
  if after <= 0 then redis.call('HDEL', KEYS[2], ARGV[2]) end
  if mine + cdelta <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) else redis.call('HSET', KEYS[1], ARGV[1], mine + cdelta) end
  local marker = KEYS[2] .. ':vacating:' .. ARGV[2]
  if ttl > 0 and before <= 0 and after > 0 and redis.call('DEL', marker) == 1 then rejoined = 1 end
  if ttl > 0 and before > 0 and after <= 0 then redis.call('SET', marker, '1', 'PX', ttl) end
end
if publish and member > 0 then
  redis.call('PUBLISH', ARGV[10], cjson.encode({t = 'member', node = 0, app = ARGV[11], channel = ARGV[2], user = user, value = ARGV[5], added = true}))
elseif publish and member == -1 then
  redis.call('PUBLISH', ARGV[10], cjson.encode({t = 'member', node = 0, app = ARGV[11], channel = ARGV[2], user = user, value = value or '', added = false}))
end
if publish and ARGV[12] == '1' and after ~= before and after > 0 then
  redis.call('PUBLISH', ARGV[10], cjson.encode({t = 'count', node = 0, app = ARGV[11], channel = ARGV[2], count = after}))
end
if publish and ARGV[16] ~= '' then
  redis.call('PUBLISH', ARGV[10], cjson.encode({t = 'listed', node = 0, to = tonumber(ARGV[13]), token = tonumber(ARGV[16])}))
end
local members = false
if ARGV[8] == '1' then members = redis.call('HGETALL', KEYS[5]) end
local cache = false
if ARGV[9] == '1' then cache = redis.call('GET', KEYS[6]) end
return {member, before, after, members, cache, value, rejoined}
"#;

/// Renews this node's deadline and lists the nodes whose deadline passed (Redis clock).
///
/// KEYS: nodes. ARGV: node id, milliseconds until the new deadline.
/// Returns `{1 if the node was not registered, dead node ids}`.
pub const HEARTBEAT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local added = redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
return {added, dead}
"#;

/// Starts a graceful stop: marks the node as draining and, if another node that is not draining is
/// alive to take over its clients, keeps its state until the handover deadline.
///
/// KEYS: nodes, draining. ARGV: node id, handover milliseconds.
/// Returns nil (handed over), or every draining node (itself included) when no other node remains:
/// the caller then sweeps them at once, since nobody is left to reconnect to.
pub const HANDOVER: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('SADD', KEYS[2], ARGV[1])
local alive = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
for _, n in ipairs(alive) do
  if redis.call('SISMEMBER', KEYS[2], n) == 0 then
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
    return false
  end
end
return redis.call('SMEMBERS', KEYS[2])
"#;

/// Removes a dead node and everything it contributed, once (the first sweeper wins).
///
/// KEYS: nodes, the dead node's subs, the dead node's members, draining. ARGV: dead node id, key prefix, bus
/// channel. Publishes a member event for every member removed.
/// Returns nil when another node swept first, else `{vacated fields, {member field, value, ...},
/// {field of a channel still occupied, its new count, ...}}`.
pub const SWEEP: &str = r#"
local stopped = redis.call('SREM', KEYS[4], ARGV[1]) == 1
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return false end
local p = ARGV[2]
local vacated = {}
local remaining = {}
local subs = redis.call('HGETALL', KEYS[2])
for i = 1, #subs, 2 do
  local f = subs[i]
  local s = string.find(f, '\n', 1, true)
  local app, ch = string.sub(f, 1, s - 1), string.sub(f, s + 1)
  local k = p .. ':app:' .. app .. ':subs'
  local after = redis.call('HINCRBY', k, ch, -tonumber(subs[i + 1]))
  if after <= 0 then
    redis.call('HDEL', k, ch)
    table.insert(vacated, f)
  else
    table.insert(remaining, f)
    table.insert(remaining, after)
  end
end
local removed = {}
local ms = redis.call('HGETALL', KEYS[3])
for i = 1, #ms, 2 do
  local f = ms[i]
  local s1 = string.find(f, '\n', 1, true)
  local s2 = string.find(f, '\n', s1 + 1, true)
  local app, ch, user = string.sub(f, 1, s1 - 1), string.sub(f, s1 + 1, s2 - 1), string.sub(f, s2 + 1)
  local mk = p .. ':app:' .. app .. ':members:' .. ch
  local vk = p .. ':app:' .. app .. ':values:' .. ch
  local n = redis.call('HINCRBY', mk, user, -tonumber(ms[i + 1]))
  if n <= 0 then
    local value = redis.call('HGET', vk, user) or ''
    table.insert(removed, f)
    table.insert(removed, value)
    redis.call('PUBLISH', ARGV[3], cjson.encode({t = 'member', node = 0, app = app, channel = ch, user = user, value = value, added = false}))
    redis.call('HDEL', mk, user)
    redis.call('HDEL', vk, user)
  end
end
redis.call('DEL', KEYS[2], KEYS[3])
-- A tombstone, so the node (if it was only cut off) knows the others saw its members leave.
if not stopped then redis.call('SET', p .. ':swept:' .. ARGV[1], '1', 'EX', 86400) end
return {vacated, removed, remaining}
"#;
