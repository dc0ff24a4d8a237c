//! Cleans up after sessions that ended: their metas (once their logout
//! marker or linger time is over) and their entries in their owners'
//! indexes. Metas and indexes have no TTL, so `volatile-*` eviction (the
//! default of most managed Redis services) never takes them before the
//! session they serve; this task ends them instead. It walks the shards of
//! the all-sessions index (each holds its sessions' metas), and every step
//! is a check-then-act script, so several processes can run it at once.

use std::sync::Arc;
use std::time::Duration;

use redis::Value;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::backend::{round_trip, Link};
use crate::commands::Context;
use crate::error::{StoreError, StoreResult};
use crate::expiry::{now_ms, TOMBSTONE_MS};
use crate::meta::{self, Meta};
use crate::scripts;

/// How often the index is looked at.
const EVERY: Duration = Duration::from_secs(1);

/// Shards per round trip, and how long a look may go on: as many rounds as
/// fit while they find ended sessions, so cleaning up keeps pace with
/// sessions ending fast.
const SHARDS_PER_ROUND: usize = 256;
const BUDGET: Duration = Duration::from_millis(250);

/// Shards looked at each second even when nothing ended: with a shard per
/// cluster slot, every shard about once a minute (each look reads the
/// whole shard).
const MIN_SHARDS: usize = 256;

/// Runs until aborted (`Store::close`). Failures (Redis down) only skip a
/// look: nothing here is needed for a call to succeed. Each process starts
/// at another shard, so several share the walk.
pub fn spawn(link: Arc<Link>, ctx: Arc<Context>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let shards = ctx.keys.shards();
        let mut next = (now_ms().unsigned_abs() as usize) % shards.len();
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            link.current().tidy().await;
            let started = tokio::time::Instant::now();
            let mut walked = 0;
            while started.elapsed() < BUDGET {
                let part: Vec<String> = shards
                    .iter()
                    .cycle()
                    .skip(next)
                    .take(SHARDS_PER_ROUND.min(shards.len()))
                    .cloned()
                    .collect();
                let timeout = link.options.command_timeout;
                let Ok(Ok(due)) = tokio::time::timeout(timeout, round(&link, &ctx, &part)).await
                else {
                    break;
                };
                next = (next + part.len()) % shards.len();
                walked += part.len();
                if due == 0 && walked >= MIN_SHARDS.min(shards.len()) {
                    break;
                }
            }
        }
    })
}

/// One round over some shards: the metas done with (a logout marker over,
/// or a session ended and its linger over), and device data left without
/// a meta (a write past its deadline deletes the meta alone; looked for
/// only when some device hash of the round exists), whether each
/// session is really gone (`RECLAIM` deletes its meta and device data
/// then), then the owners' indexes. Returns how many were due.
async fn round(link: &Link, ctx: &Context, shards: &[String]) -> StoreResult<usize> {
    let conn = link.current();
    let now = now_ms();
    let devices: Vec<String> = shards.iter().map(|s| ctx.keys.devices_beside(s)).collect();
    let mut pipe = redis::pipe();
    for shard in shards {
        pipe.cmd("HGETALL").arg(shard);
    }
    // Whether any of their device hashes exists: one command per round,
    // as most stores record no devices (a cluster splits it by slot).
    pipe.cmd("EXISTS").arg(&devices);
    let mut replies = round_trip(&conn, &pipe).await?;
    let any_devices = matches!(replies.pop(), Some(Value::Int(n)) if n > 0);
    if replies.len() != shards.len() {
        return Err(StoreError::short_reply());
    }
    let recorded = if any_devices {
        let mut pipe = redis::pipe();
        for hash in &devices {
            pipe.cmd("HKEYS").arg(hash);
        }
        round_trip(&conn, &pipe).await?
    } else {
        Vec::new()
    };
    let mut recorded = recorded.into_iter();
    let mut due = Vec::new();
    for (shard, reply) in shards.iter().zip(replies) {
        let metas = meta::entries(reply);
        for (sid, meta) in &metas {
            if done_at(meta, ctx).is_some_and(|at| at <= now) {
                due.push((shard, sid.clone()));
            }
        }
        for sid in orphans(recorded.next().unwrap_or(Value::Nil), &metas) {
            due.push((shard, sid));
        }
    }
    if due.is_empty() {
        return Ok(0);
    }
    let mut pipe = redis::pipe();
    for (shard, sid) in &due {
        pipe.cmd("EVALSHA")
            .arg(&scripts::RECLAIM.hash)
            .arg(3)
            .arg(ctx.keys.session(sid))
            .arg(*shard)
            .arg(ctx.keys.devices_beside(shard))
            .arg(now)
            .arg(sid);
    }
    let found = round_trip(&conn, &pipe).await?;
    if found.iter().any(scripts::is_noscript) {
        // A server that lost the scripts: load them, and look again next time.
        conn.load_scripts()
            .await
            .map_err(|e| StoreError::from_redis(&e))?;
        return Ok(0);
    }
    let mut pipe = redis::pipe();
    for ((_, sid), reply) in due.iter().zip(found) {
        // An error (a cluster node down) leaves the meta for next time.
        if let Some((0, owner)) = reclaimed(reply) {
            if !owner.is_empty() {
                pipe.cmd("ZREM").arg(ctx.keys.user_index(&owner)).arg(sid);
            }
        }
    }
    if !pipe.is_empty() {
        round_trip(&conn, &pipe).await?;
    }
    Ok(due.len())
}

/// When a meta can go, if its session is gone by then: at the end of its
/// logout marker, or its linger after the session's deadline (with this
/// store's limits; `RECLAIM` checks the session first anyway). With limits
/// per session the meta does not say them: the cookie's deadline is the
/// latest the session could end.
fn done_at(meta: &Meta, ctx: &Context) -> Option<i64> {
    let linger = if ctx.limited() {
        TOMBSTONE_MS as i64
    } else {
        0
    };
    match meta.marker {
        Some(until) => Some(until),
        None if ctx.session_limits => meta.cookie_expiry.map(|at| at.saturating_add(linger)),
        None => meta
            .key_deadline(ctx.lifetime)
            .map(|at| at.saturating_add(linger)),
    }
}

/// The sids of an HKEYS reply of a device hash that have no meta in
/// `metas` (their shard's).
fn orphans(devices: Value, metas: &[(String, Meta)]) -> Vec<String> {
    let Value::Array(sids) = devices else {
        return Vec::new();
    };
    sids.into_iter()
        .filter_map(|v| match v {
            Value::BulkString(b) => String::from_utf8(b).ok(),
            _ => None,
        })
        .filter(|sid| !metas.iter().any(|(s, _)| s == sid))
        .collect()
}

/// `RECLAIM`'s `{state, owner}`.
fn reclaimed(reply: Value) -> Option<(i64, String)> {
    let Value::Array(parts) = reply else {
        return None;
    };
    let [state, owner] = <[Value; 2]>::try_from(parts).ok()?;
    let owner = match owner {
        Value::BulkString(b) => String::from_utf8(b).ok()?,
        _ => String::new(),
    };
    match state {
        Value::Int(n) => Some((n, owner)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expiry::Lifetime;
    use crate::keys::Keys;

    #[test]
    fn reclaim_replies_are_read_or_skipped() {
        let reply = |s, o: &str| {
            Value::Array(vec![
                Value::Int(s),
                Value::BulkString(o.as_bytes().to_vec()),
            ])
        };
        assert_eq!(reclaimed(reply(0, "ada")), Some((0, "ada".into())));
        assert_eq!(reclaimed(reply(1, "")), Some((1, String::new())));
        assert_eq!(reclaimed(Value::Nil), None);
        assert_eq!(reclaimed(Value::Array(vec![Value::Int(1)])), None);
    }

    #[test]
    fn device_data_without_a_meta_is_due() {
        let metas = meta::entries(Value::Array(
            ["a", "0,1e,rs,,ada"]
                .iter()
                .map(|t| Value::BulkString(t.as_bytes().to_vec()))
                .collect(),
        ));
        let devices = Value::Array(vec![
            Value::BulkString(b"a".to_vec()),
            Value::BulkString(b"b".to_vec()),
        ]);
        assert_eq!(orphans(devices, &metas), ["b"]);
        assert!(orphans(Value::Nil, &metas).is_empty());
    }

    #[test]
    fn metas_are_done_after_their_marker_or_their_linger() {
        let ctx = |lifetime, session_limits| Context {
            keys: Keys::new("s:"),
            lifetime,
            count_logins: false,
            session_limits,
            wait_for_replicas: false,
            seal: None,
            merge: false,
        };
        let plain = ctx(Lifetime::default(), false);
        let limited = ctx(
            Lifetime {
                idle_ms: Some(100),
                absolute_ms: None,
            },
            false,
        );
        let per_session = ctx(Lifetime::default(), true);
        let t = meta::time;
        let live = Meta::parse(&format!("0,{},{},,ada", t(50), t(1000))).unwrap();
        assert_eq!(done_at(&live, &plain), Some(1_000));
        assert_eq!(
            done_at(&live, &limited),
            Some(150 + crate::expiry::TOMBSTONE_MS as i64)
        );
        // Per session: the linger after the cookie's deadline, the latest
        // such a session could have ended.
        assert_eq!(
            done_at(&live, &per_session),
            Some(1_000 + crate::expiry::TOMBSTONE_MS as i64)
        );
        assert_eq!(
            done_at(&Meta::parse(",,,25,ada").unwrap(), &limited),
            Some(77)
        );
        assert_eq!(done_at(&Meta::parse("0,1e,,,").unwrap(), &plain), None);
        let reply = Value::Array(
            ["a", "0,1e,rs,,ada", "b", "not a meta", "c", ",,,25,"]
                .iter()
                .map(|t| Value::BulkString(t.as_bytes().to_vec()))
                .collect(),
        );
        let sids: Vec<String> = meta::entries(reply)
            .into_iter()
            .map(|(sid, _)| sid)
            .collect();
        assert_eq!(sids, ["a", "c"]);
    }
}
