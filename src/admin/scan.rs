//! `reindex()`'s walk: one SCAN step at a time over the sessions under the
//! prefix, the only call that scans the keyspace.

use redis::Value;

use super::Found;
use crate::backend::{round_trip, SendError};
use crate::error::{ErrorKind, StoreError, StoreResult};
use crate::session::expiry::from_expiretime;
use crate::store::Store;

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
