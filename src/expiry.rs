//! Expiry arithmetic. Deadlines cross from JS as absolute epoch milliseconds
//! and go to Redis as absolute times (PXAT / PEXPIREAT), so the expiry Redis
//! keeps is exactly the cookie's, with no drift from queueing latency, and
//! PEXPIRETIME gives it back to the millisecond.

use std::time::{SystemTime, UNIX_EPOCH};

/// When a key should expire.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Expiry {
    /// Keep the key without a TTL (`disableTTL`).
    Never,
    /// Expire at this Unix time, in milliseconds.
    At(i64),
}

impl Expiry {
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
}
