//! `merge: true`: a save applies only what its request changed since it
//! loaded the session, on top of what is stored now. Top-level keys are
//! compared as the JSON text V8 wrote (so a Date, a nested object or the
//! cookie is kept exactly, and a changed one replaces that key whole):
//! keys the request added, changed or deleted win; the others keep the
//! stored value, whoever changed them meanwhile.

use std::collections::HashMap;

use redis::Value;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::{Context, Op};
use crate::error::{ErrorKind, StoreError, StoreResult};
use crate::session::keys;
use crate::session::scripts;

/// Top-level keys a merged session may have. Merging costs a hash lookup
/// per key, but every key is also a separate JSON value parsed three times
/// on the single writer, so a bound keeps one save from stalling the
/// others: 10,000 is far above what sessions hold (a few dozen) and about
/// 10 ms of work on a small machine.
pub const MAX_KEYS: usize = 10_000;

/// A JSON object's members in their order, values as their text, and how
/// many there were: past `MAX_KEYS` they are only counted.
struct Members<'a> {
    list: Vec<(String, &'a RawValue)>,
    at: HashMap<String, usize>,
    count: usize,
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for Members<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut out = Members {
                    list: Vec::new(),
                    at: HashMap::new(),
                    count: 0,
                };
                while out.count < MAX_KEYS {
                    let Some((k, v)) = map.next_entry::<String, &'de RawValue>()? else {
                        return Ok(out);
                    };
                    out.count += 1;
                    // JSON.parse keeps the last value of duplicate keys, at
                    // the first one's place.
                    match out.at.get(&k) {
                        Some(&i) => out.list[i].1 = v,
                        None => {
                            out.at.insert(k.clone(), out.list.len());
                            out.list.push((k, v));
                        }
                    }
                }
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {
                    out.count += 1;
                }
                Ok(out)
            }
        }
        d.deserialize_map(Fields)
    }
}

/// Why a merge cannot be made: which of the three texts is not a JSON
/// object (the stored one is corrupt, the others are the caller's), or
/// one has more than `MAX_KEYS` keys (how many).
#[derive(Debug, PartialEq, Eq)]
pub enum Unmergeable {
    Loaded(String),
    Saved(String),
    Stored(String),
    TooLarge(usize),
}

fn members<'a>(
    text: &'a str,
    side: impl Fn(String) -> Unmergeable,
) -> Result<Members<'a>, Unmergeable> {
    let m: Members =
        serde_json::from_str(text).map_err(|e| side(format!("is not a JSON object ({e})")))?;
    if m.count > MAX_KEYS {
        return Err(Unmergeable::TooLarge(m.count));
    }
    Ok(m)
}

impl Members<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.at.get(key).map(|&i| self.list[i].1.get())
    }
}

/// The error for a session over `MAX_KEYS`: the caller can change the
/// session's shape or turn merging off.
pub fn too_large(keys: usize) -> StoreError {
    StoreError::new(
        ErrorKind::TooLarge,
        format!(
            "the session has {keys} top-level keys, over the {MAX_KEYS} that merge: true \
             allows; nothing was written. Group them under fewer keys (one nested object \
             is one key) or turn merge off"
        ),
    )
}

/// How many top-level keys `saved` has, if it is an object with more than
/// `MAX_KEYS`: such a save is refused before it is sent, so whether it
/// works does not depend on another request saving at the same time.
pub fn oversized(saved: &str) -> Option<usize> {
    serde_json::from_str::<Members>(saved)
        .ok()
        .map(|m| m.count)
        .filter(|&n| n > MAX_KEYS)
}

/// What `saved` changed in `base`, applied to `current`. Linear in the
/// number of keys.
pub fn merge(base: &str, saved: &str, current: &str) -> Result<String, Unmergeable> {
    let (base, saved, current) = (
        members(base, Unmergeable::Loaded)?,
        members(saved, Unmergeable::Saved)?,
        members(current, Unmergeable::Stored)?,
    );
    let changed = |k: &str| base.get(k).is_none_or(|was| Some(was) != saved.get(k));
    let mut out = String::with_capacity(current.list.len() * 32);
    let mut put = |k: &str, v: &str| {
        out.push(if out.is_empty() { '{' } else { ',' });
        out.push_str(&serde_json::to_string(k).expect("a string serializes"));
        out.push(':');
        out.push_str(v);
    };
    for (k, v) in &current.list {
        match saved.get(k) {
            Some(mine) if changed(k) => put(k, mine),
            // Deleted by this request.
            None if base.get(k).is_some() => {}
            _ => put(k, v.get()),
        }
    }
    for (k, v) in &saved.list {
        if current.get(k).is_none() && changed(k) {
            put(k, v.get());
        }
    }
    if out.is_empty() {
        out.push('{');
    }
    out.push('}');
    Ok(out)
}

/// A merge that found `current` stored (owned by `stored_owner`, '' for
/// none) instead of what it expected: the same changes applied to it,
/// expecting it this time. The owner is the request's if it changed it,
/// else the stored one.
pub fn remerge(
    op: &Op,
    ctx: &Context,
    (current, stored_owner): (Vec<u8>, String),
) -> StoreResult<Op> {
    let Op::Merge {
        sid,
        base,
        value,
        expiry,
        owner,
        loaded_owner,
        life,
        ..
    } = op
    else {
        return Err(StoreError::new(ErrorKind::Internal, "not a merge"));
    };
    let key = ctx.keys.session(sid);
    let digest = scripts::sha1hex(&current);
    let text = ctx
        .text(&key, Value::BulkString(current))?
        .unwrap_or_default();
    let merged = merge(base, value, &text).map_err(|e| match e {
        Unmergeable::Stored(e) => StoreError::new(
            ErrorKind::Corrupt,
            format!("value of {} {e}", keys::named(&key)),
        ),
        Unmergeable::TooLarge(count) => too_large(count),
        Unmergeable::Loaded(e) | Unmergeable::Saved(e) => StoreError::new(
            ErrorKind::InvalidArgument,
            format!("the session to merge into {} {e}", keys::named(&key)),
        ),
    })?;
    let owner = if owner == loaded_owner {
        Some(stored_owner).filter(|o| !o.is_empty())
    } else {
        owner.clone()
    };
    Ok(Op::Merge {
        sid: sid.clone(),
        base: base.clone(),
        value: value.clone(),
        expiry: *expiry,
        owner: owner.clone(),
        loaded_owner: owner,
        against: Some((digest, merged)),
        life: *life,
    })
}

#[cfg(test)]
mod tests {
    use super::merge;

    #[test]
    fn each_request_keeps_the_keys_it_changed() {
        let base = r#"{"cookie":{"a":1},"n":0}"#;
        // Another request added b meanwhile; this one adds a.
        let stored = r#"{"cookie":{"a":1},"n":0,"b":2}"#;
        let saved = r#"{"cookie":{"a":1},"n":0,"a":1}"#;
        assert_eq!(
            merge(base, saved, stored).unwrap(),
            r#"{"cookie":{"a":1},"n":0,"b":2,"a":1}"#
        );
    }

    #[test]
    fn changes_and_deletes_win_untouched_keys_keep_the_stored_value() {
        let base = r#"{"x":1,"y":1,"z":1}"#;
        let stored = r#"{"x":2,"y":2,"z":2}"#;
        let saved = r#"{"x":1,"y":9}"#;
        // x untouched: stored 2 stays; y changed: 9 wins; z deleted.
        assert_eq!(merge(base, saved, stored).unwrap(), r#"{"x":2,"y":9}"#);
    }

    #[test]
    fn a_changed_nested_value_replaces_the_key_whole_and_text_is_kept_exactly() {
        let base = r#"{"d":"2026-12-04T10:00:00.000Z","o":{"a":1,"b":[1,2]}}"#;
        let stored = r#"{"d":"2026-12-04T10:00:00.000Z","o":{"a":1,"b":[1,2],"c":3}}"#;
        let saved = r#"{"d":"2026-12-05T10:00:00.000Z","o":{"a":2,"b":[1,2]},"u":"é\n\u2028"}"#;
        assert_eq!(
            merge(base, saved, stored).unwrap(),
            r#"{"d":"2026-12-05T10:00:00.000Z","o":{"a":2,"b":[1,2]},"u":"é\n\u2028"}"#
        );
    }

    #[test]
    fn unchanged_saves_leave_what_is_stored() {
        let base = r#"{"a":1}"#;
        let stored = r#"{"b":2}"#;
        assert_eq!(merge(base, base, stored).unwrap(), stored);
        assert_eq!(merge("{}", "{}", "{}").unwrap(), "{}");
    }

    #[test]
    fn keys_needing_escapes_round_trip() {
        let saved = r#"{"a\"b":1,"\u0001":2}"#;
        let out = merge("{}", saved, "{}").unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            parsed,
            serde_json::from_str::<serde_json::Value>(saved).unwrap()
        );
    }

    #[test]
    fn duplicate_keys_keep_the_last_value_at_the_first_place_as_json_parse_does() {
        let saved = r#"{"a":1,"b":2,"a":3}"#;
        assert_eq!(merge("{}", saved, "{}").unwrap(), r#"{"a":3,"b":2}"#);
    }

    fn object(keys: usize) -> String {
        let members: Vec<String> = (0..keys).map(|i| format!("\"k{i}\":{i}")).collect();
        format!("{{{}}}", members.join(","))
    }

    #[test]
    fn over_max_keys_on_any_side_is_too_large_and_at_it_merges() {
        use super::{oversized, Unmergeable::TooLarge, MAX_KEYS};
        let (at, over) = (object(MAX_KEYS), object(MAX_KEYS + 5));
        assert_eq!(merge(&at, &at, &at).unwrap(), at);
        assert_eq!(merge(&over, "{}", "{}"), Err(TooLarge(MAX_KEYS + 5)));
        assert_eq!(merge("{}", &over, "{}"), Err(TooLarge(MAX_KEYS + 5)));
        assert_eq!(merge("{}", "{}", &over), Err(TooLarge(MAX_KEYS + 5)));
        assert_eq!(oversized(&over), Some(MAX_KEYS + 5));
        assert_eq!(oversized(&at), None);
        assert_eq!(oversized("not json"), None);
    }

    #[test]
    fn what_is_not_an_object_is_an_error_naming_which() {
        use super::Unmergeable::*;
        assert!(matches!(merge("[]", "{}", "{}"), Err(Loaded(_))));
        assert!(matches!(merge("{}", "nope", "{}"), Err(Saved(_))));
        assert!(matches!(merge("{}", "{}", "1"), Err(Stored(_))));
    }
}
