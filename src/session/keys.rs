//! Key layout. Session keys are `prefix + sid`, exactly as connect-redis
//! writes them, so either store can read the other's sessions. Every other
//! key shares a cluster slot with what it describes, through hash tags.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

/// How messages name a session: by its handle, the same one
/// `listUserSessions` lists and `lib/devices.js` computes (SHA-256 of this
/// label, the prefix and the sid; 128 bits, base64url). Never the key: a
/// session id is a bearer secret, and error messages end up in logs. The
/// same handle everywhere lets an operator correlate messages and pages.
pub fn named(key: &str) -> String {
    format!("session {}", handle(key))
}

const HANDLE_LABEL: &str = "redis-session-store handle\0";

/// The handle of the session stored at `key` (prefix + sid).
pub fn handle(key: &str) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(HANDLE_LABEL.as_bytes());
    ctx.update(key.as_bytes());
    base64url(&ctx.finish().as_ref()[..16])
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len() * 4 / 3 + 2);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
    /// CRC16 of the prefix, where a session's slot hashes the whole key
    /// (no `{` in the prefix): a slot then continues from it.
    prefix_crc: Option<u16>,
    shards: Arc<Shards>,
}

/// How the all-sessions index is split into shards, one per cluster slot,
/// each in its slot: its hash tag is `prefix + "\u{1}"` and a short text
/// found for that slot, so a Redis ACL's `~{prefix*` pattern covers it; or
/// one shard when the prefix has its own hash tag (every session is then
/// in that slot).
#[derive(Debug)]
enum Shards {
    Tagged,
    /// Per slot, the number whose base-36 text completes the hash tag
    /// after `stem` (the prefix and `\u{1}`, or nothing for a prefix
    /// holding a `}`, which would end the tag early).
    PerSlot {
        stem: String,
        tags: Arc<[u32]>,
    },
}

/// The part of a key Redis Cluster hashes: the first `{...}` with something
/// inside, if there is one.
fn hash_tag(key: &str) -> Option<&str> {
    let open = key.find('{')?;
    let close = key[open + 1..].find('}')?;
    (close > 0).then(|| &key[open + 1..open + 1 + close])
}

/// A key that lands in the same cluster slot as `key`. Appending keeps an
/// existing hash tag; otherwise the whole key becomes the tag.
fn beside(key: &str, suffix: &str) -> String {
    if hash_tag(key).is_some() || key.contains('}') {
        // A stray `}` cannot be tagged; such keys only work on one node.
        format!("{key}{suffix}")
    } else {
        format!("{{{key}}}{suffix}")
    }
}

impl Keys {
    pub fn new(prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        let shards = if hash_tag(&prefix).is_some() {
            Shards::Tagged
        } else {
            let stem = if prefix.contains('}') {
                String::new()
            } else {
                format!("{prefix}\u{1}")
            };
            let tags = slot_tags(&stem);
            Shards::PerSlot { stem, tags }
        };
        Keys {
            prefix_crc: (!prefix.contains('{')).then(|| crc16(0, prefix.as_bytes())),
            prefix,
            shards: Arc::new(shards),
        }
    }

    pub fn session(&self, sid: &str) -> String {
        let mut key = String::with_capacity(self.prefix.len() + sid.len());
        key.push_str(&self.prefix);
        key.push_str(sid);
        key
    }

    /// The sid of a key under this prefix.
    pub fn sid<'a>(&self, key: &'a str) -> Option<&'a str> {
        key.strip_prefix(self.prefix.as_str())
    }

    /// A SCAN pattern matching exactly this prefix: glob characters in the
    /// prefix are escaped so `sess[1]:` does not match `sess1:`.
    pub fn scan_pattern(&self) -> String {
        let mut pattern = String::with_capacity(self.prefix.len() * 2 + 1);
        for c in self.prefix.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('*');
        pattern
    }

    /// The shard of the all-sessions index that lists `sid`, in the
    /// session's own slot: no key or slot holds every session, and each
    /// shard stays in Redis's compact encoding up to 128 sessions (about 2.1M
    /// in all with the default `hash-max-listpack-entries`). Every session
    /// is listed, scored by an upper bound of its expiry. Index keys never
    /// read as `prefix + sid`: they start with `{`, or hold `\u{1}`, which
    /// sids never do (the JS layer refuses control characters).
    pub fn shard(&self, sid: &str) -> String {
        self.shard_of(self.session_slot(sid))
    }

    /// The slot of `sid`'s session key, without making the key when
    /// neither part has a `{` (then the whole key is hashed).
    fn session_slot(&self, sid: &str) -> u16 {
        match self.prefix_crc {
            Some(crc) if !sid.contains('{') => crc16(crc, sid.as_bytes()) % SLOTS as u16,
            _ => slot(self.session(sid).as_bytes()),
        }
    }

    fn shard_of(&self, slot: u16) -> String {
        self.in_slot(slot, "all")
    }

    /// The hash of device data (`captureDevice`) for the sessions of
    /// `sid`'s shard, in the same slot, field = sid: beside the session,
    /// never in its value, so a `get` reads no more. Like the shards, it
    /// never reads as `prefix + sid`.
    pub fn devices(&self, sid: &str) -> String {
        self.in_slot(self.session_slot(sid), "devices")
    }

    /// The device hash in the slot of `shard` (one of `shards()`).
    pub fn devices_beside(&self, shard: &str) -> String {
        self.in_slot(slot(shard.as_bytes()), "devices")
    }

    /// The key `name` of the store's own keys in cluster slot `slot`.
    fn in_slot(&self, slot: u16, name: &str) -> String {
        // Pushed, not format!ted: this runs for most writes and touches.
        let mut key = String::with_capacity(self.prefix.len() * 2 + name.len() + 12);
        match &*self.shards {
            Shards::Tagged => {
                key.push_str(&self.prefix);
                key.push('\u{1}');
            }
            Shards::PerSlot { stem, tags } if stem.is_empty() => {
                key.push('{');
                push_base36(&mut key, tags[slot as usize].into());
                key.push('}');
                key.push_str(&self.prefix);
                key.push('\u{1}');
            }
            Shards::PerSlot { stem, tags } => {
                key.push('{');
                key.push_str(stem);
                push_base36(&mut key, tags[slot as usize].into());
                key.push('}');
            }
        }
        key.push_str(name);
        key
    }

    /// Every shard of the all-sessions index.
    pub fn shards(&self) -> Vec<String> {
        self.shards_in(0..self.shard_count())
    }

    /// How many shards the all-sessions index has.
    pub fn shard_count(&self) -> usize {
        match &*self.shards {
            Shards::Tagged => 1,
            Shards::PerSlot { .. } => SLOTS,
        }
    }

    /// The shards numbered `range` (within `shard_count()`), for walks that
    /// take a few at a time.
    pub fn shards_in(&self, range: std::ops::Range<usize>) -> Vec<String> {
        range.map(|s| self.shard_of(s as u16)).collect()
    }

    /// A small hash, with a short TTL, while some instance listens for
    /// lifecycle events, so the others leave the claiming of ends to it (see
    /// `store::cleanup`); never read as `prefix + sid`.
    pub fn listening(&self) -> String {
        match &*self.shards {
            Shards::Tagged => format!("{}\u{1}listening", self.prefix),
            Shards::PerSlot { .. } => format!("{{{}\u{1}listening}}", self.prefix),
        }
    }

    /// The numbers of the sessions that ended in one minute (`minute`:
    /// epoch ms / 60,000; see `ended`). Every minute's hash shares one slot
    /// of its own (the prefix's, if it has a tag), so `stats` reads a day
    /// of them from one node in one pipeline; never read as `prefix + sid`.
    pub fn ended(&self, minute: i64) -> String {
        match &*self.shards {
            Shards::Tagged => format!("{}\u{1}ended:{minute}", self.prefix),
            Shards::PerSlot { .. } => format!("{{{}\u{1}ended}}:{minute}", self.prefix),
        }
    }

    /// One user's sessions, scored by an upper bound of their expiry; each
    /// user's index in a slot of its own (the prefix's, if it has a tag).
    pub fn user_index(&self, user: &str) -> String {
        match &*self.shards {
            Shards::Tagged => format!("{}\u{1}user:{user}", self.prefix),
            Shards::PerSlot { .. } => format!("{{{}\u{1}user:{user}}}", self.prefix),
        }
    }
}

/// For each slot, the least number whose base-36 text after `stem` hashes
/// to that slot. A few hundred thousand tries cover every slot (about 5 ms,
/// once per prefix and process).
fn slot_tags(stem: &str) -> Arc<[u32]> {
    static KNOWN: LazyLock<Mutex<HashMap<String, Arc<[u32]>>>> = LazyLock::new(Default::default);
    if let Some(tags) = KNOWN.lock().unwrap().get(stem) {
        return tags.clone();
    }
    let start = crc16(0, stem.as_bytes());
    let mut tags = vec![u32::MAX; SLOTS];
    let mut missing = SLOTS;
    let mut n = 0u32;
    while missing > 0 {
        let s = crc16(start, base36(n).as_bytes()) as usize % SLOTS;
        if tags[s] == u32::MAX {
            tags[s] = n;
            missing -= 1;
        }
        n += 1;
    }
    let tags: Arc<[u32]> = tags.into();
    KNOWN.lock().unwrap().insert(stem.to_owned(), tags.clone());
    tags
}

/// `n` in base 36, lowercase: short text for hash tags and meta times.
pub fn base36(n: impl Into<u64>) -> String {
    let mut out = String::with_capacity(8);
    push_base36(&mut out, n.into());
    out
}

pub fn push_base36(out: &mut String, mut n: u64) {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    // u64::MAX has 13 digits in base 36.
    let mut digits = [0u8; 13];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = DIGITS[(n % 36) as usize];
        n /= 36;
        if n == 0 {
            break;
        }
    }
    // ASCII digits: one copy, where pushing chars encodes each.
    out.push_str(std::str::from_utf8(&digits[at..]).unwrap_or_default());
}

/// Hash slots of a Redis Cluster.
pub const SLOTS: usize = 16384;

/// The cluster slot of a key: CRC16 (XMODEM) of its hash tag, if it has
/// a non-empty `{...}`, else of the whole key.
pub fn slot(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        let close = rest.iter().position(|&b| b == b'}')?;
        (close > 0).then(|| &rest[..close])
    });
    crc16(0, tagged.unwrap_or(key)) % SLOTS as u16
}

/// CRC16 (XMODEM) of `bytes`, continuing from `crc`; a byte at a time
/// from a table (every touch of an owned session computes a slot).
fn crc16(mut crc: u16, bytes: &[u8]) -> u16 {
    for &byte in bytes {
        crc = (crc << 8) ^ CRC16_TABLE[usize::from((crc >> 8) as u8 ^ byte)];
    }
    crc
}

const CRC16_TABLE: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// A logout's tombstone, in the session key's slot: it lasts as long as the
/// logout marker (see `scripts::DESTROY`).
pub fn tombstone(session_key: &str) -> String {
    beside(session_key, ":gone")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_redis_clusters() {
        // XMODEM's check value, and slots `CLUSTER KEYSLOT` gives.
        assert_eq!(crc16(0, b"123456789"), 0x31c3);
        assert_eq!(slot(b"somekey"), 11058);
        assert_eq!(slot(b"foo{hash_tag}"), 2515);
    }

    #[test]
    fn store_keys_read_as_tag_prefix_and_name() {
        let n = |k: &Keys, s: u16| match &*k.shards {
            Shards::PerSlot { tags, .. } => base36(tags[s as usize]),
            Shards::Tagged => String::new(),
        };
        let plain = Keys::new("sess:");
        for s in [0u16, 1, 9_999, 16_383] {
            assert_eq!(
                plain.in_slot(s, "all"),
                format!("{{sess:\u{1}{}}}all", n(&plain, s))
            );
        }
        let odd = Keys::new("a}b:");
        assert_eq!(
            odd.in_slot(7, "devices"),
            format!("{{{}}}a}}b:\u{1}devices", n(&odd, 7))
        );
        assert_eq!(Keys::new("{app}s:").in_slot(3, "all"), "{app}s:\u{1}all");
        assert_eq!(base36(0u32), "0");
        for sid in ["abc", "x{y}z", "{", "}{t}"] {
            for keys in [&plain, &odd, &Keys::new("p{q:")] {
                assert_eq!(
                    keys.session_slot(sid),
                    slot(keys.session(sid).as_bytes()),
                    "{sid}"
                );
            }
        }
        assert_eq!(base36(u64::MAX), "3w5e11264sgsf");
    }

    #[test]
    fn keys_are_prefix_plus_sid() {
        let keys = Keys::new("sess:");
        assert_eq!(keys.session("abc"), "sess:abc");
    }

    #[test]
    fn scan_pattern_escapes_glob_characters() {
        assert_eq!(Keys::new("sess:").scan_pattern(), "sess:*");
        assert_eq!(
            Keys::new("a*b?[c]\\").scan_pattern(),
            "a\\*b\\?\\[c\\]\\\\*"
        );
        assert_eq!(Keys::new("sess:").sid("sess:abc"), Some("abc"));
        assert_eq!(Keys::new("sess:").sid("other:abc"), None);
    }

    #[test]
    fn slots_are_crc16_of_the_hash_tag() {
        // Values from the cluster specification and CLUSTER KEYSLOT.
        assert_eq!(slot(b"123456789"), 0x31C3);
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"{user1000}.following"), slot(b"user1000"));
        assert_ne!(slot(b"{}foo"), slot(b"foo"));
        assert_eq!(slot(tombstone("sess:abc").as_bytes()), slot(b"sess:abc"));
    }

    #[test]
    fn companions_share_the_session_key_slot() {
        assert_eq!(tombstone("sess:abc"), "{sess:abc}:gone");
        // An existing tag already decides the slot.
        assert_eq!(tombstone("{app}sess:abc"), "{app}sess:abc:gone");
        assert_eq!(hash_tag(&tombstone("sess:a{b")), Some("sess:a{b"));
        assert_eq!(hash_tag("{}x"), None);
    }

    #[test]
    fn each_shard_is_in_its_sessions_slot() {
        let keys = Keys::new("sess:");
        for sid in ["abc", "x", "0123456789abcdefghijklmnopqrstuv"] {
            let shard = keys.shard(sid);
            assert_eq!(slot(shard.as_bytes()), slot(keys.session(sid).as_bytes()));
            assert!(keys.sid(&shard).is_none(), "{shard:?} reads as a session");
        }
        let shards = keys.shards();
        assert_eq!(shards.len(), SLOTS);
        assert!(shards
            .iter()
            .enumerate()
            .all(|(s, k)| slot(k.as_bytes()) as usize == s));
        // Within `~{sess:*`, the pattern a Redis ACL user needs anyway.
        assert!(keys.shard("abc").starts_with("{sess:\u{1}"));
        assert!(keys.shard("abc").ends_with("}all"));
        // A prefix holding a `}` cannot hold the tag: the tag comes first.
        let odd = Keys::new("a}b:");
        assert_eq!(slot(odd.shard("x").as_bytes()), slot(b"a}b:x"));
        assert!(odd.shard("x").ends_with("}a}b:\u{1}all"));
    }

    #[test]
    fn device_hashes_share_the_shards_slot_and_never_read_as_sessions() {
        for keys in [Keys::new("sess:"), Keys::new("{app}:s:"), Keys::new("a}b:")] {
            for sid in ["abc", "x", "0123456789abcdefghijklmnopqrstuv"] {
                let devices = keys.devices(sid);
                assert_eq!(slot(devices.as_bytes()), slot(keys.shard(sid).as_bytes()));
                assert_ne!(devices, keys.shard(sid));
                assert_eq!(keys.devices_beside(&keys.shard(sid)), devices);
                // A sid never holds a control character (JS refuses them).
                let read = keys.sid(&devices);
                assert!(
                    read.is_none_or(|s| s.contains('\u{1}')),
                    "{devices:?} reads as a session"
                );
            }
        }
        assert!(Keys::new("sess:").devices("abc").ends_with("}devices"));
    }

    #[test]
    fn a_tagged_prefix_has_one_shard_in_its_slot() {
        let keys = Keys::new("{app}:s:");
        assert_eq!(keys.shards(), vec![keys.shard("abc")]);
        assert_eq!(keys.shard("x"), keys.shard("y"));
        assert_eq!(slot(keys.shard("x").as_bytes()), slot(b"app"));
        assert_eq!(keys.shard("x"), "{app}:s:\u{1}all");
        assert_eq!(keys.user_index("ada"), "{app}:s:\u{1}user:ada");
        assert_eq!(hash_tag(&keys.user_index("ada")), Some("app"));
    }

    #[test]
    fn ended_buckets_share_a_slot_and_never_read_as_sessions() {
        let keys = Keys::new("sess:");
        assert_eq!(keys.ended(29_000_000), "{sess:\u{1}ended}:29000000");
        assert_eq!(
            slot(keys.ended(1).as_bytes()),
            slot(keys.ended(29_000_000).as_bytes())
        );
        assert!(keys.sid(&keys.ended(1)).is_none());
        let tagged = Keys::new("{app}:s:");
        assert_eq!(tagged.ended(7), "{app}:s:\u{1}ended:7");
        assert_eq!(slot(tagged.ended(7).as_bytes()), slot(b"app"));
        assert!(tagged
            .sid(&tagged.ended(7))
            .is_some_and(|s| s.contains('\u{1}')));
    }

    #[test]
    fn user_indexes_spread_over_slots() {
        let keys = Keys::new("sess:");
        assert_eq!(keys.user_index("ada"), "{sess:\u{1}user:ada}");
        assert_ne!(
            slot(keys.user_index("ada").as_bytes()),
            slot(keys.user_index("bob").as_bytes())
        );
        assert!(Keys::new("").user_index("x").starts_with('{'));
    }

    #[test]
    fn handles_are_the_js_face_s_and_hide_the_key() {
        // node -e "console.log(require('crypto').createHash('sha256')
        //   .update('redis-session-store handle\\0sess:abc').digest()
        //   .subarray(0, 16).toString('base64url'))"
        assert_eq!(handle("sess:abc"), "LQihpv--vpAEODLhmx5yWw");
        assert_eq!(handle("sess:abc").len(), 22);
        assert!(!named("sess:abc").contains("abc"));
    }
}
