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
use crate::error::{StoreError, StoreResult};
use crate::ops::Context;
use crate::session::events::Event;
use crate::session::expiry::{now_ms, TOMBSTONE_MS};
use crate::session::keys;
use crate::session::meta::{self, Meta};
use crate::session::scripts;

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

/// While someone listens for `sessionEnded`, every shard is looked at
/// within this long, so an expiry is told within it (each look costs an
/// HGETALL per shard: about 4,100 a second over the 16,384 shards of a
/// prefix without a hash tag).
const TELL_WITHIN: usize = 4;

/// An instance that does not listen claims a session's end only this long
/// after it while another instance listens: that one claims it first, so
/// its listeners hear it. With no listener anywhere, ends are claimed at once.
const GRACE_MS: i64 = 10_000;

/// How long the fleet's "someone listens" mark lasts without a refresh
/// (each listening instance refreshes it every `EVERY`).
const LISTENING_MARK_MS: u64 = 5_000;

/// The grace this instance gives before claiming an end (see `GRACE_MS`):
/// a listening instance marks that it listens; the others look for the mark.
/// One command per tick, which also carries the ends this instance counted
/// since the last one (see `ended`) and the repairs it owes (see `repairs`). A failed look keeps the grace (exactly
/// once wins).
async fn grace(link: &Link, ctx: &Context) -> i64 {
    let conn = link.current();
    let key = ctx.keys.listening();
    let mut pipe = redis::pipe();
    ctx.ended.send_with(&mut pipe, &ctx.keys, now_ms());
    ctx.repairs.send_with(&mut pipe, &ctx.keys);
    if ctx.events.listening() {
        // A hash, not a string: with a hash-tagged prefix the key matches
        // `prefix*`, and connect-redis's MGET would read a string as a session.
        pipe.cmd("HSET")
            .arg(&key)
            .arg("on")
            .arg(1)
            .cmd("PEXPIREAT")
            .arg(&key)
            .arg(now_ms() + LISTENING_MARK_MS as i64);
        let _ = round_trip(&conn, &pipe).await;
        return 0;
    }
    pipe.cmd("EXISTS").arg(&key);
    match round_trip(&conn, &pipe).await.as_deref() {
        Ok([.., Value::Int(0)]) => 0,
        _ => GRACE_MS,
    }
}

fn min_shards(ctx: &Context, shards: usize) -> usize {
    if ctx.events.listening() {
        shards.div_ceil(TELL_WITHIN)
    } else {
        MIN_SHARDS.min(shards)
    }
}

/// Runs until aborted (`Store::close`). Failures (Redis down) only skip a
/// look: nothing here is needed for a call to succeed. Each process starts
/// at another shard, so several share the walk.
pub(super) fn spawn(link: Arc<Link>, ctx: Arc<Context>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let shards = ctx.keys.shards();
        let mut next = (now_ms().unsigned_abs() as usize) % shards.len();
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            link.current().tidy().await;
            let grace = grace(&link, &ctx).await;
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
                let Ok(Ok(due)) =
                    tokio::time::timeout(timeout, round(&link, &ctx, &part, grace)).await
                else {
                    break;
                };
                next = (next + part.len()) % shards.len();
                walked += part.len();
                if due == 0 && walked >= min_shards(&ctx, shards.len()) {
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
async fn round(link: &Link, ctx: &Context, shards: &[String], grace: i64) -> StoreResult<usize> {
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
            if due_at(meta, ctx, grace).is_some_and(|at| at <= now) {
                due.push((shard, sid.clone(), linger_until(meta, ctx, now)));
            }
        }
        for sid in orphans(recorded.next().unwrap_or(Value::Nil), &metas) {
            due.push((shard, sid, String::new()));
        }
    }
    if due.is_empty() {
        return Ok(0);
    }
    let mut pipe = redis::pipe();
    for (shard, sid, until) in &due {
        let key = ctx.keys.session(sid);
        pipe.cmd("EVALSHA")
            .arg(&scripts::RECLAIM.hash)
            .arg(4)
            .arg(&key)
            .arg(*shard)
            .arg(ctx.keys.devices_beside(shard))
            .arg(keys::tombstone(&key))
            .arg(now)
            .arg(sid)
            .arg(until);
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
    let mut ended = Vec::new();
    let limits = (!ctx.session_limits).then_some(ctx.lifetime);
    for ((_, sid, _), reply) in due.iter().zip(found) {
        // An error (a cluster node down) leaves the meta for next time.
        let Some((state, owner, claimed)) = reclaimed(reply) else {
            continue;
        };
        if let Some(meta) = claimed.filter(|m| m.marker.is_none()) {
            let end = Event::expired(sid, &meta, limits, now);
            ctx.ended.count(&end);
            ended.push(end);
        }
        if state == 0 && !owner.is_empty() {
            pipe.cmd("ZREM").arg(ctx.keys.user_index(&owner)).arg(sid);
        }
    }
    ctx.events.emit(ended);
    if !pipe.is_empty() {
        round_trip(&conn, &pipe).await?;
    }
    Ok(due.len())
}

/// When a meta is looked at, if its session is gone by then: at the end
/// of its logout marker (it goes), or at the session's end (its end is
/// claimed, see `scripts::RECLAIM`), `grace` later for an instance nobody
/// listens to while another one listens (see `GRACE_MS`). With limits per session the meta
/// does not say them: an instance that listens checks every session at
/// each look; one that does not, once the cookie's deadline and its linger
/// are over, as long as the session could have lasted.
fn due_at(meta: &Meta, ctx: &Context, grace: i64) -> Option<i64> {
    let listening = ctx.events.listening();
    let grace = if listening { 0 } else { grace };
    match meta.marker {
        Some(until) => Some(until),
        None if ctx.session_limits && listening => Some(i64::MIN),
        None if ctx.session_limits => meta
            .cookie_expiry
            .map(|at| at.saturating_add(TOMBSTONE_MS as i64)),
        None => meta
            .key_deadline(ctx.lifetime)
            .map(|at| at.saturating_add(grace)),
    }
}

/// Until when the meta of a session found ended lingers, as a marker (as
/// a meta holds it; '' for not at all): with limits, until its deadline
/// and the linger after it (the latest a late save must still find it
/// ended), at least from now.
fn linger_until(meta: &Meta, ctx: &Context, now: i64) -> String {
    if !ctx.limited() || meta.marker.is_some() {
        return String::new();
    }
    let end = match ctx.session_limits {
        true => meta.cookie_expiry,
        false => meta.key_deadline(ctx.lifetime),
    };
    let at = end.unwrap_or(now).max(now);
    meta::time(at.saturating_add(TOMBSTONE_MS as i64))
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

/// `RECLAIM`'s `{state, owner, meta}`: the meta it took, if any.
fn reclaimed(reply: Value) -> Option<(i64, String, Option<Meta>)> {
    let Value::Array(parts) = reply else {
        return None;
    };
    let mut parts = parts.into_iter();
    let (state, owner) = (parts.next()?, parts.next()?);
    let owner = match owner {
        Value::BulkString(b) => String::from_utf8(b).ok()?,
        _ => String::new(),
    };
    let meta = parts.next().as_ref().and_then(Meta::read);
    match state {
        Value::Int(n) => Some((n, owner, meta)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::expiry::Lifetime;
    use crate::session::keys::Keys;

    #[test]
    fn reclaim_replies_are_read_or_skipped() {
        let reply = |s, o: &str| {
            Value::Array(vec![
                Value::Int(s),
                Value::BulkString(o.as_bytes().to_vec()),
            ])
        };
        assert_eq!(reclaimed(reply(0, "ada")), Some((0, "ada".into(), None)));
        assert_eq!(reclaimed(reply(1, "")), Some((1, String::new(), None)));
        let mut claimed = reply(3, "ada");
        if let Value::Array(parts) = &mut claimed {
            parts.push(Value::BulkString(b"1,2,3,,ada".to_vec()));
        }
        let meta = reclaimed(claimed).and_then(|(_, _, m)| m);
        assert_eq!(meta.map(|m| (m.created, m.last_access)), Some((1, 2)));
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
            read_expiry: false,
            events: Default::default(),
            ended: Default::default(),
            repairs: Default::default(),
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
        let tomb = crate::session::expiry::TOMBSTONE_MS as i64;
        // Another instance listens, this one does not: claimed some
        // seconds after the end; with no listener anywhere, at the end.
        assert_eq!(due_at(&live, &plain, GRACE_MS), Some(1_000 + GRACE_MS));
        assert_eq!(due_at(&live, &limited, GRACE_MS), Some(150 + GRACE_MS));
        assert_eq!(due_at(&live, &plain, 0), Some(1_000));
        assert_eq!(linger_until(&live, &plain, 0), "");
        assert_eq!(linger_until(&live, &limited, 0), t(150 + tomb));
        // Per session: the linger after the cookie's deadline, the latest
        // such a session could have ended.
        assert_eq!(due_at(&live, &per_session, GRACE_MS), Some(1_000 + tomb));
        assert_eq!(linger_until(&live, &per_session, 0), t(1_000 + tomb));
        // Listened to: claimed at the end; per session, looked at each time.
        for c in [&plain, &limited, &per_session] {
            c.events.listen(true);
        }
        assert_eq!(due_at(&live, &plain, GRACE_MS), Some(1_000));
        assert_eq!(due_at(&live, &limited, GRACE_MS), Some(150));
        assert_eq!(due_at(&live, &per_session, GRACE_MS), Some(i64::MIN));
        assert_eq!(
            due_at(&Meta::parse(",,,25,ada").unwrap(), &limited, GRACE_MS),
            Some(77)
        );
        assert_eq!(
            due_at(&Meta::parse("0,1e,,,").unwrap(), &plain, GRACE_MS),
            None
        );
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
