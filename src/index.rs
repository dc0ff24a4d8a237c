//! Calls over many sessions (all, ids, length, clear, a user's sessions,
//! stats). They read the indexes instead of scanning the keyspace, so they
//! cost in proportion to the sessions involved, then check every listed
//! session against its own keys and drop index entries that outlived it (an
//! absolute timeout, a destroy, a race with a write): the indexes never need
//! a cron or keyspace notifications to stay true. Callers run each call
//! behind `Store::fence` and within `bounded`, so it sees the operations
//! issued before it and settles in time. The calls that only read use the
//! store's reader connection (see `backend::reader`), the others the
//! writer's. `scan_page`, for the one-off `reindex()`, is the only SCAN.

use std::collections::HashSet;

use std::future::Future;

use futures_util::future::{self, FutureExt};
use futures_util::stream::{self, Stream, StreamExt};
use redis::Value;
use tokio::time::Instant;

use crate::backend::{round_trip, Conn, SendError};
use crate::devices;
use crate::ended;
use crate::error::{ErrorKind, StoreError, StoreResult};
use crate::events::Reason;
use crate::expiry::{from_expiretime, now_ms};
use crate::meta::{self, Meta};
use crate::ops::decode::{self, reply_error};
use crate::ops::{encode, Op, Outcome};
use crate::store::recent::Recent;
use crate::store::replicas;
use crate::store::Store;

/// A live session as the listing calls return it.
pub struct Found {
    pub sid: String,
    pub value: String,
    pub meta: Option<Meta>,
    /// When Redis drops the key (epoch ms), if it has a TTL.
    pub expires_at: Option<i64>,
    /// `cookie.expires` as of the last touch, as `get` reads it.
    pub cookie_expiry: Option<i64>,
    /// Its device data as recorded (see `devices`), read with `Read::Full`.
    pub device: Option<String>,
    /// Read with `Read::Full`, its value does not open (tampered, or under
    /// a key no longer configured): listed apart, and still destroyed by
    /// the calls over a user's sessions, which need only its id.
    pub unreadable: bool,
}

pub struct Stats {
    pub sessions: u64,
    pub users: u64,
    pub active: u64,
    /// Mean time since creation over the live sessions (ms); 0 for none.
    pub average_age_ms: f64,
    /// The earliest creation time among them (epoch ms).
    pub oldest_created: Option<i64>,
    /// The fleet's ends within the window asked for, if one was.
    pub ended: Option<ended::Summary>,
}

/// What to read of each listed session.
#[derive(Clone, Copy, PartialEq)]
enum Read {
    /// Whether it exists (its meta, if needed, is known already): one
    /// EXISTS per chunk, key by key only where a chunk comes up short.
    Exists,
    /// Value, meta, expiry and device data.
    Full,
    /// The value only: one MGET per chunk.
    Values,
}

/// Runs one whole call within the command timeout, from the moment it is
/// made: however many round trips it takes, it settles in time. A call that
/// `reads` and timed out may have the next one open a new reader connection
/// (see `Reader::timed_out`): a process that only makes these calls (an
/// admin service) would otherwise time out for good on one that died
/// without a reset.
pub async fn bounded<T>(
    store: &Store,
    reads: bool,
    call: impl std::future::Future<Output = StoreResult<T>>,
) -> StoreResult<T> {
    let timeout = store.command_timeout();
    let mark = store.reader_answered();
    let done = tokio::time::timeout(timeout, call)
        .await
        .unwrap_or_else(|_| Err(StoreError::unfinished(timeout)));
    if reads && matches!(&done, Err(e) if e.kind == ErrorKind::Timeout) {
        store.reader_timed_out(mark);
    }
    done
}

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
pub async fn metas(conn: &Conn, shards: &[String]) -> StoreResult<Vec<(String, Meta)>> {
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

/// Chunks sent per round trip: enough to hide the latency, few enough to
/// keep one reply small.
const CHUNKS_PER_TRIP: usize = 16;

/// Sessions handled per round trip.
pub fn per_trip(chunk: usize) -> usize {
    chunk.max(1) * CHUNKS_PER_TRIP
}

/// A listed session as read back: `Err(sid)` when it is gone.
type Probed = Result<Found, String>;

/// Reads the listed sessions (with their metas, when known): `chunk` per
/// MGET, or per run of commands, `CHUNKS_PER_TRIP` chunks per round trip,
/// handing each round trip's results to `on_trip` as they come.
async fn probe(
    store: &Store,
    conn: &Conn,
    listed: Vec<(String, Option<Meta>)>,
    (read, chunk): (Read, usize),
    mut on_trip: impl FnMut(Vec<Probed>),
) -> StoreResult<()> {
    for batch in batches(listed, per_trip(chunk)) {
        on_trip(probe_trip(store, conn, batch, (read, chunk)).await?);
    }
    Ok(())
}

/// `items`, `per` at a time.
fn batches<T>(items: Vec<T>, per: usize) -> Vec<Vec<T>> {
    let mut items = items.into_iter().peekable();
    let mut out = Vec::new();
    while items.peek().is_some() {
        out.push(items.by_ref().take(per).collect());
    }
    out
}

/// One round trip of `probe` (two for `Read::Exists` when some are gone).
async fn probe_trip(
    store: &Store,
    conn: &Conn,
    batch: Vec<(String, Option<Meta>)>,
    (read, chunk): (Read, usize),
) -> StoreResult<Vec<Probed>> {
    if read == Read::Exists {
        return exists_trip(store, conn, batch, chunk).await;
    }
    let keys = &store.context().keys;
    let mut pipe = redis::pipe();
    if read == Read::Values {
        for part in batch.chunks(chunk.max(1)) {
            pipe.cmd("MGET").arg(
                part.iter()
                    .map(|(s, _)| keys.session(s))
                    .collect::<Vec<_>>(),
            );
        }
    } else {
        for (sid, _) in &batch {
            let key = keys.session(sid);
            pipe.cmd("GET").arg(&key);
            pipe.cmd("HGET").arg(keys.shard(sid)).arg(sid);
            pipe.cmd("PEXPIRETIME").arg(&key);
            devices::append_read(&mut pipe, store.context(), sid);
        }
    }
    let replies = round_trip(conn, &pipe).await?;
    let replies = if read == Read::Values {
        flatten_mgets(replies)?
    } else {
        replies
    };
    let per = if read == Read::Full { 4 } else { 1 };
    if replies.len() != batch.len() * per {
        return Err(StoreError::short_reply());
    }
    let mut replies = replies.into_iter();
    let mut out = Vec::with_capacity(batch.len());
    for (sid, meta) in batch {
        let mine: Vec<Value> = replies.by_ref().take(per).collect();
        out.push(decode(store, read, (sid, meta), mine)?);
    }
    Ok(out)
}

/// `probe_trip` for `Read::Exists`. A listed session is rarely gone (only
/// between its end and the reclaim of its meta), so one EXISTS per chunk
/// counts its keys, and only the keys of a chunk that comes up short are
/// asked again one by one.
async fn exists_trip(
    store: &Store,
    conn: &Conn,
    batch: Vec<(String, Option<Meta>)>,
    chunk: usize,
) -> StoreResult<Vec<Probed>> {
    let keys = &store.context().keys;
    let sessions: Vec<String> = batch.iter().map(|(sid, _)| keys.session(sid)).collect();
    let chunk = chunk.max(1);
    let counts = exists_counts(conn, &sessions, chunk).await?;
    // The positions of the keys in the chunks that came up short.
    let mut asked = Vec::new();
    for (i, (group, n)) in sessions.chunks(chunk).zip(counts).enumerate() {
        if n < group.len() {
            asked.extend(i * chunk..i * chunk + group.len());
        }
    }
    let mut live = vec![true; sessions.len()];
    if !asked.is_empty() {
        let mut pipe = redis::pipe();
        for &k in &asked {
            pipe.cmd("EXISTS").arg(&sessions[k]);
        }
        let replies = round_trip(conn, &pipe).await?;
        if replies.len() != asked.len() {
            return Err(StoreError::short_reply());
        }
        for (&k, reply) in asked.iter().zip(replies) {
            live[k] = exists_count(reply)? == 1;
        }
    }
    Ok(batch
        .into_iter()
        .zip(live)
        .map(|((sid, meta), live)| match live {
            true => Ok(Found {
                sid,
                value: String::new(),
                meta,
                expires_at: None,
                cookie_expiry: None,
                device: None,
                unreadable: false,
            }),
            false => Err(sid),
        })
        .collect())
}

/// The values of a round trip of MGETs, in order.
fn flatten_mgets(replies: Vec<Value>) -> StoreResult<Vec<Value>> {
    let mut values = Vec::new();
    for reply in replies {
        match reply {
            Value::Array(part) => values.extend(part),
            Value::ServerError(e) => return Err(reply_error("MGET", &e)),
            other => {
                return Err(StoreError::new(
                    ErrorKind::Reply,
                    format!("unexpected MGET reply: {other:?}"),
                ))
            }
        }
    }
    Ok(values)
}

/// One listed session from its replies (see `probe` for which).
fn decode(
    store: &Store,
    read: Read,
    (sid, known): (String, Option<Meta>),
    mine: Vec<Value>,
) -> StoreResult<Probed> {
    // An error (a cluster node that did not answer) says nothing about the
    // session: fail the call rather than drop a live session from the index.
    if let Some(Value::ServerError(e)) = mine.iter().find(|v| matches!(v, Value::ServerError(_))) {
        return Err(reply_error(&store.context().keys.session(&sid), e));
    }
    let mut mine = mine.into_iter();
    let first = mine.next().unwrap_or(Value::Nil);
    let (value, unreadable) = match store
        .context()
        .text(&store.context().keys.session(&sid), first)
    {
        Ok(Some(value)) => (value, false),
        Ok(None) => return Ok(Err(sid)),
        // One value that does not open must not block "log out everywhere".
        Err(e)
            if read == Read::Full
                && matches!(e.kind, ErrorKind::Corrupt | ErrorKind::UnknownKey) =>
        {
            (String::new(), true)
        }
        Err(e) => return Err(e),
    };
    let listed = mine.next();
    let meta = known.or_else(|| listed.as_ref().and_then(Meta::read));
    let expires_at = match mine.next() {
        Some(Value::Int(at)) => from_expiretime(at),
        _ => None,
    };
    let cookie_expiry = match read {
        Read::Full => Meta::cookie_expiry(meta.as_ref(), expires_at),
        _ => None,
    };
    let device = mine
        .next()
        .and_then(|reply| devices::open(store.context(), &sid, reply));
    Ok(Ok(Found {
        sid,
        value,
        meta,
        expires_at,
        cookie_expiry,
        device,
        unreadable,
    }))
}

async fn probe_all(
    store: &Store,
    conn: &Conn,
    listed: Vec<(String, Option<Meta>)>,
    how: (Read, usize),
) -> StoreResult<Vec<Probed>> {
    let mut all = Vec::with_capacity(listed.len());
    probe(store, conn, listed, how, |trip| all.extend(trip)).await?;
    Ok(all)
}

async fn forget(conn: &Conn, index: &str, sids: &[String], chunk: usize) -> StoreResult<()> {
    for part in sids.chunks(per_trip(chunk)) {
        let mut pipe = redis::pipe();
        pipe.cmd("ZREM").arg(index).arg(part);
        round_trip(conn, &pipe).await?;
    }
    Ok(())
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

async fn live_all(store: &Store, how: ((Read, usize), bool)) -> StoreResult<Vec<Found>> {
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

/// How many keys of each `chunk` of `keys` exist, one EXISTS each, in one
/// round trip.
async fn exists_counts(conn: &Conn, keys: &[String], chunk: usize) -> StoreResult<Vec<usize>> {
    let mut pipe = redis::pipe();
    for group in keys.chunks(chunk) {
        pipe.cmd("EXISTS").arg(group);
    }
    round_trip(conn, &pipe)
        .await?
        .into_iter()
        .map(exists_count)
        .collect()
}

/// An EXISTS reply: how many of its keys exist.
fn exists_count(reply: Value) -> StoreResult<usize> {
    match reply {
        Value::Int(n) => Ok(n.max(0) as usize),
        Value::ServerError(e) => Err(reply_error("EXISTS", &e)),
        other => Err(StoreError::new(
            ErrorKind::Reply,
            format!("unexpected EXISTS reply: {other:?}"),
        )),
    }
}

/// Every live session, as stored (one MGET per chunk: `cookie.expires` is
/// the value's own, as connect-redis's `all()` returns it), handed to
/// `page` a round trip at a time so JS parses one page while Redis serves
/// the next. Returns how many pages were handed over.
pub async fn all(store: &Store, chunk: usize, page: impl FnMut(Vec<Found>)) -> StoreResult<usize> {
    live(store, ((Read::Values, chunk), false), page).await
}

/// Counts over the live sessions and, with `ended_within_ms`, the
/// fleet's ends within it (one more round trip, only then).
pub async fn stats(
    store: &Store,
    (active_within_ms, ended_within_ms): (i64, Option<i64>),
    chunk: usize,
) -> StoreResult<Stats> {
    let found = live_all(store, ((Read::Exists, chunk), true)).await?;
    let ended = match ended_within_ms {
        Some(within) => {
            let ctx = store.context();
            let conn = store.reader().await?;
            Some(ended::read(&conn, (&ctx.keys, &ctx.ended), within).await?)
        }
        None => None,
    };
    let now = now_ms();
    let since = now - active_within_ms;
    let mut owners = HashSet::new();
    let mut active = 0;
    // Ages, from the metas the walk read anyway: no round trip of its own.
    let (mut aged, mut total_age, mut oldest) = (0u64, 0f64, None::<i64>);
    for meta in found.iter().filter_map(|f| f.meta.as_ref()) {
        if !meta.owner.is_empty() {
            owners.insert(meta.owner.as_str());
        }
        if meta.last_access >= since {
            active += 1;
        }
        aged += 1;
        total_age += (now - meta.created).max(0) as f64;
        oldest = Some(oldest.map_or(meta.created, |o| o.min(meta.created)));
    }
    Ok(Stats {
        sessions: found.len() as u64,
        users: owners.len() as u64,
        active,
        average_age_ms: if aged == 0 {
            0.0
        } else {
            total_age / aged as f64
        },
        oldest_created: oldest,
        ended,
    })
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
/// (the call as a whole is not bounded by it, see `Admin::Steps`): a user
/// with a huge number of sessions is logged out however long that takes.
/// A step that runs out of time fails the call; what earlier steps did
/// stays done. Each step takes the head of the index, which the steps
/// before emptied of all but `except`, so a login that comes meanwhile is
/// destroyed too rather than any session left behind.
pub async fn destroy_user(
    store: &Store,
    owner: &str,
    except: &[String],
    chunk: usize,
) -> StoreResult<u64> {
    let conn = store.connection().await?;
    let index = store.context().keys.user_index(owner);
    let timeout = store.command_timeout();
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
        match tokio::time::timeout(timeout, step).await {
            Ok(Ok(Some(n))) => destroyed += n,
            Ok(Ok(None)) => return Ok(destroyed),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(StoreError::unfinished(timeout)),
        }
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

/// One SCAN step over the sessions under the prefix, for `reindex()`: the
/// only call that scans the keyspace, run once when moving to this store.
pub struct ScanPage {
    /// Where the next step starts; "0" when done.
    pub cursor: String,
    pub sessions: Vec<Found>,
}

/// Reads the string keys of one SCAN step with their values and expiries.
/// Keys that vanish meanwhile, or are not UTF-8 text, are left out. On a
/// cluster the cursor walks every master in turn ("<master>-<cursor>").
pub async fn scan_page(store: &Store, cursor: &str, chunk: usize) -> StoreResult<ScanPage> {
    let conn = store.reader().await?;
    let keys = &store.context().keys;
    let servers = conn.clone().servers().await?;
    let (server, inner) = match cursor.split_once('-') {
        Some((n, c)) => (n.parse::<usize>().unwrap_or(usize::MAX), c),
        None => (0, cursor),
    };
    let Some(on) = servers.get(server) else {
        return Err(StoreError::new(
            ErrorKind::InvalidArgument,
            format!("scan cursor \"{cursor}\" names no server (the cluster changed?)"),
        ));
    };
    let mut scan = redis::pipe();
    scan.cmd("SCAN")
        .arg(inner)
        .arg("MATCH")
        .arg(keys.scan_pattern())
        .arg("COUNT")
        .arg(chunk.max(1))
        .arg("TYPE")
        .arg("string");
    let scanned = on
        .send(&scan, None, &[])
        .await
        .map_err(SendError::into_store)?
        .pop()
        .transpose()?;
    let (next, found): (String, Vec<String>) = match scanned {
        Some(Value::Array(mut reply)) if reply.len() == 2 => {
            let found =
                redis::from_redis_value(reply.pop().unwrap_or(Value::Nil)).unwrap_or_default();
            let next =
                redis::from_redis_value(reply.pop().unwrap_or(Value::Nil)).unwrap_or_default();
            (next, found)
        }
        other => {
            return Err(StoreError::new(
                ErrorKind::Reply,
                format!("unexpected SCAN reply: {other:?}"),
            ))
        }
    };
    // This server is done: go on with the next one, if any.
    let next = match (next.as_str(), servers.len()) {
        ("0", n) if server + 1 < n => format!("{}-0", server + 1),
        ("0", _) => "0".to_owned(),
        (c, 1) => c.to_owned(),
        (c, _) => format!("{server}-{c}"),
    };
    let sids: Vec<String> = found
        .iter()
        .filter_map(|k| keys.sid(k))
        .filter(|sid| !sid.is_empty() && !sid.contains(|c: char| c.is_control()))
        .map(str::to_owned)
        .collect();
    let mut pipe = redis::pipe();
    for sid in &sids {
        let key = keys.session(sid);
        pipe.cmd("GET").arg(&key).cmd("PEXPIRETIME").arg(&key);
    }
    let replies = if sids.is_empty() {
        Vec::new()
    } else {
        round_trip(&conn, &pipe).await?
    };
    let mut replies = replies.into_iter();
    let mut sessions = Vec::with_capacity(sids.len());
    for sid in sids {
        let (value, at) = (replies.next(), replies.next());
        if let Some(value @ Value::BulkString(_)) = value {
            // What does not open (not UTF-8; sealed, tampered) is left out.
            if let Ok(Some(value)) = store.context().text(&keys.session(&sid), value) {
                let expires_at = match at {
                    Some(Value::Int(t)) => from_expiretime(t),
                    _ => None,
                };
                sessions.push(Found {
                    sid,
                    value,
                    meta: None,
                    expires_at,
                    cookie_expiry: None,
                    device: None,
                    unreadable: false,
                });
            }
        }
    }
    Ok(ScanPage {
        cursor: next,
        sessions,
    })
}
