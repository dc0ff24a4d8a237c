//! Per-session bookkeeping kept beside each session key (see `keys::meta`):
//! a hash with fields `c` (created), `a` (last access), `e` (cookie
//! deadline) and `u` (owner), read with `HMGET meta c a e u`. The session
//! value itself stays exactly what connect-redis writes.

use redis::Value;

use crate::expiry::Lifetime;

/// The fields `read` expects, in order.
pub const FIELDS: [&str; 4] = ["c", "a", "e", "u"];

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

    /// Reads an `HMGET meta c a e u` reply: `None` without a last access
    /// (no meta, or not one this store wrote). A touch can record a session
    /// connect-redis created; it counts as created at its first access.
    pub fn read(reply: &Value) -> Option<Meta> {
        let Value::Array(fields) = reply else {
            return None;
        };
        let text = |i: usize| match fields.get(i) {
            Some(Value::BulkString(b)) => std::str::from_utf8(b).ok(),
            _ => None,
        };
        let number = |i: usize| text(i).and_then(|t| t.parse::<i64>().ok());
        let last_access = number(1)?;
        Some(Meta {
            created: number(0).unwrap_or(last_access),
            last_access,
            cookie_expiry: number(2),
            owner: text(3).unwrap_or("").to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(fields: [Option<&str>; 4]) -> Value {
        Value::Array(
            fields
                .iter()
                .map(|f| f.map_or(Value::Nil, |t| Value::BulkString(t.into())))
                .collect(),
        )
    }

    #[test]
    fn reads_the_hash_fields() {
        assert_eq!(
            Meta::read(&reply([
                Some("10"),
                Some("20"),
                Some("30"),
                Some("user:42")
            ])),
            Some(Meta {
                created: 10,
                last_access: 20,
                cookie_expiry: Some(30),
                owner: "user:42".into()
            })
        );
        let bare = Meta::read(&reply([None, Some("20"), Some(""), None])).unwrap();
        assert_eq!(
            (bare.created, bare.cookie_expiry, bare.owner.as_str()),
            (20, None, "")
        );
    }

    #[test]
    fn a_touch_by_another_store_wins_over_the_meta() {
        let life = Lifetime {
            idle_ms: Some(100),
            absolute_ms: Some(1_000),
        };
        let m = Meta::read(&reply([Some("0"), Some("950"), Some("2000"), Some("u")])).unwrap();
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
    fn foreign_values_are_not_meta() {
        for value in [
            Value::Nil,
            Value::BulkString(b"1:2:3:u".to_vec()),
            reply([Some("1"), None, Some("3"), Some("u")]),
            reply([Some("1"), Some("x"), None, None]),
        ] {
            assert_eq!(Meta::read(&value), None, "{value:?}");
        }
    }
}
