//! The napi surface: thin. One call per event-loop tick for the session
//! operations (see `wire`), a promise per call over many sessions. The
//! options (`options`), operation kinds and error codes are defined here
//! and in `error`, once; the JS face reads them from the binding.

mod near;
mod options;
mod shared;
mod slots;
mod text;
mod wire;

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::FutureExt;
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{
    ThreadsafeCallContext, ThreadsafeFunction, ThreadsafeFunctionCallMode,
};
use napi_derive::napi;

use crate::admin::{self, devices, listing, reencrypt, scan, stats, users};
use crate::error::{ErrorKind, StoreError};
use crate::near::Near;
use crate::store::server::{OnWarning, Warning};
use crate::store::{Reply, Store};
use options::NativeOptions;
use text::{Text, Texts};
use wire::{
    decode, encode, list_reply, ms, AllPage, BatchReply, ListReply, ReencryptReply, ScanReply,
    StatsReply,
};

/// What `onReply` is called with: `(batchId, values, expiresAt,
/// ownerSessions, errorCodes, errorMessages)` (see `BatchReply`). Spread
/// arguments rather than one object: building an object's named properties
/// cost more per batch than the arrays themselves.
type ReplyArgs = FnArgs<(
    u32,
    Vec<Option<String>>,
    Vec<f64>,
    Vec<u32>,
    Option<Vec<Option<String>>>,
    Option<Vec<Option<String>>>,
)>;

/// Called on the JS thread as batches complete. One long-lived threadsafe
/// function replaces a promise (and its own threadsafe function) per batch.
/// Weak: it keeps Node alive only while batches are in flight (`InFlight`).
type OnReply =
    ThreadsafeFunction<(u32, BatchReply), Unknown<'static>, ReplyArgs, Status, false, true>;

/// The batch id under which `onReply` carries a warning about the server
/// (see `store::server`) instead of a batch's outcomes: one callback into JS,
/// not two.
#[napi]
pub const WARNING_BATCH: u32 = u32::MAX;

/// The batch id under which `onReply` carries lifecycle events (see
/// `events`), one JSON text per event in `values`.
#[napi]
pub const EVENT_BATCH: u32 = u32::MAX - 1;

/// What a call over many sessions does, which decides where it runs.
#[derive(Clone, Copy, PartialEq)]
enum Admin {
    /// Only reads: on the reader connection.
    Reads,
    /// Writes too: on the writer's connection, behind a fence.
    Writes,
    /// Destroys: on the writer's connection, which waits for it.
    Exclusive,
    /// As `Exclusive`, in steps that each settle within the command
    /// timeout, which does not bound the whole call.
    Steps,
}

/// The batches whose replies are still to come: the threadsafe function is
/// referenced (keeps Node alive) exactly while there are some. Both ends run
/// on the JS thread, `exec` and the reply callback, so the reference moves
/// without two more calls from JS into the addon per batch.
#[derive(Default)]
struct InFlight {
    batches: AtomicU32,
    tsfn: AtomicPtr<napi::sys::napi_threadsafe_function__>,
}

impl InFlight {
    /// A batch is about to be queued.
    fn start(&self, env: &Env) -> Result<()> {
        if self.batches.load(Ordering::Acquire) == 0 {
            let tsfn = self.tsfn.load(Ordering::Acquire);
            check(unsafe { napi::sys::napi_ref_threadsafe_function(env.raw(), tsfn) })?;
        }
        self.batches.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// A batch's reply is being delivered.
    fn done(&self, env: &Env) {
        if self.batches.fetch_sub(1, Ordering::AcqRel) == 1 {
            let tsfn = self.tsfn.load(Ordering::Acquire);
            // Fails only while the environment is torn down: nothing to keep alive.
            let _ = unsafe { napi::sys::napi_unref_threadsafe_function(env.raw(), tsfn) };
        }
    }
}

/// One runtime worker: the writer, the connection's driver and the reply
/// path then hand work over within one thread instead of waking others.
#[napi_derive::module_init]
fn init() {
    if let Ok(rt) = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        create_custom_tokio_runtime(rt);
    }
}

/// Receives the pages of one `all()` call on the JS thread.
type OnPage = ThreadsafeFunction<AllPage, Unknown<'static>, AllPage, Status, false>;

#[napi]
pub struct NativeStore {
    inner: Arc<Store>,
    /// The JS thread's own socket, when the server and options allow one
    /// (see `near`).
    near: Near,
    near_numbers: Mutex<shared::Shared>,
    /// What JS writes for each batch: kinds, deadlines and limits (see
    /// `wire::decode`).
    inputs: Mutex<shared::Shared>,
    /// None after `close()`: the callback into JS is released with the
    /// store, so nothing of it outlives the store (a test runner's
    /// open-handle check would see it).
    on_reply: Mutex<Option<Arc<OnReply>>>,
    in_flight: Arc<InFlight>,
    chunk: usize,
    /// "exec" or "admin": where the native core panics once (see
    /// `panic_once`).
    panic_next: Mutex<Option<String>>,
    /// Where `exec` and `nearRead` find this store (see `slots`).
    slot: slots::Slot,
}

fn internal(what: &str) -> StoreError {
    StoreError::new(
        ErrorKind::Internal,
        format!("the native core failed while {what}"),
    )
}

/// An error thrown or rejected to JS: an `Error` whose `code` is the store's
/// (the JS face wraps it as a RedisSessionStoreError without parsing text).
fn to_js(env: &Env, err: StoreError) -> Error {
    let made = env
        .create_error(Error::new(Status::GenericFailure, err.message.clone()))
        .and_then(|mut obj| {
            obj.set_named_property("code", err.kind.code())?;
            Ok(Error::from(obj.to_unknown()))
        });
    made.unwrap_or_else(|e| e)
}

fn check(status: napi::sys::napi_status) -> Result<()> {
    match status {
        napi::sys::Status::napi_ok => Ok(()),
        other => Err(Error::new(
            Status::from(other),
            "threadsafe function ref/unref failed",
        )),
    }
}

#[napi]
impl NativeStore {
    #[napi(constructor, catch_unwind)]
    pub fn new(
        env: Env,
        mut options: NativeOptions,
        #[napi(
            ts_arg_type = "(batchId: number, values: Array<string | null>, expiresAt: Array<number>, ownerSessions: Array<number>, errorCodes: Array<string | null> | null, errorMessages: Array<string | null> | null) => void"
        )]
        on_reply: Function<'_, Unknown<'static>, Unknown<'static>>,
    ) -> Result<Self> {
        let connection = options.connection();
        let ctx = options.context().map_err(|e| to_js(&env, e))?;
        let in_flight = Arc::new(InFlight::default());
        let counted = in_flight.clone();
        let on_reply = on_reply
            .build_threadsafe_function::<(u32, BatchReply)>()
            .callee_handled::<false>()
            .weak::<true>()
            .build_callback(move |ctx: ThreadsafeCallContext<(u32, BatchReply)>| {
                let (id, r) = ctx.value;
                if id != WARNING_BATCH && id != EVENT_BATCH {
                    counted.done(&ctx.env);
                }
                Ok(FnArgs::from((
                    id,
                    r.values,
                    r.expires_at,
                    r.owner_sessions,
                    r.error_codes,
                    r.error_messages,
                )))
            })?;
        in_flight.tsfn.store(on_reply.raw(), Ordering::Release);
        let on_reply = Arc::new(on_reply);
        let warn = Arc::downgrade(&on_reply);
        // Weak: a warning must not keep the callback (and a test runner's
        // open-handle check) alive after the store.
        let on_warning: OnWarning = Arc::new(move |w: Warning| {
            if let Some(on_reply) = warn.upgrade() {
                on_reply.call(
                    (WARNING_BATCH, wire::warning(w)),
                    ThreadsafeFunctionCallMode::NonBlocking,
                );
            }
        });
        let tell = Arc::downgrade(&on_reply);
        ctx.events.connect(Arc::new(move |events| {
            if let Some(on_reply) = tell.upgrade() {
                on_reply.call(
                    (EVENT_BATCH, wire::events(events)),
                    ThreadsafeFunctionCallMode::NonBlocking,
                );
            }
        }));
        // The connection manager spawns onto tokio; the constructor is not
        // called inside a runtime, so enter napi's.
        let store = within_runtime_if_available(|| Store::open(ctx, &connection, on_warning))
            .map_err(|e| to_js(&env, e))?;
        let store = Arc::new(store);
        Ok(NativeStore {
            near: Near::new(store.clone()),
            near_numbers: Mutex::default(),
            inputs: Mutex::default(),
            inner: store,
            on_reply: Mutex::new(Some(on_reply)),
            in_flight,
            chunk: options.scan_count.max(1) as usize,
            panic_next: Mutex::new(None),
            slot: slots::Slot::default(),
        })
    }

    /// Takes one tick's operations (through `slots::exec`): the first
    /// `count` of the input array's (see `inputs`), with their texts. With
    /// `near` (the JS thread's socket is open, see `crate::near`) and when
    /// that path may take them, returns the bytes for JS to write there;
    /// otherwise queues them for the writer and returns null. Either way
    /// the outcome arrives through `onReply` with the same `batch_id`.
    /// Synchronous, so batches reach Redis in the order JS issued them.
    fn exec<'env>(
        &self,
        env: &'env Env,
        (batch_id, count): (u32, u32),
        (sids, values, owners): (Text, Texts, Texts),
        near: bool,
    ) -> Result<Option<Unknown<'env>>> {
        // A panic here fails this batch's calls, as one in the writer does.
        std::panic::catch_unwind(AssertUnwindSafe(|| {
            if self.take_panic("exec") {
                panic!("a panic in exec, asked for by a test");
            }
            let per_session = self.inner.context().session_limits;
            let mut inputs = self.inputs.lock().unwrap();
            let batch = (&*inputs.slice(), count as usize, per_session);
            let ops = decode(batch, &sids.0, (values.0, owners.0)).map_err(|e| to_js(env, e))?;
            drop(inputs);
            let ops = match near {
                // As a latin1 string, one char per byte, which the socket
                // writes back byte for byte: a young V8 string costs less
                // than a Buffer (a backing store, and its prototype set from
                // C++), and Node writes a small one from the stack.
                true => match self
                    .near
                    .send(batch_id, ops, |b| env.create_string_latin1(b))
                {
                    Ok(text) => return Ok(Some(text?.to_unknown())),
                    Err(ops) => ops,
                },
                false => ops,
            };
            let reply = self.reply_to(env, batch_id, ops.len(), || {})?;
            self.inner.submit(ops, reply);
            Ok(None)
        }))
        .unwrap_or_else(|_| Err(to_js(env, internal("taking this batch"))))
    }

    /// A new input array of `length` numbers, which `exec` reads from now
    /// on (`INPUT_STRIDE` per operation; JS grows it, and shrinks it after
    /// a burst).
    #[napi(ts_return_type = "Float64Array")]
    pub fn inputs<'env>(&self, env: &'env Env, length: u32) -> Result<Unknown<'env>> {
        self.inputs.lock().unwrap().replace(env, length as usize)
    }

    /// Delivers `len` outcomes to `onReply` under `batch_id`, after `then`;
    /// keeps Node alive until then.
    fn reply_to(
        &self,
        env: &Env,
        batch_id: u32,
        len: usize,
        then: impl FnOnce() + Send + 'static,
    ) -> Result<Reply> {
        let closed = || StoreError::new(ErrorKind::Closed, "the store is closed");
        let on_reply = self.replies().ok_or_else(|| to_js(env, closed()))?;
        self.in_flight.start(env)?;
        Ok(Reply::new(len, move |outcomes| {
            then();
            on_reply.call(
                (batch_id, encode(outcomes)),
                ThreadsafeFunctionCallMode::NonBlocking,
            );
        }))
    }

    fn take_panic(&self, place: &str) -> bool {
        let mut next = self.panic_next.lock().unwrap();
        let now = next.as_deref() == Some(place);
        if now {
            next.take();
        }
        now
    }

    /// Every error code the store reports (the JS face checks its own
    /// against them).
    #[napi]
    pub fn error_codes() -> Vec<&'static str> {
        ErrorKind::ALL.iter().map(|k| k.code()).collect()
    }

    fn replies(&self) -> Option<Arc<OnReply>> {
        self.on_reply.lock().unwrap().clone()
    }

    /// Runs a call over many sessions behind every batch already submitted
    /// (fenced now, in call order) and within the command timeout. A call
    /// that destroys (`Exclusive`) also holds back the operations issued
    /// after it until it is done, so a login made after "log out
    /// everywhere" survives it; calls that only read see a snapshot.
    fn admin<'env, T, Fut>(
        &self,
        env: &'env Env,
        kind: Admin,
        call: impl FnOnce(Arc<Store>, usize) -> Fut,
    ) -> Result<PromiseRaw<'env, T>>
    where
        T: 'static + Send + ToNapiValue,
        Fut: std::future::Future<Output = std::result::Result<T, StoreError>> + Send + 'static,
    {
        let (fence, hold) = if matches!(kind, Admin::Exclusive | Admin::Steps) {
            let (fence, hold) = self.inner.exclusive();
            (fence.boxed(), Some(hold))
        } else {
            (self.inner.fence().boxed(), None)
        };
        let store = self.inner.clone();
        let fence_bound = (kind == Admin::Steps).then(|| store.command_timeout());
        let work = call(self.inner.clone(), self.chunk);
        let panic_now = self.take_panic("admin");
        env.spawn_future_with_callback(
            async move {
                let fenced = async move {
                    match fence_bound {
                        Some(t) => tokio::time::timeout(t, fence)
                            .await
                            .unwrap_or_else(|_| Err(StoreError::unfinished(t)))?,
                        None => fence.await?,
                    }
                    if panic_now {
                        panic!("a panic in a call over many sessions, asked for by a test");
                    }
                    let done = work.await;
                    drop(hold);
                    done
                };
                // A panic fails this call only (the hold is dropped with it).
                let caught = AssertUnwindSafe(fenced)
                    .catch_unwind()
                    .map(|r| r.unwrap_or_else(|_| Err(internal("running this call"))));
                Ok(match kind {
                    // Each step is bounded; so is the wait behind the fence.
                    Admin::Steps => caught.await,
                    _ => admin::bounded(&store, kind == Admin::Reads, caught).await,
                })
            },
            |env, done| done.map_err(|e| to_js(env, e)),
        )
    }

    /// Hands every session to `onPage`, a page per round trip, while the
    /// next is fetched; resolves to the number of pages once all are sent.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn all<'env>(
        &self,
        env: &'env Env,
        #[napi(ts_arg_type = "(page: AllPage) => void")] on_page: OnPage,
    ) -> Result<PromiseRaw<'env, u32>> {
        self.admin(env, Admin::Reads, move |s, chunk| async move {
            let pages = listing::all(&s, chunk, |found| {
                let page = AllPage {
                    ids: found.iter().map(|f| f.sid.clone()).collect(),
                    values: found.into_iter().map(|f| f.value).collect(),
                };
                on_page.call(page, ThreadsafeFunctionCallMode::NonBlocking);
            })
            .await?;
            Ok(pages as u32)
        })
    }

    /// One SCAN step over the prefix, for `reindex()`.
    #[napi(ts_return_type = "Promise<ScanReply>")]
    pub fn scan<'env>(
        &self,
        env: &'env Env,
        cursor: String,
    ) -> Result<PromiseRaw<'env, ScanReply>> {
        self.admin(env, Admin::Reads, move |s, chunk| async move {
            let page = scan::scan_page(&s, &cursor, chunk).await?;
            let mut reply = ScanReply {
                cursor: page.cursor,
                ids: Vec::with_capacity(page.sessions.len()),
                values: Vec::with_capacity(page.sessions.len()),
                expires_at: Vec::with_capacity(page.sessions.len()),
            };
            for f in page.sessions {
                reply.ids.push(f.sid);
                reply.values.push(f.value);
                reply.expires_at.push(ms(f.expires_at));
            }
            Ok(reply)
        })
    }

    /// One step of `reencrypt()`, from shard `from`.
    #[napi(ts_return_type = "Promise<ReencryptReply>")]
    pub fn reencrypt<'env>(
        &self,
        env: &'env Env,
        from: u32,
    ) -> Result<PromiseRaw<'env, ReencryptReply>> {
        self.admin(env, Admin::Writes, move |s, chunk| async move {
            let (next, done) = reencrypt::step(&s, from as usize, chunk).await?;
            Ok(ReencryptReply {
                next: next.map_or(-1, |n| n as i32),
                reencrypted: done.reencrypted as f64,
                current: done.current as f64,
                unreadable: done.unreadable as f64,
                raced: done.raced as f64,
            })
        })
    }

    #[napi(ts_return_type = "Promise<Array<string>>")]
    pub fn ids<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, Vec<String>>> {
        self.admin(env, Admin::Reads, move |s, chunk| async move {
            listing::ids(&s, chunk).await
        })
    }

    #[napi(ts_return_type = "Promise<number>")]
    pub fn length<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, f64>> {
        self.admin(env, Admin::Reads, move |s, chunk| async move {
            listing::length(&s, chunk).await.map(|n| n as f64)
        })
    }

    #[napi(ts_return_type = "Promise<number>")]
    pub fn clear<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, f64>> {
        self.admin(env, Admin::Writes, move |s, chunk| async move {
            listing::clear(&s, chunk).await.map(|n| n as f64)
        })
    }

    #[napi(ts_return_type = "Promise<ListReply>")]
    pub fn list_user<'env>(
        &self,
        env: &'env Env,
        owner: String,
    ) -> Result<PromiseRaw<'env, ListReply>> {
        self.admin(env, Admin::Reads, move |s, chunk| async move {
            users::list_user(&s, &owner, chunk).await.map(list_reply)
        })
    }

    #[napi(ts_return_type = "Promise<number>")]
    pub fn destroy_user<'env>(
        &self,
        env: &'env Env,
        owner: String,
        except: Vec<String>,
    ) -> Result<PromiseRaw<'env, f64>> {
        self.admin(env, Admin::Steps, move |s, chunk| {
            let called = tokio::time::Instant::now();
            async move {
                users::destroy_user(&s, &owner, &except, (chunk, called))
                    .await
                    .map(|n| n as f64)
            }
        })
    }

    /// Records a session's device data (JSON text) if the session exists;
    /// resolves to whether it did.
    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn write_device<'env>(
        &self,
        env: &'env Env,
        sid: String,
        text: String,
    ) -> Result<PromiseRaw<'env, bool>> {
        self.admin(env, Admin::Writes, move |s, _| async move {
            devices::write(&s, &sid, &text).await
        })
    }

    /// A session's device data (JSON text), or null.
    #[napi(ts_return_type = "Promise<string | null>")]
    pub fn read_device<'env>(
        &self,
        env: &'env Env,
        sid: String,
    ) -> Result<PromiseRaw<'env, Option<String>>> {
        self.admin(env, Admin::Reads, move |s, _| async move {
            devices::read(&s, &sid).await
        })
    }

    /// Keeps the owner's `max` most recently used sessions; resolves to how
    /// many others were destroyed.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn enforce_limit<'env>(
        &self,
        env: &'env Env,
        owner: String,
        max: u32,
    ) -> Result<PromiseRaw<'env, f64>> {
        self.admin(env, Admin::Exclusive, move |s, chunk| async move {
            users::enforce_limit(&s, &owner, max as usize, chunk)
                .await
                .map(|n| n as f64)
        })
    }

    #[napi(ts_return_type = "Promise<StatsReply>")]
    pub fn stats<'env>(
        &self,
        env: &'env Env,
        active_within_ms: f64,
        ended_within_ms: Option<f64>,
    ) -> Result<PromiseRaw<'env, StatsReply>> {
        self.admin(env, Admin::Reads, move |s, chunk| async move {
            let within = (active_within_ms as i64, ended_within_ms.map(|ms| ms as i64));
            let stats = stats::stats(&s, within, chunk).await?;
            Ok(StatsReply {
                sessions: stats.sessions as f64,
                users: stats.users as f64,
                active: stats.active as f64,
                average_age: stats.average_age_ms,
                oldest_created_at: ms(stats.oldest_created),
                ended: stats.ended.map(Into::into),
            })
        })
    }

    /// Settles queued calls, then releases the connection.
    /// Whether JS listens for lifecycle events: none are made otherwise,
    /// and the cleanup looks at every shard every few seconds only then.
    #[napi]
    pub fn listen(&self, on: bool) {
        self.inner.context().events.listen(on);
    }

    #[napi]
    pub async fn close(&self) -> Result<()> {
        self.inner.close().await;
        // Every batch has been answered: the replies' own handles are gone.
        self.on_reply.lock().unwrap().take();
        Ok(())
    }
}

/// Only in the dev build (cargo feature `test-hooks`), not in releases.
#[cfg(feature = "test-hooks")]
#[napi]
impl NativeStore {
    /// Makes the native core panic once at `place`: "writer" (the next batch
    /// it sends), "admin" (the next call over many sessions) or "exec" (the
    /// next batch handed over): the tests of what a panic does.
    #[napi]
    pub fn panic_once(&self, place: String) -> Result<()> {
        match place.as_str() {
            "writer" => self
                .inner
                .panic_in_writer
                .store(true, std::sync::atomic::Ordering::Release),
            "admin" | "exec" => *self.panic_next.lock().unwrap() = Some(place),
            _ => return Err(Error::new(Status::InvalidArg, "unknown place")),
        }
        Ok(())
    }
}
