//! The near path: when the writer has nothing queued or in flight, a batch
//! goes out on a socket the JS thread owns (Node's own, see
//! `lib/near.js`), encoded here and read back here when its bytes arrive,
//! all on the JS thread. The writer's path costs two thread hand-overs per
//! round trip (JS to the runtime thread, and back through the threadsafe
//! function), which one request at a time is most of what separates it
//! from a JS client; this path has none.
//!
//! Only what needs no second round trip takes it: a single server over
//! plain TCP and RESP2, no sealing (it stays off the JS thread), no merges
//! (a conflict is sent again), no destroys that wait for a replica. The
//! rest, and everything while the writer is busy, goes through the writer;
//! `order::Gate` keeps the two paths in order. A lost socket hands its
//! batches to the writer to send again (every operation carries absolute
//! values); a timed-out one fails them, as the writer does.

mod resp;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use redis::Value;
use tokio::time::Instant;

use crate::error::StoreError;
use crate::ops::commands::Resp;
use crate::ops::recent::Recent;
use crate::ops::{decode, encode, Op, Outcome};
use crate::session::expiry::now_ms;
use crate::session::scripts;
use crate::store::Store;
use resp::Frame;

/// A batch sent on the near socket, kept until its replies are read.
pub struct Sent {
    pub id: u32,
    pub ops: Vec<Op>,
    counts: Vec<usize>,
    wall: i64,
    /// Replies it expects.
    want: usize,
    pub deadline: Instant,
}

/// Batches with their outcomes, by batch id.
pub type Answered = Vec<(u32, Vec<Outcome>)>;

#[derive(Default, PartialEq, Debug)]
enum Phase {
    /// No socket (yet, or any more).
    #[default]
    Closed,
    /// Connected; this many replies to the opening commands still to come.
    Greeting(usize),
    Open,
}

#[derive(Default)]
struct State {
    phase: Phase,
    /// Bytes read that are not a whole reply yet.
    buf: Vec<u8>,
    /// The replies of the oldest batch read so far.
    got: Vec<Value>,
    sent: VecDeque<Sent>,
    /// Where a batch's commands are written, kept from batch to batch.
    out: Resp,
}

/// What bytes read from the socket did.
pub struct Fed {
    pub answered: Answered,
    /// The socket must close: the server said something this path cannot
    /// handle (its scripts are gone, an opening command failed, bytes that
    /// are not RESP2). These batches go to the writer.
    pub broken: Option<Vec<Sent>>,
}

pub struct Near {
    store: Arc<Store>,
    state: Mutex<State>,
}

impl Near {
    pub fn new(store: Arc<Store>) -> Near {
        Near {
            store,
            state: Mutex::new(State::default()),
        }
    }

    /// A socket just connected: the bytes it sends first (AUTH and SELECT
    /// as the URL asks, then the scripts, which a server may have lost).
    pub fn open(&self) -> Vec<u8> {
        let mut hello = redis::pipe();
        if let Some(server) = self.store.link().plain() {
            if let Some(password) = &server.password {
                let auth = hello.cmd("AUTH");
                if let Some(user) = &server.username {
                    auth.arg(user);
                }
                auth.arg(password);
            }
            if server.db != 0 {
                hello.cmd("SELECT").arg(server.db);
            }
        }
        for script in scripts::ALL {
            hello.cmd("SCRIPT").arg("LOAD").arg(script.code);
        }
        let mut state = self.state.lock().unwrap();
        *state = State {
            phase: Phase::Greeting(hello.len()),
            ..State::default()
        };
        hello.get_packed_pipeline()
    }

    /// Whether these operations may take the near path now.
    fn takes(&self, ops: &[Op]) -> bool {
        let ctx = self.store.context();
        ctx.seal.is_none()
            && self.store.writer_idle()
            && ops.iter().all(|op| match op {
                Op::Get { .. } | Op::Set { .. } | Op::Touch { .. } | Op::Rewrite { .. } => true,
                Op::Destroy { .. } => !self.store.destroys_need_writer(),
                Op::Merge { .. } | Op::Adopt { .. } => false,
            })
    }

    /// Hands `write` the bytes that send this batch on the near socket, or
    /// gives the operations back when it must go through the writer.
    pub fn send<R>(
        &self,
        id: u32,
        mut ops: Vec<Op>,
        write: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, Vec<Op>> {
        let mut state = self.state.lock().unwrap();
        if state.phase != Phase::Open || !self.takes(&ops) {
            return Err(ops);
        }
        let Some(mut seen) = self.store.try_seen() else {
            return Err(ops);
        };
        // Past the cap on waiting operations, the writer refuses them.
        if !self.store.near_started(ops.len()) {
            return Err(ops);
        }
        let ctx = self.store.context();
        seen.set_evicting(self.store.evicting());
        encode::prefer_rewrites(&mut ops, ctx, &seen);
        let wall = now_ms();
        let mut out = std::mem::take(&mut state.out);
        out.bytes.clear();
        let counts = encode::append_all(&mut out, &ops, ctx, wall, &mut seen);
        state.sent.push_back(Sent {
            id,
            want: counts.iter().sum(),
            ops,
            counts,
            wall,
            deadline: Instant::now() + self.store.command_timeout(),
        });
        self.store.gate().issue();
        let written = write(&out.bytes);
        state.out = out;
        Ok(written)
    }

    /// Bytes read from the socket.
    pub fn feed(&self, data: &[u8]) -> Fed {
        let mut state = self.state.lock().unwrap();
        let mut answered = Vec::new();
        // Replies usually arrive whole: read them where they are, and keep
        // only a partial one.
        let held = std::mem::take(&mut state.buf);
        let buf = match held.is_empty() {
            true => data,
            false => &[held.as_slice(), data].concat(),
        };
        let mut at = 0;
        let broken = loop {
            let (value, used) = match resp::frame(&buf[at..]) {
                Frame::Incomplete => break false,
                Frame::Malformed => break true,
                Frame::Value(v, used) => (v, used),
            };
            at += used;
            match state.phase {
                Phase::Greeting(left) => {
                    if matches!(value, Value::ServerError(_)) {
                        break true;
                    }
                    state.phase = match left {
                        1 => Phase::Open,
                        n => Phase::Greeting(n - 1),
                    };
                }
                Phase::Open => {
                    // The scripts are gone (SCRIPT FLUSH), or a reply
                    // nobody asked for.
                    if scripts::is_noscript(&value) || state.sent.is_empty() {
                        break true;
                    }
                    state.got.push(value);
                    let done = state
                        .sent
                        .front()
                        .is_some_and(|s| s.want == state.got.len());
                    if done {
                        let sent = state.sent.pop_front().expect("a batch is waiting");
                        self.store.near_ended(sent.ops.len());
                        let got = std::mem::take(&mut state.got);
                        answered.push((sent.id, self.read(&sent, got)));
                        self.store.gate().answer();
                    }
                }
                // Replies nobody asked for.
                Phase::Closed => break true,
            }
        };
        if !broken && at < buf.len() {
            state.buf = buf[at..].to_vec();
        }
        let broken = broken.then(|| self.close(&mut state));
        Fed { answered, broken }
    }

    fn read(&self, sent: &Sent, got: Vec<Value>) -> Vec<Outcome> {
        let ctx = self.store.context();
        let values = got.into_iter().map(Ok).collect();
        // Free while the near path is used (the writer is idle); a fresh
        // memory otherwise, which only costs a later write more.
        let mut fallback = Recent::default();
        let mut guard = self.store.try_seen();
        let seen = guard.as_deref_mut().unwrap_or(&mut fallback);
        let outcomes = decode::read_all(&sent.ops, ctx, (sent.wall, seen), &sent.counts, values);
        for (op, outcome) in sent.ops.iter().zip(&outcomes) {
            if matches!(outcome, Outcome::Failed(_)) {
                seen.forget(op.sid());
            }
        }
        outcomes
    }

    /// The socket closed or errored: its batches go to the writer.
    pub fn lost(&self) -> Vec<Sent> {
        let mut state = self.state.lock().unwrap();
        self.close(&mut state)
    }

    /// A batch outlived the command timeout: every batch on the socket
    /// fails (the server may have run them, so they are not sent again),
    /// and the socket is closed.
    pub fn timed_out(&self) -> Answered {
        let mut state = self.state.lock().unwrap();
        let err = StoreError::timed_out(self.store.command_timeout());
        let sent = self.close(&mut state);
        sent.into_iter()
            .map(|s| {
                self.store.gate().answer();
                (
                    s.id,
                    s.ops.iter().map(|_| Outcome::Failed(err.clone())).collect(),
                )
            })
            .collect()
    }

    /// Closes the path; the batches it had, in order. What this process
    /// remembers writing is forgotten, so batches built again write
    /// everything (their index writes may never have reached Redis).
    fn close(&self, state: &mut State) -> Vec<Sent> {
        let sent = std::mem::take(&mut state.sent);
        *state = State::default();
        self.store
            .near_ended(sent.iter().map(|s| s.ops.len()).sum::<usize>());
        if !sent.is_empty() {
            self.store.forget_recent();
        }
        sent.into()
    }
}

/// The state machine driven with scripted server bytes, deterministically;
/// `__test__/near.test.js` runs the path against a real server.
#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::backend::{ConnectionOptions, Tls};
    use crate::ops::Context;
    use crate::session::expiry::Lifetime;
    use crate::session::keys::Keys;

    fn near() -> Near {
        let ctx = Context {
            keys: Keys::new("sess:"),
            lifetime: Lifetime {
                idle_ms: None,
                absolute_ms: None,
            },
            count_logins: false,
            session_limits: false,
            wait_for_replicas: false,
            seal: None,
            merge: false,
            read_expiry: false,
            events: Default::default(),
            ended: Default::default(),
            repairs: Default::default(),
        };
        let options = ConnectionOptions {
            // Never dialled: these tests feed the bytes.
            url: "redis://127.0.0.1:1".into(),
            sentinel: None,
            cluster: Vec::new(),
            tls: Tls::default(),
            command_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
            single_connection: false,
        };
        let store = Store::open(ctx, &options, Arc::new(|_| {})).unwrap();
        Near::new(Arc::new(store))
    }

    fn get(sid: &str) -> Vec<Op> {
        vec![Op::Get { sid: sid.into() }]
    }

    /// Answers the opening commands (five SCRIPT LOADs).
    fn opened(near: &Near) {
        let hello = String::from_utf8(near.open()).unwrap();
        assert_eq!(hello.matches("SCRIPT").count(), scripts::ALL.len());
        assert!(
            near.send(1, get("early"), <[u8]>::to_vec).is_err(),
            "not before the replies"
        );
        let fed = near.feed(b"$2\r\nab\r\n".repeat(scripts::ALL.len()).as_slice());
        assert!(fed.answered.is_empty() && fed.broken.is_none());
    }

    #[tokio::test]
    async fn a_batch_is_answered_once_all_its_replies_arrive_in_any_chunks() {
        let near = near();
        assert!(
            near.send(1, get("a"), <[u8]>::to_vec).is_err(),
            "closed until a socket opens"
        );
        opened(&near);
        let bytes = near.send(7, get("a"), <[u8]>::to_vec).unwrap();
        assert!(String::from_utf8_lossy(&bytes).contains("sess:a"));
        assert!(!near.store.gate().passed(near.store.gate().mark()));
        let text = r#"{"cookie":{}}"#;
        let reply = format!("${}\r\n{text}\r\n", text.len()).into_bytes();
        for byte in &reply[..reply.len() - 1] {
            assert!(near.feed(&[*byte]).answered.is_empty());
        }
        let fed = near.feed(&reply[reply.len() - 1..]);
        assert!(fed.broken.is_none());
        let [(7, outcomes)] = &fed.answered[..] else {
            panic!("{:?}", fed.answered.len())
        };
        assert!(
            matches!(&outcomes[0], Outcome::Session { value: Some(v), .. } if v.starts_with("{\"cookie\""))
        );
        assert!(near.store.gate().passed(near.store.gate().mark()));
    }

    #[tokio::test]
    async fn lost_scripts_or_stray_replies_break_the_socket_and_hand_back_its_batches() {
        let near = near();
        opened(&near);
        near.send(1, get("a"), <[u8]>::to_vec).unwrap();
        near.send(2, get("b"), <[u8]>::to_vec).unwrap();
        let fed = near.feed(b"$-1\r\n-NOSCRIPT No matching script\r\n");
        assert_eq!(fed.answered.len(), 1);
        let back: Vec<u32> = fed.broken.unwrap().iter().map(|s| s.id).collect();
        assert_eq!(back, vec![2]);
        assert!(near.send(3, get("c"), <[u8]>::to_vec).is_err(), "closed");

        opened(&near);
        assert!(
            near.feed(b"+OK\r\n").broken.is_some(),
            "a reply nobody asked for"
        );
        opened(&near);
        near.send(4, get("d"), <[u8]>::to_vec).unwrap();
        assert!(near.feed(b"?\r\n").broken.is_some(), "not RESP2");
        let near2 = self::near();
        near2.open();
        let failed = near2.feed(b"-WRONGPASS invalid username-password pair\r\n");
        assert!(failed.broken.is_some(), "an opening command failed");
    }

    #[tokio::test]
    async fn a_timeout_fails_every_batch_on_the_socket() {
        let near = near();
        opened(&near);
        near.send(1, get("a"), <[u8]>::to_vec).unwrap();
        near.send(2, get("b"), <[u8]>::to_vec).unwrap();
        let failed = near.timed_out();
        assert_eq!(
            failed.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert!(failed
            .iter()
            .all(|(_, o)| matches!(&o[0], Outcome::Failed(e) if e.kind == crate::error::ErrorKind::Timeout)));
        assert!(near.store.gate().passed(near.store.gate().mark()));
        assert!(near.lost().is_empty());
    }

    #[tokio::test]
    async fn lost_batches_make_the_next_user_forget_what_they_recorded() {
        let near = near();
        opened(&near);
        let at = crate::session::expiry::Expiry::At(now_ms() + 60_000);
        let set = Op::Set {
            sid: "s".into(),
            value: "{}".into(),
            expiry: at,
            owner: Some("ada".into()),
            life: None,
        };
        near.send(1, vec![set], <[u8]>::to_vec).unwrap();
        // Someone else (the writer) holds the memory when the socket is lost.
        let held = near.store.try_seen().unwrap();
        assert!(held.covers("s", Some("ada"), at), "recorded when sent");
        assert_eq!(near.lost().len(), 1);
        drop(held);
        let seen = near.store.try_seen().unwrap();
        assert!(
            !seen.covers("s", Some("ada"), at),
            "the index write is made again"
        );
    }

    #[tokio::test]
    async fn batches_needing_the_writer_are_handed_back() {
        let near = near();
        opened(&near);
        let merge = vec![Op::Merge {
            sid: "m".into(),
            base: "{}".into(),
            value: "{}".into(),
            expiry: crate::session::expiry::Expiry::Never,
            owner: None,
            loaded_owner: None,
            against: None,
            life: None,
        }];
        assert!(near.send(1, merge, <[u8]>::to_vec).is_err());
        let gate = near.store.gate().mark();
        assert_eq!(gate, 0, "nothing issued");
    }
}
