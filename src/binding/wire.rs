//! What crosses the napi boundary per call: a batch as parallel arrays (a
//! few napi conversions per batch instead of several per operation), the
//! outcomes the same way, and the listing calls' replies. Sessions stay
//! JSON strings made and read by V8.

use std::collections::BTreeMap;

use napi_derive::napi;

use crate::admin::Found;
use crate::error::{ErrorKind, StoreError};
use crate::ops::{Op, Outcome};
use crate::session::ended::Summary;
use crate::session::events::{Event, Reason};
use crate::session::expiry::{Expiry, Lifetime};
use crate::store::server::Warning;

/// Operation kinds of a batch; the JS face reads them from here.
#[napi]
pub enum OpKind {
    Get = 0,
    Set = 1,
    Touch = 2,
    Rewrite = 3,
    Destroy = 4,
    Adopt = 5,
    /// `merge: true`: two values, what the request loaded, then what it
    /// saves, and two owners, of each.
    Merge = 6,
}

/// One entry per operation of the batch, in order, handed to `onReply` as
/// separate arguments. `error_codes` and `error_messages` are present only
/// when some operation failed.
pub struct BatchReply {
    /// The session text of a read (None: not found, or not a read).
    pub values: Vec<Option<String>>,
    /// For a read, the cookie deadline (epoch ms) its last touch set; NaN
    /// when unknown or not a read.
    pub expires_at: Vec<f64>,
    /// For a write, the owner's session count when the session is new to
    /// that owner (a login), else 0.
    pub owner_sessions: Vec<u32>,
    pub error_codes: Option<Vec<Option<String>>>,
    pub error_messages: Option<Vec<Option<String>>>,
}

/// Sessions as the listing calls return them, as parallel arrays; times in
/// epoch ms, NaN when unknown.
#[napi(object)]
pub struct ListReply {
    pub ids: Vec<String>,
    pub values: Vec<String>,
    /// The cookie deadline the last set/touch asked for.
    pub cookie_expires: Vec<f64>,
    pub created_at: Vec<f64>,
    pub last_access: Vec<f64>,
    /// When Redis drops the session.
    pub expires_at: Vec<f64>,
    /// Device data as recorded (JSON text), null when none.
    pub devices: Vec<Option<String>>,
    /// Its value does not open (its text is then empty).
    pub unreadable: Vec<bool>,
}

/// One page of `all()`: sessions as stored.
#[napi(object)]
pub struct AllPage {
    pub ids: Vec<String>,
    pub values: Vec<String>,
}

/// One SCAN step of `reindex()`.
#[napi(object)]
pub struct ScanReply {
    /// Where the next step starts; "0" when done.
    pub cursor: String,
    pub ids: Vec<String>,
    pub values: Vec<String>,
    /// Each key's expiry (epoch ms), or NaN for none.
    pub expires_at: Vec<f64>,
}

/// One step of `reencrypt()`.
#[napi(object)]
pub struct ReencryptReply {
    /// The shard the next step starts at; -1 when done.
    pub next: i32,
    pub reencrypted: f64,
    pub current: f64,
    pub unreadable: f64,
    pub raced: f64,
}

#[napi(object)]
pub struct StatsReply {
    pub sessions: f64,
    pub users: f64,
    pub active: f64,
    pub average_age: f64,
    /// Epoch ms; NaN when there is no session.
    pub oldest_created_at: f64,
    /// Present when asked for (`endedWithin`).
    pub ended: Option<EndedReply>,
}

/// The fleet's ends within a window (see `ended`).
#[napi(object)]
pub struct EndedReply {
    pub sessions: f64,
    /// Ms; 0 when none.
    pub average_duration: f64,
    /// Only the reasons that occurred.
    pub by_reason: BTreeMap<String, f64>,
}

impl From<Summary> for EndedReply {
    fn from(s: Summary) -> Self {
        EndedReply {
            sessions: s.sessions as f64,
            average_duration: s.average_duration_ms,
            by_reason: s
                .by_reason
                .into_iter()
                .map(|(r, n)| (r.as_str().to_owned(), n as f64))
                .collect(),
        }
    }
}

pub fn ms(value: Option<i64>) -> f64 {
    value.map_or(f64::NAN, |t| t as f64)
}

pub fn list_reply(found: Vec<Found>) -> ListReply {
    let n = found.len();
    let mut reply = ListReply {
        ids: Vec::with_capacity(n),
        values: Vec::with_capacity(n),
        cookie_expires: Vec::with_capacity(n),
        created_at: Vec::with_capacity(n),
        last_access: Vec::with_capacity(n),
        expires_at: Vec::with_capacity(n),
        devices: Vec::with_capacity(n),
        unreadable: Vec::with_capacity(n),
    };
    for f in found {
        reply.devices.push(f.device);
        reply.unreadable.push(f.unreadable);
        reply.ids.push(f.sid);
        reply.values.push(f.value);
        reply.expires_at.push(ms(f.expires_at));
        // As `get` reads it: another store's touch moves the key's expiry only.
        reply.cookie_expires.push(ms(f.cookie_expiry));
        let meta = f.meta.as_ref();
        reply.created_at.push(ms(meta.map(|m| m.created)));
        reply.last_access.push(ms(meta.map(|m| m.last_access)));
    }
    reply
}

/// Numbers per operation in the store's input array (see
/// `NativeStore::inputs`): its kind, its `expiresAt`, then, for a store
/// whose limits are functions of the session, its idle and absolute limits
/// in ms (NaN: none for this session).
#[napi]
pub const INPUT_STRIDE: u32 = 4;

/// Decodes a batch of `count` operations. Its wire form keeps napi
/// conversions to a few per batch rather than several per operation: the
/// numbers in `inputs`, an array JS writes in place between calls
/// (`INPUT_STRIDE` per operation), the sids as one newline-joined string
/// (JS rejects sids with control characters), and values and owners (""
/// for none) only for the operations that carry them (a destroy's "owner"
/// is its reason: `logout`, `revoked` or `binding`). `per_session`: read
/// each operation's own limits.
pub fn decode(
    (inputs, count, per_session): (&[f64], usize, bool),
    sids: &str,
    (values, owners): (Vec<String>, Vec<String>),
) -> std::result::Result<Vec<Op>, StoreError> {
    let malformed = || StoreError::new(ErrorKind::InvalidArgument, "malformed batch");
    let stride = INPUT_STRIDE as usize;
    let inputs = inputs.get(..count * stride).ok_or_else(malformed)?;
    let ms = |v: f64| v.is_finite().then(|| v.ceil() as i64);
    let life = |op: &[f64]| {
        per_session.then(|| Lifetime {
            idle_ms: ms(op[2]),
            absolute_ms: ms(op[3]),
        })
    };
    let mut sids = sids.split('\n');
    let mut values = values.into_iter();
    let mut owners = owners.into_iter();
    let ops = inputs
        .chunks_exact(stride)
        .map(|op| {
            // Not a kind when it is not a small whole number.
            let kind = match op[0] {
                k if k.fract() == 0.0 && (0.0..=255.0).contains(&k) => k as u8,
                _ => u8::MAX,
            };
            let at = op[1];
            let sid = sids.next().ok_or_else(malformed)?.to_owned();
            let expiry = Expiry::from_wire(at);
            let mut value = || values.next().ok_or_else(malformed);
            let mut owner = || {
                owners
                    .next()
                    .ok_or_else(malformed)
                    .map(|o| Some(o).filter(|o| !o.is_empty()))
            };
            Ok(match kind {
                k if k == OpKind::Get as u8 => Op::Get { sid },
                k if k == OpKind::Set as u8 => Op::Set {
                    sid,
                    value: value()?,
                    expiry,
                    owner: owner()?,
                    life: life(op),
                },
                k if k == OpKind::Touch as u8 => Op::Touch {
                    sid,
                    expiry,
                    owner: owner()?,
                    life: life(op),
                },
                k if k == OpKind::Rewrite as u8 => Op::Rewrite {
                    sid,
                    value: value()?,
                    expiry,
                    owner: owner()?,
                    life: life(op),
                },
                k if k == OpKind::Destroy as u8 => Op::Destroy {
                    sid,
                    reason: Reason::of_destroy(owner()?.as_deref()),
                },
                k if k == OpKind::Merge as u8 => Op::Merge {
                    sid,
                    base: value()?,
                    value: value()?,
                    expiry,
                    loaded_owner: owner()?,
                    owner: owner()?,
                    against: None,
                    life: life(op),
                },
                k if k == OpKind::Adopt as u8 => Op::Adopt {
                    sid,
                    expiry,
                    owner: owner()?,
                },
                other => {
                    return Err(StoreError::new(
                        ErrorKind::InvalidArgument,
                        format!("unknown operation kind {other}"),
                    ))
                }
            })
        })
        .collect::<std::result::Result<Vec<Op>, StoreError>>()?;
    if sids.next().is_some() || values.next().is_some() || owners.next().is_some() {
        return Err(malformed());
    }
    Ok(ops)
}

/// A warning about the server, as a reply of no operations with one error.
/// Lifecycle events as `onReply` carries them: one JSON text each, the
/// sid included (JS names the session by its handle instead).
pub fn events(events: Vec<Event>) -> BatchReply {
    let values = events
        .into_iter()
        .map(|e| {
            let v = match e {
                Event::Created {
                    sid,
                    owner,
                    created,
                } => serde_json::json!({ "sid": sid, "owner": owner, "created": created }),
                Event::Ended {
                    sid,
                    owner,
                    created,
                    last_access,
                    ended,
                    reason,
                } => serde_json::json!({
                    "sid": sid, "owner": owner, "created": created,
                    "lastAccess": last_access, "ended": ended, "reason": reason.as_str(),
                }),
            };
            Some(v.to_string())
        })
        .collect();
    BatchReply {
        values,
        expires_at: Vec::new(),
        owner_sessions: Vec::new(),
        error_codes: None,
        error_messages: None,
    }
}

pub fn warning(w: Warning) -> BatchReply {
    BatchReply {
        values: Vec::new(),
        expires_at: Vec::new(),
        owner_sessions: Vec::new(),
        error_codes: Some(vec![Some(w.code.to_owned())]),
        error_messages: Some(vec![Some(w.message)]),
    }
}

pub fn encode(outcomes: Vec<Outcome>) -> BatchReply {
    let n = outcomes.len();
    let mut values = Vec::with_capacity(n);
    let mut expires_at = vec![f64::NAN; n];
    let mut owner_sessions = vec![0; n];
    let mut codes: Option<Vec<Option<String>>> = None;
    let mut messages: Option<Vec<Option<String>>> = None;
    for (i, outcome) in outcomes.into_iter().enumerate() {
        match outcome {
            Outcome::Session {
                value,
                expires_at: at,
            } => {
                values.push(value);
                expires_at[i] = ms(at);
            }
            Outcome::Written { owner_sessions: n } => {
                values.push(None);
                owner_sessions[i] = n;
            }
            Outcome::Done => values.push(None),
            // The writer settles every conflict before answering.
            Outcome::Changed { .. } => {
                values.push(None);
                codes.get_or_insert_with(|| vec![None; n])[i] =
                    Some(ErrorKind::Internal.code().to_owned());
                messages.get_or_insert_with(|| vec![None; n])[i] =
                    Some("a merge conflict was not settled".to_owned());
            }
            Outcome::Failed(err) => {
                values.push(None);
                codes.get_or_insert_with(|| vec![None; n])[i] = Some(err.kind.code().to_owned());
                messages.get_or_insert_with(|| vec![None; n])[i] = Some(err.message);
            }
        }
    }
    BatchReply {
        values,
        expires_at,
        owner_sessions,
        error_codes: codes,
        error_messages: messages,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The input array JS would write: kind, expiresAt, idle, absolute.
    fn inputs(ops: &[(u8, f64, f64, f64)]) -> Vec<f64> {
        ops.iter()
            .flat_map(|&(kind, at, idle, absolute)| [f64::from(kind), at, idle, absolute])
            .collect()
    }

    /// Operations with no limits of their own.
    fn plain(kinds: &[u8], expires: &[f64]) -> Vec<f64> {
        let ops: Vec<_> = (kinds.iter().zip(expires))
            .map(|(&k, &at)| (k, at, f64::NAN, f64::NAN))
            .collect();
        inputs(&ops)
    }

    #[test]
    fn a_batch_decodes_in_order_with_values_only_where_needed() {
        let kinds = [
            OpKind::Get as u8,
            OpKind::Set as u8,
            OpKind::Destroy as u8,
            OpKind::Rewrite as u8,
            OpKind::Touch as u8,
        ];
        let ops = decode(
            (
                &plain(&kinds, &[f64::NAN, 10.0, f64::NAN, f64::INFINITY, 5.0]),
                5,
                false,
            ),
            "a\nb\nc\nd\ne",
            (
                vec!["vb".into(), "vd".into()],
                vec!["ada".into(), "revoked".into(), "".into(), "bo".into()],
            ),
        )
        .unwrap();
        assert_eq!(
            ops,
            vec![
                Op::Get { sid: "a".into() },
                Op::Set {
                    sid: "b".into(),
                    value: "vb".into(),
                    expiry: Expiry::At(10),
                    owner: Some("ada".into()),
                    life: None,
                },
                Op::Destroy {
                    sid: "c".into(),
                    reason: Reason::Revoked,
                },
                Op::Rewrite {
                    sid: "d".into(),
                    value: "vd".into(),
                    expiry: Expiry::Never,
                    owner: None,
                    life: None,
                },
                Op::Touch {
                    sid: "e".into(),
                    expiry: Expiry::At(5),
                    owner: Some("bo".into()),
                    life: None,
                },
            ]
        );
    }

    #[test]
    fn per_session_limits_go_with_each_write() {
        let batch = inputs(&[
            (GET, f64::NAN, f64::NAN, f64::NAN),
            (OpKind::Touch as u8, 10.0, 1000.2, f64::NAN),
        ]);
        let ops = decode((&batch, 2, true), "a\nb", (vec![], vec!["".into()])).unwrap();
        assert_eq!(
            ops[1],
            Op::Touch {
                sid: "b".into(),
                expiry: Expiry::At(10),
                owner: None,
                life: Some(Lifetime {
                    idle_ms: Some(1001),
                    absolute_ms: None,
                }),
            }
        );
        // Fewer inputs than operations: refused.
        let short = decode((&batch[..7], 2, true), "a\nb", (vec![], vec!["".into()]));
        assert_eq!(short.unwrap_err().kind, ErrorKind::InvalidArgument);
    }

    const GET: u8 = OpKind::Get as u8;
    const SET: u8 = OpKind::Set as u8;

    #[test]
    fn malformed_batches_are_refused_not_misread() {
        let v = |s: &str| vec![s.to_string()];
        let get = plain(&[GET], &[0.0]);
        for (batch, count, sids, values, owners) in [
            (plain(&[GET, GET], &[0.0, 0.0]), 2, "a", vec![], vec![]),
            (get.clone(), 1, "a\nb", vec![], vec![]),
            (plain(&[SET], &[0.0]), 1, "a", vec![], v("")),
            (plain(&[SET], &[0.0]), 1, "a", v("x"), vec![]),
            (get.clone(), 1, "a", v("extra"), vec![]),
            (get.clone(), 1, "a", vec![], v("extra")),
            (get.clone(), 2, "a\nb", vec![], vec![]),
            (plain(&[9], &[0.0]), 1, "a", vec![], vec![]),
            (vec![0.5, 0.0, f64::NAN, f64::NAN], 1, "a", vec![], vec![]),
        ] {
            let err = decode((&batch, count, false), sids, (values, owners)).unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidArgument);
        }
    }
}
