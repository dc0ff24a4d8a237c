//! An embedded engine that answers the store's pipelines as a Redis 7.0
//! server would, with no server: `memory://` keeps the data in this
//! process, `file:///absolute/path` also in a file (through redb) so that
//! it survives a restart. It knows the commands the store sends and runs
//! the store's Lua scripts natively (see `scripts`).
//!
//! Sharing: `memory://` is private to one `Engine`; `memory://<name>` and
//! a file are shared by every `open` of the same name or canonical path in
//! this process (two stores standing for two app instances), for as long
//! as one of them is open. A file is refused to a second process.

mod commands;
mod data;
mod file;
mod glob;
mod keyspace;
mod location;
mod lua;
mod parse;
mod reply;
mod scripts;

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use redis::{Arg, Pipeline, Value};

use crate::error::StoreResult;
use crate::session::expiry::now_ms;
use file::File;
use keyspace::Keyspace;
use location::{Location, Shared};

/// One engine's data; `Send + Sync`, each call runs under its lock.
pub struct Engine {
    state: Mutex<State>,
    /// Under what this engine is listed in `OPEN`, if it is shared.
    shared: Option<Shared>,
}

struct State {
    keyspace: Keyspace,
    file: Option<File>,
    /// Why every call fails: the file could be neither written nor read
    /// back, so memory no longer knows what it holds.
    broken: Option<String>,
}

/// The shared engines of this process. An entry whose engine is being
/// dropped stays until that engine's `Drop` removes it, after releasing
/// its file, so a new `open` never finds the file still locked by us.
static OPEN: LazyLock<Mutex<HashMap<Shared, Weak<Engine>>>> = LazyLock::new(Default::default);

/// A panic in one call (the binding catches it) must not make the engine
/// unusable; what that call changed is in memory and in the log alike, so
/// the state stays whole.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Engine {
    /// "memory://" (private to this Engine), "memory://<name>" (shared by
    /// every open() of that name in this process) or
    /// "file:///absolute/path" (shared within this process by canonical
    /// path; a second process is refused with an error naming the file).
    /// A bad URL is ErrorKind::InvalidArgument naming it; a file that
    /// cannot be had, ErrorKind::Unavailable naming it.
    pub fn open(url: &str) -> StoreResult<Arc<Engine>> {
        let shared = match location::parse(url)? {
            Location::Private => return Ok(Engine::new(Keyspace::new(false), None, None)),
            Location::Shared(shared) => shared,
        };
        loop {
            let mut open = lock(&OPEN);
            match open.get(&shared).map(Weak::upgrade) {
                Some(Some(engine)) => return Ok(engine),
                Some(None) => {
                    // Its last handle is being dropped: let it finish.
                    drop(open);
                    std::thread::sleep(Duration::from_millis(1));
                }
                None => {
                    let (keyspace, file) = match &shared {
                        Shared::Memory(_) => (Keyspace::new(false), None),
                        Shared::File(path) => {
                            let file = File::open(path)?;
                            (file.load().map_err(|e| file.failed(&e))?, Some(file))
                        }
                    };
                    let engine = Engine::new(keyspace, file, Some(shared.clone()));
                    open.insert(shared, Arc::downgrade(&engine));
                    return Ok(engine);
                }
            }
        }
    }

    /// Keys held, expired ones not dropped yet included, and their bytes.
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn held(&self) -> (usize, usize) {
        lock(&self.state).keyspace.held()
    }

    /// Whether calls write to a file (and so wait for the disk).
    pub fn on_disk(&self) -> bool {
        matches!(self.shared, Some(Shared::File(_)))
    }

    fn new(keyspace: Keyspace, file: Option<File>, shared: Option<Shared>) -> Arc<Engine> {
        let engine = Arc::new(Engine {
            state: Mutex::new(State {
                keyspace,
                file,
                broken: None,
            }),
            shared,
        });
        #[cfg(all(feature = "test-hooks", not(test)))]
        lock(&held::ALL).push(Arc::downgrade(&engine));
        engine
    }

    /// Runs a pipeline as a Redis server would: one reply per command, in
    /// order. For a file, everything the call changed is one write
    /// transaction, durable before this returns; if it cannot be written,
    /// every reply is the error and nothing of the call is applied. May
    /// block on file I/O.
    pub fn exec(&self, pipe: &Pipeline) -> Vec<Value> {
        let mut state = lock(&self.state);
        if let Some(why) = &state.broken {
            return pipe.cmd_iter().map(|_| reply::error(why)).collect();
        }
        let replies: Vec<Value> = pipe
            .cmd_iter()
            .map(|cmd| {
                let args: Vec<&[u8]> = cmd
                    .args_iter()
                    .map(|arg| match arg {
                        Arg::Simple(bytes) => bytes,
                        // A cursor: what redis-rs sends for one outside an iterator.
                        _ => b"0",
                    })
                    .collect();
                dispatch(&mut state.keyspace, &args, now_ms())
            })
            .collect();
        match state.commit() {
            Ok(()) => replies,
            Err(why) => replies.iter().map(|_| reply::error(&why)).collect(),
        }
    }

    /// Drops up to `max` expired keys that nobody read; returns how many.
    /// Costs in proportion to what expired.
    pub fn sweep(&self, max: usize) -> usize {
        let mut state = lock(&self.state);
        if state.broken.is_some() {
            return 0;
        }
        let dropped = state.keyspace.sweep(now_ms(), max);
        match state.commit() {
            Ok(()) => dropped,
            Err(_) => 0,
        }
    }
}

/// What the engines of this process hold, for the tests of memory under
/// churn: a count that does not depend on the allocator, as RSS does.
/// Only in the dev build (cargo feature `test-hooks`), which is not a test
/// of this crate's own (those read `Engine::held`).
#[cfg(all(feature = "test-hooks", not(test)))]
mod held {
    use super::*;

    pub static ALL: LazyLock<Mutex<Vec<Weak<Engine>>>> = LazyLock::new(Default::default);

    #[napi_derive::napi(object)]
    pub struct EngineHeld {
        /// Keys, expired ones not dropped yet included.
        pub keys: f64,
        /// Bytes of those keys and of what they hold.
        pub bytes: f64,
    }

    /// Sums over every engine still open in this process.
    #[napi_derive::napi]
    pub fn engine_held() -> EngineHeld {
        let mut all = lock(&ALL);
        all.retain(|e| e.strong_count() > 0);
        let (keys, bytes) = all
            .iter()
            .filter_map(Weak::upgrade)
            .map(|e| e.held())
            .fold((0, 0), |(k, b), (k2, b2)| (k + k2, b + b2));
        EngineHeld {
            keys: keys as f64,
            bytes: bytes as f64,
        }
    }

    /// Runs one command on the engine `url` names, as a test reaches under
    /// the store on Redis with a plain client: only a shared engine
    /// (`memory://<name>`, a file) is the stores' own. A bulk reply comes
    /// back as its bytes, a status or an integer as its text, nil as null;
    /// an error reply (or an array) throws.
    #[napi_derive::napi]
    pub fn engine_command(
        url: String,
        args: Vec<napi::bindgen_prelude::Buffer>,
    ) -> napi::Result<Option<napi::bindgen_prelude::Buffer>> {
        let engine = Engine::open(&url).map_err(|e| napi::Error::from_reason(e.message))?;
        let mut cmd = redis::Cmd::new();
        for arg in &args {
            cmd.arg(&arg[..]);
        }
        let mut pipe = Pipeline::new();
        pipe.add_command(cmd);
        let text = |s: String| Ok(Some(s.into_bytes().into()));
        match engine.exec(&pipe).pop() {
            Some(Value::BulkString(bytes)) => Ok(Some(bytes.into())),
            Some(Value::SimpleString(s)) => text(s),
            Some(Value::Okay) => text("OK".into()),
            Some(Value::Int(n)) => text(n.to_string()),
            Some(Value::Nil) => Ok(None),
            other => Err(napi::Error::from_reason(format!("{other:?}"))),
        }
    }
}

/// Scripts apart: they run the plain commands themselves.
fn dispatch(ks: &mut Keyspace, args: &[&[u8]], now: i64) -> Value {
    match args.first() {
        Some(name) if name.eq_ignore_ascii_case(b"evalsha") => scripts::evalsha(ks, args, now),
        Some(name) if name.eq_ignore_ascii_case(b"script") => scripts::script(args),
        _ => commands::run(ks, args, now),
    }
}

impl State {
    /// Writes the changes logged since the last commit, if any. On failure
    /// memory goes back to what the file holds, and the error says so.
    fn commit(&mut self) -> Result<(), String> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        if self.keyspace.log().is_empty() {
            return Ok(());
        }
        // The log is cleared only once written: a panic inside the write
        // leaves it for the next commit.
        let Err(e) = file.write(self.keyspace.log()) else {
            self.keyspace.clear_log();
            return Ok(());
        };
        let path = file.path().display().to_string();
        match file.load() {
            Ok(ks) => self.keyspace = ks,
            Err(again) => {
                self.broken = Some(format!(
                    "MISCONF the session file {path} can be neither written nor read ({again}); \
                     reopen the store"
                ))
            }
        }
        Err(format!(
            "MISCONF Errors writing to the session file {path}: {e}; nothing of this call was applied"
        ))
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let Some(shared) = &self.shared else {
            return;
        };
        let mut open = lock(&OPEN);
        // The entry is this engine's: `open` never replaces a dying one.
        open.remove(shared);
        // Release the file while no `open` can look for it.
        let state = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        drop(state.file.take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipe(cmds: &[&[&str]]) -> Pipeline {
        let mut p = redis::pipe();
        for cmd in cmds {
            let c = p.cmd(cmd[0]);
            for arg in &cmd[1..] {
                c.arg(*arg);
            }
        }
        p
    }

    fn one(engine: &Engine, cmd: &[&str]) -> Value {
        engine.exec(&pipe(&[cmd])).remove(0)
    }

    #[test]
    fn sweep_leaves_nothing_of_expired_keys() {
        let engine = Engine::open("memory://").unwrap();
        for chunk in 0..200 {
            let mut p = redis::pipe();
            for i in 0..1000 {
                p.cmd("SET")
                    .arg(format!("sess:{chunk}:{i}"))
                    .arg("v")
                    .arg("PX")
                    .arg(1);
            }
            engine.exec(&p);
        }
        // Keys "sess:{chunk}:{i}" and their one-byte values.
        let bytes = (0..200)
            .flat_map(|c| (0..1000).map(move |i| format!("sess:{c}:{i}").len() + 1))
            .sum();
        assert_eq!(engine.held(), (200_000, bytes));
        std::thread::sleep(Duration::from_millis(5));
        // Bounded per call, then everything.
        assert_eq!(engine.sweep(150_000), 150_000);
        assert_eq!(engine.sweep(150_000), 50_000);
        assert_eq!(engine.sweep(150_000), 0);
        assert!(lock(&engine.state).keyspace.is_empty());
        assert_eq!(engine.held(), (0, 0));
    }

    #[test]
    fn sweep_drops_expired_keys_from_the_file_too() {
        let dir = std::env::temp_dir().join(format!("engine-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("file://{}/sweep.db", dir.display());
        {
            let engine = Engine::open(&url).unwrap();
            // Far enough ahead that the call lands before it, on a busy machine too.
            let soon = now_ms() + 300;
            let soon = soon.to_string();
            engine.exec(&pipe(&[
                &["SET", "a", "v", "PXAT", &soon],
                &["SET", "b", "v"],
                &["HSET", "h", "f", "v"],
                &["PEXPIREAT", "h", &soon],
            ]));
            std::thread::sleep(Duration::from_millis(310));
            assert_eq!(engine.sweep(10), 2);
        }
        // What the file holds comes back at open, expired or not.
        let engine = Engine::open(&url).unwrap();
        assert_eq!(lock(&engine.state).keyspace.len(), 1);
        drop(engine);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn named_memory_is_shared_while_open_and_plain_memory_never() {
        let a = Engine::open("memory://engine-test-shared").unwrap();
        let b = Engine::open("memory://engine-test-shared").unwrap();
        let private = Engine::open("memory://").unwrap();
        one(&a, &["SET", "k", "v"]);
        assert_eq!(one(&b, &["GET", "k"]), Value::BulkString(b"v".to_vec()));
        assert_eq!(one(&private, &["GET", "k"]), Value::Nil);
        assert_eq!(
            one(&Engine::open("memory://").unwrap(), &["GET", "k"]),
            Value::Nil
        );
        drop((a, b));
        let again = Engine::open("memory://engine-test-shared").unwrap();
        assert_eq!(one(&again, &["GET", "k"]), Value::Nil);
    }

    #[test]
    fn engines_cross_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Engine>();
    }

    #[test]
    fn hincrby_counts_and_refuses_as_redis_does() {
        let engine = Engine::open("memory://").unwrap();
        let replies = engine.exec(&pipe(&[
            &["HINCRBY", "h", "n", "5"],
            &["HINCRBY", "h", "n", "-7"],
            &["HGET", "h", "n"],
            &["HSET", "h", "t", "1x", "z", "007"],
            &["HINCRBY", "h", "t", "1"],
            &["HINCRBY", "h", "z", "1"],
            &["HINCRBY", "h", "n", "1.5"],
            &["HINCRBY", "h", "n", "+1"],
            &["SET", "s", "v"],
            &["HINCRBY", "s", "n", "1"],
            // The increment is checked before the key's kind.
            &["HINCRBY", "s", "n", "x"],
            &["HSET", "h", "big", &i64::MAX.to_string()],
            &["HINCRBY", "h", "big", "1"],
            &["HINCRBY", "h", "big", "-1"],
            &["HINCRBY", "h", "n"],
        ]));
        let not_integer = reply::error(reply::NOT_INTEGER);
        assert_eq!(
            replies,
            vec![
                Value::Int(5),
                Value::Int(-2),
                reply::bulk(b"-2"),
                Value::Int(2),
                reply::error("ERR hash value is not an integer"),
                reply::error("ERR hash value is not an integer"),
                not_integer.clone(),
                not_integer.clone(),
                Value::Okay,
                reply::error(reply::WRONGTYPE),
                not_integer,
                Value::Int(1),
                reply::error("ERR increment or decrement would overflow"),
                Value::Int(i64::MAX - 1),
                reply::error("ERR wrong number of arguments for 'hincrby' command"),
            ]
        );
        // A value refused is left as it was.
        assert_eq!(one(&engine, &["HGET", "h", "t"]), reply::bulk(b"1x"));
    }

    #[test]
    fn every_command_gets_one_reply_in_order() {
        let engine = Engine::open("memory://").unwrap();
        let replies = engine.exec(&pipe(&[
            &["SET", "k", "v", "PX", "100000"],
            &["NOPE", "a"],
            &["GET"],
            &["HSET", "k", "f", "v"],
            &["PTTL", "k"],
            &["SET", "k", "w"],
            &["PTTL", "k"],
        ]));
        assert_eq!(replies.len(), 7);
        assert_eq!(replies[0], Value::Okay);
        assert_eq!(
            replies[1],
            reply::error("ERR unknown command 'NOPE', with args beginning with: 'a' ")
        );
        assert_eq!(
            replies[2],
            reply::error("ERR wrong number of arguments for 'get' command")
        );
        assert_eq!(replies[3], reply::error(reply::WRONGTYPE));
        assert!(matches!(replies[4], Value::Int(n) if n > 99_000 && n <= 100_000));
        // SET without an expiry clears the TTL.
        assert_eq!(replies[6], Value::Int(-1));
    }
}
