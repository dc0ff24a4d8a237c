//! Fleet-wide numbers of the sessions that ended, for
//! `stats({ endedWithin })`. Each end is counted by the instance that tells
//! it as `sessionEnded`, from the same script reply (see `events`), whether
//! or not anyone listens: so the fleet counts it once. The counts go to a
//! hash per minute (`Keys::ended`) that expires by itself a day later: a
//! field per reason, the sum of the durations (`ms`) and how many had no
//! known creation (`untimed`: sessions only connect-redis wrote). They wait
//! here, summed per minute, until a pipeline this instance sends anyway
//! takes them (the cleanup's tick every second, `stats`, `close`): an end
//! costs no round trip of its own.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex};

use redis::{Pipeline, Value};

use super::events::{Event, Reason};
use super::keys::Keys;
use crate::error::{ErrorKind, StoreError, StoreResult};

const MINUTE_MS: i64 = 60_000;

/// The longest window `stats` reads.
pub const MAX_WITHIN_MS: i64 = 24 * 60 * MINUTE_MS;

/// How long a bucket outlives its minute: the longest window, and a
/// margin for instances whose clocks differ.
const KEEP_MS: i64 = MAX_WITHIN_MS + 5 * MINUTE_MS;

const MS: &str = "ms";
const UNTIMED: &str = "untimed";

/// One minute's numbers (or a window's, summed).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Bucket {
    /// Ends per reason, at `Reason as usize`.
    by_reason: [i64; Reason::ALL.len()],
    /// The sum of the durations (ms) of those with a known creation.
    ms: i64,
    untimed: i64,
}

impl Bucket {
    fn add(&mut self, other: &Bucket) {
        for (n, more) in self.by_reason.iter_mut().zip(other.by_reason) {
            *n = n.saturating_add(more);
        }
        self.ms = self.ms.saturating_add(other.ms);
        self.untimed = self.untimed.saturating_add(other.untimed);
    }

    /// Its fields as a bucket hash holds them, with their values.
    fn fields(&self) -> impl Iterator<Item = (&'static str, i64)> + '_ {
        Reason::ALL
            .iter()
            .map(|r| r.as_str())
            .zip(self.by_reason)
            .chain([(MS, self.ms), (UNTIMED, self.untimed)])
    }

    fn set(&mut self, field: &str, n: i64) {
        match field {
            MS => self.ms = n,
            UNTIMED => self.untimed = n,
            _ => {
                if let Some(r) = Reason::ALL.iter().find(|r| r.as_str() == field) {
                    self.by_reason[*r as usize] = n;
                }
            }
        }
    }

    fn summary(&self) -> Summary {
        let sessions: i64 = self.by_reason.iter().sum();
        let timed = sessions - self.untimed;
        Summary {
            sessions: sessions.max(0) as u64,
            average_duration_ms: if timed > 0 {
                self.ms as f64 / timed as f64
            } else {
                0.0
            },
            by_reason: Reason::ALL
                .into_iter()
                .zip(self.by_reason)
                .filter(|(_, n)| *n > 0)
                .map(|(r, n)| (r, n as u64))
                .collect(),
        }
    }
}

/// What `stats({ endedWithin })` reports.
#[derive(Debug, PartialEq)]
pub struct Summary {
    pub sessions: u64,
    /// The mean duration (ms) of those with a known creation; 0 for none.
    pub average_duration_ms: f64,
    /// The reasons that occurred, with their counts.
    pub by_reason: Vec<(Reason, u64)>,
}

/// The ends this instance told and has not sent yet, per minute.
#[derive(Debug, Clone, Default)]
pub struct Ended {
    pending: Arc<Mutex<BTreeMap<i64, Bucket>>>,
}

impl Ended {
    /// Counts an end this instance tells (a creation is not one).
    pub fn count(&self, event: &Event) {
        let Event::Ended {
            created,
            ended,
            reason,
            ..
        } = event
        else {
            return;
        };
        let mut pending = self.pending.lock().unwrap();
        let bucket = pending.entry(ended.div_euclid(MINUTE_MS)).or_default();
        bucket.by_reason[*reason as usize] += 1;
        match created {
            Some(at) => bucket.ms += (ended - at).max(0),
            None => bucket.untimed += 1,
        }
    }

    /// Appends the pending counts to `pipe` and forgets them: per minute,
    /// an HINCRBY per field that grew and the bucket's expiry (an absolute
    /// time, the same from every instance). A minute older than any window
    /// is dropped. Returns how many commands were appended. A pipeline that
    /// then fails loses them rather than risk counting them twice.
    pub fn send_with(&self, pipe: &mut Pipeline, keys: &Keys, now: i64) -> usize {
        let pending = std::mem::take(&mut *self.pending.lock().unwrap());
        let before = pipe.len();
        for (minute, bucket) in pending {
            let expires = (minute + 1) * MINUTE_MS + KEEP_MS;
            if expires <= now {
                continue;
            }
            let key = keys.ended(minute);
            for (field, n) in bucket.fields().filter(|(_, n)| *n != 0) {
                pipe.cmd("HINCRBY").arg(&key).arg(field).arg(n);
            }
            pipe.cmd("PEXPIREAT").arg(&key).arg(expires);
        }
        pipe.len() - before
    }
}

/// The minutes a window of `within_ms` back from `now` overlaps, the
/// current one included (whole minutes: up to a minute more than asked).
fn minutes(now: i64, within_ms: i64) -> RangeInclusive<i64> {
    let within = within_ms.clamp(0, MAX_WITHIN_MS);
    (now - within).div_euclid(MINUTE_MS)..=now.div_euclid(MINUTE_MS)
}

/// Asks for the fleet's ends within `within_ms` of `now`: this instance's
/// pending counts go first, then an HGETALL per minute. Returns the minutes
/// asked for and how many replies come before theirs.
pub fn ask(
    pipe: &mut Pipeline,
    (keys, ended): (&Keys, &Ended),
    now: i64,
    within_ms: i64,
) -> (RangeInclusive<i64>, usize) {
    let sent = ended.send_with(pipe, keys, now);
    let minutes = minutes(now, within_ms);
    for minute in minutes.clone() {
        pipe.cmd("HGETALL").arg(keys.ended(minute));
    }
    (minutes, sent)
}

/// The sum of the minutes' replies to `ask`.
pub fn total(
    minutes: RangeInclusive<i64>,
    replies: impl Iterator<Item = Value>,
) -> StoreResult<Summary> {
    let mut total = Bucket::default();
    for (minute, reply) in minutes.zip(replies) {
        total.add(&bucket(minute, reply)?);
    }
    Ok(total.summary())
}

/// A bucket's HGETALL reply; fields it does not know are left out.
fn bucket(minute: i64, reply: Value) -> StoreResult<Bucket> {
    let items = match reply {
        Value::Array(items) => items,
        Value::ServerError(e) => return Err(refused(minute, &e)),
        _ => return Ok(Bucket::default()),
    };
    let text = |v: &Value| match v {
        Value::BulkString(b) => std::str::from_utf8(b).ok().map(str::to_owned),
        _ => None,
    };
    let mut bucket = Bucket::default();
    for pair in items.chunks(2) {
        if let [field, value] = pair {
            let n = text(value).and_then(|v| v.parse().ok());
            if let (Some(field), Some(n)) = (text(field), n) {
                bucket.set(&field, n);
            }
        }
    }
    Ok(bucket)
}

/// A bucket's read failed: named by its minute (its key holds a control
/// character).
fn refused(minute: i64, e: &redis::ServerError) -> StoreError {
    StoreError::new(
        ErrorKind::Reply,
        format!("redis replied {e} for the sessions ended in minute {minute}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(reason: Reason, created: Option<i64>, ended: i64) -> Event {
        Event::Ended {
            sid: "s".into(),
            owner: String::new(),
            created,
            last_access: created,
            ended,
            reason,
        }
    }

    fn wire(pipe: &Pipeline) -> String {
        String::from_utf8_lossy(&pipe.get_packed_pipeline()).replace("\r\n", " ")
    }

    #[test]
    fn ends_are_summed_per_minute_and_sent_once_with_their_expiry() {
        let ended = Ended::default();
        let keys = Keys::new("s:");
        let now = 10 * MINUTE_MS + 5;
        ended.count(&end(Reason::Logout, Some(now - 1_000), now));
        ended.count(&end(Reason::Logout, Some(now - 3_000), now));
        ended.count(&end(Reason::Idle, None, now));
        // Creations are not ends.
        ended.count(&Event::Created {
            sid: "s".into(),
            owner: String::new(),
            created: now,
        });
        // An end a cleanup claims too late for any window: not sent.
        ended.count(&end(Reason::Expired, Some(0), 1));
        let mut pipe = redis::pipe();
        assert_eq!(ended.send_with(&mut pipe, &keys, now + KEEP_MS), 5);
        let key = keys.ended(10);
        let expires = 11 * MINUTE_MS + KEEP_MS;
        assert_eq!(
            wire(&pipe),
            format!(
                "*4 $7 HINCRBY ${len} {key} $6 logout $1 2 \
                 *4 $7 HINCRBY ${len} {key} $4 idle $1 1 \
                 *4 $7 HINCRBY ${len} {key} $2 ms $4 4000 \
                 *4 $7 HINCRBY ${len} {key} $7 untimed $1 1 \
                 *3 $9 PEXPIREAT ${len} {key} ${} {expires} ",
                expires.to_string().len(),
                len = key.len(),
            )
        );
        // Sent once: nothing is left.
        let mut again = redis::pipe();
        assert_eq!(ended.send_with(&mut again, &keys, now), 0);
    }

    #[test]
    fn a_window_is_the_whole_minutes_it_overlaps() {
        let now = 100 * MINUTE_MS + 30_000;
        assert_eq!(minutes(now, 0), 100..=100);
        assert_eq!(minutes(now, 30_000), 100..=100);
        assert_eq!(minutes(now, 30_001), 99..=100);
        assert_eq!(minutes(now, 60_000), 99..=100);
        // A day: 1,441 minutes at most, all still kept.
        let day = minutes(now, i64::MAX);
        assert_eq!(day.clone().count(), 1_441);
        assert!((day.start() + 1) * MINUTE_MS + KEEP_MS > now);
    }

    #[test]
    fn buckets_read_back_and_sum_into_a_summary() {
        let bulk = |t: &str| Value::BulkString(t.as_bytes().to_vec());
        let reply = |pairs: &[(&str, &str)]| {
            Value::Array(pairs.iter().flat_map(|(f, v)| [bulk(f), bulk(v)]).collect())
        };
        let mut total = Bucket::default();
        let one = reply(&[
            ("logout", "2"),
            ("ms", "3000"),
            ("junk", "1"),
            ("idle", "x"),
        ]);
        total.add(&bucket(1, one).unwrap());
        let two = reply(&[
            ("limit", "1"),
            ("logout", "1"),
            ("untimed", "1"),
            ("ms", "1000"),
        ]);
        total.add(&bucket(2, two).unwrap());
        total.add(&bucket(3, Value::Nil).unwrap());
        assert_eq!(
            total.summary(),
            Summary {
                sessions: 4,
                average_duration_ms: 4_000.0 / 3.0,
                by_reason: vec![(Reason::Logout, 3), (Reason::Limit, 1)],
            }
        );
        assert_eq!(Bucket::default().summary().average_duration_ms, 0.0);
        // Every reason reads back, under the name events give it.
        let every: Vec<(&str, &str)> = Reason::ALL.iter().map(|r| (r.as_str(), "1")).collect();
        let read = bucket(5, reply(&every)).unwrap().summary();
        assert_eq!(read.by_reason, Reason::ALL.map(|r| (r, 1)).to_vec());
        let wrong = redis::parse_redis_value(b"-WRONGTYPE Operation\r\n").unwrap();
        let err = bucket(4, wrong).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Reply);
        assert!(err.message.contains("minute 4"), "{}", err.message);
    }
}
