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

/// Entries per round trip, and how long a look may go on: as many rounds
/// as fit, so cleaning up keeps pace with sessions ending fast.
const PER_ROUND: usize = 256;
const BUDGET: Duration = Duration::from_millis(250);

/// Runs until aborted (`Store::close`). Failures (Redis down) only skip a
/// look: nothing here is needed for a call to succeed.
pub fn spawn(link: Arc<Link>, ctx: Arc<Context>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let started = tokio::time::Instant::now();
            while started.elapsed() < BUDGET {
                let timeout = link.options.command_timeout;
                match tokio::time::timeout(timeout, round(&link, &ctx)).await {
                    Ok(Ok(n)) if n == PER_ROUND => continue,
                    _ => break,
                }
            }
        }
    })
}

async fn send(conn: &Conn, pipe: &Pipeline) -> StoreResult<Vec<Value>> {
    conn.send(pipe, None, None)
        .await
        .map_err(SendError::into_store)?
        .into_iter()
        .collect()
}

/// One round: the entries past their score, what became of each session,
/// then the index updated to match. Returns how many entries were due.
async fn round(link: &Link, ctx: &Context) -> StoreResult<usize> {
    let conn = link.current();
    conn.tidy().await;
    let now = now_ms();
    let index = ctx.keys.all_index();
    let mut pipe = redis::pipe();
    pipe.cmd("ZRANGEBYSCORE")
        .arg(index)
        .arg("-inf")
        .arg(now)
        .arg("LIMIT")
        .arg(0)
        .arg(PER_ROUND);
    let due: Vec<String> = match send(&conn, &pipe).await?.pop() {
        Some(Value::Array(items)) => items
            .into_iter()
            .filter_map(|v| match v {
                Value::BulkString(b) => String::from_utf8(b).ok(),
                _ => None,
            })
            .collect(),
        _ => return Ok(0),
    };
    if due.is_empty() {
        return Ok(0);
    }
    let mut pipe = redis::pipe();
    for sid in &due {
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
    let mut unindex = redis::cmd("EVALSHA");
    let mut entries = 0;
    let mut owners = Vec::new();
    let mut args = vec![now.to_string()];
    for (sid, reply) in due.iter().zip(found) {
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
        owners.push(match owner.as_str() {
            "" => index.to_owned(),
            o => ctx.keys.user_index(o),
        });
        args.push(sid.clone());
        args.push(score);
        entries += 1;
    }
    if entries > 0 {
        unindex
            .arg(&scripts::UNINDEX.hash)
            .arg(entries + 1)
            .arg(index)
            .arg(owners)
            .arg(args);
        let mut pipe = redis::pipe();
        pipe.add_command(unindex);
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
