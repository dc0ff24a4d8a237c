//! The keys, their expiries in time order (so `sweep` costs what expired)
//! and a fixed scan order (so a SCAN cursor survives writes between
//! calls); for a file engine, also the log of what changed since the last
//! commit, field by field and member by member.

use std::collections::{BTreeSet, HashMap};
use std::hash::{DefaultHasher, Hasher};

use super::data::{Bytes, Data, Hash, Kind, Zset};

#[derive(Debug)]
pub struct Entry {
    pub data: Data,
    /// Epoch ms; the key is gone once the clock is past it (Redis: now > at).
    pub expires: Option<i64>,
}

impl Entry {
    fn live(&self, now: i64) -> bool {
        self.expires.is_none_or(|at| now <= at)
    }
}

/// One change to write to the file, in the order it happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// The key is now this string.
    Str(Bytes, Vec<u8>),
    /// A field's new value, or None: removed.
    Field(Bytes, Box<[u8]>, Option<Vec<u8>>),
    /// A member's new score, or None: removed.
    Member(Bytes, Bytes, Option<f64>),
    Expiry(Bytes, Option<i64>),
    /// The key and everything it held (rows of that kind) are gone.
    Drop(Bytes, Kind),
}

#[derive(Debug, Default)]
pub struct Keyspace {
    entries: HashMap<Bytes, Entry>,
    expiries: BTreeSet<(i64, Bytes)>,
    /// (place, key): SCAN walks keys by place, a hash of the key.
    order: BTreeSet<(u64, Bytes)>,
    log: Option<Vec<Change>>,
}

/// Where a key sits in the scan order.
pub fn place(key: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    h.write(key);
    h.finish()
}

impl Keyspace {
    /// `logged`: record changes for a file (see `log`).
    pub fn new(logged: bool) -> Keyspace {
        Keyspace {
            log: logged.then(Vec::new),
            ..Keyspace::default()
        }
    }

    fn record(&mut self, change: impl FnOnce() -> Change) {
        if let Some(log) = &mut self.log {
            log.push(change());
        }
    }

    /// What changed since the log was last cleared, for one write
    /// transaction.
    pub fn log(&self) -> &[Change] {
        self.log.as_deref().unwrap_or_default()
    }

    pub fn clear_log(&mut self) {
        if let Some(log) = &mut self.log {
            log.clear();
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Keys held, expired ones not swept yet included, and the bytes of
    /// those keys and their data.
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn held(&self) -> (usize, usize) {
        let bytes = self.entries.iter().map(|(k, e)| k.len() + e.data.size());
        (self.entries.len(), bytes.sum())
    }

    /// Every structure is empty (nothing is held for expired keys).
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.expiries.is_empty() && self.order.is_empty()
    }

    /// The key's entry if it exists and has not expired.
    pub fn get(&self, key: &[u8], now: i64) -> Option<&Entry> {
        self.entries.get(key).filter(|e| e.live(now))
    }

    pub fn kind(&self, key: &[u8], now: i64) -> Option<Kind> {
        self.get(key, now).map(|e| e.data.kind())
    }

    /// Drops the key if it has expired, as Redis does before a write
    /// touches it.
    fn purge(&mut self, key: &[u8], now: i64) {
        if self.entries.get(key).is_some_and(|e| !e.live(now)) {
            self.remove_entry(key);
        }
    }

    /// The table's own copy of `key`, to share with the other structures.
    fn shared_key(&self, key: &[u8]) -> Option<Bytes> {
        self.entries.get_key_value(key).map(|(k, _)| k.clone())
    }

    /// Removes a key, expired or not; true if it was there.
    fn remove_entry(&mut self, key: &[u8]) -> bool {
        let Some((key, entry)) = self.entries.remove_entry(key) else {
            return false;
        };
        if let Some(at) = entry.expires {
            self.expiries.remove(&(at, key.clone()));
        }
        self.unlink(key, entry.data.kind());
        true
    }

    /// The rest of removing a key that is out of the table and the expiry
    /// order: the scan order, and the log.
    fn unlink(&mut self, key: Bytes, kind: Kind) {
        self.order.remove(&(place(&key), key.clone()));
        self.record(|| Change::Drop(key, kind));
    }

    /// DEL of one key: true if it existed.
    pub fn delete(&mut self, key: &[u8], now: i64) -> bool {
        self.purge(key, now);
        self.remove_entry(key)
    }

    fn insert_new(&mut self, key: &[u8], data: Data, expires: Option<i64>) -> Bytes {
        let key = Bytes::from(key);
        self.order.insert((place(&key), key.clone()));
        if let Some(at) = expires {
            self.expiries.insert((at, key.clone()));
        }
        self.entries.insert(key.clone(), Entry { data, expires });
        key
    }

    /// Makes the key this string, whatever it held, with this expiry.
    pub fn set_string(&mut self, key: &[u8], value: &[u8], expires: Option<i64>, now: i64) {
        self.purge(key, now);
        let old = self.entries.get(key).map(|e| (e.data.kind(), e.expires));
        let key = match old {
            Some((kind, _)) if kind != Kind::Str => {
                self.remove_entry(key);
                self.insert_new(key, Data::Str(value.to_vec()), None)
            }
            Some(_) => {
                let key = self.shared_key(key).expect("present");
                if let Some(entry) = self.entries.get_mut(&key) {
                    entry.data = Data::Str(value.to_vec());
                }
                key
            }
            None => self.insert_new(key, Data::Str(value.to_vec()), None),
        };
        self.record(|| Change::Str(key.clone(), value.to_vec()));
        self.set_expiry(&key, expires);
    }

    /// Sets or clears the expiry of an existing key; true if it changed.
    pub fn set_expiry(&mut self, key: &[u8], expires: Option<i64>) -> bool {
        let Some(key) = self.shared_key(key) else {
            return false;
        };
        let Some(entry) = self.entries.get_mut(&key) else {
            return false;
        };
        if entry.expires == expires {
            return false;
        }
        if let Some(at) = std::mem::replace(&mut entry.expires, expires) {
            self.expiries.remove(&(at, key.clone()));
        }
        if let Some(at) = expires {
            self.expiries.insert((at, key.clone()));
        }
        self.record(|| Change::Expiry(key, expires));
        true
    }

    /// The live hash at `key`, created empty when absent; Err when the key
    /// holds another kind.
    fn hash_entry(&mut self, key: &[u8], now: i64) -> Result<(Bytes, &mut Hash), Kind> {
        self.purge(key, now);
        if !self.entries.contains_key(key) {
            self.insert_new(key, Data::Hash(Hash::default()), None);
        }
        let key = self.shared_key(key).expect("present");
        match &mut self.entries.get_mut(&key).expect("present").data {
            Data::Hash(h) => Ok((key, h)),
            other => Err(other.kind()),
        }
    }

    /// HSET of one field into a hash the caller has checked (or that is
    /// absent); true if the field is new.
    pub fn hash_set(&mut self, key: &[u8], field: &[u8], value: &[u8], now: i64) -> bool {
        let Ok((key, hash)) = self.hash_entry(key, now) else {
            return false;
        };
        let new = hash.set(field, value);
        self.record(|| Change::Field(key, field.into(), Some(value.to_vec())));
        new
    }

    /// Removes fields from an existing hash; the key goes when it empties
    /// (Redis keeps no empty hashes). Returns how many were there.
    pub fn hash_remove<'f>(
        &mut self,
        key: &[u8],
        fields: impl IntoIterator<Item = &'f [u8]>,
        now: i64,
    ) -> usize {
        if !matches!(self.kind(key, now), Some(Kind::Hash)) {
            return 0;
        }
        let Ok((key, hash)) = self.hash_entry(key, now) else {
            return 0;
        };
        let removed: Vec<Box<[u8]>> = fields
            .into_iter()
            .filter(|f| hash.remove(f))
            .map(Box::from)
            .collect();
        let empty = hash.is_empty();
        let count = removed.len();
        for field in removed {
            self.record(|| Change::Field(key.clone(), field, None));
        }
        if empty {
            self.remove_entry(&key);
        }
        count
    }

    /// The live sorted set at `key` for a write, created when absent in
    /// the form `create` gives; Err when the key holds another kind.
    fn zset_entry(
        &mut self,
        key: &[u8],
        now: i64,
        create: impl FnOnce() -> Zset,
    ) -> Result<(Bytes, &mut Zset), Kind> {
        self.purge(key, now);
        if !self.entries.contains_key(key) {
            self.insert_new(key, Data::Zset(create()), None);
        }
        let key = self.shared_key(key).expect("present");
        match &mut self.entries.get_mut(&key).expect("present").data {
            Data::Zset(z) => Ok((key, z)),
            other => Err(other.kind()),
        }
    }

    /// Adds or moves a member of a sorted set the caller has checked (or
    /// that is absent: then created as ZADD does for this first member).
    pub fn zset_insert(&mut self, key: &[u8], member: &[u8], score: f64, now: i64) {
        let create = || Zset::new(member.len());
        let Ok((key, zset)) = self.zset_entry(key, now, create) else {
            return;
        };
        zset.insert(member, score);
        // The score as kept (a small set keeps -0 as 0, and so does the
        // large one it may turn into), so the file reloads the same.
        let kept = zset.score(member).unwrap_or(score);
        self.record(|| Change::Member(key, member.into(), Some(kept)));
    }

    /// Removes members from an existing sorted set; the key goes when it
    /// empties (Redis keeps no empty sets). Returns how many were there.
    pub fn zset_remove<'m>(
        &mut self,
        key: &[u8],
        members: impl IntoIterator<Item = &'m [u8]>,
        now: i64,
    ) -> usize {
        if !matches!(self.kind(key, now), Some(Kind::Zset)) {
            return 0;
        }
        let Ok((key, zset)) = self.zset_entry(key, now, || Zset::new(0)) else {
            return 0;
        };
        let mut removed = Vec::new();
        for member in members {
            if zset.remove(member).is_some() {
                removed.push(Bytes::from(member));
            }
        }
        let empty = zset.is_empty();
        let count = removed.len();
        for member in removed {
            self.record(|| Change::Member(key.clone(), member, None));
        }
        if empty {
            self.remove_entry(&key);
        }
        count
    }

    /// Drops up to `max` keys that expired before `now`; how many.
    pub fn sweep(&mut self, now: i64, max: usize) -> usize {
        let mut dropped = 0;
        while dropped < max && self.expiries.first().is_some_and(|(at, _)| *at < now) {
            let Some((_, key)) = self.expiries.pop_first() else {
                break;
            };
            if let Some(entry) = self.entries.remove(&key) {
                self.unlink(key, entry.data.kind());
            }
            dropped += 1;
        }
        // A burst that ended leaves a table sized for it: give memory back
        // once a quarter of it is in use.
        if dropped > 0 && self.entries.len() < self.entries.capacity() / 4 {
            self.entries.shrink_to_fit();
        }
        dropped
    }

    /// Keys in scan order from `cursor`: at least `count` places looked at
    /// (whole places: keys sharing one are never split), the live ones
    /// passing `keep`, and the cursor to go on from (0: done).
    pub fn scan(
        &self,
        cursor: u64,
        count: usize,
        now: i64,
        keep: impl Fn(&[u8], Kind) -> bool,
    ) -> (u64, Vec<Bytes>) {
        let mut found = Vec::new();
        let mut last = None;
        let places = self.order.range((cursor, Bytes::from(&[][..]))..);
        for (seen, (at, key)) in places.enumerate() {
            if seen >= count && last != Some(*at) {
                return (*at, found);
            }
            last = Some(*at);
            if let Some(entry) = self.get(key, now) {
                if keep(key, entry.data.kind()) {
                    found.push(key.clone());
                }
            }
        }
        (0, found)
    }

    /// Puts back a key read from the file (no log: it is already there).
    pub fn restore(&mut self, key: &[u8], data: Data, expires: Option<i64>) {
        self.insert_new(key, data, expires);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_keys_are_gone_for_reads_and_writes() {
        let mut ks = Keyspace::new(false);
        ks.set_string(b"k", b"v", Some(100), 0);
        assert!(ks.get(b"k", 100).is_some());
        assert!(ks.get(b"k", 101).is_none());
        // A write after expiry starts from nothing: no WRONGTYPE.
        assert!(ks.hash_set(b"k", b"f", b"v", 101));
        assert_eq!(ks.kind(b"k", 101), Some(Kind::Hash));
        assert_eq!(ks.get(b"k", 101).unwrap().expires, None);
    }

    #[test]
    fn sweep_drops_only_what_expired_up_to_max() {
        let mut ks = Keyspace::new(false);
        for i in 0..10i64 {
            ks.set_string(format!("k{i}").as_bytes(), b"v", Some(i), 0);
        }
        ks.set_string(b"forever", b"v", None, 0);
        assert_eq!(ks.sweep(5, 3), 3);
        assert_eq!(ks.sweep(5, 100), 2);
        assert_eq!(ks.len(), 6);
        assert_eq!(ks.sweep(100, 100), 5);
        assert_eq!(ks.len(), 1);
        assert!(ks.delete(b"forever", 100));
        assert!(ks.is_empty());
    }

    #[test]
    fn scan_returns_every_key_present_throughout() {
        let mut ks = Keyspace::new(false);
        for i in 0..1000 {
            ks.set_string(format!("k{i}").as_bytes(), b"v", None, 0);
        }
        let mut cursor = 0;
        let mut seen = std::collections::HashSet::new();
        let mut round = 0;
        loop {
            let (next, keys) = ks.scan(cursor, 10, 0, |_, _| true);
            seen.extend(keys);
            // Writes between calls: new keys, and keys that go.
            ks.set_string(format!("new{round}").as_bytes(), b"v", None, 0);
            ks.delete(format!("k{}", 999 - round).as_bytes(), 0);
            round += 1;
            if next == 0 {
                break;
            }
            cursor = next;
        }
        for i in 0..(1000 - round) {
            assert!(seen.contains(format!("k{i}").as_bytes()), "k{i} missed");
        }
    }

    #[test]
    fn the_log_holds_each_change_in_order() {
        let mut ks = Keyspace::new(true);
        ks.set_string(b"k", b"v", Some(10), 0);
        ks.zset_insert(b"z", b"m", 1.0, 0);
        ks.zset_remove(b"z", [&b"m"[..]], 0);
        ks.set_string(b"k", b"w", None, 0);
        let key = |k: &[u8]| Bytes::from(k);
        assert_eq!(
            ks.log(),
            [
                Change::Str(key(b"k"), b"v".to_vec()),
                Change::Expiry(key(b"k"), Some(10)),
                Change::Member(key(b"z"), key(b"m"), Some(1.0)),
                Change::Member(key(b"z"), key(b"m"), None),
                Change::Drop(key(b"z"), Kind::Zset),
                Change::Str(key(b"k"), b"w".to_vec()),
                Change::Expiry(key(b"k"), None),
            ]
        );
        ks.clear_log();
        assert!(ks.log().is_empty());
    }

    /// A file reloads a sorted set in the form its size calls for: a -0
    /// that a small set kept as 0 must reach the file as 0, or a set that
    /// grew large since reads back "-0" after a reopen (Redis says "0").
    #[test]
    fn the_log_holds_scores_as_kept() {
        let mut ks = Keyspace::new(true);
        ks.zset_insert(b"z", b"m", -0.0, 0);
        ks.zset_insert(b"z", &[b'x'; 100], 1.0, 0);
        let logged = ks.log().iter().find_map(|c| match c {
            Change::Member(_, m, Some(score)) if &**m == b"m" => Some(*score),
            _ => None,
        });
        assert!(
            logged.is_some_and(|s| s == 0.0 && s.is_sign_positive()),
            "{logged:?}"
        );
    }
}
