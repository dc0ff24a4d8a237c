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
/// the touches that write the meta (plain commands do the others, see
/// `encode`). The meta is the session's field in its shard of the
/// all-sessions index (see `meta`).
/// KEYS: session, shard, tombstone (`DESTROY` leaves it for as long as its
/// logout marker lasts).
/// ARGV, named on the script's first line: `mode`, `value`, `cookie` (the
/// cookie's deadline, '' = none), `now`, `idle` (ms, '' = none), `absolute`
/// (ms, '' = none), `linger` (how long after its last access an ended
/// session's meta still refuses a `set`), `sid`, `tail` (the meta after
/// its creation time, `,now,cookie,,owner`), `stamp` (now as a meta holds
/// it, see `meta`) and `expected` (for a merge, the SHA1 of the value it
/// expects; '' for any). The meta's fields are named as it is matched:
/// `created`, `last` (access), `cookie_at`, `marker` and `owner`.
/// Modes: `set` writes unless the session was destroyed (a slow request that
/// ends after a logout must not bring it back, connect-redis #328), deleted
/// before its cookie's deadline, or has ended while its meta lingers (a
/// save after an idle or absolute timeout must not restart the clock);
/// `touch` moves the expiry of an existing session; `rewrite` replaces an
/// existing one. The deadline is the earliest of the cookie's, now + idle
/// and created + absolute; one already past deletes instead. Returns the
/// creation time when written (so later touches can write the meta with
/// plain commands), prefixed with `+` when the session was not there
/// before (first stored: a `sessionCreated` event), 0 when not written,
/// and `{current value, its meta's owner}` when the existing value is not
/// the one expected.
/// The shard has no TTL, so `volatile-*` eviction never takes a meta;
/// `RECLAIM` deletes it once it is no longer needed.
/// Memory: while Redis is full it refuses a script's first write if that
/// write could grow memory, and allows every later one. So a `set` or
/// `rewrite` writes the meta first (all or nothing), and a `touch` moves
/// the expiry first, so that it still goes through on a full Redis.
pub static WRITE: LazyLock<Lua> = LazyLock::new(|| {
    Lua::new(
        r"
local mode, value, cookie, now, idle, absolute, linger, sid, tail, stamp, expected = unpack(ARGV, 1, 11)
now = tonumber(now)
local exists = redis.call('EXISTS', KEYS[1]) == 1
local meta = redis.call('HGET', KEYS[2], sid)
local created, last, cookie_at, marker, owner = string.match(meta or '', '^(%w*),(%w*),(%w*),(%w*),(.*)$')
if mode == 'set' then
  if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
  if not exists and created then
    if marker ~= '' and tonumber(marker, 36) > now then return 0 end
    if cookie_at ~= '' and tonumber(cookie_at, 36) > now then return 0 end
    if last ~= '' and tonumber(last, 36) + linger > now then return 0 end
  end
elseif not exists then return 0 end
if expected ~= '' and exists then
  local current = redis.call('GET', KEYS[1])
  if redis.sha1hex(current) ~= expected then return {current, owner or ''} end
end
local born = exists and created or stamp
local start = tonumber(born, 36) or now
local at = tonumber(cookie)
if idle ~= '' and (not at or now + idle < at) then at = now + idle end
if absolute ~= '' and (not at or start + absolute < at) then at = start + absolute end
if at and at <= now then
  redis.call('DEL', KEYS[1])
  redis.call('HDEL', KEYS[2], sid)
  return 0
end
if mode == 'touch' then
  if at then redis.call('PEXPIREAT', KEYS[1], at) else redis.call('PERSIST', KEYS[1]) end
end
redis.call('HSET', KEYS[2], sid, born .. tail)
if mode ~= 'touch' then
  if at then redis.call('SET', KEYS[1], value, 'PXAT', at)
  else redis.call('SET', KEYS[1], value) end
end
if not exists then return '+' .. born end
return born
",
    )
});

/// Destroys a session, leaving its meta as the logout marker until the
/// given time (its owner kept, for `RECLAIM` to find the owner's index), and
/// a tombstone that lasts as long (a hash, field `end`: with a hash-tagged
/// prefix its key matches `prefix*`, and a hash is neither a session to
/// `reindex()`'s typed SCAN nor a value to connect-redis's MGET): touches write the meta with a plain
/// HSET, and one that lands after the logout turns the marker back into a
/// live meta; `REPAIR` and `RECLAIM` put the marker back from the
/// tombstone. A session that exists is deleted first: that frees memory, so
/// on a full Redis the marker is still written (a logout never grows
/// memory; EXISTS first, since any write, even a DEL of nothing, lets the
/// later ones through). With no session to delete, the marker is still
/// written against a save in flight, unless Redis is full (it then refuses
/// that save too). Its device data (`captureDevice`) goes with it, so it
/// changes none of that, and even on a full Redis (HDEL is always
/// allowed). KEYS: session, shard, devices, tombstone. ARGV: the marker's
/// end (as a meta holds it), sid, the marker's end in ms. Returns `{done}`,
/// or `{done, meta before}` when it ended a live session ('' for a session
/// without a meta): the one script that ends it tells, so exactly one
/// instance reports the logout.
pub static DESTROY: LazyLock<Lua> = LazyLock::new(|| {
    Lua::new(
        r"
local m = redis.call('HGET', KEYS[2], ARGV[2])
local u = string.match(m or '', '^%w*,%w*,%w*,%w*,(.*)$')
local marker = ',,,' .. ARGV[1] .. ',' .. (u or '')
local done, ended = 1, false
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], ARGV[2], marker)
  ended = m or ''
else
  local r = redis.pcall('HSET', KEYS[2], ARGV[2], marker)
  if type(r) == 'table' and r.err then done = 0 end
end
redis.call('HDEL', KEYS[3], ARGV[2])
redis.pcall('HSET', KEYS[4], 'end', ARGV[1])
redis.pcall('PEXPIREAT', KEYS[4], ARGV[3])
if ended then return {done, ended} end
return {done}
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

/// Replaces a value that is still the one read, keeping its expiry:
/// `reencrypt()` rewriting a session under the first key, safe against a
/// save that lands meanwhile (that save wins). KEYS: session. ARGV: the
/// value read, its replacement. Returns 1 when replaced, else 0.
pub static SWAP: LazyLock<Lua> = LazyLock::new(|| {
    Lua::new(
        r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
return 1
",
    )
});

/// What `store::cleanup` does with a meta it found done with: deletes it unless
/// its session lives or it is a logout marker that must stay, and the
/// session's device data with it. Also run for device data whose meta is
/// gone (a write past its deadline deletes the meta in `WRITE`). KEYS:
/// session, shard, devices, tombstone (read with pcall: an older version's
/// is a string). ARGV: now, sid, until when the meta
/// of a session found ended must linger ('' for not at all; as a meta holds
/// it). Returns `{state, owner, meta}`: 1 the session lives, 2 the marker
/// stays (or is put back: a live meta under a tombstone is a touch that
/// landed after the logout, whose end was told then), 3 the session ended
/// and its meta became a marker until then (its device data gone), 0 the
/// meta and device data are gone (owner: whose index to drop the session
/// from). The meta returned, when it is not a marker, is a session's end
/// that this call claimed: the instance whose call changed it reports the
/// expiry, once for the fleet.
pub static RECLAIM: LazyLock<Lua> = LazyLock::new(|| {
    Lua::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 1 then return {1, ''} end
local m = redis.call('HGET', KEYS[2], ARGV[2])
local x, u = string.match(m or '', '^%w*,%w*,%w*,(%w*),(.*)$')
if x and x ~= '' and tonumber(x, 36) > tonumber(ARGV[1]) then return {2, ''} end
redis.call('HDEL', KEYS[3], ARGV[2])
local t = x == '' and redis.pcall('HGET', KEYS[4], 'end')
if type(t) == 'string' then
  redis.call('HSET', KEYS[2], ARGV[2], ',,,' .. t .. ',' .. u)
  return {2, ''}
end
if x == '' and ARGV[3] ~= '' then
  redis.call('HSET', KEYS[2], ARGV[2], ',,,' .. ARGV[3] .. ',' .. u)
  return {3, u, m}
end
if m then redis.call('HDEL', KEYS[2], ARGV[2]) end
return {0, u or '', m or ''}
",
    )
});

/// Puts a logout marker back that a touch turned into a live meta (see
/// `DESTROY`), once the instance that touched saw the session was gone:
/// the same as `RECLAIM` for that case, at once rather than when the
/// cleanup comes by, and nothing else (no end is claimed here). KEYS:
/// session, shard, devices, tombstone. ARGV: sid. Returns 1 when it put
/// the marker back, else 0.
pub static REPAIR: LazyLock<Lua> = LazyLock::new(|| {
    Lua::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local t = redis.pcall('HGET', KEYS[4], 'end')
if type(t) ~= 'string' then return 0 end
local m = redis.call('HGET', KEYS[2], ARGV[1])
local x, u = string.match(m or '', '^%w*,%w*,%w*,(%w*),(.*)$')
if x ~= '' then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ',,,' .. t .. ',' .. u)
redis.call('HDEL', KEYS[3], ARGV[1])
return 1
",
    )
});

/// Records a session's device data (`captureDevice`), only while the
/// session and its meta exist: a write racing a logout must not leave data
/// that nothing would remove (`DESTROY` and `RECLAIM` remove it with the
/// meta). KEYS: session, shard, devices. ARGV: sid, the data as stored.
/// Returns 1 when written, else 0.
pub static DEVICE: LazyLock<Lua> = LazyLock::new(|| {
    Lua::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
return 1
",
    )
});

/// Lua's `redis.sha1hex`: the SHA1 of a value, lowercase hex (what
/// `WRITE` compares against for `merge`).
pub fn sha1hex(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Every script.
pub static ALL: [&LazyLock<Lua>; 7] = [&WRITE, &DESTROY, &INDEX, &RECLAIM, &SWAP, &DEVICE, &REPAIR];

/// SCRIPT LOAD for every script.
pub fn load_pipeline() -> redis::Pipeline {
    let mut load = redis::pipe();
    for script in ALL {
        load.cmd("SCRIPT").arg("LOAD").arg(script.code);
    }
    load
}

/// True when a reply says the server does not know a script.
pub fn is_noscript(reply: &redis::Value) -> bool {
    matches!(reply, redis::Value::ServerError(e) if e.code() == "NOSCRIPT")
}
