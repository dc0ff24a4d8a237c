//! Session operations and how each becomes Redis commands. A batch of
//! operations becomes one pipeline; each operation knows how many replies it
//! owns and how to read them back.

use redis::{Pipeline, Value};

use crate::error::{ErrorKind, StoreError, StoreResult};
use crate::expiry::{from_expiretime, Expiry};
use crate::keys::tombstone;

/// Writes a session unless it was destroyed recently: a slow request that
/// ends after a logout must not bring the session back (connect-redis #328).
/// KEYS: session, tombstone. ARGV: value, PXAT deadline or "" for none.
const SET_UNLESS_DESTROYED: &str = "\
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
if ARGV[2] == '' then redis.call('SET', KEYS[1], ARGV[1])
else redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2]) end
return 1";

/// How long a destroyed session stays unwritable: longer than any request
/// that could still be running when the user logged out.
pub const TOMBSTONE_MS: u64 = 60 * 60 * 1000;

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Read a session and its absolute expiry.
    Get {
        key: String,
    },
    /// Write a session; a deadline already past deletes it instead.
    Set {
        key: String,
        value: String,
        expiry: Expiry,
    },
    /// Move the expiry of an existing session without rewriting it.
    Touch {
        key: String,
        expiry: Expiry,
    },
    /// Rewrite an existing session (never recreates a destroyed one).
    Rewrite {
        key: String,
        value: String,
        expiry: Expiry,
    },
    Destroy {
        key: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Session {
        value: Option<String>,
        expires_at: Option<i64>,
    },
    Done,
    Failed(StoreError),
}

impl Op {
    pub fn key(&self) -> &str {
        match self {
            Op::Get { key }
            | Op::Set { key, .. }
            | Op::Touch { key, .. }
            | Op::Rewrite { key, .. }
            | Op::Destroy { key } => key,
        }
    }

    /// Appends this operation's commands; returns how many replies they produce.
    pub fn append_to(&self, pipe: &mut Pipeline, now_ms: i64) -> usize {
        match self {
            Op::Get { key } => {
                pipe.cmd("GET").arg(key);
                pipe.cmd("PEXPIRETIME").arg(key);
                2
            }
            Op::Set { key, expiry, .. }
            | Op::Touch { key, expiry }
            | Op::Rewrite { key, expiry, .. }
                if expiry.is_past(now_ms) =>
            {
                pipe.cmd("DEL").arg(key);
                1
            }
            Op::Set { key, value, expiry } => {
                let at = match expiry {
                    Expiry::At(at) => at.to_string(),
                    Expiry::Never => String::new(),
                };
                pipe.cmd("EVAL")
                    .arg(SET_UNLESS_DESTROYED)
                    .arg(2)
                    .arg(key)
                    .arg(tombstone(key))
                    .arg(value)
                    .arg(at);
                1
            }
            Op::Touch { key, expiry } => {
                match expiry {
                    Expiry::At(at) => pipe.cmd("PEXPIREAT").arg(key).arg(*at),
                    // Nothing to move: a session without TTL stays as it is.
                    Expiry::Never => pipe.cmd("EXISTS").arg(key),
                };
                1
            }
            Op::Rewrite { key, value, expiry } => {
                pipe.cmd("SET").arg(key).arg(value).arg("XX");
                if let Expiry::At(at) = expiry {
                    pipe.arg("PXAT").arg(*at);
                }
                1
            }
            Op::Destroy { key } => {
                pipe.cmd("DEL").arg(key);
                pipe.cmd("SET")
                    .arg(tombstone(key))
                    .arg(1)
                    .arg("PX")
                    .arg(TOMBSTONE_MS);
                2
            }
        }
    }

    /// Reads back the replies that `append_to` asked for, taking the
    /// session text out of them rather than copying it.
    pub fn read(&self, replies: &mut [Value]) -> Outcome {
        let key = self.key();
        match self {
            Op::Get { .. } => {
                match read_string(key, std::mem::replace(&mut replies[0], Value::Nil)) {
                    Ok(value) => Outcome::Session {
                        // An unknown PEXPIRETIME (Redis < 7) only loses the
                        // touch refresh of `cookie.expires`, not the session.
                        expires_at: match (&value, &replies[1]) {
                            (Some(_), Value::Int(t)) => from_expiretime(*t),
                            _ => None,
                        },
                        value,
                    },
                    Err(e) => Outcome::Failed(e),
                }
            }
            _ => match &replies[0] {
                Value::ServerError(e) => Outcome::Failed(reply_error(key, e)),
                _ => Outcome::Done,
            },
        }
    }
}

fn reply_error(key: &str, err: &redis::ServerError) -> StoreError {
    StoreError::new(
        ErrorKind::Reply,
        format!("redis replied {err} for key \"{key}\""),
    )
}

/// The session text in a reply: `None` for a missing key, an error naming
/// the key for anything that cannot be session text.
pub fn read_string(key: &str, reply: Value) -> StoreResult<Option<String>> {
    match reply {
        Value::Nil => Ok(None),
        Value::BulkString(bytes) => String::from_utf8(bytes).map(Some).map_err(|_| {
            StoreError::new(
                ErrorKind::Corrupt,
                format!("value at key \"{key}\" is not UTF-8 text"),
            )
        }),
        Value::SimpleString(s) => Ok(Some(s)),
        Value::ServerError(e) => Err(reply_error(key, &e)),
        other => Err(StoreError::new(
            ErrorKind::Corrupt,
            format!("value at key \"{key}\" is not a string: {other:?}"),
        )),
    }
}

/// Builds one pipeline for a run of operations, remembering each one's
/// reply count so the replies can be split back.
pub fn build(ops: &[Op], now_ms: i64) -> (Pipeline, Vec<usize>) {
    let mut pipe = redis::pipe();
    let counts = ops
        .iter()
        .map(|op| op.append_to(&mut pipe, now_ms))
        .collect();
    (pipe, counts)
}

/// Splits a pipeline's replies back into one outcome per operation.
pub fn read_all(ops: &[Op], counts: &[usize], mut replies: Vec<Value>) -> Vec<Outcome> {
    let mut at = 0;
    ops.iter()
        .zip(counts)
        .map(|(op, &n)| {
            let outcome = match replies.get_mut(at..at + n) {
                Some(mine) => op.read(mine),
                None => Outcome::Failed(StoreError::new(
                    ErrorKind::Reply,
                    "redis sent fewer replies than commands",
                )),
            };
            at += n;
            outcome
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packed(op: &Op, now: i64) -> String {
        let mut pipe = redis::pipe();
        op.append_to(&mut pipe, now);
        String::from_utf8_lossy(&pipe.get_packed_pipeline()).replace("\r\n", " ")
    }

    #[test]
    fn set_uses_an_absolute_millisecond_deadline_and_respects_the_tombstone() {
        let op = Op::Set {
            key: "sess:a".into(),
            value: "{}".into(),
            expiry: Expiry::At(2_000),
        };
        let wire = packed(&op, 1_000);
        assert!(
            wire.contains("$1 2 $6 sess:a $13 {sess:a}:gone $2 {} $4 2000"),
            "{wire}"
        );
    }

    #[test]
    fn writes_past_their_deadline_become_deletes() {
        for op in [
            Op::Set {
                key: "k".into(),
                value: "{}".into(),
                expiry: Expiry::At(5),
            },
            Op::Touch {
                key: "k".into(),
                expiry: Expiry::At(5),
            },
        ] {
            let wire = packed(&op, 5);
            assert!(wire.contains("DEL"), "{wire}");
            assert!(!wire.contains("SET"), "{wire}");
        }
    }

    #[test]
    fn rewrite_never_creates_a_missing_session() {
        let op = Op::Rewrite {
            key: "k".into(),
            value: "{}".into(),
            expiry: Expiry::Never,
        };
        let wire = packed(&op, 0);
        assert!(wire.contains(" XX"), "{wire}");
        assert!(!wire.contains("PXAT"), "{wire}");
    }

    #[test]
    fn replies_are_split_per_operation() {
        let ops = vec![
            Op::Get { key: "a".into() },
            Op::Destroy { key: "b".into() },
            Op::Get { key: "c".into() },
        ];
        let (_, counts) = build(&ops, 0);
        assert_eq!(counts, vec![2, 2, 2]);
        let replies = vec![
            Value::BulkString(b"{\"x\":1}".to_vec()),
            Value::Int(42),
            Value::Int(1),
            Value::Okay,
            Value::Nil,
            Value::Int(-2),
        ];
        let out = read_all(&ops, &counts, replies);
        assert_eq!(
            out[0],
            Outcome::Session {
                value: Some("{\"x\":1}".into()),
                expires_at: Some(42)
            }
        );
        assert_eq!(out[1], Outcome::Done);
        assert_eq!(
            out[2],
            Outcome::Session {
                value: None,
                expires_at: None
            }
        );
    }

    #[test]
    fn binary_values_are_reported_with_their_key() {
        let op = Op::Get {
            key: "sess:z".into(),
        };
        match op.read(&mut [Value::BulkString(vec![0xff, 0xfe]), Value::Int(-1)]) {
            Outcome::Failed(e) => {
                assert_eq!(e.kind, ErrorKind::Corrupt);
                assert!(e.message.contains("sess:z"));
            }
            other => panic!("expected failure, got {other:?}"),
        }
    }

    #[test]
    fn short_replies_fail_instead_of_panicking() {
        let ops = vec![Op::Get { key: "a".into() }];
        let out = read_all(&ops, &[2], vec![Value::Nil]);
        assert!(matches!(out[0], Outcome::Failed(_)));
    }
}
