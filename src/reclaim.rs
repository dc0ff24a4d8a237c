//! Cleans up after sessions that ended: their metas (once their logout
//! marker or linger time is over) and their index entries. Metas and
//! indexes have no TTL, so `volatile-*` eviction (the default of most
//! managed Redis services) never takes them before the session they serve;
//! this task ends them instead. It walks the all-sessions index by score, so
//! each round costs in proportion to the sessions that ended, and every step
//! is a check-then-act script, so several processes can run it at once.

use std::sync::Arc;
use std::time::Duration;

use redis::{Pipeline, Value};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::backend::{Conn, Link, SendError};
use crate::commands::Context;
use crate::error::{StoreError, StoreResult};
use crate::expiry::{now_ms, SLACK_MS};
use crate::keys;
use crate::scripts;

/// How often the index is looked at.
const EVERY: Duration = Duration::from_secs(1);

/// Entries per shard and round trip, shards per round trip, and how long a
/// look may go on: as many rounds as fit while they find ended sessions, so
/// cleaning up keeps pace with sessions ending fast.
const PER_ROUND: usize = 256;
const SHARDS_PER_ROUND: usize = 512;
const BUDGET: Duration = Duration::from_millis(250);

/// Shards looked at each second even when nothing ended: with a shard per
/// cluster slot, every shard about every 16 s.
const MIN_SHARDS: usize = 1024;

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

async fn send(conn: &Conn, pipe: &Pipeline) -> StoreResult<Vec<Value>> {
    conn.send(pipe, None, &[])
        .await
        .map_err(SendError::into_store)?
        .into_iter()
        .collect()
}

/// The sids of a ZRANGEBYSCORE or `UNINDEX` reply.
fn sids(reply: Value) -> Vec<String> {
    match reply {
        Value::Array(items) => items
            .into_iter()
            .filter_map(|v| match v {
                Value::BulkString(b) => String::from_utf8(b).ok(),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// One round over some shards: the entries past their score, what became
/// of each session, then each shard updated to match, then the owners'
/// indexes. Returns how many entries were due.
async fn round(link: &Link, ctx: &Context, shards: &[String]) -> StoreResult<usize> {
    let conn = link.current();
    let now = now_ms();
    let mut pipe = redis::pipe();
    for shard in shards {
        pipe.cmd("ZRANGEBYSCORE")
            .arg(shard)
            .arg("-inf")
            .arg(now)
            .arg("LIMIT")
            .arg(0)
            .arg(PER_ROUND);
    }
    let due: Vec<(&String, String)> = shards
        .iter()
        .zip(send(&conn, &pipe).await?)
        .flat_map(|(shard, reply)| sids(reply).into_iter().map(move |sid| (shard, sid)))
        .collect();
    if due.is_empty() {
        return Ok(0);
    }
    let mut pipe = redis::pipe();
    for (_, sid) in &due {
        let key = ctx.keys.session(sid);
        pipe.cmd("EVALSHA")
            .arg(&scripts::RECLAIM.hash)
            .arg(2)
            .arg(&key)
            .arg(keys::meta(&key))
            .arg(now);
    }
    let found = send(&conn, &pipe).await?;
    if found.iter().any(scripts::is_noscript) {
        // A server that lost the scripts: load them, and look again next time.
        conn.load_scripts()
            .await
            .map_err(|e| StoreError::from_redis(&e))?;
        return Ok(0);
    }
    // Per shard: UNINDEX's arguments and the owners of its entries.
    let mut updates: Vec<(&String, Vec<String>, Vec<String>)> = Vec::new();
    for ((shard, sid), reply) in due.iter().zip(found) {
        // An error (a cluster node down) leaves the entry due for next time.
        let Some((state, owner, until)) = reclaimed(reply) else {
            continue;
        };
        let score = match state {
            // Alive (another store moved its expiry): look again after it.
            1 if until < 0 => "+inf".to_owned(),
            1 => until.saturating_add(SLACK_MS).to_string(),
            2 => until.to_string(),
            _ => String::new(),
        };
        if updates.last().is_none_or(|(s, _, _)| s != shard) {
            updates.push((shard, vec![now.to_string()], Vec::new()));
        }
        if let Some((_, args, owners)) = updates.last_mut() {
            args.push(sid.clone());
            args.push(score);
            owners.push(owner);
        }
    }
    let mut pipe = redis::pipe();
    for (shard, args, _) in &updates {
        pipe.cmd("EVALSHA")
            .arg(&scripts::UNINDEX.hash)
            .arg(1)
            .arg(*shard)
            .arg(args);
    }
    let dropped = send(&conn, &pipe).await?;
    let mut pipe = redis::pipe();
    for ((_, args, owners), reply) in updates.iter().zip(dropped) {
        let gone = sids(reply);
        // args: now, then sid and score per entry, in the owners' order.
        for (sid, owner) in args[1..].iter().step_by(2).zip(owners) {
            if !owner.is_empty() && gone.contains(sid) {
                pipe.cmd("ZREM").arg(ctx.keys.user_index(owner)).arg(sid);
            }
        }
    }
    if !pipe.is_empty() {
        send(&conn, &pipe).await?;
    }
    Ok(due.len())
}

/// `RECLAIM`'s `{state, owner, until}`.
fn reclaimed(reply: Value) -> Option<(i64, String, i64)> {
    let Value::Array(parts) = reply else {
        return None;
    };
    let [state, owner, until] = <[Value; 3]>::try_from(parts).ok()?;
    let number = |v: &Value| match v {
        Value::Int(n) => Some(*n),
        _ => None,
    };
    let owner = match owner {
        Value::BulkString(b) => String::from_utf8(b).ok()?,
        _ => String::new(),
    };
    Some((number(&state)?, owner, number(&until)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reclaim_replies_are_read_or_skipped() {
        let reply = |s, o: &str, u| {
            Value::Array(vec![
                Value::Int(s),
                Value::BulkString(o.as_bytes().to_vec()),
                Value::Int(u),
            ])
        };
        assert_eq!(reclaimed(reply(0, "ada", 0)), Some((0, "ada".into(), 0)));
        assert_eq!(reclaimed(reply(1, "", -1)), Some((1, String::new(), -1)));
        assert_eq!(reclaimed(Value::Nil), None);
        assert_eq!(reclaimed(Value::Array(vec![Value::Int(1)])), None);
    }
}
