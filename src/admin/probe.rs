//! Reads back the sessions an index lists, chunk by chunk, and tells which
//! of them are gone: what every call over many sessions checks before it
//! answers.

use redis::Value;

use super::{batches, per_trip, Found, Read};
use crate::backend::{round_trip, Conn};
use crate::error::{ErrorKind, StoreError, StoreResult};
use crate::ops::decode::reply_error;
use crate::ops::devices;
use crate::session::expiry::from_expiretime;
use crate::session::meta::Meta;
use crate::store::Store;

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

/// One round trip of `probe` (two for `Read::Exists` when some are gone).
pub(super) async fn probe_trip(
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

pub(super) async fn probe_all(
    store: &Store,
    conn: &Conn,
    listed: Vec<(String, Option<Meta>)>,
    how: (Read, usize),
) -> StoreResult<Vec<Probed>> {
    let mut all = Vec::with_capacity(listed.len());
    probe(store, conn, listed, how, |trip| all.extend(trip)).await?;
    Ok(all)
}

/// How many keys of each `chunk` of `keys` exist, one EXISTS each, in one
/// round trip.
pub(super) async fn exists_counts(
    conn: &Conn,
    keys: &[String],
    chunk: usize,
) -> StoreResult<Vec<usize>> {
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
