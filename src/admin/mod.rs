//! Calls over many sessions (all, ids, length, clear, stats, a user's
//! sessions, reindex, reencrypt) and the device calls, beside the batches.
//! They read the indexes instead of scanning the keyspace, so they cost in
//! proportion to the sessions involved, then check every listed session
//! against its own keys (`probe`) and drop index entries that outlived it
//! (an absolute timeout, a destroy, a race with a write): the indexes never
//! need a cron or keyspace notifications to stay true. Callers run each call
//! behind `Store::fence` and within `bounded`, so it sees the operations
//! issued before it and settles in time. The calls that only read use the
//! store's reader connection (see `backend::reader`), the others the
//! writer's. `scan::scan_page`, for the one-off `reindex()`, is the only
//! SCAN.

pub mod devices;
pub mod listing;
pub mod reencrypt;
pub mod scan;
pub mod stats;
pub mod users;

mod probe;

use crate::error::{ErrorKind, StoreError, StoreResult};
use crate::session::meta::Meta;
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
    /// Its device data as recorded (see `ops::devices`), read with
    /// `Read::Full`.
    pub device: Option<String>,
    /// Read with `Read::Full`, its value does not open (tampered, or under
    /// a key no longer configured): listed apart, and still destroyed by
    /// the calls over a user's sessions, which need only its id.
    pub unreadable: bool,
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

/// Chunks sent per round trip: enough to hide the latency, few enough to
/// keep one reply small.
const CHUNKS_PER_TRIP: usize = 16;

/// Sessions handled per round trip.
fn per_trip(chunk: usize) -> usize {
    chunk.max(1) * CHUNKS_PER_TRIP
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
