//! Key layout. Session keys are `prefix + sid`, exactly as connect-redis
//! writes them, so either store can read the other's sessions. Every other
//! key shares a cluster slot with what it describes, through hash tags.

#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
    /// Hash-tagged base of the index keys: all of them share one slot, so
    /// each index update is one single-slot script.
    index: String,
    /// The all-sessions index, named in most operations.
    all: String,
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
        // Index keys must never read as `prefix + sid`. Sids never hold
        // control characters (the JS layer refuses them), so `\u{1}` keeps
        // them apart where `{prefix}` cannot.
        let index = match hash_tag(&prefix) {
            Some(_) => format!("{prefix}\u{1}"),
            None if prefix.is_empty() || prefix.contains(['{', '}']) => {
                "{redis-session-store}\u{1}".into()
            }
            None => format!("{{{prefix}}}"),
        };
        let all = format!("{index}:all");
        Keys { prefix, index, all }
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

    /// Every session, scored by an upper bound of its expiry.
    pub fn all_index(&self) -> &str {
        &self.all
    }

    /// One user's sessions, scored by an upper bound of their expiry.
    pub fn user_index(&self, user: &str) -> String {
        format!("{}:user:{user}", self.index)
    }
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
    let mut crc: u16 = 0;
    for &byte in tagged.unwrap_or(key) {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % SLOTS as u16
}

/// Per-session bookkeeping (created, last access, cookie expiry, owner),
/// beside the session so one script updates both.
pub fn meta(session_key: &str) -> String {
    beside(session_key, ":meta")
}

/// The key that marks a session as destroyed, in the session key's slot.
pub fn tombstone(session_key: &str) -> String {
    beside(session_key, ":gone")
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(slot(meta("sess:abc").as_bytes()), slot(b"sess:abc"));
    }

    #[test]
    fn companions_share_the_session_key_slot() {
        assert_eq!(tombstone("sess:abc"), "{sess:abc}:gone");
        assert_eq!(meta("sess:abc"), "{sess:abc}:meta");
        // An existing tag already decides the slot.
        assert_eq!(meta("{app}sess:abc"), "{app}sess:abc:meta");
        assert_eq!(hash_tag(&meta("sess:a{b")), Some("sess:a{b"));
        assert_eq!(hash_tag("{}x"), None);
    }

    #[test]
    fn index_keys_share_one_slot_apart_from_sessions() {
        let keys = Keys::new("sess:");
        assert_eq!(keys.all_index(), "{sess:}:all");
        assert_eq!(keys.user_index("ada"), "{sess:}:user:ada");
        assert_eq!(hash_tag(&keys.user_index("{x}")), Some("sess:"));
        let tagged = Keys::new("{app}:s:");
        assert_eq!(hash_tag(tagged.all_index()), Some("app"));
        assert_eq!(tagged.all_index(), "{app}:s:\u{1}:all");
        assert_eq!(
            hash_tag(Keys::new("").all_index()),
            Some("redis-session-store")
        );
    }
}
