//! Property tests over what the store parses from outside: replies from
//! Redis, deadlines from JS and key prefixes. Bounded: proptest's default
//! 256 cases per property (PROPTEST_CASES raises it for longer runs).

use proptest::prelude::*;
use redis::Value;

use redis_session_store::commands::{build, read_all, Op, Outcome};
use redis_session_store::expiry::Expiry;
use redis_session_store::keys::Keys;

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Nil),
        Just(Value::Okay),
        any::<i64>().prop_map(Value::Int),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Value::BulkString),
        ".{0,32}".prop_map(Value::SimpleString),
        any::<f64>().prop_map(Value::Double),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        proptest::collection::vec(inner, 0..4).prop_map(Value::Array)
    })
}

fn op() -> impl Strategy<Value = Op> {
    let key = "[a-z:{}]{1,12}";
    let expiry = prop_oneof![Just(Expiry::Never), any::<i64>().prop_map(Expiry::At)];
    prop_oneof![
        key.prop_map(|key| Op::Get { key }),
        (key, ".{0,16}", expiry.clone()).prop_map(|(key, value, expiry)| Op::Set {
            key,
            value,
            expiry
        }),
        (key, expiry.clone()).prop_map(|(key, expiry)| Op::Touch { key, expiry }),
        (key, ".{0,16}", expiry).prop_map(|(key, value, expiry)| Op::Rewrite {
            key,
            value,
            expiry
        }),
        key.prop_map(|key| Op::Destroy { key }),
    ]
}

proptest! {
    /// Whatever Redis sends back, reading it yields one outcome per
    /// operation and never panics; a string value is only ever valid UTF-8.
    #[test]
    fn any_reply_reads_without_panicking(
        ops in proptest::collection::vec(op(), 0..8),
        replies in proptest::collection::vec(value(), 0..20),
        now in any::<i64>(),
    ) {
        let (_, counts) = build(&ops, now);
        let out = read_all(&ops, &counts, replies);
        prop_assert_eq!(out.len(), ops.len());
        for outcome in out {
            if let Outcome::Session { value: Some(v), .. } = outcome {
                prop_assert!(std::str::from_utf8(v.as_bytes()).is_ok());
            }
        }
    }

    #[test]
    fn any_number_from_js_is_a_valid_deadline(at in any::<f64>()) {
        match Expiry::from_wire(at) {
            Expiry::Never => prop_assert!(!at.is_finite()),
            Expiry::At(ms) => {
                prop_assert!(at.is_finite());
                // Rounded up, saturating at the ends of i64.
                prop_assert_eq!(ms, at.ceil() as i64);
            }
        }
    }

    /// The SCAN pattern for a prefix matches exactly the keys that start
    /// with it, whatever glob characters the prefix holds.
    #[test]
    fn scan_pattern_matches_only_the_prefix(prefix in "[a-c*?\\[\\]\\\\:]{0,8}", rest in "[a-c*?:]{0,6}", other in "[a-c*?\\[\\]\\\\:]{0,14}") {
        let keys = Keys::new(prefix.clone());
        let pattern = keys.scan_pattern();
        let own = format!("{prefix}{rest}");
        prop_assert!(glob_match(pattern.as_bytes(), own.as_bytes()), "{} !~ {}", pattern, own);
        prop_assert_eq!(glob_match(pattern.as_bytes(), other.as_bytes()), other.starts_with(&prefix));
    }
}

/// Redis's glob rules for the characters used above: `*`, `?`, `\x`
/// (literal), and `[` `]` only matter unescaped, which the pattern never has.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.first() {
        None => text.is_empty(),
        Some(b'*') => (0..=text.len()).any(|i| glob_match(&pattern[1..], &text[i..])),
        Some(b'?') => !text.is_empty() && glob_match(&pattern[1..], &text[1..]),
        Some(b'\\') if pattern.len() > 1 => {
            text.first() == Some(&pattern[1]) && glob_match(&pattern[2..], &text[1..])
        }
        Some(&c) => text.first() == Some(&c) && glob_match(&pattern[1..], &text[1..]),
    }
}
