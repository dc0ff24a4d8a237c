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
/// KEYS: session, meta, tombstone.
/// ARGV: mode, value, cookie deadline ('' = none), now, idle ms ('' = none),
/// absolute ms ('' = none), owner, how long the meta outlives the session.
/// Modes: `set` writes unless the session was destroyed (a slow request that
/// ends after a logout must not bring it back, connect-redis #328) or has
/// ended while its meta lingers (a save after an idle or absolute timeout
/// must not restart the clock); `touch`
/// moves the expiry of an existing session; `rewrite` replaces an existing
/// one. The deadline is the earliest of the cookie's, now + idle and
/// created + absolute; one already past deletes instead. Returns 1 when
/// written, 0 when not.
pub static WRITE: LazyLock<Lua> = LazyLock::new(|| {
    Lua::new(
        r"
local mode, now = ARGV[1], tonumber(ARGV[4])
local exists = redis.call('EXISTS', KEYS[1]) == 1
if mode == 'set' then
  if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
  if not exists and redis.call('HEXISTS', KEYS[2], 'c') == 1 then return 0 end
elseif not exists then return 0 end
local created = exists and tonumber(redis.call('HGET', KEYS[2], 'c')) or now
local at = tonumber(ARGV[3])
if ARGV[5] ~= '' and (not at or now + ARGV[5] < at) then at = now + ARGV[5] end
if ARGV[6] ~= '' and (not at or created + ARGV[6] < at) then at = created + ARGV[6] end
redis.call('DEL', KEYS[2])
if at and at <= now then
  redis.call('DEL', KEYS[1])
  return 0
end
redis.call('HSET', KEYS[2], 'c', created, 'a', now, 'e', ARGV[3], 'u', ARGV[7])
if mode == 'touch' then
  if at then redis.call('PEXPIREAT', KEYS[1], at) else redis.call('PERSIST', KEYS[1]) end
elseif at then redis.call('SET', KEYS[1], ARGV[2], 'PXAT', at)
else redis.call('SET', KEYS[1], ARGV[2]) end
if at then redis.call('PEXPIREAT', KEYS[2], at + ARGV[8]) end
return 1
",
    )
});

/// Records a session in the indexes (one slot for all of them), scored by
/// an upper bound of its expiry that only ever rises (GT), dropping entries
/// already past. KEYS: all-sessions index[, owner's index]. ARGV: sid,
/// bound ('+inf' for none), now. The owner's index expires with its last
/// session. Returns the owner's session count when the session is new to
/// that owner, else 0.
pub static INDEX: LazyLock<Lua> = LazyLock::new(|| {
    Lua::new(
        r"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[1])
if not KEYS[2] then return 0 end
local added = redis.call('ZADD', KEYS[2], 'GT', ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[3])
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')[2]
if not last then return 0 end
if last == 'inf' then redis.call('PERSIST', KEYS[2])
else redis.call('PEXPIREAT', KEYS[2], last) end
if added == 1 then return redis.call('ZCARD', KEYS[2]) end
return 0
",
    )
});

/// SCRIPT LOAD for every script.
pub fn load_pipeline() -> redis::Pipeline {
    let mut load = redis::pipe();
    for script in [&WRITE, &INDEX] {
        load.cmd("SCRIPT").arg("LOAD").arg(script.code);
    }
    load
}

/// True when a reply says the server does not know a script.
pub fn is_noscript(reply: &redis::Value) -> bool {
    matches!(reply, redis::Value::ServerError(e) if e.code() == "NOSCRIPT")
}
