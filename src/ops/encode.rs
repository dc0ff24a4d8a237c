//! How each operation becomes Redis commands: `Op::append_to` per kind,
//! through the command writers below, and `build` for a run of them.

use std::borrow::Cow;

use redis::Pipeline;

use super::commands::{command, Commands};
use super::{Context, Op};
use crate::ops::recent::Recent;
use crate::session::events::Reason;
use crate::session::expiry::{Expiry, Lifetime, TOMBSTONE_MS};
use crate::session::keys::{self, Keys};
use crate::session::meta;
use crate::session::scripts;

impl Op {
    /// Appends this operation's commands; returns how many replies they
    /// produce. `seen` is what this process already wrote to the indexes.
    pub fn append_to<C: Commands>(
        &self,
        pipe: &mut C,
        ctx: &Context,
        now_ms: i64,
        seen: &mut Recent,
    ) -> usize {
        let key = ctx.keys.session(self.sid());
        match self {
            Op::Get { .. } => {
                command!(pipe, "GET", key);
                // With idle/absolute limits the meta too: its logout marker
                // refuses a value put back after a logout, and it has
                // `cookie.expires` as of the last touch (the key's expiry
                // is not the cookie's). Without, the key's expiry is the
                // cookie's, read only when asked (`read_expiry`).
                if ctx.limited() {
                    command!(pipe, "HGET", ctx.keys.shard(self.sid()), self.sid());
                    2
                } else if ctx.read_expiry {
                    command!(pipe, "PEXPIRETIME", key);
                    2
                } else {
                    1
                }
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
                // and the absolute deadline counts from it), plain commands,
                // at a fraction of the write script's cost. Without limits
                // and an owner the meta only feeds `stats().active`, so it
                // is rewritten at most every
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
                    // The meta by a plain HSET after the expiry: one that
                    // lands after a logout revives the marker as a live
                    // meta, which the tombstone undoes (see
                    // `scripts::DESTROY`; `decode` asks for `REPAIR` when
                    // the expiry found no session).
                    Some((created, at)) => {
                        let meta = meta::whole(created, now_ms, cookie, owner.as_deref());
                        plain_write(pipe, ctx, &key, (value, Expiry::At(at)));
                        command!(pipe, "HSET", ctx.keys.shard(sid), sid, meta);
                        seen.meta_written(sid, owner.as_deref(), now_ms);
                        2
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
}

/// The write script, in the session's slot: one reply. Its arguments in
/// the order `scripts::WRITE` names them: mode, value, cookie, now, idle,
/// absolute, linger, sid, tail, stamp, expected.
fn script_write<C: Commands>(
    pipe: &mut C,
    (ctx, life, now_ms): (&Context, Lifetime, i64),
    (sid, key): (&str, &str),
    (mode, value, expiry, owner): (&str, &str, Expiry, &Option<String>),
    expected: &str,
) {
    // A touch writes no value: nothing to seal.
    let stored = match mode {
        "touch" => Cow::Borrowed(&[][..]),
        _ => ctx.stored(key, value),
    };
    command!(
        pipe,
        "EVALSHA",
        scripts::WRITE.hash,
        3usize,
        key,
        ctx.keys.shard(sid),
        keys::tombstone(key),
        mode,
        *stored,
        expiry.at(),
        now_ms,
        life.idle_ms,
        life.absolute_ms,
        life.ended_window_ms(),
        sid,
        meta::tail(now_ms, expiry.at(), owner.as_deref()),
        meta::time(now_ms),
        expected,
    );
}

/// A touch (or a rewrite, with `value`) as plain commands: the key is
/// never recreated (PEXPIREAT, SET XX). Returns the reply count.
fn plain_write<C: Commands>(
    pipe: &mut C,
    ctx: &Context,
    key: &str,
    (value, expiry): (Option<&str>, Expiry),
) -> usize {
    let at = expiry.at().unwrap_or(i64::MAX);
    match value {
        Some(v) => command!(pipe, "SET", key, *ctx.stored(key, v), "XX", "PXAT", at),
        None => command!(pipe, "PEXPIREAT", key, at),
    }
    1
}

/// Destroys a session with the `DESTROY` script: its meta becomes the
/// logout marker, which `store::cleanup` removes when it ends; its device data
/// goes at once. The owner's index is pruned then, or when next read.
/// Returns the reply count.
fn destroy<C: Commands>(pipe: &mut C, ctx: &Context, now_ms: i64, sid: &str, key: &str) -> usize {
    let end = now_ms.saturating_add(TOMBSTONE_MS as i64);
    command!(
        pipe,
        "EVALSHA",
        scripts::DESTROY.hash,
        4usize,
        key,
        ctx.keys.shard(sid),
        ctx.keys.devices(sid),
        keys::tombstone(key),
        meta::time(end),
        sid,
        end,
    );
    1
}

/// The meta of a session found by `reindex()`: first seen now, so created
/// and last accessed now, as far as this store can tell. A meta this store
/// already wrote stays as it is: a reindex must not make every session
/// look just used, nor take the key's expiry for the cookie's. Returns the
/// reply count.
fn adopt_meta<C: Commands>(
    pipe: &mut C,
    ctx: &Context,
    now_ms: i64,
    sid: &str,
    (expiry, owner): (Expiry, Option<&str>),
) -> usize {
    let meta = meta::whole(now_ms, now_ms, expiry.at(), owner);
    command!(pipe, "HSETNX", ctx.keys.shard(sid), sid, meta);
    1
}

/// The index script in the owner's index, unless this process already
/// recorded the session for this owner with a high enough score (`force`:
/// run it anyway, when its reply must count the owner's sessions, or to
/// adopt a session). Sessions without an owner are listed by their meta
/// alone. Returns the reply count.
fn index<C: Commands>(
    pipe: &mut C,
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
    command!(
        pipe,
        "EVALSHA",
        scripts::INDEX.hash,
        1usize,
        ctx.keys.user_index(owner),
        sid,
        score,
        now_ms,
    );
    1
}

/// Deletes a session, its meta and its device data; returns the reply
/// count, the session's DEL first. One key per command: on a cluster, a
/// command over several keys of a slot that is migrating waits (TRYAGAIN)
/// until the slot has moved, one key never does.
pub fn delete<C: Commands>(pipe: &mut C, keys: &Keys, sid: &str) -> usize {
    command!(pipe, "DEL", keys.session(sid));
    command!(pipe, "HDEL", keys.shard(sid), sid);
    command!(pipe, "HDEL", keys.devices(sid), sid);
    3
}

/// Removes a session from its owner's index; returns the reply count.
fn unindex<C: Commands>(pipe: &mut C, ctx: &Context, sid: &str, owner: Option<&str>) -> usize {
    match owner {
        Some(owner) => {
            command!(pipe, "ZREM", ctx.keys.user_index(owner), sid);
            1
        }
        None => 0,
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
    let counts = append_all(&mut pipe, ops, ctx, now_ms, seen);
    (pipe, counts)
}

/// Appends the commands of a run of operations; each one's reply count.
pub fn append_all<C: Commands>(
    pipe: &mut C,
    ops: &[Op],
    ctx: &Context,
    now_ms: i64,
    seen: &mut Recent,
) -> Vec<usize> {
    ops.iter()
        .map(|op| op.append_to(pipe, ctx, now_ms, seen))
        .collect()
}
