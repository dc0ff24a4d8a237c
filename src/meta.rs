//! Per-session bookkeeping kept beside each session key (see `keys::meta`):
//! `created:lastAccess:cookieExpiry:owner`, written by the write script in
//! `scripts.rs`. The session value itself stays exactly what connect-redis
//! writes.

use crate::expiry::Lifetime;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// When the session was first stored (epoch ms).
    pub created: i64,
    /// The last set or touch (epoch ms).
    pub last_access: i64,
    /// The deadline the cookie asked for, before idle/absolute limits; the
    /// truth for `cookie.expires` after a touch.
    pub cookie_expiry: Option<i64>,
    /// Empty when the session has no owner.
    pub owner: String,
}

impl Meta {
    /// The key deadline the write script set from this meta: the earliest of
    /// the cookie's, last access + idle and created + absolute.
    pub fn key_deadline(&self, lifetime: Lifetime) -> Option<i64> {
        [
            self.cookie_expiry,
            lifetime
                .idle_ms
                .map(|ms| self.last_access.saturating_add(ms)),
            lifetime
                .absolute_ms
                .map(|ms| self.created.saturating_add(ms)),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// `cookie.expires` as of the last touch, from whoever made it: this
    /// meta's cookie deadline when the key's expiry is the one this store
    /// set, otherwise (connect-redis touched it: EXPIRE only) the key's.
    pub fn cookie_expiry(
        meta: Option<&Meta>,
        key_deadline: Option<i64>,
        lifetime: Lifetime,
    ) -> Option<i64> {
        match (meta, key_deadline) {
            (Some(m), Some(at)) if m.key_deadline(lifetime) == Some(at) => m.cookie_expiry,
            (_, Some(at)) => Some(at),
            // No TTL, or a Redis without PEXPIRETIME.
            (Some(m), None) => m.cookie_expiry,
            (None, None) => None,
        }
    }

    /// `None` for anything not written by the script (a foreign value).
    pub fn parse(text: &str) -> Option<Meta> {
        let mut parts = text.splitn(4, ':');
        let created = parts.next()?.parse().ok()?;
        let last_access = parts.next()?.parse().ok()?;
        let cookie_expiry = match parts.next()? {
            "" => None,
            at => Some(at.parse().ok()?),
        };
        let owner = parts.next()?.to_owned();
        Some(Meta {
            created,
            last_access,
            cookie_expiry,
            owner,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_the_script_writes_including_colons_in_the_owner() {
        assert_eq!(
            Meta::parse("10:20:30:user:42"),
            Some(Meta {
                created: 10,
                last_access: 20,
                cookie_expiry: Some(30),
                owner: "user:42".into()
            })
        );
        let none = Meta::parse("10:20::").unwrap();
        assert_eq!((none.cookie_expiry, none.owner.as_str()), (None, ""));
    }

    #[test]
    fn a_touch_by_another_store_wins_over_the_meta() {
        let life = Lifetime {
            idle_ms: Some(100),
            absolute_ms: Some(1_000),
        };
        let m = Meta::parse("0:950:2000:u").unwrap();
        // min(2000, 950 + 100, 0 + 1000) = 1000: the key's expiry as set here.
        assert_eq!(m.key_deadline(life), Some(1_000));
        assert_eq!(
            Meta::cookie_expiry(Some(&m), Some(1_000), life),
            Some(2_000)
        );
        assert_eq!(
            Meta::cookie_expiry(Some(&m), Some(5_000), life),
            Some(5_000)
        );
        assert_eq!(Meta::cookie_expiry(None, Some(5_000), life), Some(5_000));
        assert_eq!(Meta::cookie_expiry(Some(&m), None, life), Some(2_000));
    }

    #[test]
    fn foreign_text_is_not_meta() {
        for text in ["", "x", "1:2", "1:2:3", "a:2:3:u", "1:2:x:u"] {
            assert_eq!(Meta::parse(text), None, "{text}");
        }
    }
}
