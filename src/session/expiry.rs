//! Expiry arithmetic. Deadlines cross from JS as absolute epoch milliseconds
//! and go to Redis as absolute times (PXAT / PEXPIREAT), so the expiry Redis
//! keeps is exactly the cookie's, with no drift from queueing latency.
//! Idle and absolute timeouts can only bring that deadline earlier.

use std::time::{SystemTime, UNIX_EPOCH};

/// How long a destroyed session stays unwritable: longer than any request
/// that could still be running when the user logged out.
pub const TOMBSTONE_MS: u64 = 60 * 60 * 1000;

/// Headroom added to index scores and to the meta's expiry: an active
/// session is re-indexed about once per this long (see `recent`). Dead
/// entries linger in the index at most this much longer, and reads skip
/// them.
pub const SLACK_MS: i64 = 10 * 60 * 1000;

/// When a key should expire.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Expiry {
    /// Keep the key without a TTL (`disableTTL`).
    Never,
    /// Expire at this Unix time, in milliseconds.
    At(i64),
}

impl Expiry {
    /// The deadline, if there is one.
    pub fn at(self) -> Option<i64> {
        match self {
            Expiry::At(at) => Some(at),
            Expiry::Never => None,
        }
    }

    /// Decodes the wire form: a non-finite number means "no TTL".
    pub fn from_wire(at_ms: f64) -> Self {
        if at_ms.is_finite() {
            // Round up: a session must never expire before its cookie does.
            Expiry::At(at_ms.ceil() as i64)
        } else {
            Expiry::Never
        }
    }

    /// True when the deadline has already passed at `now_ms`: the session
    /// must be deleted rather than written.
    pub fn is_past(self, now_ms: i64) -> bool {
        matches!(self, Expiry::At(at) if at <= now_ms)
    }
}

/// The store's own limits on a session's life, on top of the cookie's.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Lifetime {
    /// Gone this long after the last set or touch.
    pub idle_ms: Option<i64>,
    /// Gone this long after the session was first stored.
    pub absolute_ms: Option<i64>,
}

impl Lifetime {
    pub fn has_limits(self) -> bool {
        self.idle_ms.is_some() || self.absolute_ms.is_some()
    }

    /// How long a session's meta outlives it: with idle or absolute limits,
    /// long enough that a save arriving late finds the session ended rather
    /// than new (as long as a logout's marker lasts), so it cannot restart
    /// the clock. Without limits there is no clock: nothing needs it after
    /// the session (metas have no TTL, so it never ends before it).
    pub fn meta_linger_ms(self) -> i64 {
        if self.has_limits() {
            TOMBSTONE_MS as i64
        } else {
            0
        }
    }

    /// How long after its last access a session that is gone still refuses
    /// a `set` (see `scripts::WRITE`): it lived at most the shorter limit
    /// past that access, then its meta lingers. Without limits there is no
    /// clock to restart.
    pub fn ended_window_ms(self) -> i64 {
        match [self.idle_ms, self.absolute_ms].into_iter().flatten().min() {
            Some(limit) => limit.saturating_add(self.meta_linger_ms()),
            None => 0,
        }
    }

    /// The key's deadline for a session created at `created`, written at
    /// `now_ms` with a cookie ending at `cookie`: the earliest of the
    /// cookie's, now + idle and created + absolute (as `scripts::WRITE`).
    pub fn deadline(self, cookie: i64, created: i64, now_ms: i64) -> i64 {
        let idle = self.idle_ms.map(|ms| now_ms.saturating_add(ms));
        let absolute = self.absolute_ms.map(|ms| created.saturating_add(ms));
        [idle, absolute]
            .into_iter()
            .flatten()
            .fold(cookie, i64::min)
    }

    /// The latest a session written at `now_ms` can live: the cookie's
    /// deadline or the idle one, whichever comes first. The absolute limit
    /// needs the creation time, which only Redis knows; this bound is what
    /// the indexes are scored by.
    pub fn bound(self, expiry: Expiry, now_ms: i64) -> Expiry {
        match (expiry, self.idle_ms) {
            (Expiry::Never, Some(idle)) => Expiry::At(now_ms.saturating_add(idle)),
            (Expiry::At(at), Some(idle)) => Expiry::At(at.min(now_ms.saturating_add(idle))),
            (e, None) => e,
        }
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Reads a PEXPIRETIME reply: -1 (no TTL) and -2 (no key) carry no deadline.
pub fn from_expiretime(reply: i64) -> Option<i64> {
    (reply > 0).then_some(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_rounds_up_and_maps_non_finite_to_never() {
        assert_eq!(Expiry::from_wire(1000.2), Expiry::At(1001));
        assert_eq!(Expiry::from_wire(1000.0), Expiry::At(1000));
        assert_eq!(Expiry::from_wire(f64::NAN), Expiry::Never);
        assert_eq!(Expiry::from_wire(f64::INFINITY), Expiry::Never);
    }

    #[test]
    fn past_deadlines_are_detected_to_the_millisecond() {
        assert!(Expiry::At(100).is_past(100));
        assert!(!Expiry::At(101).is_past(100));
        assert!(!Expiry::Never.is_past(i64::MAX));
    }

    #[test]
    fn expiretime_sentinels_carry_no_deadline() {
        assert_eq!(from_expiretime(-1), None);
        assert_eq!(from_expiretime(-2), None);
        assert_eq!(from_expiretime(1_700_000_000_000), Some(1_700_000_000_000));
    }

    #[test]
    fn the_idle_limit_only_brings_deadlines_earlier() {
        let idle = Lifetime {
            idle_ms: Some(100),
            absolute_ms: None,
        };
        assert_eq!(idle.bound(Expiry::At(50), 0), Expiry::At(50));
        assert_eq!(idle.bound(Expiry::At(500), 0), Expiry::At(100));
        assert_eq!(idle.bound(Expiry::Never, 7), Expiry::At(107));
        assert_eq!(Lifetime::default().bound(Expiry::Never, 7), Expiry::Never);
    }
}
