//! Calls over every session (all, ids, length, clear): SCAN for the prefix,
//! then MGET or UNLINK in chunks. Each round trip is bounded in time.

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::Value;

use crate::commands::read_string;
use crate::error::{ErrorKind, StoreError, StoreResult};
use crate::expiry::from_expiretime;
use crate::store::Store;

async fn bounded<T, F>(store: &Store, fut: F) -> StoreResult<T>
where
    F: std::future::Future<Output = redis::RedisResult<T>>,
{
    match tokio::time::timeout(store.command_timeout(), fut).await {
        Ok(result) => result.map_err(|e| StoreError::from_redis(&e)),
        Err(_) => Err(StoreError::timed_out(store.command_timeout())),
    }
}

/// Every key under the store's prefix.
pub async fn keys(store: &Store, count: u32) -> StoreResult<Vec<String>> {
    let mut conn = store.connection()?;
    let pattern = store.keys().scan_pattern();
    let mut cursor = 0u64;
    let mut found = Vec::new();
    loop {
        let cmd = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(count)
            .to_owned();
        let (next, batch): (u64, Vec<String>) = bounded(store, cmd.query_async(&mut conn)).await?;
        found.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    // SCAN may return a key twice during a rehash.
    found.sort_unstable();
    found.dedup();
    Ok(found)
}

pub async fn ids(store: &Store, count: u32) -> StoreResult<Vec<String>> {
    let keys = keys(store, count).await?;
    Ok(keys
        .iter()
        .filter_map(|k| store.keys().sid(k).map(str::to_owned))
        .collect())
}

/// A live session as `all()` returns it.
pub struct Found {
    pub sid: String,
    pub value: String,
    pub expires_at: Option<i64>,
}

/// Every live session with its key's expiry (as `get` reads it); keys that
/// expire mid-way are skipped.
pub async fn all(store: &Store, count: u32) -> StoreResult<Vec<Found>> {
    let keys = keys(store, count).await?;
    let mut conn: ConnectionManager = store.connection()?;
    let mut sessions = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(count.max(1) as usize) {
        let mut pipe = redis::pipe();
        pipe.cmd("MGET").arg(chunk);
        for key in chunk {
            pipe.cmd("PEXPIRETIME").arg(key);
        }
        let mut replies: Vec<Value> =
            bounded(store, conn.req_packed_commands(&pipe, 0, pipe.len())).await?;
        let expiries = replies.split_off(1.min(replies.len()));
        let values = match replies.pop() {
            Some(Value::Array(values)) => values,
            other => {
                return Err(StoreError::new(
                    ErrorKind::Reply,
                    format!("unexpected MGET reply: {other:?}"),
                ))
            }
        };
        for ((key, value), expiry) in chunk.iter().zip(values).zip(expiries) {
            let Some(value) = read_string(key, value)? else {
                continue; // expired since the SCAN
            };
            let expires_at = match expiry {
                Value::Int(t) => from_expiretime(t),
                _ => None,
            };
            if let Some(sid) = store.keys().sid(key) {
                sessions.push(Found {
                    sid: sid.to_owned(),
                    value,
                    expires_at,
                });
            }
        }
    }
    Ok(sessions)
}

/// Deletes every session; returns how many keys were removed.
pub async fn clear(store: &Store, count: u32) -> StoreResult<u64> {
    let keys = keys(store, count).await?;
    let mut conn = store.connection()?;
    let mut removed = 0;
    for chunk in keys.chunks(count.max(1) as usize) {
        let cmd = redis::cmd("UNLINK").arg(chunk).to_owned();
        removed += bounded::<u64, _>(store, cmd.query_async(&mut conn)).await?;
    }
    Ok(removed)
}
