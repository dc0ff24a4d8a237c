//! What a key holds: a string, a hash or a sorted set.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// Keys and members, shared by the structures that index them (a key sits
/// in the key table, the expiry order and the scan order).
pub type Bytes = Arc<[u8]>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Str,
    Hash,
    Zset,
}

impl Kind {
    /// The name TYPE and SCAN's TYPE filter use.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Str => "string",
            Kind::Hash => "hash",
            Kind::Zset => "zset",
        }
    }
}

#[derive(Debug, Clone)]
pub enum Data {
    Str(Vec<u8>),
    Hash(Hash),
    Zset(Zset),
}

impl Data {
    pub fn kind(&self) -> Kind {
        match self {
            Data::Str(_) => Kind::Str,
            Data::Hash(_) => Kind::Hash,
            Data::Zset(_) => Kind::Zset,
        }
    }

    /// Bytes of what it holds: value, fields and values, members and scores.
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn size(&self) -> usize {
        match self {
            Data::Str(v) => v.len(),
            Data::Hash(h) => h.iter().map(|(f, v)| f.len() + v.len()).sum(),
            Data::Zset(z) => z
                .starting_at(f64::NEG_INFINITY)
                .map(|(_, m)| m.len() + 8)
                .sum(),
        }
    }
}

/// Field/value pairs: the store's hashes are the shards of the
/// all-sessions index, a field per session (one shard can hold every
/// session, under a prefix with its own hash tag).
#[derive(Debug, Clone, Default)]
pub struct Hash(HashMap<Box<[u8]>, Vec<u8>>);

impl Hash {
    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        self.0.get(field).map(Vec::as_slice)
    }

    /// Sets a field; true when it is new.
    pub fn set(&mut self, field: &[u8], value: &[u8]) -> bool {
        match self.0.get_mut(field) {
            Some(v) => {
                v.clear();
                v.extend_from_slice(value);
                false
            }
            None => {
                self.0.insert(field.into(), value.to_vec());
                true
            }
        }
    }

    /// Removes a field; true when it was there.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        self.0.remove(field).is_some()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every field and value, in no particular order (as Redis's large
    /// hashes).
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.0.iter().map(|(f, v)| (&**f, v.as_slice()))
    }
}

/// A score in a total order (scores are never NaN: every way in refuses
/// it), with -0 equal to 0 as in C.
#[derive(Debug, Clone, Copy)]
pub struct Score(pub f64);

impl PartialEq for Score {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.partial_cmp(&other.0).unwrap_or(Ordering::Equal)
    }
}

/// Up to this many members, none longer than `SMALL_MEMBER` bytes, a
/// sorted set is one sorted vector: per-user indexes hold a few sessions
/// each, and a vector of a few costs a fraction of a hash table and a tree.
/// These are Redis's listpack limits, and the form is observable: a small
/// set keeps a -0 score as 0, as Redis's listpack does.
const SMALL: usize = 128;
const SMALL_MEMBER: usize = 64;

/// Members ordered by (score, member bytes), as Redis orders them.
#[derive(Debug, Clone)]
pub enum Zset {
    Small(Vec<(Score, Bytes)>),
    Large(Box<Large>),
}

#[derive(Debug, Clone, Default)]
pub struct Large {
    scores: HashMap<Bytes, f64>,
    order: BTreeSet<(Score, Bytes)>,
}

impl Zset {
    /// A new set in the form Redis 7.0's ZADD creates: large only for a
    /// first member too long for the small form.
    pub fn new(first_len: usize) -> Zset {
        if first_len > SMALL_MEMBER {
            Zset::Large(Box::default())
        } else {
            Zset::Small(Vec::new())
        }
    }

    /// A set read back whole, in the form Redis gives a loaded one.
    pub fn loaded(members: Vec<(Vec<u8>, f64)>) -> Zset {
        let longest = members.iter().map(|(m, _)| m.len()).max().unwrap_or(0);
        let mut z = if members.len() > SMALL || longest > SMALL_MEMBER {
            Zset::Large(Box::default())
        } else {
            Zset::Small(Vec::new())
        };
        for (member, score) in members {
            z.insert(&member, score);
        }
        z
    }

    pub fn len(&self) -> usize {
        match self {
            Zset::Small(v) => v.len(),
            Zset::Large(l) => l.scores.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        match self {
            Zset::Small(v) => v.iter().find(|(_, m)| &**m == member).map(|(s, _)| s.0),
            Zset::Large(l) => l.scores.get(member).copied(),
        }
    }

    /// Adds a member or moves it to a new score; a new member that does
    /// not fit the small form turns the set into the large one for good.
    pub fn insert(&mut self, member: &[u8], score: f64) {
        let existed = self.remove(member).is_some();
        if let Zset::Small(v) = self {
            if (!existed && v.len() >= SMALL) || member.len() > SMALL_MEMBER {
                let mut large = Large::default();
                for (s, m) in v.drain(..) {
                    large.scores.insert(m.clone(), s.0);
                    large.order.insert((s, m));
                }
                *self = Zset::Large(Box::new(large));
            }
        }
        match self {
            Zset::Small(v) => {
                // `score == 0.0` holds for -0 too: stored as 0.
                let score = if score == 0.0 { 0.0 } else { score };
                let entry = (Score(score), Bytes::from(member));
                let at = v.partition_point(|e| *e < entry);
                v.insert(at, entry);
            }
            Zset::Large(l) => {
                let member = Bytes::from(member);
                l.scores.insert(member.clone(), score);
                l.order.insert((Score(score), member));
            }
        }
    }

    /// Removes a member; its score if it was there.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        match self {
            Zset::Small(v) => {
                let at = v.iter().position(|(_, m)| &**m == member)?;
                Some(v.remove(at).0 .0)
            }
            Zset::Large(l) => {
                let (member, score) = l.scores.remove_entry(member)?;
                l.order.remove(&(Score(score), member));
                Some(score)
            }
        }
    }

    /// Members in order, from the first whose score is at least `min`.
    pub fn starting_at(&self, min: f64) -> Box<dyn Iterator<Item = (f64, &[u8])> + '_> {
        match self {
            Zset::Small(v) => {
                let at = v.partition_point(|(s, _)| s.0 < min);
                Box::new(v[at..].iter().map(|(s, m)| (s.0, &**m)))
            }
            Zset::Large(l) => {
                let start = (Score(min), Bytes::from(&[][..]));
                Box::new(l.order.range(start..).map(|(s, m)| (s.0, &**m)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(z: &Zset, min: f64) -> Vec<(f64, Vec<u8>)> {
        z.starting_at(min).map(|(s, m)| (s, m.to_vec())).collect()
    }

    #[test]
    fn sorted_sets_order_by_score_then_member_in_both_forms() {
        let mut small = Zset::new(2);
        let mut large = Zset::new(2);
        for i in 0..SMALL + 10 {
            large.insert(format!("m{i}").as_bytes(), (i % 7) as f64);
        }
        assert!(matches!(large, Zset::Large(_)));
        for i in 0..10 {
            small.insert(format!("m{i}").as_bytes(), (i % 7) as f64);
        }
        for z in [&mut small, &mut large] {
            z.insert(b"m3", -0.0);
            z.insert(b"b", 0.0);
            let all = members(z, f64::NEG_INFINITY);
            let mut sorted = all.clone();
            sorted.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap().then(a.1.cmp(&b.1)));
            assert_eq!(all, sorted);
            let negative = matches!(z, Zset::Large(_));
            assert_eq!(z.score(b"m3").map(f64::is_sign_negative), Some(negative));
            assert_eq!(z.remove(b"m3"), Some(0.0));
            assert_eq!(z.remove(b"m3"), None);
            assert!(members(z, 3.0).iter().all(|(s, _)| *s >= 3.0));
        }
    }

    #[test]
    fn the_form_follows_redis_limits() {
        assert!(matches!(Zset::new(65), Zset::Large(_)));
        let mut z = Zset::new(1);
        z.insert(&[b'x'; 65], 1.0);
        assert!(matches!(z, Zset::Large(_)));
        let z = Zset::loaded(vec![(b"a".to_vec(), -0.0)]);
        assert!(matches!(z, Zset::Small(_)));
        let many = (0..=SMALL)
            .map(|i| (format!("{i}").into_bytes(), -0.0))
            .collect();
        let z = Zset::loaded(many);
        assert!(matches!(z, Zset::Large(_)));
        assert_eq!(z.score(b"0").map(f64::is_sign_negative), Some(true));
    }

    #[test]
    fn hashes_replace_fields() {
        let mut h = Hash::default();
        assert!(h.set(b"a", b"1"));
        assert!(!h.set(b"a", b"2"));
        assert_eq!(h.get(b"a"), Some(&b"2"[..]));
        assert_eq!(h.get(b"b"), None);
    }
}
