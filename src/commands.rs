//! Session operations and how each becomes Redis commands. A batch of
//! operations becomes one pipeline; each operation knows how many replies it
//! owns and how to read them back.

use std::borrow::Cow;
use std::sync::Arc;

use redis::{Pipeline, Value};

use crate::backend::Reply;

use crate::ended::Ended;
use crate::error::{ErrorKind, StoreError, StoreResult};
use crate::events::{self, Event, Events, Reason};
use crate::expiry::{from_expiretime, Expiry, Lifetime, TOMBSTONE_MS};
use crate::keys::{self, Keys};
use crate::meta::{self, Meta};
use crate::recent::Recent;
use crate::scripts;
use crate::seal::Keyring;

/// What every operation of a store shares: its key layout and limits.
#[derive(Debug, Clone)]
pub struct Context {
    pub keys: Keys,
    /// The store's own limits, when they are numbers (an op without its
    /// own `life` takes these).
    pub lifetime: Lifetime,
    /// Limits are per session (functions of the session, computed in JS):
    /// each write carries its own `life`, and no meta tells them back.
    pub session_limits: bool,
    /// Sets report the owner's session count (for `maxSessionsPerUser`),
    /// so they always run the index script.
    pub count_logins: bool,
    /// Destroys wait for a replica's acknowledgement when the master has
    /// replicas (see `replicas`).
    pub wait_for_replicas: bool,
    /// Values are sealed at rest with these keys (see `seal`).
    pub seal: Option<Arc<Keyring>>,
    /// Saves may be merges (`merge: true`): sealed reads note what they
    /// found (see `Recent::learn_sealed`).
    pub merge: bool,
    /// Lifecycle events, told from the replies (see `events`).
    pub events: Events,
    /// The ends told here, counted for the fleet's numbers (see `ended`).
    pub ended: Ended,
}

impl Context {
    /// Whether sessions may end before their cookie: reads then need the
    /// meta for `cookie.expires`, and metas linger after sessions end.
    pub fn limited(&self) -> bool {
        self.session_limits || self.lifetime.has_limits()
    }

    /// The limits of one write: its own, or the store's.
    pub fn life(&self, own: &Option<Lifetime>) -> Lifetime {
        own.unwrap_or(self.lifetime)
    }

    /// A session's text as the backend stores it at `key`.
    pub fn stored<'a>(&self, key: &str, text: &'a str) -> Cow<'a, [u8]> {
        match &self.seal {
            Some(ring) => Cow::Owned(ring.seal(key, text.as_bytes())),
            None => Cow::Borrowed(text.as_bytes()),
        }
    }

    /// The session text in a reply for `key`: `None` for a missing key, an
    /// error naming the key for anything that cannot be session text (or,
    /// sealed, does not open).
    pub fn text(&self, key: &str, reply: Value) -> StoreResult<Option<String>> {
        match (&self.seal, reply) {
            (Some(ring), Value::BulkString(bytes)) => ring.open(key, bytes).map(Some),
            (_, reply) => read_string(key, reply),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Read a session and the cookie deadline its last touch set.
    Get { sid: String },
    /// Write a session; a deadline already past deletes it instead.
    Set {
        sid: String,
        value: String,
        expiry: Expiry,
        owner: Option<String>,
        /// This session's idle/absolute limits (`None`: the store's).
        life: Option<Lifetime>,
    },
    /// Move the expiry of an existing session without rewriting it.
    Touch {
        sid: String,
        expiry: Expiry,
        owner: Option<String>,
        life: Option<Lifetime>,
    },
    /// Rewrite an existing session (never recreates a destroyed one).
    Rewrite {
        sid: String,
        value: String,
        expiry: Expiry,
        owner: Option<String>,
        life: Option<Lifetime>,
    },
    Destroy {
        sid: String,
        /// What the `sessionEnded` event says, if this ends a session.
        reason: Reason,
    },
    /// Save what a request changed since it loaded the session (`base`) on
    /// top of what is stored (see `merge`): the write script as a
    /// compare-and-set, as a rewrite (a destroyed session stays destroyed).
    Merge {
        sid: String,
        base: String,
        value: String,
        expiry: Expiry,
        owner: Option<String>,
        /// The owner of what the request loaded: when it is `owner`, the
        /// request did not change who owns the session, and a merge keeps
        /// the stored owner (another request may have logged in).
        loaded_owner: Option<String>,
        /// After a conflict: the stored value's SHA1 and the merged text.
        against: Option<(String, String)>,
        life: Option<Lifetime>,
    },
    /// Record a session this store did not write (connect-redis's, or an
    /// older version's) in the meta and indexes, leaving it as it is.
    Adopt {
        sid: String,
        /// The key's current expiry.
        expiry: Expiry,
        owner: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Session {
        value: Option<String>,
        /// The cookie deadline the last set/touch asked for.
        expires_at: Option<i64>,
    },
    /// A write went through; `owner_sessions` is the owner's session count
    /// when this session is new to that owner (a login), else 0.
    Written {
        owner_sessions: u32,
    },
    /// A merge found another value than the one it expected: this one
    /// (as stored) and its meta's owner ('' for none). The writer merges
    /// again (see `merge::remerge`).
    Changed {
        current: Vec<u8>,
        owner: String,
    },
    Done,
    Failed(StoreError),
}

impl Op {
    pub fn sid(&self) -> &str {
        match self {
            Op::Get { sid }
            | Op::Set { sid, .. }
            | Op::Touch { sid, .. }
            | Op::Rewrite { sid, .. }
            | Op::Destroy { sid, .. }
            | Op::Merge { sid, .. }
            | Op::Adopt { sid, .. } => sid,
        }
    }

    /// Appends this operation's commands; returns how many replies they
    /// produce. `seen` is what this process already wrote to the indexes.
    pub fn append_to(
        &self,
        pipe: &mut Pipeline,
        ctx: &Context,
        now_ms: i64,
        seen: &mut Recent,
    ) -> usize {
        let key = ctx.keys.session(self.sid());
        match self {
            Op::Get { .. } => {
                pipe.cmd("GET").arg(&key);
                // `cookie.expires` as of the last touch: with idle/absolute
                // limits the key's expiry is not the cookie's, the meta has
                // it (and its logout marker); without, the key's is.
                if ctx.limited() {
                    pipe.cmd("HGET")
                        .arg(ctx.keys.shard(self.sid()))
                        .arg(self.sid());
                } else {
                    pipe.cmd("PEXPIRETIME").arg(&key);
                }
                2
            }
            Op::Set { expiry, owner, .. }
            | Op::Touch { expiry, owner, .. }
            | Op::Rewrite { expiry, owner, .. }
            | Op::Merge { expiry, owner, .. }
            | Op::Adopt { expiry, owner, .. }
                if expiry.is_past(now_ms) =>
            {
                seen.forget(self.sid());
                delete(pipe, &ctx.keys, self.sid())
                    + unindex(pipe, ctx, self.sid(), owner.as_deref())
            }
            Op::Set {
                sid,
                value,
                expiry,
                owner,
                life,
            } => {
                let life = ctx.life(life);
                script_write(
                    pipe,
                    (ctx, life, now_ms),
                    (sid, &key),
                    ("set", value, *expiry, owner),
                    "",
                );
                seen.meta_written(sid, owner.as_deref(), now_ms);
                let target = (sid.as_str(), life.bound(*expiry, now_ms), owner.as_deref());
                1 + index(pipe, ctx, now_ms, seen, target, ctx.count_logins)
            }
            Op::Touch {
                sid,
                expiry,
                owner,
                life,
            }
            | Op::Rewrite {
                sid,
                expiry,
                owner,
                life,
                ..
            } => {
                let life = ctx.life(life);
                let value = match self {
                    Op::Rewrite { value, .. } => Some(value.as_str()),
                    _ => None,
                };
                let target = (sid.as_str(), life.bound(*expiry, now_ms), owner.as_deref());
                // Once the creation time is known (the meta is one value,
                // and the absolute deadline counts from it), the small touch
                // script or plain commands, at a fraction of the write
                // script's cost. Without limits and an owner the meta only
                // feeds `stats().active`, so it is rewritten at most every
                // `META_EVERY_MS` (see `recent`); an owner's sessions keep
                // their exact last access (which device goes at
                // `maxSessionsPerUser`), and limits need it.
                let cookie = expiry.at();
                let deadline = seen
                    .created(sid)
                    .zip(cookie)
                    .map(|(created, at)| (created, life.deadline(at, created, now_ms)))
                    .filter(|&(_, at)| at > now_ms);
                let bare = !life.has_limits() && owner.is_none() && cookie.is_some();
                let written = match deadline {
                    _ if bare && seen.meta_fresh(sid, None, now_ms) => {
                        plain_write(pipe, ctx, &key, (value, *expiry))
                    }
                    Some((created, at)) => {
                        let tail = meta::tail(now_ms, cookie, owner.as_deref());
                        let meta = format!("{}{tail}", meta::time(created));
                        touch_with_meta(pipe, ctx, (sid, &key), (value, at), &meta);
                        seen.meta_written(sid, owner.as_deref(), now_ms);
                        1
                    }
                    // Not known yet, or a deadline already past (the write
                    // script deletes).
                    None => {
                        let mode = if value.is_some() { "rewrite" } else { "touch" };
                        let args = (mode, value.unwrap_or(""), *expiry, owner);
                        script_write(pipe, (ctx, life, now_ms), (sid, &key), args, "");
                        seen.meta_written(sid, owner.as_deref(), now_ms);
                        1
                    }
                };
                written + index(pipe, ctx, now_ms, seen, target, false)
            }
            Op::Destroy { sid, .. } => {
                seen.forget(sid);
                destroy(pipe, ctx, now_ms, sid, &key)
            }
            Op::Merge {
                sid,
                base,
                value,
                expiry,
                owner,
                against,
                life,
                ..
            } => {
                let life = ctx.life(life);
                // First the value as saved, expecting the one loaded; after
                // a conflict, the merge with what was found.
                let (expected, text) = match against {
                    Some((digest, merged)) => (digest.clone(), merged.as_str()),
                    None => {
                        let loaded = scripts::sha1hex(base.as_bytes());
                        // Sealed, the stored bytes are not the text: expect
                        // what a read here found (else the first try
                        // conflicts and brings them back).
                        let stored = seen.stored_digest(sid, &loaded).map(str::to_owned);
                        (stored.unwrap_or(loaded), value.as_str())
                    }
                };
                let args = ("rewrite", text, *expiry, owner);
                script_write(pipe, (ctx, life, now_ms), (sid, &key), args, &expected);
                seen.meta_written(sid, owner.as_deref(), now_ms);
                let target = (sid.as_str(), life.bound(*expiry, now_ms), owner.as_deref());
                1 + index(pipe, ctx, now_ms, seen, target, false)
            }
            Op::Adopt { sid, expiry, owner } => {
                let target = (
                    sid.as_str(),
                    ctx.lifetime.bound(*expiry, now_ms),
                    owner.as_deref(),
                );
                adopt_meta(pipe, ctx, now_ms, sid, (*expiry, owner.as_deref()))
                    + index(pipe, ctx, now_ms, seen, target, true)
            }
        }
    }

    /// Reads back the replies that `append_to` asked for, taking the
    /// session text out of them rather than copying it.
    pub fn read(&self, ctx: &Context, now_ms: i64, replies: &mut [Value]) -> Outcome {
        let key = || ctx.keys.session(self.sid());
        match self {
            Op::Get { .. } => match ctx.text(&key(), take(&mut replies[0])) {
                Ok(None) => Outcome::Session {
                    value: None,
                    expires_at: None,
                },
                Ok(value) => {
                    let (meta, key_deadline) = match (ctx.limited(), &replies[1]) {
                        (true, reply) => (Meta::read(reply), None),
                        (false, Value::Int(at)) => (None, from_expiretime(*at)),
                        // Redis < 7 has no PEXPIRETIME: only what a touch
                        // did to cookie.expires is lost.
                        (false, _) => (None, None),
                    };
                    // Under a logout marker the session ended: a value there
                    // was put back behind the store's back (a replayed
                    // copy), and is not served.
                    if meta
                        .as_ref()
                        .is_some_and(|m| m.marker.is_some_and(|end| end > now_ms))
                    {
                        return Outcome::Session {
                            value: None,
                            expires_at: None,
                        };
                    }
                    Outcome::Session {
                        expires_at: Meta::cookie_expiry(meta.as_ref(), key_deadline),
                        value,
                    }
                }
                Err(e) => Outcome::Failed(e),
            },
            // The first reply is the session's own write (but for an
            // adoption); the others are bookkeeping, which a full Redis may
            // refuse: the write still counts, and `read_all` has the
            // bookkeeping redone by the next write.
            _ if replies.iter().enumerate().any(|(i, r)| {
                is_error(r) && (i == 0 && !matches!(self, Op::Adopt { .. }) || !is_oom(r))
            }) =>
            {
                Outcome::Failed(
                    replies
                        .iter()
                        .enumerate()
                        .find_map(|(i, r)| match r {
                            Value::ServerError(e) if i == 0 || !is_oom(r) => {
                                Some(reply_error(&key(), e))
                            }
                            _ => None,
                        })
                        .unwrap_or_else(|| StoreError::new(ErrorKind::Reply, "error reply")),
                )
            }
            // A set's second reply, with an owner, is the index script's
            // count.
            Op::Set { expiry, owner, .. } => Outcome::Written {
                owner_sessions: match replies.get(1) {
                    Some(Value::Int(n)) if owner.is_some() && !expiry.is_past(now_ms) => {
                        (*n).clamp(0, u32::MAX as i64) as u32
                    }
                    _ => 0,
                },
            },
            Op::Merge { .. } => match take(&mut replies[0]) {
                Value::Array(found) => match <[Value; 2]>::try_from(found) {
                    Ok([Value::BulkString(current), Value::BulkString(owner)]) => {
                        Outcome::Changed {
                            current,
                            owner: String::from_utf8_lossy(&owner).into_owned(),
                        }
                    }
                    other => Outcome::Failed(StoreError::new(
                        ErrorKind::Corrupt,
                        format!(
                            "value of {} is not a string ({} replies)",
                            keys::named(&key()),
                            other.map_or_else(|v| v.len(), |_| 2)
                        ),
                    )),
                },
                _ => Outcome::Written { owner_sessions: 0 },
            },
            Op::Touch { .. } | Op::Rewrite { .. } => Outcome::Written { owner_sessions: 0 },
            Op::Destroy { .. } | Op::Adopt { .. } => Outcome::Done,
        }
    }
}

fn optional(ms: Option<i64>) -> String {
    ms.map_or_else(String::new, |ms| ms.to_string())
}

/// The write script, in the session's slot: one reply.
fn script_write(
    pipe: &mut Pipeline,
    (ctx, life, now_ms): (&Context, Lifetime, i64),
    (sid, key): (&str, &str),
    (mode, value, expiry, owner): (&str, &str, Expiry, &Option<String>),
    expected: &str,
) {
    pipe.cmd("EVALSHA")
        .arg(&scripts::WRITE.hash)
        .arg(3)
        .arg(key)
        .arg(ctx.keys.shard(sid))
        .arg(keys::tombstone(key))
        .arg(mode)
        // A touch writes no value: nothing to seal.
        .arg(&*match mode {
            "touch" => Cow::Borrowed(&[][..]),
            _ => ctx.stored(key, value),
        })
        .arg(optional(expiry.at()))
        .arg(now_ms)
        .arg(optional(life.idle_ms))
        .arg(optional(life.absolute_ms))
        .arg(life.ended_window_ms())
        .arg(sid)
        .arg(meta::tail(now_ms, expiry.at(), owner.as_deref()))
        .arg(meta::time(now_ms))
        .arg(expected);
}

/// A touch (or a rewrite, with `value`) with its meta, by `scripts::TOUCH`.
fn touch_with_meta(
    pipe: &mut Pipeline,
    ctx: &Context,
    (sid, key): (&str, &str),
    (value, deadline): (Option<&str>, i64),
    meta: &str,
) {
    pipe.cmd("EVALSHA")
        .arg(&scripts::TOUCH.hash)
        .arg(2)
        .arg(key)
        .arg(ctx.keys.shard(sid))
        .arg(deadline)
        .arg(sid)
        .arg(meta);
    if let Some(v) = value {
        pipe.arg(&*ctx.stored(key, v));
    }
}

/// A touch (or a rewrite, with `value`) as plain commands, when the meta is
/// not written: the key is never recreated (PEXPIREAT, SET XX). Returns the
/// reply count.
fn plain_write(
    pipe: &mut Pipeline,
    ctx: &Context,
    key: &str,
    (value, expiry): (Option<&str>, Expiry),
) -> usize {
    let at = expiry.at().unwrap_or(i64::MAX);
    match value {
        Some(v) => pipe
            .cmd("SET")
            .arg(key)
            .arg(&*ctx.stored(key, v))
            .arg("XX")
            .arg("PXAT")
            .arg(at),
        None => pipe.cmd("PEXPIREAT").arg(key).arg(at),
    };
    1
}

/// Destroys a session with the `DESTROY` script: its meta becomes the
/// logout marker, which `reclaim` removes when it ends; its device data
/// goes at once. The owner's index is pruned then, or when next read.
/// Returns the reply count.
fn destroy(pipe: &mut Pipeline, ctx: &Context, now_ms: i64, sid: &str, key: &str) -> usize {
    pipe.cmd("EVALSHA")
        .arg(&scripts::DESTROY.hash)
        .arg(3)
        .arg(key)
        .arg(ctx.keys.shard(sid))
        .arg(ctx.keys.devices(sid))
        .arg(meta::time(now_ms.saturating_add(TOMBSTONE_MS as i64)))
        .arg(sid);
    1
}

/// The meta of a session found by `reindex()`: first seen now, so created
/// and last accessed now, as far as this store can tell. A meta this store
/// already wrote stays as it is: a reindex must not make every session
/// look just used, nor take the key's expiry for the cookie's. Returns the
/// reply count.
fn adopt_meta(
    pipe: &mut Pipeline,
    ctx: &Context,
    now_ms: i64,
    sid: &str,
    (expiry, owner): (Expiry, Option<&str>),
) -> usize {
    let meta = format!(
        "{}{}",
        meta::time(now_ms),
        meta::tail(now_ms, expiry.at(), owner)
    );
    pipe.cmd("HSETNX")
        .arg(ctx.keys.shard(sid))
        .arg(sid)
        .arg(meta);
    1
}

/// The index script in the owner's index, unless this process already
/// recorded the session for this owner with a high enough score (`force`:
/// run it anyway, when its reply must count the owner's sessions, or to
/// adopt a session). Sessions without an owner are listed by their meta
/// alone. Returns the reply count.
fn index(
    pipe: &mut Pipeline,
    ctx: &Context,
    now_ms: i64,
    seen: &mut Recent,
    (sid, bound, owner): (&str, Expiry, Option<&str>),
    force: bool,
) -> usize {
    let Some(owner) = owner else {
        return 0;
    };
    if !force && seen.covers(sid, Some(owner), bound) {
        return 0;
    }
    let score = seen.record(sid, Some(owner), (bound, now_ms));
    let score = if score.is_finite() {
        (score as i64).to_string()
    } else {
        "+inf".to_owned()
    };
    pipe.cmd("EVALSHA")
        .arg(&scripts::INDEX.hash)
        .arg(1)
        .arg(ctx.keys.user_index(owner))
        .arg(sid)
        .arg(score)
        .arg(now_ms);
    1
}

/// Deletes a session, its meta and its device data; returns the reply
/// count, the session's DEL first. One key per command: on a cluster, a
/// command over several keys of a slot that is migrating waits (TRYAGAIN)
/// until the slot has moved, one key never does.
pub fn delete(pipe: &mut Pipeline, keys: &Keys, sid: &str) -> usize {
    pipe.cmd("DEL").arg(keys.session(sid));
    pipe.cmd("HDEL").arg(keys.shard(sid)).arg(sid);
    pipe.cmd("HDEL").arg(keys.devices(sid)).arg(sid);
    3
}

/// Removes a session from its owner's index; returns the reply count.
fn unindex(pipe: &mut Pipeline, ctx: &Context, sid: &str, owner: Option<&str>) -> usize {
    match owner {
        Some(owner) => {
            pipe.cmd("ZREM").arg(ctx.keys.user_index(owner)).arg(sid);
            1
        }
        None => 0,
    }
}

fn take(value: &mut Value) -> Value {
    std::mem::replace(value, Value::Nil)
}

fn is_error(value: &Value) -> bool {
    matches!(value, Value::ServerError(_))
}

/// Redis refused a write for memory.
fn is_oom(value: &Value) -> bool {
    matches!(value, Value::ServerError(e) if e.code() == "OOM")
}

pub fn reply_error(key: &str, err: &redis::ServerError) -> StoreError {
    match () {
        // A cluster node reached through `url` redirects every other slot
        // (with the cluster option, only a slot map that never settled does).
        _ if matches!(err.code(), "MOVED" | "ASK") => StoreError::new(
            ErrorKind::Reply,
            format!("redis replied {err} for {}: another Redis Cluster node serves it; use the cluster option for a cluster", keys::named(key)),
        ),
        _ if err.code() == "OOM" => StoreError::new(
            ErrorKind::Full,
            format!("redis is full (used memory is over maxmemory and its maxmemory-policy frees nothing for this write), so it refused to write {}: free memory or raise maxmemory", keys::named(key)),
        ),
        // The data exists but cannot be served now: as much an outage as a
        // refused connection.
        // MISCONF: the server (or the embedded engine's file) cannot persist.
        _ if matches!(
            err.code(),
            "CLUSTERDOWN" | "MASTERDOWN" | "LOADING" | "TRYAGAIN" | "MISCONF"
        ) =>
        {
            StoreError::new(
                ErrorKind::Unavailable,
                format!("redis replied {err} for {}", keys::named(key)),
            )
        }
        _ => StoreError::new(
            ErrorKind::Reply,
            format!("redis replied {err} for {}", keys::named(key)),
        ),
    }
}

/// A command that got no reply (a cluster node down), for the key it was about.
pub fn unanswered(key: &str, err: &StoreError) -> StoreError {
    StoreError::new(err.kind, format!("{} ({})", err.message, keys::named(key)))
}

/// The session text in a reply: `None` for a missing key, an error naming
/// the key for anything that cannot be session text.
pub fn read_string(key: &str, reply: Value) -> StoreResult<Option<String>> {
    match reply {
        Value::Nil => Ok(None),
        Value::BulkString(bytes) => String::from_utf8(bytes).map(Some).map_err(|_| {
            StoreError::new(
                ErrorKind::Corrupt,
                format!("value of {} is not UTF-8 text", keys::named(key)),
            )
        }),
        Value::SimpleString(s) => Ok(Some(s)),
        Value::ServerError(e) => Err(reply_error(key, &e)),
        other => Err(StoreError::new(
            ErrorKind::Corrupt,
            format!(
                "value of {} is not a string ({})",
                keys::named(key),
                kind_of(&other)
            ),
        )),
    }
}

/// What a reply is, without what it holds (which may be session content).
fn kind_of(reply: &Value) -> &'static str {
    match reply {
        Value::Array(_) => "an array",
        Value::Int(_) => "an integer",
        Value::Map(_) => "a map",
        Value::Set(_) => "a set",
        _ => "another type",
    }
}

/// Saving a session this process just read (most saves) needs no logout
/// check: `SET XX` writes only a key that still exists, and a destroy deletes
/// it, so a session that vanished meanwhile stays gone, as the check would
/// decide. Such sets become rewrites. Logins (new ids) and counted logins
/// (`maxSessionsPerUser`, whose set reports the owner's session count) keep
/// the check.
pub fn prefer_rewrites(ops: &mut [Op], ctx: &Context, seen: &Recent) {
    if ctx.count_logins {
        return;
    }
    for op in ops.iter_mut() {
        if matches!(op, Op::Set { sid, .. } if seen.read_recently(sid)) {
            let placeholder = Op::Destroy {
                sid: String::new(),
                reason: Reason::Logout,
            };
            if let Op::Set {
                sid,
                value,
                expiry,
                owner,
                life,
            } = std::mem::replace(op, placeholder)
            {
                *op = Op::Rewrite {
                    sid,
                    value,
                    expiry,
                    owner,
                    life,
                };
            }
        }
    }
}

/// Builds one pipeline for a run of operations, remembering each one's
/// reply count so the replies can be split back.
pub fn build(ops: &[Op], ctx: &Context, now_ms: i64, seen: &mut Recent) -> (Pipeline, Vec<usize>) {
    let mut pipe = redis::pipe();
    let counts = ops
        .iter()
        .map(|op| op.append_to(&mut pipe, ctx, now_ms, seen))
        .collect();
    (pipe, counts)
}

/// Splits a pipeline's replies back into one outcome per operation. An
/// operation whose bookkeeping a full Redis refused is forgotten in `seen`,
/// so the next write of that session redoes it.
pub fn read_all(
    ops: &[Op],
    ctx: &Context,
    (now_ms, seen): (i64, &mut Recent),
    counts: &[usize],
    mut replies: Vec<Reply>,
) -> Vec<Outcome> {
    let mut at = 0;
    let mut told = Vec::new();
    let listening = ctx.events.listening();
    let outcomes = ops
        .iter()
        .zip(counts)
        .map(|(op, &n)| {
            let outcome = match replies.get_mut(at..at + n) {
                Some(mine) => match mine.iter().find_map(|r| r.as_ref().err()) {
                    Some(e) => {
                        seen.forget(op.sid());
                        Outcome::Failed(unanswered(&ctx.keys.session(op.sid()), e))
                    }
                    None => {
                        let mut values: Vec<Value> = mine
                            .iter_mut()
                            .map(|r| r.as_mut().map_or(Value::Nil, take))
                            .collect();
                        if let Some(e) = event(op, now_ms, &values, listening) {
                            ctx.ended.count(&e);
                            told.push(e);
                        }
                        if values.iter().any(is_oom) {
                            seen.forget(op.sid());
                        } else if let Some(at) = created(op, ctx, &values) {
                            seen.learn_created(op.sid(), at);
                        }
                        let stored = match (&values[..], op) {
                            ([Value::BulkString(b), ..], Op::Get { .. })
                                if ctx.merge && ctx.seal.is_some() =>
                            {
                                Some(scripts::sha1hex(b))
                            }
                            _ => None,
                        };
                        let outcome = op.read(ctx, now_ms, &mut values);
                        if let Outcome::Session {
                            value: Some(text), ..
                        } = &outcome
                        {
                            seen.was_read(op.sid());
                            if let Some(stored) = stored {
                                seen.learn_sealed(
                                    op.sid(),
                                    scripts::sha1hex(text.as_bytes()),
                                    stored,
                                );
                            }
                        }
                        outcome
                    }
                },
                None => Outcome::Failed(StoreError::short_reply()),
            };
            at += n;
            outcome
        })
        .collect();
    ctx.events.emit(told);
    outcomes
}

/// The lifecycle event an operation's replies tell: a set that stored a
/// session first (made only for listeners), a destroy that ended a live
/// one (always: the fleet's numbers count it, see `ended`).
fn event(op: &Op, now_ms: i64, values: &[Value], listening: bool) -> Option<Event> {
    match op {
        Op::Set { sid, owner, .. } if listening => {
            events::created(values.first()?, sid, owner.as_deref())
        }
        Op::Destroy { sid, reason } => {
            let meta = events::destroyed(values.first()?)?;
            Some(Event::destroyed(sid, meta, now_ms, *reason))
        }
        _ => None,
    }
}

/// The creation time a batch's replies tell for an operation: the write
/// script's reply, or the meta a read with limits got.
fn created(op: &Op, ctx: &Context, values: &[Value]) -> Option<i64> {
    match op {
        Op::Set { .. } | Op::Touch { .. } | Op::Rewrite { .. } | Op::Merge { .. } => {
            match values.first() {
                Some(Value::BulkString(b)) => {
                    let b = b.strip_prefix(b"+").unwrap_or(b);
                    meta::read_time(std::str::from_utf8(b).ok()?)
                }
                _ => None,
            }
        }
        Op::Get { .. } if ctx.limited() => values
            .get(1)
            .and_then(Meta::read)
            .filter(|m| m.marker.is_none())
            .map(|m| m.created),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        Context {
            keys: Keys::new("sess:"),
            lifetime: Lifetime {
                idle_ms: Some(1_000),
                absolute_ms: None,
            },
            count_logins: true,
            session_limits: false,
            wait_for_replicas: true,
            seal: None,
            merge: false,
            events: Default::default(),
            ended: Default::default(),
        }
    }

    fn ok(values: Vec<Value>) -> Vec<Reply> {
        values.into_iter().map(Ok).collect()
    }

    fn packed(op: &Op, now: i64) -> String {
        let mut pipe = redis::pipe();
        op.append_to(&mut pipe, &ctx(), now, &mut Recent::default());
        String::from_utf8_lossy(&pipe.get_packed_pipeline()).replace("\r\n", " ")
    }

    #[test]
    fn set_runs_the_write_script_in_the_session_slot_then_indexes_by_owner() {
        let op = Op::Set {
            sid: "a".into(),
            value: "{}".into(),
            expiry: Expiry::At(5_000),
            owner: Some("ada".into()),
            life: None,
        };
        let wire = packed(&op, 1_000);
        let shard = ctx().keys.shard("a");
        // The meta goes to the session's field in its shard: after the
        // creation time the script keeps, the access, the cookie and owner.
        let keys = format!(
            "$1 3 $6 sess:a ${} {shard} $13 {{sess:a}}:gone",
            shard.len()
        );
        assert!(wire.contains(&keys), "{wire}");
        assert!(
            wire.contains(
                "$3 set $2 {} $4 5000 $4 1000 $4 1000 $0  $7 3601000 $1 a $12 ,rs,3uw,,ada $2 rs"
            ),
            "{wire}"
        );
        // Recent until the idle deadline (before the cookie's) plus slack,
        // as long as the session's life at most.
        assert!(
            wire.contains("$1 1 $16 {sess:\u{1}user:ada} $1 a $4 3000 $4 1000"),
            "{wire}"
        );
    }

    #[test]
    fn writes_past_their_deadline_become_deletes() {
        for (op, owned) in [
            (
                Op::Set {
                    sid: "k".into(),
                    value: "{}".into(),
                    expiry: Expiry::At(5),
                    owner: None,
                    life: None,
                },
                false,
            ),
            (
                Op::Touch {
                    sid: "k".into(),
                    expiry: Expiry::At(5),
                    owner: Some("u".into()),
                    life: None,
                },
                true,
            ),
        ] {
            let wire = packed(&op, 5);
            assert!(wire.contains("DEL $6 sess:k"), "{wire}");
            let devices = format!(
                "HDEL ${} {} $1 k",
                ctx().keys.devices("k").len(),
                ctx().keys.devices("k")
            );
            assert!(wire.contains(&devices), "{wire}");
            assert_eq!(wire.contains("ZREM"), owned, "{wire}");
            assert!(!wire.contains("EVALSHA"), "{wire}");
        }
    }

    #[test]
    fn replies_are_split_per_operation() {
        let ops = vec![
            Op::Get { sid: "a".into() },
            Op::Destroy {
                sid: "b".into(),
                reason: Reason::Logout,
            },
            Op::Set {
                sid: "c".into(),
                value: "{}".into(),
                expiry: Expiry::At(100),
                owner: Some("u".into()),
                life: None,
            },
        ];
        let ctx = ctx();
        let (_, counts) = build(&ops, &ctx, 0, &mut Recent::default());
        assert_eq!(counts, vec![2, 1, 2]);
        let replies = vec![
            Value::BulkString(b"{\"x\":1}".to_vec()),
            // With limits, the meta: its last touch set the cookie to 36
            // (base 36 "10").
            Value::BulkString(b"1,2,10,,u".to_vec()),
            // The destroy script.
            Value::Int(1),
            // The set: its script, then its owner's index.
            Value::Int(1),
            Value::Int(3),
        ];
        let out = read_all(
            &ops,
            &ctx,
            (0, &mut Recent::default()),
            &counts,
            ok(replies),
        );
        assert_eq!(
            out,
            vec![
                Outcome::Session {
                    value: Some("{\"x\":1}".into()),
                    expires_at: Some(36)
                },
                Outcome::Done,
                Outcome::Written { owner_sessions: 3 },
            ]
        );
    }

    #[test]
    fn with_limits_touches_run_the_script_and_index_once_per_slack() {
        let ctx = ctx();
        let mut seen = Recent::default();
        let touch = |at| Op::Touch {
            sid: "t".into(),
            expiry: Expiry::At(at),
            owner: Some("u".into()),
            life: None,
        };
        let mut pipe = redis::pipe();
        // The write script (the idle deadline needs the meta), then the
        // owner's index.
        assert_eq!(touch(500).append_to(&mut pipe, &ctx, 0, &mut seen), 2);
        let wire = String::from_utf8_lossy(&pipe.get_packed_pipeline()).replace("\r\n", " ");
        assert!(wire.contains(&scripts::WRITE.hash), "{wire}");
        assert!(wire.contains("$5 touch"), "{wire}");
        // Later touches within the slack skip the index.
        assert_eq!(touch(600).append_to(&mut pipe, &ctx, 100, &mut seen), 1);
        let far = 1_000 + crate::expiry::SLACK_MS;
        assert_eq!(
            touch(far).append_to(&mut pipe, &ctx, far - 900, &mut seen),
            2
        );
        // A destroy forgets it.
        Op::Destroy {
            sid: "t".into(),
            reason: Reason::Logout,
        }
        .append_to(&mut pipe, &ctx, 0, &mut seen);
        assert_eq!(
            touch(far).append_to(&mut pipe, &ctx, far - 900, &mut seen),
            2
        );
    }

    #[test]
    fn with_limits_a_known_creation_time_touches_by_the_small_script() {
        let ctx = Context {
            lifetime: Lifetime {
                idle_ms: Some(1_000),
                absolute_ms: Some(5_000),
            },
            ..ctx()
        };
        let mut seen = Recent::default();
        seen.learn_created("t", 100);
        let touch = Op::Touch {
            sid: "t".into(),
            expiry: Expiry::At(500_000),
            owner: None,
            life: None,
        };
        let wire = |now: i64, seen: &mut Recent| {
            let mut pipe = redis::pipe();
            touch.append_to(&mut pipe, &ctx, now, seen);
            String::from_utf8_lossy(&pipe.get_packed_pipeline()).replace("\r\n", " ")
        };
        // Idle ends first (1_200), then absolute (5_100), then the cookie.
        let idle = wire(200, &mut seen);
        assert!(idle.contains(&scripts::TOUCH.hash), "{idle}");
        assert!(idle.contains("$4 1200 $1 t $"), "{idle}");
        // Near the absolute deadline, it is the key's.
        let absolute = wire(4_500, &mut seen);
        assert!(absolute.contains("$4 5100 $1 t $"), "{absolute}");
        // Past it, the write script ends the session.
        let past = wire(5_100, &mut seen);
        assert!(past.contains(&scripts::WRITE.hash), "{past}");
    }

    #[test]
    fn without_limits_touches_rewrite_the_meta_only_now_and_then() {
        let ctx = Context {
            lifetime: Lifetime::default(),
            ..ctx()
        };
        let mut seen = Recent::default();
        let touch = Op::Touch {
            sid: "t".into(),
            expiry: Expiry::At(500_000),
            owner: None,
            life: None,
        };
        let wire = |at: i64, seen: &mut Recent| {
            let mut pipe = redis::pipe();
            touch.append_to(&mut pipe, &ctx, at, seen);
            String::from_utf8_lossy(&pipe.get_packed_pipeline()).replace("\r\n", " ")
        };
        // First seen here: the script writes the meta (a session
        // connect-redis wrote gets one).
        let first = wire(0, &mut seen);
        assert!(first.contains(&scripts::WRITE.hash), "{first}");
        // The next touches move the key's expiry only...
        assert_eq!(wire(1, &mut seen), "*3 $9 PEXPIREAT $6 sess:t $6 500000 ");
        // ...until the meta is due again.
        let due = wire(crate::recent::META_EVERY_MS, &mut seen);
        assert!(due.contains(&scripts::WRITE.hash), "{due}");
        // Reads need no meta either: the key's expiry is the cookie's.
        let mut pipe = redis::pipe();
        assert_eq!(
            Op::Get { sid: "t".into() }.append_to(&mut pipe, &ctx, 0, &mut seen),
            2
        );
        // An owner's session: its meta at every touch, with the small touch
        // script once the write script has told its creation time.
        let owned = Op::Touch {
            sid: "o".into(),
            expiry: Expiry::At(500_000),
            owner: Some("ada".into()),
            life: None,
        };
        let (_, counts) = build(std::slice::from_ref(&owned), &ctx, 0, &mut seen);
        let replies = ok(vec![Value::BulkString(b"25".to_vec()), Value::Int(1)]);
        read_all(
            std::slice::from_ref(&owned),
            &ctx,
            (0, &mut seen),
            &counts,
            replies,
        );
        let mut pipe = redis::pipe();
        assert_eq!(owned.append_to(&mut pipe, &ctx, 5, &mut seen), 1);
        let wire = String::from_utf8_lossy(&pipe.get_packed_pipeline()).replace("\r\n", " ");
        // 25 in base 36 is 77; 500000 is apsw.
        assert!(wire.contains("$6 500000 $1 o $14 25,5,apsw,,ada"), "{wire}");
        assert!(wire.contains(&scripts::TOUCH.hash), "{wire}");
        assert!(!wire.contains(&scripts::WRITE.hash), "{wire}");
    }

    #[test]
    fn adopting_records_meta_and_indexes_without_touching_the_session() {
        let op = Op::Adopt {
            sid: "a".into(),
            expiry: Expiry::At(5_000),
            owner: Some("ada".into()),
        };
        let wire = packed(&op, 1_000);
        let shard = ctx().keys.shard("a");
        assert!(!wire.contains("$6 sess:a "), "{wire}");
        // Only where missing: a meta this store wrote stays as it is.
        let meta = format!("HSETNX ${} {shard} $1 a $14 rs,rs,3uw,,ada", shard.len());
        assert!(wire.contains(&meta), "{wire}");
        assert!(!wire.contains("HSET "), "{wire}");
        assert!(wire.contains(&scripts::INDEX.hash), "{wire}");
    }

    #[test]
    fn cluster_replies_map_to_error_kinds() {
        let reply = |line: &str| match redis::parse_redis_value(line.as_bytes()) {
            Ok(Value::ServerError(e)) => reply_error("k", &e),
            other => panic!("not an error reply: {other:?}"),
        };
        assert_eq!(
            reply("-CLUSTERDOWN The cluster is down\r\n").kind,
            ErrorKind::Unavailable
        );
        assert_eq!(
            reply("-TRYAGAIN Multiple keys request\r\n").kind,
            ErrorKind::Unavailable
        );
        let moved = reply("-MOVED 3999 127.0.0.1:7001\r\n");
        assert_eq!(moved.kind, ErrorKind::Reply);
        assert!(
            moved.message.contains("cluster option"),
            "{}",
            moved.message
        );
        assert_eq!(reply("-WRONGTYPE Operation\r\n").kind, ErrorKind::Reply);
    }

    fn oom() -> Value {
        match redis::parse_redis_value(b"-OOM command not allowed\r\n") {
            Ok(v @ Value::ServerError(_)) => v,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_full_redis_skips_bookkeeping_but_refuses_new_writes() {
        let ctx = ctx();
        let mut seen = Recent::default();
        let touch = Op::Touch {
            sid: "t".into(),
            expiry: Expiry::At(500),
            owner: Some("u".into()),
            life: None,
        };
        let set = Op::Set {
            sid: "s".into(),
            value: "{}".into(),
            expiry: Expiry::At(500),
            owner: None,
            life: None,
        };
        let ops = vec![touch.clone(), set];
        let (_, counts) = build(&ops, &ctx, 0, &mut seen);
        assert_eq!(counts, vec![2, 1]);
        // The touch's script moved the expiry and wrote the meta; the
        // owner's index refused it.
        let mut replies = vec![Value::Int(1), oom()];
        // The set's script was refused as a whole.
        replies.push(oom());
        let out = read_all(&ops, &ctx, (0, &mut seen), &counts, ok(replies));
        assert_eq!(out[0], Outcome::Written { owner_sessions: 0 });
        match &out[1] {
            Outcome::Failed(e) => {
                assert_eq!(e.kind, ErrorKind::Full);
                assert!(
                    e.message.contains("full")
                        && e.message.contains(&keys::handle("sess:s"))
                        && !e.message.contains("sess:s"),
                    "{}",
                    e.message
                );
            }
            other => panic!("{other:?}"),
        }
        // Forgotten, so the next touch writes the index again.
        let mut pipe = redis::pipe();
        assert_eq!(touch.append_to(&mut pipe, &ctx, 1, &mut seen), 2);
    }

    #[test]
    fn a_save_of_a_session_just_read_is_a_rewrite_unless_logins_are_counted() {
        let set = |sid: &str| Op::Set {
            sid: sid.into(),
            value: "{}".into(),
            expiry: Expiry::At(5_000),
            owner: None,
            life: None,
        };
        let mut seen = Recent::default();
        let get = vec![Op::Get { sid: "a".into() }];
        let found = ok(vec![Value::BulkString(b"{}".to_vec()), Value::Int(-1)]);
        let counted = Context {
            lifetime: Lifetime::default(),
            ..ctx()
        };
        let plain = Context {
            count_logins: false,
            session_limits: false,
            ..counted.clone()
        };
        read_all(&get, &plain, (0, &mut seen), &[2], found);
        let mut ops = vec![set("a"), set("b")];
        prefer_rewrites(&mut ops, &plain, &seen);
        assert!(matches!(ops[0], Op::Rewrite { ref sid, .. } if sid == "a"));
        assert!(matches!(ops[1], Op::Set { .. }));
        let mut logins = vec![set("a")];
        prefer_rewrites(&mut logins, &counted, &seen);
        assert!(matches!(logins[0], Op::Set { .. }));
        // A destroy forgets the read.
        seen.forget("a");
        let mut ops = vec![set("a")];
        prefer_rewrites(&mut ops, &plain, &seen);
        assert!(matches!(ops[0], Op::Set { .. }));
    }

    #[test]
    fn binary_values_are_reported_by_handle_never_by_key() {
        let op = Op::Get { sid: "z".into() };
        match op.read(
            &ctx(),
            0,
            &mut [Value::BulkString(vec![0xff, 0xfe]), Value::Nil],
        ) {
            Outcome::Failed(e) => {
                assert_eq!(e.kind, ErrorKind::Corrupt);
                assert!(!e.message.contains("sess:z"), "{}", e.message);
                assert!(e.message.contains(&keys::handle("sess:z")), "{}", e.message);
            }
            other => panic!("expected failure, got {other:?}"),
        }
    }

    #[test]
    fn short_replies_fail_instead_of_panicking() {
        let ops = vec![Op::Get { sid: "a".into() }];
        let out = read_all(
            &ops,
            &ctx(),
            (0, &mut Recent::default()),
            &[3],
            vec![Ok(Value::Nil)],
        );
        assert!(matches!(out[0], Outcome::Failed(_)));
    }
}
