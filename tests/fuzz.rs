//! Property tests over what the store parses from outside: replies from
//! Redis, deadlines from JS and key prefixes. Bounded: proptest's default
//! 256 cases per property (PROPTEST_CASES raises it for longer runs).

use proptest::prelude::*;
use redis::Value;

use redis_session_store::ops::decode::read_all;
use redis_session_store::ops::encode::build;
use redis_session_store::ops::recent::Recent;
use redis_session_store::ops::{Context, Op, Outcome};
use redis_session_store::session::events::Reason;
use redis_session_store::session::expiry::{Expiry, Lifetime};
use redis_session_store::session::keys::{slot, Keys};
use redis_session_store::session::meta::{self, Meta};

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
    let sid = "[a-z:{}]{1,12}";
    let owner = proptest::option::of("[a-z:{}]{0,6}");
    let expiry = prop_oneof![Just(Expiry::Never), any::<i64>().prop_map(Expiry::At)];
    prop_oneof![
        sid.prop_map(|sid| Op::Get { sid }),
        (sid, ".{0,16}", expiry.clone(), owner.clone()).prop_map(|(sid, value, expiry, owner)| {
            Op::Set {
                sid,
                value,
                expiry,
                owner,
                life: None,
            }
        }),
        (sid, expiry.clone(), owner.clone()).prop_map(|(sid, expiry, owner)| Op::Touch {
            sid,
            expiry,
            owner,
            life: None
        }),
        (sid, ".{0,16}", expiry, owner).prop_map(|(sid, value, expiry, owner)| Op::Rewrite {
            sid,
            value,
            expiry,
            owner,
            life: None,
        }),
        sid.prop_map(|sid| Op::Destroy {
            sid,
            reason: Reason::Logout
        }),
    ]
}

fn context(idle_ms: Option<i64>, absolute_ms: Option<i64>) -> Context {
    Context {
        keys: Keys::new("p:"),
        lifetime: Lifetime {
            idle_ms,
            absolute_ms,
        },
        count_logins: absolute_ms.is_some(),
        session_limits: false,
        wait_for_replicas: true,
        seal: None,
        merge: false,
        read_expiry: false,
        events: Default::default(),
        ended: Default::default(),
        repairs: Default::default(),
    }
}

proptest! {
    /// Whatever Redis sends back, reading it yields one outcome per
    /// operation and never panics; a string value is only ever valid UTF-8.
    #[test]
    fn any_reply_reads_without_panicking(
        ops in proptest::collection::vec(op(), 0..8),
        replies in proptest::collection::vec(value(), 0..20),
        now in any::<i64>(),
        idle in proptest::option::of(any::<i64>()),
        absolute in proptest::option::of(any::<i64>()),
    ) {
        let ctx = context(idle, absolute);
        let (_, counts) = build(&ops, &ctx, now, &mut Recent::default());
        let out = read_all(
            &ops,
            &ctx,
            (now, &mut Recent::default()),
            &counts,
            replies.into_iter().map(Ok).collect(),
        );
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

    /// The legacy tombstone key lands in its session key's cluster slot,
    /// and so does the session's shard of the all-sessions index, whatever
    /// braces the names hold (but a stray `}` that no tag can cover: such
    /// keys work on one node).
    #[test]
    fn companion_keys_share_their_slot(prefix in "[a-c:{}]{0,6}", sid in "[a-c:{}]{1,6}", owner in "[a-c:{}]{0,6}") {
        let keys = Keys::new(prefix.clone());
        let key = keys.session(&sid);
        if cluster_tag(&key).len() < key.len() || !key.contains('}') {
            prop_assert_eq!(cluster_tag(&redis_session_store::session::keys::tombstone(&key)), cluster_tag(&key));
        }
        prop_assert_eq!(slot(keys.shard(&sid).as_bytes()), slot(key.as_bytes()));
        // No index key reads as `prefix + sid` (sids have no control characters).
        for index in [keys.shard(&sid), keys.user_index(&owner)] {
            prop_assert!(index.strip_prefix(&prefix).is_none_or(|rest| rest.contains('\u{1}')), "{:?}", index);
        }
    }

    /// Meta as the scripts write it reads back whole, whatever the owner
    /// holds (commas included).
    #[test]
    fn meta_round_trips(created in 0i64..1 << 50, last in 0i64..1 << 50, cookie in proptest::option::of(0i64..1 << 50), owner in ".{0,12}") {
        let packed = format!("{}{}", meta::time(created), meta::tail(last, cookie, Some(&owner)));
        let reply = Value::BulkString(packed.into_bytes());
        prop_assert_eq!(Meta::read(&reply), Some(Meta { created, last_access: last, cookie_expiry: cookie, owner, marker: None }));
    }
}

/// What Redis Cluster hashes: the first non-empty `{...}`, else the key.
fn cluster_tag(key: &str) -> String {
    if let Some(open) = key.find('{') {
        if let Some(len) = key[open + 1..].find('}') {
            if len > 0 {
                return key[open + 1..open + 1 + len].to_owned();
            }
        }
    }
    key.to_owned()
}
