//! Per-session bookkeeping: one field per session (its sid) in its shard
//! of the all-sessions index (see `keys::Keys::shard`), in the session's
//! slot, so one script updates both. The value packs `created,last
//! access,cookie deadline,marker,owner` (epoch ms in base 36, eight digits
//! until 2059; the cookie deadline and the marker may be empty): a field in
//! a small hash costs
//! Redis about a third of a key of its own, and a value of at most 64
//! bytes (an owner id up to about 20 characters) keeps the shard in Redis's
//! compact encoding. The marker is the end of a logout: the session was
//! destroyed and must not be written again before then. The session value
//! itself stays exactly what connect-redis writes.

use redis::Value;

use super::expiry::Lifetime;
use super::keys::{base36, push_base36};

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
    /// Until when a destroyed session stays destroyed (a logout marker).
    pub marker: Option<i64>,
}

/// The meta a write records after the creation time (which the write
/// script keeps, or sets): `,now,cookie deadline,,owner`.
pub fn tail(now_ms: i64, cookie_expiry: Option<i64>, owner: Option<&str>) -> String {
    let mut out = String::new();
    push_tail(&mut out, now_ms, cookie_expiry, owner);
    out
}

/// A whole meta: `created`, then `tail`; one allocation (a touch of an
/// owned session writes one).
pub fn whole(created: i64, now_ms: i64, cookie_expiry: Option<i64>, owner: Option<&str>) -> String {
    let mut out = String::with_capacity(32 + owner.map_or(0, str::len));
    push_base36(&mut out, created.max(0) as u64);
    push_tail(&mut out, now_ms, cookie_expiry, owner);
    out
}

fn push_tail(out: &mut String, now_ms: i64, cookie_expiry: Option<i64>, owner: Option<&str>) {
    out.push(',');
    push_base36(out, now_ms.max(0) as u64);
    out.push(',');
    if let Some(at) = cookie_expiry {
        push_base36(out, at.max(0) as u64);
    }
    out.push_str(",,");
    out.push_str(owner.unwrap_or(""));
}

/// A time as a meta holds it: epoch ms in base 36 (negative ones, which no
/// clock gives, as 0).
pub fn time(ms: i64) -> String {
    base36(ms.max(0) as u64)
}

/// Reads a time of a meta.
pub fn read_time(text: &str) -> Option<i64> {
    i64::from_str_radix(text, 36).ok().filter(|n| *n >= 0)
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
    /// meta's cookie deadline while the key expires no later (this store's
    /// limits only ever bring the key's deadline earlier), otherwise the
    /// key's (connect-redis touched it: EXPIRE only, so later). No limits
    /// are needed to tell, so per-session limits need none in the meta.
    pub fn cookie_expiry(meta: Option<&Meta>, key_deadline: Option<i64>) -> Option<i64> {
        match (meta.and_then(|m| m.cookie_expiry), key_deadline) {
            (Some(cookie), Some(at)) if at <= cookie => Some(cookie),
            (_, Some(at)) => Some(at),
            // No TTL, or a Redis without PEXPIRETIME.
            (cookie, None) => cookie,
        }
    }

    /// Reads a meta as stored: `None` for no meta, or a value this store
    /// did not write.
    pub fn read(reply: &Value) -> Option<Meta> {
        match reply {
            Value::BulkString(b) => Meta::parse(std::str::from_utf8(b).ok()?),
            _ => None,
        }
    }

    /// Parses `created,last access,cookie,marker,owner`. A logout marker
    /// has no times but its own; a touch can record a session
    /// connect-redis created, which counts as created at its first access.
    pub fn parse(text: &str) -> Option<Meta> {
        let mut parts = text.splitn(5, ',');
        let mut field = || -> Option<Option<i64>> {
            let part = parts.next()?;
            if part.is_empty() {
                return Some(None);
            }
            if !part
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
            {
                return None;
            }
            read_time(part).map(Some)
        };
        let (created, last_access, cookie_expiry, marker) =
            (field()?, field()?, field()?, field()?);
        let owner = parts.next()?.to_owned();
        let last_access = last_access.or(marker)?;
        Some(Meta {
            created: created.unwrap_or(last_access),
            last_access,
            cookie_expiry,
            owner,
            marker,
        })
    }
}

/// The sids and metas of an HGETALL reply; values that are not metas are
/// left alone.
pub fn entries(reply: Value) -> Vec<(String, Meta)> {
    let Value::Array(items) = reply else {
        return Vec::new();
    };
    let text = |v: Value| match v {
        Value::BulkString(b) => String::from_utf8(b).ok(),
        _ => None,
    };
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut items = items.into_iter();
    while let (Some(field), Some(value)) = (items.next(), items.next()) {
        if let (Some(sid), Some(meta)) = (text(field), Meta::read(&value)) {
            out.push((sid, meta));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    #[test]
    fn reads_the_packed_fields() {
        assert_eq!(
            Meta::read(&stored("a,k,u,,user:42,x")),
            Some(Meta {
                created: 10,
                last_access: 20,
                cookie_expiry: Some(30),
                owner: "user:42,x".into(),
                marker: None,
            })
        );
        let bare = Meta::read(&stored(",k,,,")).unwrap();
        assert_eq!(
            (bare.created, bare.cookie_expiry, bare.owner.as_str()),
            (20, None, "")
        );
        let marker = Meta::read(&stored(",,,2r,ada")).unwrap();
        assert_eq!((marker.marker, marker.owner.as_str()), (Some(99), "ada"));
        assert_eq!(tail(5, Some(37), Some("ada")), ",5,11,,ada");
        assert_eq!(tail(-1, None, None), ",0,,,");
        assert_eq!(whole(36, 5, Some(37), Some("ada")), "10,5,11,,ada");
        let read = Meta::read(&stored(&whole(1_000, 2_000, None, Some("o")))).unwrap();
        assert_eq!(
            (read.created, read.last_access, read.cookie_expiry),
            (1_000, 2_000, None)
        );
        // Epoch ms in eight digits until 2059.
        assert_eq!(time(1_765_000_000_000), "mitvfg1s");
        assert_eq!(read_time("mitvfg1s"), Some(1_765_000_000_000));
        assert_eq!(
            Meta::read(&stored(&format!("1{}", tail(5, None, None)))).map(|m| m.created),
            Some(1)
        );
    }

    #[test]
    fn a_touch_by_another_store_wins_over_the_meta() {
        let life = Lifetime {
            idle_ms: Some(100),
            absolute_ms: Some(1_000),
        };
        let m = Meta::parse(&format!("0,{},{},,u", time(950), time(2000))).unwrap();
        // min(2000, 950 + 100, 0 + 1000) = 1000: the key's expiry as set here.
        assert_eq!(m.key_deadline(life), Some(1_000));
        assert_eq!(Meta::cookie_expiry(Some(&m), Some(1_000)), Some(2_000));
        // Whatever limits set the key's deadline, it is never past the cookie's.
        assert_eq!(Meta::cookie_expiry(Some(&m), Some(1_999)), Some(2_000));
        assert_eq!(Meta::cookie_expiry(Some(&m), Some(2_000)), Some(2_000));
        assert_eq!(Meta::cookie_expiry(Some(&m), Some(5_000)), Some(5_000));
        assert_eq!(Meta::cookie_expiry(None, Some(5_000)), Some(5_000));
        assert_eq!(Meta::cookie_expiry(Some(&m), None), Some(2_000));
    }

    #[test]
    fn foreign_values_are_not_meta() {
        for value in [
            Value::Nil,
            stored("1:2:3:u"),
            stored("1,x-,3,,u"),
            stored("1,,3,,u"),
            stored("1,A,3,,u"),
            stored("{\"cookie\":{}}"),
            Value::Int(3),
        ] {
            assert_eq!(Meta::read(&value), None, "{value:?}");
        }
    }
}
