//! The Rust core against a real redis-server started on a free port.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redis_session_store::commands::{Op, Outcome};
use redis_session_store::connection::ConnectionOptions;
use redis_session_store::error::ErrorKind;
use redis_session_store::expiry::{now_ms, Expiry};
use redis_session_store::store::{Reply, Store};
use tokio::sync::oneshot;

struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start() -> Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Server::on(port)
    }

    fn on(port: u16) -> Server {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--loglevel", "warning"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server on PATH");
        let until = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < until, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Server { child, port }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn options(url: String, timeout_ms: u64) -> ConnectionOptions {
    ConnectionOptions {
        url,
        command_timeout: Duration::from_millis(timeout_ms),
        connect_timeout: Duration::from_millis(timeout_ms),
    }
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
    let store = Store::open("sess:", &options(server.url(), 2000)).unwrap();
    let sid = uuid::Uuid::new_v4().to_string();
    let key = store.keys().session(&sid);
    let at = now_ms() + 60_000;
    let later = at + 30_000;
    let value = session("ada", at);

    let out = run(
        &store,
        vec![
            Op::Set {
                key: key.clone(),
                value: value.clone(),
                expiry: Expiry::At(at),
            },
            Op::Get { key: key.clone() },
            Op::Touch {
                key: key.clone(),
                expiry: Expiry::At(later),
            },
            Op::Get { key: key.clone() },
            Op::Destroy { key: key.clone() },
            Op::Get { key: key.clone() },
        ],
    )
    .await;

    assert_eq!(out[0], Outcome::Done);
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
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_batches_each_get_their_own_replies() {
    let server = Server::start();
    let store = std::sync::Arc::new(Store::open("c:", &options(server.url(), 2000)).unwrap());
    let at = now_ms() + 60_000;
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let key = store.keys().session(&format!("s{i}"));
                let value = session(&format!("user{i}"), at);
                let out = run(
                    &store,
                    vec![
                        Op::Set {
                            key: key.clone(),
                            value: value.clone(),
                            expiry: Expiry::At(at),
                        },
                        Op::Get { key },
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
    let store = Store::open("x:", &options(format!("redis://127.0.0.1:{port}"), 1000)).unwrap();
    let started = Instant::now();
    let out = run(&store, vec![Op::Get { key: "x:1".into() }]).await;
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
    let store = Store::open("x:", &options(format!("redis://127.0.0.1:{port}"), 300)).unwrap();
    let started = Instant::now();
    let out = run(&store, vec![Op::Get { key: "x:1".into() }]).await;
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
    let store = Store::open("q:", &options(server.url(), 2000)).unwrap();
    let queued = submit(&store, vec![Op::Get { key: "q:1".into() }]);
    store.close().await;
    assert!(matches!(queued.await.unwrap()[0], Outcome::Session { .. }));
    let after = run(&store, vec![Op::Get { key: "q:1".into() }]).await;
    assert!(matches!(&after[0], Outcome::Failed(e) if e.kind == ErrorKind::Closed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_reconnects_by_itself_after_a_restart() {
    let server = Server::start();
    let port = server.port;
    let store = Store::open("r:", &options(server.url(), 1000)).unwrap();
    let at = now_ms() + 60_000;
    let set = |v: &str| Op::Set {
        key: "r:1".into(),
        value: v.into(),
        expiry: Expiry::At(at),
    };
    assert_eq!(run(&store, vec![set("one")]).await[0], Outcome::Done);

    drop(server);
    let down = run(&store, vec![Op::Get { key: "r:1".into() }]).await;
    assert!(matches!(&down[0], Outcome::Failed(_)), "{down:?}");

    let _server = Server::on(port);
    // Back within a second: the data is gone (no persistence) but calls work.
    let until = Instant::now() + Duration::from_secs(1);
    loop {
        if run(&store, vec![set("two")]).await[0] == Outcome::Done {
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
    let store = Store::open("t:", &options(server.url(), 2000)).unwrap();
    let key = store.keys().session("late");
    let at = now_ms() + 60_000;
    let set = Op::Set {
        key: key.clone(),
        value: session("ada", at),
        expiry: Expiry::At(at),
    };
    let out = run(
        &store,
        vec![
            set.clone(),
            Op::Destroy { key: key.clone() },
            // The slow request of the logged-out session ends now.
            set,
            Op::Get { key: key.clone() },
        ],
    )
    .await;
    assert_eq!(out[2], Outcome::Done);
    assert_eq!(
        out[3],
        Outcome::Session {
            value: None,
            expires_at: None
        }
    );
    store.close().await;
}
