//! `merge: true`: a save applies only what its request changed since it
//! loaded the session, on top of what is stored now. Top-level keys are
//! compared as the JSON text V8 wrote (so a Date, a nested object or the
//! cookie is kept exactly, and a changed one replaces that key whole):
//! keys the request added, changed or deleted win; the others keep the
//! stored value, whoever changed them meanwhile.

use redis::Value;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::commands::{Context, Op};
use crate::error::{ErrorKind, StoreError, StoreResult};
use crate::keys;
use crate::scripts;

/// A JSON object's members in their order, values as their text.
struct Members<'a>(Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for Members<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut out: Vec<(String, &'de RawValue)> = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, &'de RawValue>()? {
                    // JSON.parse keeps the last of duplicate keys.
                    out.retain(|(seen, _)| *seen != k);
                    out.push((k, v));
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(Fields)
    }
}

/// Which of the three texts is not a JSON object: the stored one is
/// corrupt, the others are the caller's.
#[derive(Debug, PartialEq, Eq)]
pub enum NotAnObject {
    Loaded(String),
    Saved(String),
    Stored(String),
}

fn members<'a>(
    text: &'a str,
    side: impl Fn(String) -> NotAnObject,
) -> Result<Members<'a>, NotAnObject> {
    serde_json::from_str(text).map_err(|e| side(format!("is not a JSON object ({e})")))
}

impl Members<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.get())
    }
}

/// What `saved` changed in `base`, applied to `current`.
pub fn merge(base: &str, saved: &str, current: &str) -> Result<String, NotAnObject> {
    let (base, saved, current) = (
        members(base, NotAnObject::Loaded)?,
        members(saved, NotAnObject::Saved)?,
        members(current, NotAnObject::Stored)?,
    );
    let changed = |k: &str| base.get(k).is_none_or(|was| Some(was) != saved.get(k));
    let mut out = String::with_capacity(current.0.len() * 32);
    let mut put = |k: &str, v: &str| {
        out.push(if out.is_empty() { '{' } else { ',' });
        out.push_str(&serde_json::to_string(k).expect("a string serializes"));
        out.push(':');
        out.push_str(v);
    };
    for (k, v) in &current.0 {
        match saved.get(k) {
            Some(mine) if changed(k) => put(k, mine),
            // Deleted by this request.
            None if base.get(k).is_some() => {}
            _ => put(k, v.get()),
        }
    }
    for (k, v) in &saved.0 {
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
        NotAnObject::Stored(e) => StoreError::new(
            ErrorKind::Corrupt,
            format!("value of {} {e}", keys::named(&key)),
        ),
        NotAnObject::Loaded(e) | NotAnObject::Saved(e) => StoreError::new(
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
    fn what_is_not_an_object_is_an_error_naming_which() {
        use super::NotAnObject::*;
        assert!(matches!(merge("[]", "{}", "{}"), Err(Loaded(_))));
        assert!(matches!(merge("{}", "nope", "{}"), Err(Saved(_))));
        assert!(matches!(merge("{}", "{}", "1"), Err(Stored(_))));
    }
}
