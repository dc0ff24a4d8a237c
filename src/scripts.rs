//! The Lua scripts, sent by SHA (EVALSHA); `store` loads them on every new
//! connection, and again if a server answers NOSCRIPT. Every argument
//! is an absolute value, so running a script twice leaves the same state
//! (the writer replays a pipeline after a dropped connection).

use std::sync::LazyLock;

/// A script's text and the SHA1 Redis knows it by.
pub struct Lua {
    pub code: &'static str,
    pub hash: String,
}

impl Lua {
    fn new(code: &'static str) -> Lua {
        Lua {
            hash: redis::Script::new(code).get_hash().to_owned(),
            code,
        }
    }
}

/// Writes a session and its meta in the session's slot: every `set`, and
/// touches when an absolute timeout needs the creation time (plain
/// commands do the other touches, see `commands`).
/// KEYS: session, meta, legacy tombstone (what versions before persistent
/// metas wrote on destroy; it lasts an hour).
/// ARGV: mode, value, cookie deadline ('' = none), now, idle ms ('' = none),
/// absolute ms ('' = none), owner, how long the meta outlives the session.
/// Modes: `set` writes unless the session was destroyed (a slow request that
/// ends after a logout must not bring it back, connect-redis #328) or has
/// ended while its meta lingers (a save after an idle or absolute timeout
/// must not restart the clock); `touch` moves the expiry of an existing
/// session; `rewrite` replaces an existing one. The deadline is the
/// earliest of the cookie's, now + idle and created + absolute; one already
/// past deletes instead. Returns 1 when written, 0 when not.
/// Metas have no TTL, so `volatile-*` eviction never takes them: the meta
/// field `x` says until when it must stay after the session ('' = not at
/// all), and `RECLAIM` deletes it then.
/// Memory: while Redis is full it refuses a script's first write if that
/// write could grow memory, and allows every later one. So a `set` or
/// `rewrite` writes the meta first (all or nothing), and a `touch` moves
/// the expiry first, so that it still goes through on a full Redis.
pub static WRITE: LazyLock<Lua> = LazyLock::new(|| {
    Lua::new(
        r"
local mode, now = ARGV[1], tonumber(ARGV[4])
local exists = redis.call('EXISTS', KEYS[1]) == 1
if mode == 'set' then
  if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
  if not exists and redis.call('HEXISTS', KEYS[2], 'c') == 1 then
    local keep = redis.call('HGET', KEYS[2], 'x')
    if not keep or (keep ~= '' and tonumber(keep) > now) then return 0 end
  end
elseif not exists then return 0 end
local created = exists and tonumber(redis.call('HGET', KEYS[2], 'c')) or now
local at = tonumber(ARGV[3])
if ARGV[5] ~= '' and (not at or now + ARGV[5] < at) then at = now + ARGV[5] end
if ARGV[6] ~= '' and (not at or created + ARGV[6] < at) then at = created + ARGV[6] end
if at and at <= now then
  redis.call('DEL', KEYS[1], KEYS[2])
  return 0
end
if mode == 'touch' then
  if at then redis.call('PEXPIREAT', KEYS[1], at) else redis.call('PERSIST', KEYS[1]) end
end
local keep = ''
if at then keep = at + ARGV[8] end
redis.call('HSET', KEYS[2], 'c', created, 'a', now, 'e', ARGV[3], 'u', ARGV[7], 'x', keep)
redis.call('PERSIST', KEYS[2])
if mode ~= 'touch' then
  if at then redis.call('SET', KEYS[1], ARGV[2], 'PXAT', at)
  else redis.call('SET', KEYS[1], ARGV[2]) end
end
return 1
",
    )
});

/// Destroys a session, keeping its meta as the logout marker until
/// now + the marker's lifetime. A session that exists is deleted first:
/// that frees memory, so on a full Redis the marker is still written (a
/// logout never grows memory; EXISTS first, since any write, even a DEL of
/// nothing, lets the later ones through). With no session to delete, the marker is
/// still written against a save in flight, unless Redis is full (it then
/// refuses that save too). KEYS: session, meta. ARGV: now, marker ms.
pub static DESTROY: LazyLock<Lua> = LazyLock::new(|| {
    Lua::new(
        r"
local marker = ARGV[1] + ARGV[2]
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'x', marker)
else
  local r = redis.pcall('HSET', KEYS[2], 'x', marker)
  if type(r) == 'table' and r.err then return 0 end
end
redis.call('HSETNX', KEYS[2], 'c', ARGV[1])
redis.call('PERSIST', KEYS[2])
return 1
",
    )
});

/// Records a session in its owner's index, scored by an upper bound of its
/// expiry that only ever rises (GT); the all-sessions index gets a plain
/// `ZADD GT` in the session's slot (see `keys::Keys::shard`). KEYS: the
/// owner's index. ARGV: sid, bound ('+inf' for none), now. No index has a
/// TTL (`volatile-*` eviction never takes them): the owner's index drops
/// its dead entries here and on every read, the shards through `RECLAIM`.
/// The first write is a ZADD, so a full Redis refuses the whole update.
/// Returns the owner's session count when the session is new to that
/// owner, else 0.
pub static INDEX: LazyLock<Lua> = LazyLock::new(|| {
    Lua::new(
        r"
local added = redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
redis.call('PERSIST', KEYS[1])
if added == 1 then return redis.call('ZCARD', KEYS[1]) end
return 0
",
    )
});

/// What `reclaim` does with one all-sessions index entry past its score,
/// in the session's slot. KEYS: session, meta. ARGV: now. Returns
/// `{state, owner, until}`: 1 the session lives (until: its expiry, -1 for
/// none), 2 the meta must stay until `until` (a logout marker), 0 both are
/// gone now (owner: whose index to drop it from).
pub static RECLAIM: LazyLock<Lua> = LazyLock::new(|| {
    Lua::new(
        r"
local now = tonumber(ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 1 then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl < 0 then return {1, '', -1} end
  return {1, '', now + ttl}
end
local m = redis.call('HMGET', KEYS[2], 'x', 'u')
local keep = tonumber(m[1])
if not keep and not m[1] then
  local ttl = redis.call('PTTL', KEYS[2])
  if ttl > 0 then keep = now + ttl end
end
if keep and keep > now then return {2, '', keep} end
redis.call('DEL', KEYS[2])
return {0, m[2] or '', 0}
",
    )
});

/// Applies what `RECLAIM` found to one shard of the all-sessions index.
/// KEYS: the shard. ARGV: now, then per entry sid and a new score ('' =
/// gone: drop it, unless it was indexed again meanwhile). Returns the sids
/// dropped, for the caller to drop from their owners' indexes (in other
/// slots).
pub static UNINDEX: LazyLock<Lua> = LazyLock::new(|| {
    Lua::new(
        r"
local now, gone = tonumber(ARGV[1]), {}
for i = 2, #ARGV - 1, 2 do
  local sid, score = ARGV[i], ARGV[i + 1]
  if score == '' then
    local s = tonumber(redis.call('ZSCORE', KEYS[1], sid))
    if s and s <= now then
      redis.call('ZREM', KEYS[1], sid)
      gone[#gone + 1] = sid
    end
  else
    redis.call('ZADD', KEYS[1], 'GT', score, sid)
  end
end
return gone
",
    )
});

/// SCRIPT LOAD for every script.
pub fn load_pipeline() -> redis::Pipeline {
    let mut load = redis::pipe();
    for script in [&WRITE, &DESTROY, &INDEX, &RECLAIM, &UNINDEX] {
        load.cmd("SCRIPT").arg("LOAD").arg(script.code);
    }
    load
}

/// True when a reply says the server does not know a script.
pub fn is_noscript(reply: &redis::Value) -> bool {
    matches!(reply, redis::Value::ServerError(e) if e.code() == "NOSCRIPT")
}
