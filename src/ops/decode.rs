//! How each operation reads its replies back: `Op::read` per kind,
//! `read_all` for a run of them, and the errors replies become.

use redis::Value;

use super::{Context, Op, Outcome};
use crate::backend::Reply;
use crate::error::{ErrorKind, StoreError, StoreResult};
use crate::ops::recent::Recent;
use crate::session::events::{self, Event};
use crate::session::expiry::from_expiretime;
use crate::session::keys;
use crate::session::meta::{self, Meta};
use crate::session::scripts;

impl Op {
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
                    let (meta, key_deadline) = match (ctx.limited(), replies.get(1)) {
                        (true, Some(reply)) => (Meta::read(reply), None),
                        (false, Some(Value::Int(at))) => (None, from_expiretime(*at)),
                        // Not asked (`read_expiry` off), or a Redis < 7
                        // without PEXPIRETIME: the value's own cookie.expires.
                        _ => (None, None),
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
                        if touched_nothing(op, &values) {
                            ctx.repairs.note(op.sid());
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

/// A touch or rewrite that found no session (its first reply: PEXPIREAT's
/// 0, SET XX's nil, or the write script's 0): a meta written beside it may
/// have undone a logout marker (see `session::repairs`).
fn touched_nothing(op: &Op, values: &[Value]) -> bool {
    matches!(op, Op::Touch { .. } | Op::Rewrite { .. })
        && matches!(values, [Value::Int(0) | Value::Nil, _, ..])
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
fn unanswered(key: &str, err: &StoreError) -> StoreError {
    StoreError::new(err.kind, format!("{} ({})", err.message, keys::named(key)))
}

/// The session text in a reply: `None` for a missing key, an error naming
/// the key for anything that cannot be session text.
pub(super) fn read_string(key: &str, reply: Value) -> StoreResult<Option<String>> {
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
