//! Walking the shards of the all-sessions index, and the calls over every
//! session that do (all, ids, length, clear).

use std::collections::HashSet;
use std::future::Future;

use futures_util::future::{self, FutureExt};
use futures_util::stream::{self, Stream, StreamExt};
use redis::Value;

use super::probe::{exists_counts, probe_trip};
use super::{batches, per_trip, Found, Read};
use crate::backend::{round_trip, Conn};
use crate::error::StoreResult;
use crate::ops::decode::reply_error;
use crate::ops::encode;
use crate::session::meta::{self, Meta};
use crate::store::Store;

/// Round trips of each kind a call keeps in flight on the reader: the
/// server works on the next while this thread reads the last.
const TRIPS_IN_FLIGHT: usize = 4;

/// Shards read per round trip: four trips for the 16,384 (one per cluster
/// slot, most of them small or empty; 1,024 per trip took ~15% longer with
/// 10k sessions), and a reply still bounded with a million sessions.
const SHARDS_PER_TRIP: usize = 4096;

/// Every meta in the shards of the all-sessions index, logout markers
/// included.
async fn walk(store: &Store, conn: &Conn) -> StoreResult<Vec<(String, Meta)>> {
    metas(conn, &store.context().keys.shards()).await
}

/// The metas in these shards, `SHARDS_PER_TRIP` shards per round trip.
pub(super) async fn metas(conn: &Conn, shards: &[String]) -> StoreResult<Vec<(String, Meta)>> {
    let mut out = Vec::new();
    for part in shards.chunks(SHARDS_PER_TRIP) {
        out.extend(shard_trip(conn, part).await?);
    }
    Ok(out)
}

/// One round trip of `metas`.
async fn shard_trip(conn: &Conn, shards: &[String]) -> StoreResult<Vec<(String, Meta)>> {
    let mut out = Vec::new();
    for reply in shard_replies(conn, shards, "HGETALL").await? {
        out.extend(meta::entries(reply));
    }
    Ok(out)
}

/// The sessions of these shards, without their metas (half the reply,
/// and nothing to decode), logout markers included: for calls that check
/// each session's key anyway and need nothing of its meta.
async fn sid_trip(conn: &Conn, shards: &[String]) -> StoreResult<Vec<String>> {
    let mut out = Vec::new();
    for reply in shard_replies(conn, shards, "HKEYS").await? {
        if let Value::Array(sids) = reply {
            out.extend(sids.into_iter().filter_map(|v| match v {
                Value::BulkString(b) => String::from_utf8(b).ok(),
                _ => None,
            }));
        }
    }
    Ok(out)
}

/// `command` on each shard, in one round trip.
async fn shard_replies(conn: &Conn, shards: &[String], command: &str) -> StoreResult<Vec<Value>> {
    let mut pipe = redis::pipe();
    for shard in shards {
        pipe.cmd(command).arg(shard);
    }
    let replies = round_trip(conn, &pipe).await?;
    if let Some((shard, Value::ServerError(e))) = shards
        .iter()
        .zip(&replies)
        .find(|(_, r)| matches!(r, Value::ServerError(_)))
    {
        return Err(reply_error(shard, e));
    }
    Ok(replies)
}

/// The sessions the shards list, `per` at a time, each batch run through
/// `check` as each round trip of the walk answers, results in walk order: a
/// call checks the sessions of the first shards while the next ones are
/// read, never holding more than `TRIPS_IN_FLIGHT` round trips of either.
/// With `metas`, each with its meta (logout markers left out); without, the
/// sids alone (a marker's session is found gone when checked).
fn checked<'a, T, Fut>(
    store: &'a Store,
    conn: &'a Conn,
    (per, metas): (usize, bool),
    check: impl Fn(Vec<(String, Option<Meta>)>) -> Fut + Send + 'a,
) -> impl Stream<Item = StoreResult<T>> + Send + 'a
where
    Fut: Future<Output = StoreResult<T>> + Send + 'a,
    T: Send + 'a,
{
    let parts: Vec<Vec<String>> = store
        .context()
        .keys
        .shards()
        .chunks(SHARDS_PER_TRIP)
        .map(<[String]>::to_vec)
        .collect();
    stream::iter(parts)
        .map(move |part| async move {
            if !metas {
                let sids = sid_trip(conn, &part).await?;
                return Ok(sids.into_iter().map(|sid| (sid, None)).collect::<Vec<_>>());
            }
            let metas = shard_trip(conn, &part).await?;
            // A logout marker's session is gone.
            Ok(metas
                .into_iter()
                .filter(|(_, m)| m.marker.is_none())
                .map(|(sid, m)| (sid, Some(m)))
                .collect())
        })
        .buffered(TRIPS_IN_FLIGHT)
        .flat_map(move |listed: StoreResult<Vec<_>>| {
            stream::iter(match listed {
                Ok(listed) => batches(listed, per).into_iter().map(Ok).collect(),
                Err(e) => vec![Err(e)],
            })
        })
        .map(move |batch| match batch {
            Ok(batch) => check(batch).left_future(),
            Err(e) => future::ready(Err(e)).right_future(),
        })
        .buffered(TRIPS_IN_FLIGHT)
}

/// The live sessions the shards list (with their metas if `metas`), handed
/// to `page` a round trip at a time. Metas of sessions that are gone stay:
/// `store::cleanup` removes them once done with. Returns how many pages were
/// handed over.
async fn live(
    store: &Store,
    (how, metas): ((Read, usize), bool),
    mut page: impl FnMut(Vec<Found>),
) -> StoreResult<usize> {
    let conn = store.reader().await?;
    let conn = &conn;
    let trips = checked(store, conn, (per_trip(how.1), metas), |batch| {
        probe_trip(store, conn, batch, how)
    });
    let mut trips = std::pin::pin!(trips);
    let mut pages = 0;
    while let Some(trip) = trips.next().await {
        pages += 1;
        page(trip?.into_iter().filter_map(Result::ok).collect());
    }
    Ok(pages)
}

pub(super) async fn live_all(store: &Store, how: ((Read, usize), bool)) -> StoreResult<Vec<Found>> {
    let mut all = Vec::new();
    live(store, how, |found| all.extend(found)).await?;
    Ok(all)
}

pub async fn ids(store: &Store, chunk: usize) -> StoreResult<Vec<String>> {
    let found = live_all(store, ((Read::Exists, chunk), false)).await?;
    Ok(found.into_iter().map(|f| f.sid).collect())
}

/// How many listed sessions live: one EXISTS per chunk of keys, which
/// counts them (a cluster splits it by slot and adds up the counts).
pub async fn length(store: &Store, chunk: usize) -> StoreResult<usize> {
    let conn = store.reader().await?;
    let conn = &conn;
    let keys = &store.context().keys;
    let trips = checked(store, conn, (per_trip(chunk), false), |batch| async move {
        let batch: Vec<String> = batch.iter().map(|(sid, _)| keys.session(sid)).collect();
        count_trip(conn, &batch, chunk).await
    });
    let mut trips = std::pin::pin!(trips);
    let mut n = 0;
    while let Some(trip) = trips.next().await {
        n += trip?;
    }
    Ok(n)
}

/// One round trip of `length`: how many of these keys exist.
async fn count_trip(conn: &Conn, keys: &[String], chunk: usize) -> StoreResult<usize> {
    Ok(exists_counts(conn, keys, chunk.max(1)).await?.iter().sum())
}

/// Every live session, as stored (one MGET per chunk: `cookie.expires` is
/// the value's own, as connect-redis's `all()` returns it), handed to
/// `page` a round trip at a time so JS parses one page while Redis serves
/// the next. Returns how many pages were handed over.
pub async fn all(store: &Store, chunk: usize, page: impl FnMut(Vec<Found>)) -> StoreResult<usize> {
    live(store, ((Read::Values, chunk), false), page).await
}

/// Deletes every session with a meta, the metas (logout markers too) and
/// the owners' indexes; returns how many live sessions were removed.
pub async fn clear(store: &Store, chunk: usize) -> StoreResult<u64> {
    let conn = store.connection().await?;
    let keys = &store.context().keys;
    let listed = walk(store, &conn).await?;
    let mut owners = HashSet::new();
    let mut removed = 0;
    for part in listed.chunks(per_trip(chunk)) {
        let mut pipe = redis::pipe();
        let mut per = 1;
        for (sid, meta) in part {
            if !meta.owner.is_empty() {
                owners.insert(meta.owner.clone());
            }
            per = encode::delete(&mut pipe, keys, sid);
        }
        // Per session: whether the session was there, then the rest.
        let replies = round_trip(&conn, &pipe).await?;
        removed += replies
            .chunks(per)
            .filter(|mine| matches!(mine.first(), Some(Value::Int(1))))
            .count() as u64;
    }
    let indexes: Vec<String> = owners.iter().map(|o| keys.user_index(o)).collect();
    for part in indexes.chunks(per_trip(chunk)) {
        let mut pipe = redis::pipe();
        for index in part {
            pipe.cmd("DEL").arg(index);
        }
        round_trip(&conn, &pipe).await?;
    }
    Ok(removed)
}
