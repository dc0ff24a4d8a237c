//! `reencrypt()`: rewrites every session under the first encryption key,
//! a step (one call from JS, bounded by the command timeout) at a time.
//! Sessions come from the shards of the all-sessions index, never from a
//! SCAN. Each rewrite is a compare-and-set (`scripts::SWAP`) keeping the
//! key's expiry, and the meta and indexes are not touched, so a session's
//! expiry, owner and times stay as they were; a save that lands meanwhile
//! wins (it sealed under the first key itself), and the session is read
//! again.

use redis::Value;

use super::listing;
use super::per_trip;
use crate::backend::{round_trip, Conn};
use crate::error::{ErrorKind, StoreError, StoreResult};
use crate::ops::decode::reply_error;
use crate::session::scripts;
use crate::session::seal::Sealed;
use crate::store::Store;

/// Shards read per round trip while gathering a step's sessions.
const SHARDS_PER_READ: usize = 64;

/// What a step did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Rewritten {
    /// Rewritten under the first key.
    pub reencrypted: u64,
    /// Already under the first key.
    pub current: u64,
    /// Left as they are: they do not open (tampered, or a key id not
    /// configured); `get` fails on them too.
    pub unreadable: u64,
    /// Saved again under another key each time they were read: an
    /// instance still seals with an older first key.
    pub raced: u64,
}

/// Times a session saved meanwhile is read again within a step.
const ATTEMPTS: usize = 4;

/// A rewrite to make: the session, the value read, its replacement.
pub struct Swap {
    sid: String,
    key: String,
    read: Vec<u8>,
    sealed: Vec<u8>,
}

/// Reads the sessions and decides the rewrites (those not under the
/// first key), counting the others in `done`.
pub async fn plan(
    store: &Store,
    conn: &Conn,
    sids: Vec<String>,
    done: &mut Rewritten,
) -> StoreResult<Vec<Swap>> {
    let ctx = store.context();
    let ring = ctx.seal.as_ref().ok_or_else(unencrypted)?;
    let keys: Vec<String> = sids.iter().map(|s| ctx.keys.session(s)).collect();
    let mut read = redis::pipe();
    for key in &keys {
        read.cmd("GET").arg(key);
    }
    let values = round_trip(conn, &read).await?;
    let mut swaps = Vec::new();
    for ((sid, key), value) in sids.into_iter().zip(keys).zip(values) {
        let stored = match value {
            Value::Nil => continue,
            Value::BulkString(b) => b,
            Value::ServerError(e) => return Err(reply_error(&key, &e)),
            _ => {
                done.unreadable += 1;
                continue;
            }
        };
        match ring.sealed(&key, &stored) {
            Ok(Sealed::Current) => done.current += 1,
            Err(_) => done.unreadable += 1,
            Ok(Sealed::Stale(text)) => {
                let sealed = ring.seal(&key, text.as_bytes());
                swaps.push(Swap {
                    sid,
                    key,
                    read: stored,
                    sealed,
                });
            }
        }
    }
    Ok(swaps)
}

/// Makes the rewrites, each only if the session still holds what was
/// read; returns the sessions saved meanwhile, to read again.
pub async fn apply(
    conn: &Conn,
    swaps: Vec<Swap>,
    done: &mut Rewritten,
) -> StoreResult<Vec<String>> {
    if swaps.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for s in &swaps {
        pipe.cmd("EVALSHA")
            .arg(&scripts::SWAP.hash)
            .arg(1)
            .arg(&s.key)
            .arg(&s.read)
            .arg(&s.sealed);
    }
    let mut again = Vec::new();
    for (s, reply) in swaps.into_iter().zip(round_trip(conn, &pipe).await?) {
        match reply {
            Value::Int(1) => done.reencrypted += 1,
            Value::ServerError(e) => return Err(reply_error(&s.key, &e)),
            _ => again.push(s.sid),
        }
    }
    Ok(again)
}

fn unencrypted() -> StoreError {
    StoreError::new(
        ErrorKind::InvalidArgument,
        "reencrypt() needs the encryption option",
    )
}

/// One step from shard `from`: gathers the sessions of the next shards
/// (about a round trip's worth, for a quarter of the command timeout at
/// most), rewrites those not under the first key, and returns where the
/// next step starts (`None`: done).
pub async fn step(
    store: &Store,
    from: usize,
    chunk: usize,
) -> StoreResult<(Option<usize>, Rewritten)> {
    let ctx = store.context();
    if ctx.seal.is_none() {
        return Err(unencrypted());
    }
    let conn = store.connection().await?;
    let count = ctx.keys.shard_count();
    let mut at = from.min(count);
    let mut sids = Vec::new();
    // A store with few sessions would otherwise walk every shard in one
    // step: hundreds of round trips, past the timeout on a slow link.
    let gathering = tokio::time::Instant::now();
    let budget = store.command_timeout() / 4;
    while at < count && sids.len() < per_trip(chunk) && gathering.elapsed() < budget {
        let end = (at + SHARDS_PER_READ).min(count);
        let metas = listing::metas(&conn, &ctx.keys.shards_in(at..end)).await?;
        // A logout marker's session is gone.
        sids.extend(
            metas
                .into_iter()
                .filter(|(_, m)| m.marker.is_none())
                .map(|(s, _)| s),
        );
        at = end;
    }
    let mut done = Rewritten::default();
    // Sessions saved meanwhile are read again: an up-to-date instance
    // sealed them under the first key.
    for attempt in 1..=ATTEMPTS {
        if sids.is_empty() {
            break;
        }
        let swaps = plan(store, &conn, sids, &mut done).await?;
        sids = apply(&conn, swaps, &mut done).await?;
        if attempt == ATTEMPTS {
            done.raced += sids.len() as u64;
        }
    }
    Ok(((at < count).then_some(at), done))
}
