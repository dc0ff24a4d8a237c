//! What this process wrote recently beside each session (its index entry
//! and its meta), so that touches, the most frequent operation, skip
//! writes that would change little: a Lua call costs Redis ~8 µs, a plain
//! command ~1 µs, and connect-redis's touch is a single EXPIRE.
//! - Index scores are upper bounds that only rise (ZADD GT) with slack
//!   added, so skipping a write whose bound is below the recorded score
//!   never leaves a live session scored as dead; reads verify entries.
//! - The meta of a session without an owner (it only feeds the `active`
//!   count of `stats`) is rewritten at most every `META_EVERY_MS` per
//!   session and process; metas have no TTL, so it lives as long as the
//!   session does (`cleanup` removes it after).

use std::collections::{HashMap, HashSet};

use crate::session::expiry::{Expiry, SLACK_MS};

/// The least slack, for sessions shorter than this.
const MIN_SLACK_MS: i64 = 1000;

/// How often a touch rewrites the meta of a session without an owner.
pub const META_EVERY_MS: i64 = 1000;

/// Most sessions remembered; past it the memory starts over.
const CAPACITY: usize = 50_000;

struct Entry {
    owner: Option<String>,
    /// The index score written, or -inf.
    score: f64,
    /// When the meta was written (epoch ms), or `i64::MIN`.
    meta_at: i64,
}

#[derive(Default)]
pub struct Recent {
    entries: HashMap<String, Entry>,
    /// Sessions this process read and found (see `encode::prefer_rewrites`).
    read: HashSet<String>,
    /// Creation times learnt from metas and writes: with it a touch writes
    /// the meta with a plain HSET instead of the write script.
    created: HashMap<String, i64>,
    /// Sealed sessions read here (with `merge`): the SHA1 of the text and
    /// of the stored bytes, so a merge can expect the stored bytes at its
    /// first try (see `ops::Op::Merge`).
    sealed: HashMap<String, (String, String)>,
    /// Redis may evict index entries (an `allkeys-*` policy, or one the
    /// store could not read): nothing written is remembered as covered, so
    /// a lost entry is written again at the session's next write or touch.
    evicting: bool,
}

fn value(bound: Expiry) -> f64 {
    match bound {
        Expiry::At(at) => at as f64,
        Expiry::Never => f64::INFINITY,
    }
}

impl Recent {
    fn entry(&self, sid: &str, owner: Option<&str>) -> Option<&Entry> {
        self.entries
            .get(sid)
            .filter(|e| e.owner.as_deref() == owner)
    }

    /// The entry for `sid` as owned by `owner`; a new owner starts afresh.
    fn entry_mut(&mut self, sid: &str, owner: Option<&str>) -> &mut Entry {
        let fresh = || Entry {
            owner: owner.map(str::to_owned),
            score: f64::NEG_INFINITY,
            meta_at: i64::MIN,
        };
        // Looked up before inserting: most touches find their entry, and
        // `entry()` would allocate the key each time.
        if !self.entries.contains_key(sid) {
            if self.entries.len() >= CAPACITY {
                self.entries.clear();
            }
            self.entries.insert(sid.to_owned(), fresh());
        }
        let entry = self.entries.get_mut(sid).expect("inserted above");
        if entry.owner.as_deref() != owner {
            *entry = fresh();
        }
        entry
    }

    /// True when the indexes already hold `sid` for `owner` with a score of
    /// at least `bound`.
    pub fn covers(&self, sid: &str, owner: Option<&str>, bound: Expiry) -> bool {
        !self.evicting
            && self
                .entry(sid, owner)
                .is_some_and(|e| e.score >= value(bound))
    }

    /// Whether Redis may evict what this remembers as written.
    pub fn set_evicting(&mut self, evicting: bool) {
        self.evicting = evicting;
    }

    /// Notes that `sid` is being indexed for `bound` at `now_ms`; returns
    /// the score to write, with the slack added. A short session gets a
    /// slack as short as its life (a second at least): its index entry, and
    /// so what `cleanup` cleans up after it, then lingers about as long as
    /// the session lived, not ten minutes (churn of short sessions would
    /// pile up that much bookkeeping).
    pub fn record(
        &mut self,
        sid: &str,
        owner: Option<&str>,
        (bound, now_ms): (Expiry, i64),
    ) -> f64 {
        let score = match bound {
            Expiry::At(at) => {
                let slack = SLACK_MS.min(at.saturating_sub(now_ms).max(MIN_SLACK_MS));
                at.saturating_add(slack) as f64
            }
            Expiry::Never => f64::INFINITY,
        };
        self.entry_mut(sid, owner).score = score;
        score
    }

    /// True when this process wrote `sid`'s meta for `owner` less than
    /// `META_EVERY_MS` before `now_ms`.
    pub fn meta_fresh(&self, sid: &str, owner: Option<&str>, now_ms: i64) -> bool {
        self.entry(sid, owner)
            .is_some_and(|e| now_ms.saturating_sub(e.meta_at) < META_EVERY_MS)
    }

    pub fn meta_written(&mut self, sid: &str, owner: Option<&str>, now_ms: i64) {
        self.entry_mut(sid, owner).meta_at = now_ms;
    }

    /// Notes that `sid` was read and found.
    pub fn was_read(&mut self, sid: &str) {
        if self.read.contains(sid) {
            return;
        }
        if self.read.len() >= CAPACITY {
            self.read.clear();
        }
        self.read.insert(sid.to_owned());
    }

    pub fn read_recently(&self, sid: &str) -> bool {
        self.read.contains(sid)
    }

    /// Notes when `sid` was created (a session's creation never changes).
    pub fn learn_created(&mut self, sid: &str, at: i64) {
        if let Some(known) = self.created.get_mut(sid) {
            *known = at;
            return;
        }
        if self.created.len() >= CAPACITY {
            self.created.clear();
        }
        self.created.insert(sid.to_owned(), at);
    }

    pub fn created(&self, sid: &str) -> Option<i64> {
        self.created.get(sid).copied()
    }

    /// Notes what a sealed session read here was stored as.
    pub fn learn_sealed(&mut self, sid: &str, text: String, stored: String) {
        if self.sealed.len() >= CAPACITY && !self.sealed.contains_key(sid) {
            self.sealed.clear();
        }
        self.sealed.insert(sid.to_owned(), (text, stored));
    }

    /// The SHA1 of the stored bytes of `sid` when they were read as the
    /// text whose SHA1 is `text`.
    pub fn stored_digest(&self, sid: &str, text: &str) -> Option<&str> {
        self.sealed
            .get(sid)
            .filter(|(t, _)| t == text)
            .map(|(_, stored)| stored.as_str())
    }

    pub fn forget(&mut self, sid: &str) {
        self.read.remove(sid);
        self.sealed.remove(sid);
        self.entries.remove(sid);
        self.created.remove(sid);
    }

    /// After a failed pipeline nothing recorded can be trusted.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.created.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covers_only_the_same_owner_up_to_the_recorded_score() {
        let mut seen = Recent::default();
        assert_eq!(
            seen.record("a", Some("ada"), (Expiry::At(1_000), 1_000 - SLACK_MS)),
            (1_000 + SLACK_MS) as f64
        );
        assert!(seen.covers("a", Some("ada"), Expiry::At(1_000 + SLACK_MS)));
        assert!(!seen.covers("a", Some("ada"), Expiry::At(1_001 + SLACK_MS)));
        assert!(!seen.covers("a", Some("bob"), Expiry::At(1_000)));
        assert!(!seen.covers("a", None, Expiry::At(1_000)));
        assert!(!seen.covers("a", Some("ada"), Expiry::Never));
        seen.forget("a");
        assert!(!seen.covers("a", Some("ada"), Expiry::At(0)));
        seen.record("n", None, (Expiry::Never, 0));
        assert!(seen.covers("n", None, Expiry::Never));
    }

    #[test]
    fn short_sessions_get_a_short_slack() {
        let mut seen = Recent::default();
        // A 200 ms session: a second of slack, the least.
        assert_eq!(seen.record("s", None, (Expiry::At(1_200), 1_000)), 2_200.0);
        // A 5 minute session: five minutes.
        assert_eq!(seen.record("m", None, (Expiry::At(300_000), 0)), 600_000.0);
        // Past ten minutes, ten minutes.
        assert_eq!(
            seen.record("l", None, (Expiry::At(3_600_000), 0)),
            (3_600_000 + SLACK_MS) as f64
        );
    }

    #[test]
    fn nothing_is_covered_while_redis_may_evict_it() {
        let mut recent = Recent::default();
        recent.record("a", None, (Expiry::At(100), 0));
        assert!(recent.covers("a", None, Expiry::At(100)));
        recent.set_evicting(true);
        assert!(!recent.covers("a", None, Expiry::At(100)));
    }

    #[test]
    fn meta_is_fresh_for_a_while_and_for_its_owner_only() {
        let mut seen = Recent::default();
        assert!(!seen.meta_fresh("a", None, 0));
        seen.meta_written("a", None, 1_000);
        assert!(seen.meta_fresh("a", None, 1_000 + META_EVERY_MS - 1));
        assert!(!seen.meta_fresh("a", None, 1_000 + META_EVERY_MS));
        assert!(!seen.meta_fresh("a", Some("ada"), 1_001));
        // A new owner forgets what was written for the old one.
        seen.record("a", Some("ada"), (Expiry::At(5), 0));
        assert!(!seen.meta_fresh("a", Some("ada"), 1_001));
        assert!(!seen.meta_fresh("a", None, 1_001));
    }
}
