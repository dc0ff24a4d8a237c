//! The operations' commands and replies, encoded and decoded together.

use redis::Value;

use super::commands::Resp;
use super::decode::{read_all, reply_error};
use super::encode::{append_all, build, prefer_rewrites};
use super::{Context, Op, Outcome};
use crate::backend::Reply;
use crate::error::ErrorKind;
use crate::ops::recent::Recent;
use crate::session::events::Reason;
use crate::session::expiry::{Expiry, Lifetime};
use crate::session::keys::{self, Keys};
use crate::session::scripts;

fn ctx() -> Context {
    Context {
        keys: Keys::new("sess:"),
        lifetime: Lifetime {
            idle_ms: Some(1_000),
            absolute_ms: None,
        },
        count_logins: true,
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

fn ok(values: Vec<Value>) -> Vec<Reply> {
    values.into_iter().map(Ok).collect()
}

fn packed(op: &Op, now: i64) -> String {
    let mut pipe = redis::pipe();
    op.append_to(&mut pipe, &ctx(), now, &mut Recent::default());
    String::from_utf8_lossy(&pipe.get_packed_pipeline()).replace("\r\n", " ")
}

#[test]
fn set_runs_the_write_script_in_the_session_slot_then_indexes_by_owner() {
    let op = Op::Set {
        sid: "a".into(),
        value: "{}".into(),
        expiry: Expiry::At(5_000),
        owner: Some("ada".into()),
        life: None,
    };
    let wire = packed(&op, 1_000);
    let shard = ctx().keys.shard("a");
    // The meta goes to the session's field in its shard: after the
    // creation time the script keeps, the access, the cookie and owner.
    let keys = format!(
        "$1 3 $6 sess:a ${} {shard} $13 {{sess:a}}:gone",
        shard.len()
    );
    assert!(wire.contains(&keys), "{wire}");
    assert!(
        wire.contains(
            "$3 set $2 {} $4 5000 $4 1000 $4 1000 $0  $7 3601000 $1 a $12 ,rs,3uw,,ada $2 rs"
        ),
        "{wire}"
    );
    // Recent until the idle deadline (before the cookie's) plus slack,
    // as long as the session's life at most.
    assert!(
        wire.contains("$1 1 $16 {sess:\u{1}user:ada} $1 a $4 3000 $4 1000"),
        "{wire}"
    );
}

#[test]
fn writes_past_their_deadline_become_deletes() {
    for (op, owned) in [
        (
            Op::Set {
                sid: "k".into(),
                value: "{}".into(),
                expiry: Expiry::At(5),
                owner: None,
                life: None,
            },
            false,
        ),
        (
            Op::Touch {
                sid: "k".into(),
                expiry: Expiry::At(5),
                owner: Some("u".into()),
                life: None,
            },
            true,
        ),
    ] {
        let wire = packed(&op, 5);
        assert!(wire.contains("DEL $6 sess:k"), "{wire}");
        let devices = format!(
            "HDEL ${} {} $1 k",
            ctx().keys.devices("k").len(),
            ctx().keys.devices("k")
        );
        assert!(wire.contains(&devices), "{wire}");
        assert_eq!(wire.contains("ZREM"), owned, "{wire}");
        assert!(!wire.contains("EVALSHA"), "{wire}");
    }
}

#[test]
fn replies_are_split_per_operation() {
    let ops = vec![
        Op::Get { sid: "a".into() },
        Op::Destroy {
            sid: "b".into(),
            reason: Reason::Logout,
        },
        Op::Set {
            sid: "c".into(),
            value: "{}".into(),
            expiry: Expiry::At(100),
            owner: Some("u".into()),
            life: None,
        },
    ];
    let ctx = ctx();
    let (_, counts) = build(&ops, &ctx, 0, &mut Recent::default());
    assert_eq!(counts, vec![2, 1, 2]);
    let replies = vec![
        Value::BulkString(b"{\"x\":1}".to_vec()),
        // With limits, the meta: its last touch set the cookie to 36
        // (base 36 "10").
        Value::BulkString(b"1,2,10,,u".to_vec()),
        // The destroy script.
        Value::Int(1),
        // The set: its script, then its owner's index.
        Value::Int(1),
        Value::Int(3),
    ];
    let out = read_all(
        &ops,
        &ctx,
        (0, &mut Recent::default()),
        &counts,
        ok(replies),
    );
    assert_eq!(
        out,
        vec![
            Outcome::Session {
                value: Some("{\"x\":1}".into()),
                expires_at: Some(36)
            },
            Outcome::Done,
            Outcome::Written { owner_sessions: 3 },
        ]
    );
}

#[test]
fn with_limits_touches_run_the_script_and_index_once_per_slack() {
    let ctx = ctx();
    let mut seen = Recent::default();
    let touch = |at| Op::Touch {
        sid: "t".into(),
        expiry: Expiry::At(at),
        owner: Some("u".into()),
        life: None,
    };
    let mut pipe = redis::pipe();
    // The write script (the idle deadline needs the meta), then the
    // owner's index.
    assert_eq!(touch(500).append_to(&mut pipe, &ctx, 0, &mut seen), 2);
    let wire = String::from_utf8_lossy(&pipe.get_packed_pipeline()).replace("\r\n", " ");
    assert!(wire.contains(&scripts::WRITE.hash), "{wire}");
    assert!(wire.contains("$5 touch"), "{wire}");
    // Later touches within the slack skip the index.
    assert_eq!(touch(600).append_to(&mut pipe, &ctx, 100, &mut seen), 1);
    let far = 1_000 + crate::session::expiry::SLACK_MS;
    assert_eq!(
        touch(far).append_to(&mut pipe, &ctx, far - 900, &mut seen),
        2
    );
    // A destroy forgets it.
    Op::Destroy {
        sid: "t".into(),
        reason: Reason::Logout,
    }
    .append_to(&mut pipe, &ctx, 0, &mut seen);
    assert_eq!(
        touch(far).append_to(&mut pipe, &ctx, far - 900, &mut seen),
        2
    );
}

#[test]
fn with_limits_a_known_creation_time_touches_by_plain_commands() {
    let ctx = Context {
        lifetime: Lifetime {
            idle_ms: Some(1_000),
            absolute_ms: Some(5_000),
        },
        ..ctx()
    };
    let mut seen = Recent::default();
    seen.learn_created("t", 100);
    let touch = Op::Touch {
        sid: "t".into(),
        expiry: Expiry::At(500_000),
        owner: None,
        life: None,
    };
    let wire = |now: i64, seen: &mut Recent| {
        let mut pipe = redis::pipe();
        touch.append_to(&mut pipe, &ctx, now, seen);
        String::from_utf8_lossy(&pipe.get_packed_pipeline()).replace("\r\n", " ")
    };
    // Idle ends first (1_200), then absolute (5_100), then the cookie.
    let idle = wire(200, &mut seen);
    assert!(
        idle.starts_with("*3 $9 PEXPIREAT $6 sess:t $4 1200 *4 $4 HSET "),
        "{idle}"
    );
    assert!(!idle.contains("EVALSHA"), "{idle}");
    // Near the absolute deadline, it is the key's.
    let absolute = wire(4_500, &mut seen);
    assert!(
        absolute.contains("PEXPIREAT $6 sess:t $4 5100 "),
        "{absolute}"
    );
    // Past it, the write script ends the session.
    let past = wire(5_100, &mut seen);
    assert!(past.contains(&scripts::WRITE.hash), "{past}");
}

#[test]
fn without_limits_touches_rewrite_the_meta_only_now_and_then() {
    let ctx = Context {
        lifetime: Lifetime::default(),
        ..ctx()
    };
    let mut seen = Recent::default();
    let touch = Op::Touch {
        sid: "t".into(),
        expiry: Expiry::At(500_000),
        owner: None,
        life: None,
    };
    let wire = |at: i64, seen: &mut Recent| {
        let mut pipe = redis::pipe();
        touch.append_to(&mut pipe, &ctx, at, seen);
        String::from_utf8_lossy(&pipe.get_packed_pipeline()).replace("\r\n", " ")
    };
    // First seen here: the script writes the meta (a session
    // connect-redis wrote gets one).
    let first = wire(0, &mut seen);
    assert!(first.contains(&scripts::WRITE.hash), "{first}");
    // The next touches move the key's expiry only...
    assert_eq!(wire(1, &mut seen), "*3 $9 PEXPIREAT $6 sess:t $6 500000 ");
    // ...until the meta is due again.
    let due = wire(crate::ops::recent::META_EVERY_MS, &mut seen);
    assert!(due.contains(&scripts::WRITE.hash), "{due}");
    // Reads need no meta either: a GET, and the key's expiry (the
    // cookie's) only when asked.
    let read = |ctx: &Context, seen: &mut Recent| {
        let mut pipe = redis::pipe();
        let n = Op::Get { sid: "t".into() }.append_to(&mut pipe, ctx, 0, seen);
        let wire = String::from_utf8_lossy(&pipe.get_packed_pipeline()).replace("\r\n", " ");
        (n, wire)
    };
    assert_eq!(read(&ctx, &mut seen), (1, "*2 $3 GET $6 sess:t ".into()));
    let asked = Context {
        read_expiry: true,
        ..ctx.clone()
    };
    let (n, wire) = read(&asked, &mut seen);
    assert_eq!(n, 2);
    assert!(wire.ends_with("PEXPIRETIME $6 sess:t "), "{wire}");
    // An owner's session: its meta at every touch, with plain commands
    // once the write script has told its creation time.
    let owned = Op::Touch {
        sid: "o".into(),
        expiry: Expiry::At(500_000),
        owner: Some("ada".into()),
        life: None,
    };
    let (_, counts) = build(std::slice::from_ref(&owned), &ctx, 0, &mut seen);
    let replies = ok(vec![Value::BulkString(b"25".to_vec()), Value::Int(1)]);
    read_all(
        std::slice::from_ref(&owned),
        &ctx,
        (0, &mut seen),
        &counts,
        replies,
    );
    let mut pipe = redis::pipe();
    assert_eq!(owned.append_to(&mut pipe, &ctx, 5, &mut seen), 2);
    let wire = String::from_utf8_lossy(&pipe.get_packed_pipeline()).replace("\r\n", " ");
    // 25 in base 36 is 77; 500000 is apsw.
    assert!(wire.contains("$1 o $14 25,5,apsw,,ada"), "{wire}");
    assert!(
        wire.starts_with("*3 $9 PEXPIREAT $6 sess:o $6 500000 *4 $4 HSET "),
        "{wire}"
    );
    assert!(!wire.contains("EVALSHA"), "{wire}");
}

#[test]
fn a_touch_that_finds_no_session_owes_a_repair() {
    let ctx = ctx();
    let mut seen = Recent::default();
    seen.learn_created("o", 77);
    let touch = Op::Touch {
        sid: "o".into(),
        expiry: Expiry::At(500_000),
        owner: Some("ada".into()),
        life: None,
    };
    let ops = std::slice::from_ref(&touch);
    for (expired, owed) in [(1, false), (0, true)] {
        let (_, counts) = build(ops, &ctx, 5, &mut seen);
        let replies = ok(vec![Value::Int(expired), Value::Int(0)]);
        read_all(ops, &ctx, (5, &mut seen), &counts, replies);
        let mut pipe = redis::pipe();
        ctx.repairs.send_with(&mut pipe, &ctx.keys);
        let wire = String::from_utf8_lossy(&pipe.get_packed_pipeline()).into_owned();
        assert_eq!(wire.contains(&scripts::REPAIR.hash), owed, "{wire}");
    }
}

#[test]
fn adopting_records_meta_and_indexes_without_touching_the_session() {
    let op = Op::Adopt {
        sid: "a".into(),
        expiry: Expiry::At(5_000),
        owner: Some("ada".into()),
    };
    let wire = packed(&op, 1_000);
    let shard = ctx().keys.shard("a");
    assert!(!wire.contains("$6 sess:a "), "{wire}");
    // Only where missing: a meta this store wrote stays as it is.
    let meta = format!("HSETNX ${} {shard} $1 a $14 rs,rs,3uw,,ada", shard.len());
    assert!(wire.contains(&meta), "{wire}");
    assert!(!wire.contains("HSET "), "{wire}");
    assert!(wire.contains(&scripts::INDEX.hash), "{wire}");
}

#[test]
fn cluster_replies_map_to_error_kinds() {
    let reply = |line: &str| match redis::parse_redis_value(line.as_bytes()) {
        Ok(Value::ServerError(e)) => reply_error("k", &e),
        other => panic!("not an error reply: {other:?}"),
    };
    assert_eq!(
        reply("-CLUSTERDOWN The cluster is down\r\n").kind,
        ErrorKind::Unavailable
    );
    assert_eq!(
        reply("-TRYAGAIN Multiple keys request\r\n").kind,
        ErrorKind::Unavailable
    );
    let moved = reply("-MOVED 3999 127.0.0.1:7001\r\n");
    assert_eq!(moved.kind, ErrorKind::Reply);
    assert!(
        moved.message.contains("cluster option"),
        "{}",
        moved.message
    );
    assert_eq!(reply("-WRONGTYPE Operation\r\n").kind, ErrorKind::Reply);
}

fn oom() -> Value {
    match redis::parse_redis_value(b"-OOM command not allowed\r\n") {
        Ok(v @ Value::ServerError(_)) => v,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_full_redis_skips_bookkeeping_but_refuses_new_writes() {
    let ctx = ctx();
    let mut seen = Recent::default();
    let touch = Op::Touch {
        sid: "t".into(),
        expiry: Expiry::At(500),
        owner: Some("u".into()),
        life: None,
    };
    let set = Op::Set {
        sid: "s".into(),
        value: "{}".into(),
        expiry: Expiry::At(500),
        owner: None,
        life: None,
    };
    let ops = vec![touch.clone(), set];
    let (_, counts) = build(&ops, &ctx, 0, &mut seen);
    assert_eq!(counts, vec![2, 1]);
    // The touch's script moved the expiry and wrote the meta; the
    // owner's index refused it.
    let mut replies = vec![Value::Int(1), oom()];
    // The set's script was refused as a whole.
    replies.push(oom());
    let out = read_all(&ops, &ctx, (0, &mut seen), &counts, ok(replies));
    assert_eq!(out[0], Outcome::Written { owner_sessions: 0 });
    match &out[1] {
        Outcome::Failed(e) => {
            assert_eq!(e.kind, ErrorKind::Full);
            assert!(
                e.message.contains("full")
                    && e.message.contains(&keys::handle("sess:s"))
                    && !e.message.contains("sess:s"),
                "{}",
                e.message
            );
        }
        other => panic!("{other:?}"),
    }
    // Forgotten, so the next touch writes the index again.
    let mut pipe = redis::pipe();
    assert_eq!(touch.append_to(&mut pipe, &ctx, 1, &mut seen), 2);
}

#[test]
fn a_save_of_a_session_just_read_is_a_rewrite_unless_logins_are_counted() {
    let set = |sid: &str| Op::Set {
        sid: sid.into(),
        value: "{}".into(),
        expiry: Expiry::At(5_000),
        owner: None,
        life: None,
    };
    let mut seen = Recent::default();
    let get = vec![Op::Get { sid: "a".into() }];
    let found = ok(vec![Value::BulkString(b"{}".to_vec()), Value::Int(-1)]);
    let counted = Context {
        lifetime: Lifetime::default(),
        ..ctx()
    };
    let plain = Context {
        count_logins: false,
        session_limits: false,
        ..counted.clone()
    };
    read_all(&get, &plain, (0, &mut seen), &[2], found);
    let mut ops = vec![set("a"), set("b")];
    prefer_rewrites(&mut ops, &plain, &seen);
    assert!(matches!(ops[0], Op::Rewrite { ref sid, .. } if sid == "a"));
    assert!(matches!(ops[1], Op::Set { .. }));
    let mut logins = vec![set("a")];
    prefer_rewrites(&mut logins, &counted, &seen);
    assert!(matches!(logins[0], Op::Set { .. }));
    // A destroy forgets the read.
    seen.forget("a");
    let mut ops = vec![set("a")];
    prefer_rewrites(&mut ops, &plain, &seen);
    assert!(matches!(ops[0], Op::Set { .. }));
}

#[test]
fn binary_values_are_reported_by_handle_never_by_key() {
    let op = Op::Get { sid: "z".into() };
    match op.read(
        &ctx(),
        0,
        &mut [Value::BulkString(vec![0xff, 0xfe]), Value::Nil],
    ) {
        Outcome::Failed(e) => {
            assert_eq!(e.kind, ErrorKind::Corrupt);
            assert!(!e.message.contains("sess:z"), "{}", e.message);
            assert!(e.message.contains(&keys::handle("sess:z")), "{}", e.message);
        }
        other => panic!("expected failure, got {other:?}"),
    }
}

#[test]
fn short_replies_fail_instead_of_panicking() {
    let ops = vec![Op::Get { sid: "a".into() }];
    let out = read_all(
        &ops,
        &ctx(),
        (0, &mut Recent::default()),
        &[3],
        vec![Ok(Value::Nil)],
    );
    assert!(matches!(out[0], Outcome::Failed(_)));
}

#[test]
fn the_near_sockets_resp_bytes_are_the_writers_pipeline_packed() {
    let owner = || Some("ada".to_owned());
    let at = Expiry::At(50_000);
    let ops = vec![
        Op::Get { sid: "g".into() },
        Op::Set {
            sid: "s".into(),
            value: "{\"é\":1}".into(),
            expiry: at,
            owner: owner(),
            life: None,
        },
        // Known creation time: plain commands, the meta by HSET.
        Op::Touch {
            sid: "known".into(),
            expiry: at,
            owner: owner(),
            life: None,
        },
        Op::Touch {
            sid: "t".into(),
            expiry: Expiry::Never,
            owner: None,
            life: None,
        },
        Op::Rewrite {
            sid: "known".into(),
            value: "{}".into(),
            expiry: at,
            owner: None,
            life: None,
        },
        // Past: deleted and taken out of the owner's index.
        Op::Set {
            sid: "old".into(),
            value: "{}".into(),
            expiry: Expiry::At(1),
            owner: owner(),
            life: None,
        },
        Op::Destroy {
            sid: "d".into(),
            reason: Reason::Logout,
        },
        Op::Adopt {
            sid: "a".into(),
            expiry: at,
            owner: owner(),
        },
        Op::Merge {
            sid: "m".into(),
            base: "{}".into(),
            value: "{\"a\":1}".into(),
            expiry: at,
            owner: None,
            loaded_owner: None,
            against: None,
            life: None,
        },
    ];
    let remembering = || {
        let mut seen = Recent::default();
        seen.learn_created("known", 10);
        seen
    };
    let (pipe, counts) = build(&ops, &ctx(), 100, &mut remembering());
    let mut resp = Resp::default();
    let resp_counts = append_all(&mut resp, &ops, &ctx(), 100, &mut remembering());
    assert_eq!(counts, resp_counts);
    assert!(counts.iter().sum::<usize>() >= 14, "{counts:?}");
    assert_eq!(
        String::from_utf8(resp.bytes).unwrap(),
        String::from_utf8(pipe.get_packed_pipeline()).unwrap()
    );
}
