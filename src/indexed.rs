//! What this process has already written to the indexes, so that touches,
//! the most frequent operation, skip the index script (a Lua call costs
//! Redis ~8 µs; the plain commands of a touch ~1 µs each). Index scores
//! are upper bounds that only rise (ZADD GT), so skipping a write whose
//! bound is below the recorded one never leaves a live session scored as
//! dead; reads verify entries anyway.

use std::collections::HashMap;

use crate::expiry::Expiry;

/// Headroom added to index scores, so an active session is re-indexed about
/// once per this long rather than on every touch. Dead entries linger in
/// the index at most this much longer, and reads skip them.
pub const SLACK_MS: i64 = 10 * 60 * 1000;

/// Most sessions remembered; past it the memory starts over.
const CAPACITY: usize = 50_000;

#[derive(Default)]
pub struct Indexed {
    scores: HashMap<String, (f64, Option<String>)>,
}

fn value(bound: Expiry) -> f64 {
    match bound {
        Expiry::At(at) => at as f64,
        Expiry::Never => f64::INFINITY,
    }
}

impl Indexed {
    /// True when the indexes already hold `sid` for `owner` with a score of
    /// at least `bound`.
    pub fn covers(&self, sid: &str, owner: Option<&str>, bound: Expiry) -> bool {
        matches!(self.scores.get(sid), Some((s, o)) if *s >= value(bound) && o.as_deref() == owner)
    }

    /// Notes that `sid` is being indexed for `bound`; returns the score to
    /// write, with the slack added.
    pub fn record(&mut self, sid: &str, owner: Option<&str>, bound: Expiry) -> f64 {
        if self.scores.len() >= CAPACITY {
            self.scores.clear();
        }
        let score = match bound {
            Expiry::At(at) => at.saturating_add(SLACK_MS) as f64,
            Expiry::Never => f64::INFINITY,
        };
        self.scores
            .insert(sid.to_owned(), (score, owner.map(str::to_owned)));
        score
    }

    pub fn forget(&mut self, sid: &str) {
        self.scores.remove(sid);
    }

    /// After a failed pipeline nothing recorded can be trusted.
    pub fn clear(&mut self) {
        self.scores.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covers_only_the_same_owner_up_to_the_recorded_score() {
        let mut seen = Indexed::default();
        assert_eq!(
            seen.record("a", Some("ada"), Expiry::At(1_000)),
            (1_000 + SLACK_MS) as f64
        );
        assert!(seen.covers("a", Some("ada"), Expiry::At(1_000 + SLACK_MS)));
        assert!(!seen.covers("a", Some("ada"), Expiry::At(1_001 + SLACK_MS)));
        assert!(!seen.covers("a", Some("bob"), Expiry::At(1_000)));
        assert!(!seen.covers("a", None, Expiry::At(1_000)));
        assert!(!seen.covers("a", Some("ada"), Expiry::Never));
        seen.forget("a");
        assert!(!seen.covers("a", Some("ada"), Expiry::At(0)));
        seen.record("n", None, Expiry::Never);
        assert!(seen.covers("n", None, Expiry::Never));
    }
}
