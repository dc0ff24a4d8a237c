//! `stats()`: counts over the live sessions, from the metas the walk of
//! the shards reads anyway, and the fleet's ends (see `ended`).

use std::collections::HashSet;

use super::listing::live_all;
use super::Read;
use crate::backend::round_trip;
use crate::error::{StoreError, StoreResult};
use crate::session::ended;
use crate::session::expiry::now_ms;
use crate::store::Store;

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
            let mut pipe = redis::pipe();
            let (minutes, sent) = ended::ask(&mut pipe, (&ctx.keys, &ctx.ended), now_ms(), within);
            let replies = round_trip(&conn, &pipe).await?;
            if replies.len() != pipe.len() {
                return Err(StoreError::short_reply());
            }
            Some(ended::total(minutes, replies.into_iter().skip(sent))?)
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
