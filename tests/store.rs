//! The Rust core against a real redis-server started on a free port.

mod common;
use common::Server;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use redis_session_store::admin::{listing, stats, users};
use redis_session_store::backend::{ConnectionOptions, Tls};
use redis_session_store::error::ErrorKind;
use redis_session_store::ops::{Context, Op, Outcome};
use redis_session_store::session::events::Reason;
use redis_session_store::session::expiry::{now_ms, Expiry, Lifetime};
use redis_session_store::session::keys::Keys;
use redis_session_store::store::{Reply, Store};
use tokio::sync::oneshot;

fn options(url: String, timeout_ms: u64) -> ConnectionOptions {
    ConnectionOptions {
        url,
        sentinel: None,
        cluster: Vec::new(),
        tls: Tls::default(),
        command_timeout: Duration::from_millis(timeout_ms),
        connect_timeout: Duration::from_millis(timeout_ms),
        single_connection: false,
    }
}

fn open(prefix: &str, options: &ConnectionOptions) -> Store {
    open_with(prefix, Lifetime::default(), options)
}

fn open_with(prefix: &str, lifetime: Lifetime, options: &ConnectionOptions) -> Store {
    let ctx = Context {
        keys: Keys::new(prefix),
        lifetime,
        count_logins: true,
        session_limits: false,
        wait_for_replicas: true,
        seal: None,
        merge: false,
        // Reads report the key's expiry (what a touch set), checked below.
        read_expiry: true,
        events: Default::default(),
        ended: Default::default(),
        repairs: Default::default(),
    };
    Store::open(ctx, options, std::sync::Arc::new(|_| {})).unwrap()
}

fn session(user: &str, expires_at: i64) -> String {
    serde_json::json!({ "cookie": { "originalMaxAge": 60000, "expires": expires_at }, "user": user })
        .to_string()
}

async fn run(store: &Store, ops: Vec<Op>) -> Vec<Outcome> {
    submit(store, ops).await.expect("a reply for every batch")
}

/// Queues a batch; the receiver gets its outcomes.
fn submit(store: &Store, ops: Vec<Op>) -> oneshot::Receiver<Vec<Outcome>> {
    let (tx, rx) = oneshot::channel();
    let reply = Reply::new(ops.len(), move |outcomes| {
        let _ = tx.send(outcomes);
    });
    store.submit(ops, reply);
    rx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_writes_reads_touches_and_destroys_in_order() {
    let server = Server::start();
    let store = open("sess:", &options(server.url(), 2000));
    let sid = uuid::Uuid::new_v4().to_string();
    let at = now_ms() + 60_000;
    let later = at + 30_000;
    let value = session("ada", at);

    let out = run(
        &store,
        vec![
            Op::Set {
                sid: sid.clone(),
                value: value.clone(),
                expiry: Expiry::At(at),
                owner: None,
                life: None,
            },
            Op::Get { sid: sid.clone() },
            Op::Touch {
                sid: sid.clone(),
                expiry: Expiry::At(later),
                owner: None,
                life: None,
            },
            Op::Get { sid: sid.clone() },
            Op::Destroy {
                sid: sid.clone(),
                reason: Reason::Logout,
            },
            Op::Get { sid: sid.clone() },
        ],
    )
    .await;

    assert_eq!(out[0], Outcome::Written { owner_sessions: 0 });
    assert_eq!(
        out[1],
        Outcome::Session {
            value: Some(value.clone()),
            expires_at: Some(at)
        }
    );
    assert_eq!(
        out[3],
        Outcome::Session {
            value: Some(value),
            expires_at: Some(later)
        }
    );
    assert_eq!(
        out[5],
        Outcome::Session {
            value: None,
            expires_at: None
        }
    );
    // Its index entry, left by the late write, is dropped when read.
    assert!(users::list_user(&store, "ada", 100)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(listing::length(&store, 100).await.unwrap(), 0);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_batches_each_get_their_own_replies() {
    let server = Server::start();
    let store = std::sync::Arc::new(open("c:", &options(server.url(), 2000)));
    let at = now_ms() + 60_000;
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let sid = format!("s{i}");
                let value = session(&format!("user{i}"), at);
                let out = run(
                    &store,
                    vec![
                        Op::Set {
                            sid: sid.clone(),
                            value: value.clone(),
                            expiry: Expiry::At(at),
                            owner: None,
                            life: None,
                        },
                        Op::Get { sid },
                    ],
                )
                .await;
                assert_eq!(
                    out[1],
                    Outcome::Session {
                        value: Some(value),
                        expires_at: Some(at)
                    }
                );
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_fails_fast_with_unavailable() {
    // A port nobody listens on: bind, read the number, release it.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let store = open("x:", &options(format!("redis://127.0.0.1:{port}"), 1000));
    let started = Instant::now();
    let out = run(&store, vec![Op::Get { sid: "1".into() }]).await;
    match &out[0] {
        Outcome::Failed(e) => assert!(
            matches!(e.kind, ErrorKind::Unavailable | ErrorKind::Timeout),
            "{e}"
        ),
        other => panic!("expected an error, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_times_out_within_the_bound() {
    // Accepts TCP (the kernel backlog does) but never speaks RESP.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let store = open("x:", &options(format!("redis://127.0.0.1:{port}"), 300));
    let started = Instant::now();
    let out = run(&store, vec![Op::Get { sid: "1".into() }]).await;
    assert!(
        matches!(&out[0], Outcome::Failed(e) if e.kind == ErrorKind::Timeout || e.kind == ErrorKind::Unavailable),
        "{out:?}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(600),
        "{:?}",
        started.elapsed()
    );
    drop(silent);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_fails_later_calls_and_settles_queued_ones() {
    let server = Server::start();
    let store = open("q:", &options(server.url(), 2000));
    let queued = submit(&store, vec![Op::Get { sid: "1".into() }]);
    store.close().await;
    assert!(matches!(queued.await.unwrap()[0], Outcome::Session { .. }));
    let after = run(&store, vec![Op::Get { sid: "1".into() }]).await;
    assert!(matches!(&after[0], Outcome::Failed(e) if e.kind == ErrorKind::Closed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_reconnects_by_itself_after_a_restart() {
    let server = Server::start();
    let port = server.port;
    let store = open("r:", &options(server.url(), 1000));
    let at = now_ms() + 60_000;
    let set = |v: &str| Op::Set {
        sid: "1".into(),
        value: v.into(),
        expiry: Expiry::At(at),
        owner: None,
        life: None,
    };
    let written = Outcome::Written { owner_sessions: 0 };
    assert_eq!(run(&store, vec![set("one")]).await[0], written);

    drop(server);
    let down = run(&store, vec![Op::Get { sid: "1".into() }]).await;
    assert!(matches!(&down[0], Outcome::Failed(_)), "{down:?}");

    let _server = Server::on(port);
    // Back within a second: the data is gone (no persistence) but calls work.
    let until = Instant::now() + Duration::from_secs(1);
    loop {
        if run(&store, vec![set("two")]).await[0] == written {
            break;
        }
        assert!(Instant::now() < until, "no recovery within 1 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_after_destroy_does_not_bring_the_session_back() {
    let server = Server::start();
    let store = open("t:", &options(server.url(), 2000));
    let sid = "late".to_string();
    let at = now_ms() + 60_000;
    let set = Op::Set {
        sid: sid.clone(),
        value: session("ada", at),
        expiry: Expiry::At(at),
        owner: Some("ada".into()),
        life: None,
    };
    let out = run(
        &store,
        vec![
            set.clone(),
            Op::Destroy {
                sid: sid.clone(),
                reason: Reason::Logout,
            },
            // The slow request of the logged-out session ends now.
            set,
            Op::Get { sid: sid.clone() },
        ],
    )
    .await;
    assert!(matches!(out[2], Outcome::Written { .. }), "{out:?}");
    assert_eq!(
        out[3],
        Outcome::Session {
            value: None,
            expires_at: None
        }
    );
    // Its index entry, left by the late write, is dropped when read.
    assert!(users::list_user(&store, "ada", 100)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(listing::length(&store, 100).await.unwrap(), 0);
    store.close().await;
}

fn set_op(sid: &str, at: i64, owner: Option<&str>) -> Op {
    Op::Set {
        sid: sid.into(),
        value: session("ada", at),
        expiry: Expiry::At(at),
        owner: owner.map(Into::into),
        life: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_absolute_limits_end_a_session_before_its_cookie() {
    let server = Server::start();
    let lifetime = Lifetime {
        idle_ms: Some(250),
        absolute_ms: Some(600),
    };
    let store = open_with("l:", lifetime, &options(server.url(), 2000));
    let cookie = now_ms() + 60_000;
    run(
        &store,
        vec![set_op("busy", cookie, None), set_op("idle", cookie, None)],
    )
    .await;
    // "busy" is touched every 100 ms: the idle limit never hits it, the
    // absolute one does; "idle" is left alone and goes after 250 ms.
    let started = Instant::now();
    let mut idle_gone_at = None;
    let busy_gone_at = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let touch = Op::Touch {
            sid: "busy".into(),
            expiry: Expiry::At(cookie),
            owner: None,
            life: None,
        };
        let out = run(
            &store,
            vec![
                touch,
                Op::Get { sid: "busy".into() },
                Op::Get { sid: "idle".into() },
            ],
        )
        .await;
        let alive = |o: &Outcome| matches!(o, Outcome::Session { value: Some(_), .. });
        if !alive(&out[2]) && idle_gone_at.is_none() {
            idle_gone_at = Some(started.elapsed());
        }
        if !alive(&out[1]) {
            break started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(3), "never expired");
    };
    let idle_gone_at = idle_gone_at.expect("idle session expired first");
    assert!(
        idle_gone_at < Duration::from_millis(450),
        "{idle_gone_at:?}"
    );
    assert!(
        busy_gone_at >= Duration::from_millis(500) && busy_gone_at < Duration::from_millis(1000),
        "{busy_gone_at:?}"
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_lost_by_the_server_are_loaded_again() {
    let server = Server::start();
    let store = open("n:", &options(server.url(), 2000));
    let at = now_ms() + 60_000;
    run(&store, vec![set_op("a", at, Some("u"))]).await;
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .unwrap();
    let out = run(
        &store,
        vec![set_op("b", at, Some("u")), Op::Get { sid: "b".into() }],
    )
    .await;
    assert_eq!(out[0], Outcome::Written { owner_sessions: 2 });
    assert!(matches!(&out[1], Outcome::Session { value: Some(_), .. }));
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_sessions_are_listed_by_last_use_and_limited() {
    let server = Server::start();
    let store = open("u:", &options(server.url(), 2000));
    let at = now_ms() + 60_000;
    for sid in ["s1", "s2", "s3"] {
        run(&store, vec![set_op(sid, at, Some("ada"))]).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    run(&store, vec![set_op("other", at, Some("bob"))]).await;
    // s1 used again: now the most recent.
    let touch = Op::Touch {
        sid: "s1".into(),
        expiry: Expiry::At(at),
        owner: Some("ada".into()),
        life: None,
    };
    assert_eq!(
        run(&store, vec![touch]).await[0],
        Outcome::Written { owner_sessions: 0 }
    );
    let listed: Vec<String> = users::list_user(&store, "ada", 2)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.sid)
        .collect();
    assert_eq!(listed, ["s1", "s3", "s2"]);

    assert_eq!(
        users::enforce_limit(&store, "ada", 2, 100).await.unwrap(),
        1
    );
    let out = run(&store, vec![Op::Get { sid: "s2".into() }]).await;
    assert!(matches!(&out[0], Outcome::Session { value: None, .. }));
    let stats = stats::stats(&store, (60_000, None), 100).await.unwrap();
    assert_eq!((stats.sessions, stats.users, stats.active), (3, 2, 3));

    let except = ["s1".to_string()];
    assert_eq!(
        users::destroy_user(&store, "ada", &except, (100, tokio::time::Instant::now()))
            .await
            .unwrap(),
        1
    );
    assert_eq!(listing::ids(&store, 100).await.unwrap().len(), 2);
    assert_eq!(listing::clear(&store, 100).await.unwrap(), 2);
    assert_eq!(listing::length(&store, 100).await.unwrap(), 0);
    store.close().await;
}

/// The scripts are loaded without looking at the replies (a server that
/// lost them answers NOSCRIPT later, and they are loaded again), so a script
/// that does not compile would only show as NOSCRIPT on its first use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_script_compiles_on_a_real_server() {
    let server = Server::start();
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let replies: Vec<redis::Value> = redis_session_store::session::scripts::load_pipeline()
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        replies.len(),
        redis_session_store::session::scripts::ALL.len()
    );
    for reply in replies {
        assert!(
            matches!(reply, redis::Value::BulkString(_)),
            "SCRIPT LOAD answered {reply:?}"
        );
    }
}

/// A store sealing with these keys (the first seals).
fn open_sealed(prefix: &str, keys: &[(&str, u8)], options: &ConnectionOptions) -> Store {
    let keys = keys
        .iter()
        .map(|(id, b)| (id.to_string(), vec![*b; 32]))
        .collect();
    let ctx = Context {
        keys: Keys::new(prefix),
        lifetime: Lifetime::default(),
        count_logins: false,
        session_limits: false,
        wait_for_replicas: true,
        seal: Some(std::sync::Arc::new(
            redis_session_store::session::seal::Keyring::new(keys, false).unwrap(),
        )),
        merge: true,
        read_expiry: false,
        events: Default::default(),
        ended: Default::default(),
        repairs: Default::default(),
    };
    Store::open(ctx, options, std::sync::Arc::new(|_| {})).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reencryption_does_not_overwrite_a_save_made_after_its_read() {
    use redis_session_store::admin::reencrypt::{apply, plan, Rewritten};
    let server = Server::start();
    let options = options(server.url(), 2000);
    let old = open_sealed("enc:", &[("old", 1)], &options);
    let rotated = open_sealed("enc:", &[("new", 2), ("old", 1)], &options);
    let at = now_ms() + 60_000;
    let set = |sid: &str, user: &str| Op::Set {
        sid: sid.into(),
        value: session(user, at),
        expiry: Expiry::At(at),
        owner: None,
        life: None,
    };
    run(&old, vec![set("raced", "before"), set("calm", "calm")]).await;
    let conn = rotated.connection().await.unwrap();
    let mut done = Rewritten::default();
    let swaps = plan(
        &rotated,
        &conn,
        vec!["raced".into(), "calm".into()],
        &mut done,
    )
    .await
    .unwrap();
    // A save lands between the read and the rewrite.
    run(&old, vec![set("raced", "after")]).await;
    let again = apply(&conn, swaps, &mut done).await.unwrap();
    assert_eq!(again, vec!["raced".to_string()]);
    assert_eq!(done.reencrypted, 1);
    let read = |sid: &str| Op::Get { sid: sid.into() };
    let out = run(&rotated, vec![read("raced"), read("calm")]).await;
    let text = |o: &Outcome| match o {
        Outcome::Session { value: Some(v), .. } => v.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(text(&out[0]), session("after", at));
    assert_eq!(text(&out[1]), session("calm", at));
    // Only the rewritten one is under the new key now.
    let fresh = open_sealed("enc:", &[("new", 2)], &options);
    let out = run(&fresh, vec![read("raced"), read("calm")]).await;
    assert!(matches!(&out[0], Outcome::Failed(e) if e.kind == ErrorKind::UnknownKey));
    assert_eq!(text(&out[1]), session("calm", at));
}

/// Calls of the write script so far (INFO commandstats).
fn evalsha_calls(url: &str) -> u64 {
    let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut conn)
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_evalsha:calls="))
        .and_then(|rest| rest.split(',').next()?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_merge_after_a_read_here_writes_at_its_first_try() {
    let server = Server::start();
    let options = options(server.url(), 2000);
    let store = open_sealed("m:", &[("k", 3)], &options);
    let at = now_ms() + 60_000;
    let loaded = session("ada", at);
    let set = Op::Set {
        sid: "s".into(),
        value: loaded.clone(),
        expiry: Expiry::At(at),
        owner: None,
        life: None,
    };
    run(&store, vec![set, Op::Get { sid: "s".into() }]).await;
    let before = evalsha_calls(&server.url());
    let merge = |value: String| Op::Merge {
        sid: "s".into(),
        base: loaded.clone(),
        value,
        expiry: Expiry::At(at),
        owner: None,
        loaded_owner: None,
        against: None,
        life: None,
    };
    let out = run(&store, vec![merge(session("bob", at))]).await;
    assert_eq!(out, vec![Outcome::Written { owner_sessions: 0 }]);
    assert_eq!(
        evalsha_calls(&server.url()) - before,
        1,
        "one write script call"
    );
    // Another instance, which never read it, needs the second try.
    let other = open_sealed("m:", &[("k", 3)], &options);
    let before = evalsha_calls(&server.url());
    let base = session("bob", at);
    let out = run(
        &other,
        vec![Op::Merge {
            sid: "s".into(),
            base,
            value: session("cy", at),
            expiry: Expiry::At(at),
            owner: None,
            loaded_owner: None,
            against: None,
            life: None,
        }],
    )
    .await;
    assert_eq!(out, vec![Outcome::Written { owner_sessions: 0 }]);
    assert_eq!(evalsha_calls(&server.url()) - before, 2);
    match &run(&store, vec![Op::Get { sid: "s".into() }]).await[0] {
        Outcome::Session { value: Some(v), .. } => assert_eq!(v, &session("cy", at)),
        other => panic!("{other:?}"),
    }
}

/// Near batches handed back to the writer (`Store::resend`) go first, while
/// jobs queued after them wait for them (`order::Gate`); the jobs waiting
/// keep their order and their outcomes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resent_near_batches_go_first_and_the_jobs_waiting_keep_their_order() {
    let server = Server::start();
    let store = open("resend:", &options(server.url(), 2000));
    let at = now_ms() + 60_000;
    let sid = uuid::Uuid::new_v4().to_string();
    let get = || Op::Get { sid: sid.clone() };
    let set = |user: &str| Op::Set {
        sid: sid.clone(),
        value: session(user, at),
        expiry: Expiry::At(at),
        owner: None,
        life: None,
    };
    // A near batch is out: what is queued from now on waits for it.
    store.gate().issue();
    let first = submit(&store, vec![set("first"), get()]);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let second = submit(&store, vec![set("second"), get()]);
    // The near socket is lost: its batch comes back to the writer.
    let (tx, resent) = oneshot::channel();
    let gate = store.gate().clone();
    let reply = Reply::new(1, move |outcomes| {
        gate.answer();
        let _ = tx.send(outcomes);
    });
    store.resend(
        vec![set("near")],
        reply,
        tokio::time::Instant::now() + Duration::from_secs(2),
    );
    assert!(matches!(
        &resent.await.unwrap()[..],
        [Outcome::Written { .. }]
    ));
    let read = |outcomes: Vec<Outcome>| match &outcomes[..] {
        [Outcome::Written { .. }, Outcome::Session { value: Some(v), .. }] => v.clone(),
        other => panic!("{other:?}"),
    };
    assert!(read(first.await.unwrap()).contains("\"first\""));
    assert!(read(second.await.unwrap()).contains("\"second\""));
}
