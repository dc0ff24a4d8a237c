//! The calls over one user's sessions, from the owner's index: list them,
//! destroy them ("log out everywhere"), keep the most recent few
//! (`maxSessionsPerUser`).

use redis::Value;
use tokio::time::Instant;

use super::probe::probe_all;
use super::{per_trip, Found, Read};
use crate::backend::{round_trip, Conn, SendError};
use crate::error::{ErrorKind, StoreError, StoreResult};
use crate::ops::decode::{self, reply_error};
use crate::ops::recent::Recent;
use crate::ops::{encode, Op, Outcome};
use crate::session::events::Reason;
use crate::session::expiry::now_ms;
use crate::store::replicas;
use crate::store::Store;

/// The first `upto` entries of an owner's index (all for `None`), without
/// the entries past their expiry bound (dropped on the way).
async fn members(conn: &Conn, index: &str, upto: Option<usize>) -> StoreResult<Vec<String>> {
    let mut pipe = redis::pipe();
    pipe.cmd("ZREMRANGEBYSCORE")
        .arg(index)
        .arg("-inf")
        .arg(now_ms());
    let stop = upto.map_or(-1, |n| n as i64 - 1);
    pipe.cmd("ZRANGE").arg(index).arg(0).arg(stop);
    match round_trip(conn, &pipe).await?.pop() {
        Some(Value::Array(items)) => Ok(items
            .into_iter()
            .filter_map(|v| match v {
                Value::BulkString(b) => String::from_utf8(b).ok(),
                _ => None,
            })
            .collect()),
        Some(Value::ServerError(e)) => Err(reply_error(index, &e)),
        other => Err(StoreError::new(
            ErrorKind::Reply,
            format!("unexpected ZRANGE reply for \"{index}\": {other:?}"),
        )),
    }
}

async fn forget(conn: &Conn, index: &str, sids: &[String], chunk: usize) -> StoreResult<()> {
    for part in sids.chunks(per_trip(chunk)) {
        let mut pipe = redis::pipe();
        pipe.cmd("ZREM").arg(index).arg(part);
        round_trip(conn, &pipe).await?;
    }
    Ok(())
}

/// A user's live sessions, most recently used first.
pub async fn list_user(store: &Store, owner: &str, chunk: usize) -> StoreResult<Vec<Found>> {
    list_on(store, &store.reader().await?, owner, chunk).await
}

/// `list_user` on `conn`.
async fn list_on(store: &Store, conn: &Conn, owner: &str, chunk: usize) -> StoreResult<Vec<Found>> {
    let index = store.context().keys.user_index(owner);
    let sids = members(conn, &index, None).await?;
    let mut found = owned(store, (conn, &index), owner, sids, chunk).await?;
    // Most recent first; ties by sid, so that every caller orders the same
    // sessions the same way (see `enforce_limit`).
    let last = |f: &Found| f.meta.as_ref().map_or(0, |m| m.last_access);
    found.sort_by(|a, b| last(b).cmp(&last(a)).then_with(|| a.sid.cmp(&b.sid)));
    Ok(found)
}

/// Destroys sessions as `destroy` does (with the logout marker, so a
/// request still running cannot bring them back), directly on the writer's
/// connection: these calls run while the writer holds (`Store::exclusive`),
/// and so read on it too, where nothing else queues meanwhile. Drops them
/// from the owner's index too. Returns how many were destroyed. `reason`
/// is what their `sessionEnded` events say.
async fn destroy_all(
    store: &Store,
    (conn, reason): (&Conn, Reason),
    owner: &str,
    sids: Vec<String>,
    chunk: usize,
) -> StoreResult<u64> {
    let ctx = store.context();
    let deadline = Instant::now() + store.command_timeout();
    let wait = !sids.is_empty() && store.waits_for_replicas(conn).await;
    for part in sids.chunks(per_trip(chunk)) {
        let ops: Vec<Op> = part
            .iter()
            .map(|sid| Op::Destroy {
                sid: sid.clone(),
                reason,
            })
            .collect();
        let now = now_ms();
        let (pipe, counts) = encode::build(&ops, ctx, now, &mut Recent::default());
        let replies = conn
            .send(&pipe, None, &[])
            .await
            .map_err(SendError::into_store)?;
        let failed = decode::read_all(&ops, ctx, (now, &mut Recent::default()), &counts, replies)
            .into_iter()
            .find_map(|o| match o {
                Outcome::Failed(e) => Some(e),
                _ => None,
            });
        if let Some(e) = failed {
            return Err(e);
        }
    }
    let index = ctx.keys.user_index(owner);
    forget(conn, &index, &sids, chunk).await?;
    if wait {
        let mut pipe = redis::pipe();
        let ms = replicas::append(
            &mut pipe,
            deadline.saturating_duration_since(Instant::now()),
        );
        replicas::check(round_trip(conn, &pipe).await?.first(), ms)?;
    }
    Ok(sids.len() as u64)
}

/// The listed sessions of `owner`'s `index` that are still theirs; the
/// entries that outlived theirs (gone, or now someone else's) are dropped
/// from the index.
async fn owned(
    store: &Store,
    (conn, index): (&Conn, &str),
    owner: &str,
    sids: Vec<String>,
    chunk: usize,
) -> StoreResult<Vec<Found>> {
    let listed = sids.into_iter().map(|sid| (sid, None)).collect();
    let probed = probe_all(store, conn, listed, (Read::Full, chunk)).await?;
    let mut stale = Vec::new();
    let mut found = Vec::new();
    for p in probed {
        match p {
            Ok(f) if f.meta.as_ref().is_some_and(|m| m.owner == owner) => found.push(f),
            Ok(f) => stale.push(f.sid),
            Err(sid) => stale.push(sid),
        }
    }
    forget(conn, index, &stale, chunk).await?;
    Ok(found)
}

/// "Log out everywhere (else)": destroys the user's sessions but `except`,
/// in steps of `per_trip(chunk)` sessions, each within the command timeout
/// (the first counted from the call, `called`; the call as a whole is not
/// bounded by it, see `Admin::Steps`): a user
/// with a huge number of sessions is logged out however long that takes.
/// A step that runs out of time fails the call; what earlier steps did
/// stays done. Each step takes the head of the index, which the steps
/// before emptied of all but `except`, so a login that comes meanwhile is
/// destroyed too rather than any session left behind.
pub async fn destroy_user(
    store: &Store,
    owner: &str,
    except: &[String],
    (chunk, called): (usize, Instant),
) -> StoreResult<u64> {
    let timeout = store.command_timeout();
    let late = |_| StoreError::unfinished(timeout);
    // The first step, with the wait behind the call's fence, settles within
    // the command timeout of the call, as every call does.
    let mut deadline = called + timeout;
    let conn = tokio::time::timeout_at(deadline, store.connection())
        .await
        .map_err(late)??;
    let index = store.context().keys.user_index(owner);
    let mut destroyed = 0;
    loop {
        let step = async {
            let listed = members(&conn, &index, Some(except.len() + per_trip(chunk))).await?;
            let todo: Vec<String> = listed.into_iter().filter(|s| !except.contains(s)).collect();
            if todo.is_empty() {
                return Ok(None);
            }
            let found = owned(store, (&conn, &index), owner, todo, chunk).await?;
            let sids = found.into_iter().map(|f| f.sid).collect();
            let reason = Reason::Everywhere;
            destroy_all(store, (&conn, reason), owner, sids, chunk)
                .await
                .map(Some)
        };
        match tokio::time::timeout_at(deadline, step)
            .await
            .map_err(late)?
        {
            Ok(Some(n)) => destroyed += n,
            Ok(None) => return Ok(destroyed),
            Err(e) => return Err(e),
        }
        deadline = Instant::now() + timeout;
    }
}

/// Keeps a user's `max` most recently used sessions and destroys the rest.
/// Concurrent logins each run this; `list_user`'s order depends only on the
/// sessions (last access, then sid), so all of them choose the same
/// survivors among what they see, and the last one to be indexed sees every
/// session.
pub async fn enforce_limit(
    store: &Store,
    owner: &str,
    max: usize,
    chunk: usize,
) -> StoreResult<u64> {
    let conn = store.connection().await?;
    let sessions = list_on(store, &conn, owner, chunk).await?;
    let extra = sessions.into_iter().skip(max).map(|f| f.sid).collect();
    destroy_all(store, (&conn, Reason::Limit), owner, extra, chunk).await
}
