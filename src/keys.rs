//! Key layout. Session keys are `prefix + sid`, exactly as connect-redis
//! writes them, so either store can read the other's sessions.

#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: impl Into<String>) -> Self {
        Keys {
            prefix: prefix.into(),
        }
    }

    pub fn session(&self, sid: &str) -> String {
        let mut key = String::with_capacity(self.prefix.len() + sid.len());
        key.push_str(&self.prefix);
        key.push_str(sid);
        key
    }

    /// The sid of a session key, if the key is one of ours.
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
}

/// The key that marks a session as destroyed. Its hash tag is the whole
/// session key, so on a cluster it lives in the session key's slot.
pub fn tombstone(session_key: &str) -> String {
    format!("{{{session_key}}}:gone")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefix_plus_sid() {
        let keys = Keys::new("sess:");
        assert_eq!(keys.session("abc"), "sess:abc");
        assert_eq!(keys.sid("sess:abc"), Some("abc"));
        assert_eq!(keys.sid("other:abc"), None);
    }

    #[test]
    fn tombstones_share_the_session_key_slot() {
        assert_eq!(tombstone("sess:abc"), "{sess:abc}:gone");
    }

    #[test]
    fn scan_pattern_escapes_glob_characters() {
        assert_eq!(Keys::new("sess:").scan_pattern(), "sess:*");
        assert_eq!(
            Keys::new("a*b?[c]\\").scan_pattern(),
            "a\\*b\\?\\[c\\]\\\\*"
        );
    }
}
