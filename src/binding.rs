//! The napi surface: thin. A batch crosses as parallel arrays (one napi call
//! per event-loop tick); sessions stay JSON strings made and read by V8.

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;

use crate::backend::{ConnectionOptions, SentinelOptions, Tls};
use crate::commands::{Context, Op, Outcome};
use crate::error::{ErrorKind, StoreError};
use crate::expiry::{Expiry, Lifetime};
use crate::index::{self, Found};
use crate::keys::Keys;
use crate::server_info::{OnWarning, Warning};
use crate::store::{Reply, Store};

/// Called on the JS thread with `(batchId, reply)` as batches complete. One
/// long-lived threadsafe function replaces a promise (and its own
/// threadsafe function) per batch. Weak: it keeps Node alive only while JS
/// holds it (`hold`/`release`), i.e. while batches are in flight.
type OnReply =
    ThreadsafeFunction<(u32, BatchReply), Unknown<'static>, (u32, BatchReply), Status, false, true>;

/// Called on the JS thread with `(code, message)` of a warning about the
/// server (see `server_info`). Weak: it never keeps Node alive.
type OnWarn =
    ThreadsafeFunction<(String, String), Unknown<'static>, (String, String), Status, false, true>;

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

#[napi(object)]
pub struct NativeOptions {
    pub url: String,
    pub prefix: String,
    pub command_timeout_ms: u32,
    pub connect_timeout_ms: u32,
    pub idle_timeout_ms: Option<f64>,
    pub absolute_timeout_ms: Option<f64>,
    /// Sessions per round trip for the calls over many sessions.
    pub chunk: u32,
    /// Report each login's session count (`maxSessionsPerUser` is set).
    pub count_logins: bool,
    /// PEM: the CA to verify the server with (instead of the system's).
    pub tls_ca: Option<String>,
    /// PEM: a client certificate and its key, for servers that ask for one.
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    /// False skips verifying the server's certificate.
    pub tls_verify: bool,
    /// The name to verify the server's certificate against, if not the URL's host.
    pub tls_servername: Option<String>,
    /// Sentinel addresses and the master's name, instead of `url`, and
    /// the master's login.
    pub sentinel_nodes: Option<Vec<String>>,
    pub sentinel_name: Option<String>,
    pub sentinel_username: Option<String>,
    pub sentinel_password: Option<String>,
    pub sentinel_db: Option<u32>,
    /// The master and its replicas speak TLS (with the `tls_*` options).
    pub sentinel_tls: Option<bool>,
    /// Seed nodes of a Redis Cluster, instead of `url`.
    pub cluster_nodes: Option<Vec<String>>,
    /// Destroys wait for a replica's acknowledgement (default true).
    pub wait_for_replicas: Option<bool>,
}

/// One entry per operation of the batch, in order. `errorCodes` and
/// `errorMessages` are present only when some operation failed.
#[napi(object)]
pub struct BatchReply {
    pub values: Vec<Option<String>>,
    /// Per operation: for a read, the cookie deadline (epoch ms) its last
    /// touch set; for a write, the owner's session count when the session is
    /// new to that owner; NaN otherwise.
    pub numbers: Vec<f64>,
    pub error_codes: Option<Vec<Option<String>>>,
    pub error_messages: Option<Vec<Option<String>>>,
}

/// Sessions as the listing calls return them, as parallel arrays; times in
/// epoch ms, NaN when unknown.
#[napi(object)]
pub struct ListReply {
    pub ids: Vec<String>,
    pub values: Vec<String>,
    /// The cookie deadline the last set/touch asked for.
    pub cookie_expires: Vec<f64>,
    pub created_at: Vec<f64>,
    pub last_access: Vec<f64>,
    /// When Redis drops the session.
    pub expires_at: Vec<f64>,
}

/// One page of `all()`: sessions as stored.
#[napi(object)]
pub struct AllPage {
    pub ids: Vec<String>,
    pub values: Vec<String>,
}

/// One SCAN step of `reindex()`.
#[napi(object)]
pub struct ScanReply {
    /// Where the next step starts; "0" when done.
    pub cursor: String,
    pub ids: Vec<String>,
    pub values: Vec<String>,
    /// Each key's expiry (epoch ms), or NaN for none.
    pub expires_at: Vec<f64>,
}

/// Receives the pages of one `all()` call on the JS thread.
type OnPage = ThreadsafeFunction<AllPage, Unknown<'static>, AllPage, Status, false>;

#[napi(object)]
pub struct StatsReply {
    pub sessions: f64,
    pub users: f64,
    pub active: f64,
}

fn ms(value: Option<i64>) -> f64 {
    value.map_or(f64::NAN, |t| t as f64)
}

fn list_reply(found: Vec<Found>) -> ListReply {
    let n = found.len();
    let mut reply = ListReply {
        ids: Vec::with_capacity(n),
        values: Vec::with_capacity(n),
        cookie_expires: Vec::with_capacity(n),
        created_at: Vec::with_capacity(n),
        last_access: Vec::with_capacity(n),
        expires_at: Vec::with_capacity(n),
    };
    for f in found {
        reply.ids.push(f.sid);
        reply.values.push(f.value);
        reply.expires_at.push(ms(f.expires_at));
        let meta = f.meta.as_ref();
        reply
            .cookie_expires
            .push(ms(meta.and_then(|m| m.cookie_expiry)));
        reply.created_at.push(ms(meta.map(|m| m.created)));
        reply.last_access.push(ms(meta.map(|m| m.last_access)));
    }
    reply
}

/// Operation kinds on the wire; must match `lib/ops.js`.
const GET: u8 = 0;
const SET: u8 = 1;
const TOUCH: u8 = 2;
const REWRITE: u8 = 3;
const DESTROY: u8 = 4;
const ADOPT: u8 = 5;

#[napi]
pub struct NativeStore {
    inner: Arc<Store>,
    on_reply: Arc<OnReply>,
    chunk: usize,
}

fn to_napi(err: StoreError) -> Error {
    // The JS layer splits the code back out of the message.
    Error::new(Status::GenericFailure, err.to_string())
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

/// Decodes a batch. Its wire form keeps napi conversions to a few per batch
/// rather than several per operation: kinds and deadlines as typed arrays,
/// the sids as one newline-joined string (JS rejects sids with control
/// characters), and values and owners ("" for none) only for the operations
/// that carry them.
fn decode(
    kinds: &[u8],
    sids: &str,
    values: Vec<String>,
    owners: Vec<String>,
    expires: &[f64],
) -> std::result::Result<Vec<Op>, StoreError> {
    let malformed = || StoreError::new(ErrorKind::InvalidArgument, "malformed batch");
    if expires.len() != kinds.len() {
        return Err(malformed());
    }
    let mut sids = sids.split('\n');
    let mut values = values.into_iter();
    let mut owners = owners.into_iter();
    let ops = kinds
        .iter()
        .zip(expires)
        .map(|(&kind, &at)| {
            let sid = sids.next().ok_or_else(malformed)?.to_owned();
            let expiry = Expiry::from_wire(at);
            let mut value = || values.next().ok_or_else(malformed);
            let mut owner = || {
                owners
                    .next()
                    .ok_or_else(malformed)
                    .map(|o| Some(o).filter(|o| !o.is_empty()))
            };
            Ok(match kind {
                GET => Op::Get { sid },
                SET => Op::Set {
                    sid,
                    value: value()?,
                    expiry,
                    owner: owner()?,
                },
                TOUCH => Op::Touch {
                    sid,
                    expiry,
                    owner: owner()?,
                },
                REWRITE => Op::Rewrite {
                    sid,
                    value: value()?,
                    expiry,
                    owner: owner()?,
                },
                DESTROY => Op::Destroy { sid },
                ADOPT => Op::Adopt {
                    sid,
                    expiry,
                    owner: owner()?,
                },
                other => {
                    return Err(StoreError::new(
                        ErrorKind::InvalidArgument,
                        format!("unknown operation kind {other}"),
                    ))
                }
            })
        })
        .collect::<std::result::Result<Vec<Op>, StoreError>>()?;
    if sids.next().is_some() || values.next().is_some() || owners.next().is_some() {
        return Err(malformed());
    }
    Ok(ops)
}

fn encode(outcomes: Vec<Outcome>) -> BatchReply {
    let n = outcomes.len();
    let mut values = Vec::with_capacity(n);
    let mut numbers = Vec::with_capacity(n);
    let mut codes: Option<Vec<Option<String>>> = None;
    let mut messages: Option<Vec<Option<String>>> = None;
    for (i, outcome) in outcomes.into_iter().enumerate() {
        match outcome {
            Outcome::Session { value, expires_at } => {
                values.push(value);
                numbers.push(ms(expires_at));
            }
            Outcome::Written { owner_sessions } => {
                values.push(None);
                numbers.push(owner_sessions as f64);
            }
            Outcome::Done => {
                values.push(None);
                numbers.push(f64::NAN);
            }
            Outcome::Failed(err) => {
                values.push(None);
                numbers.push(f64::NAN);
                codes.get_or_insert_with(|| vec![None; n])[i] = Some(err.kind.code().to_owned());
                messages.get_or_insert_with(|| vec![None; n])[i] = Some(err.message);
            }
        }
    }
    BatchReply {
        values,
        numbers,
        error_codes: codes,
        error_messages: messages,
    }
}

#[napi]
impl NativeStore {
    #[napi(constructor, catch_unwind)]
    pub fn new(
        options: NativeOptions,
        #[napi(ts_arg_type = "(reply: [batchId: number, reply: BatchReply]) => void")]
        on_reply: OnReply,
        #[napi(ts_arg_type = "(warning: [code: string, message: string]) => void")]
        on_warning: OnWarn,
    ) -> Result<Self> {
        let connection = ConnectionOptions {
            tls: Tls {
                ca: options.tls_ca,
                client: options.tls_cert.zip(options.tls_key),
                verify: options.tls_verify,
                servername: options.tls_servername,
            },
            url: options.url,
            sentinel: options
                .sentinel_nodes
                .zip(options.sentinel_name)
                .map(|(nodes, name)| SentinelOptions {
                    nodes,
                    name,
                    username: options.sentinel_username,
                    password: options.sentinel_password,
                    db: options.sentinel_db.unwrap_or(0) as i64,
                    tls: options.sentinel_tls.unwrap_or(false),
                }),
            cluster: options.cluster_nodes.unwrap_or_default(),
            command_timeout: Duration::from_millis(options.command_timeout_ms.max(1) as u64),
            connect_timeout: Duration::from_millis(options.connect_timeout_ms.max(1) as u64),
        };
        let ctx = Context {
            keys: Keys::new(options.prefix),
            lifetime: Lifetime {
                idle_ms: options.idle_timeout_ms.map(|ms| ms.ceil() as i64),
                absolute_ms: options.absolute_timeout_ms.map(|ms| ms.ceil() as i64),
            },
            count_logins: options.count_logins,
            wait_for_replicas: options.wait_for_replicas.unwrap_or(true),
        };
        let on_warning: OnWarning = Arc::new(move |w: Warning| {
            on_warning.call(
                (w.code.to_owned(), w.message),
                ThreadsafeFunctionCallMode::NonBlocking,
            );
        });
        // The connection manager spawns onto tokio; the constructor is not
        // called inside a runtime, so enter napi's.
        let store = within_runtime_if_available(|| Store::open(ctx, &connection, on_warning))
            .map_err(to_napi)?;
        Ok(NativeStore {
            inner: Arc::new(store),
            on_reply: Arc::new(on_reply),
            chunk: options.chunk.max(1) as usize,
        })
    }

    /// Queues one tick's operations; the outcome arrives through `onReply`
    /// with the same `batch_id`. Submission is synchronous, so batches reach
    /// Redis in the order JS issued them.
    #[napi(catch_unwind)]
    pub fn exec(
        &self,
        batch_id: u32,
        kinds: Uint8Array,
        sids: String,
        values: Vec<String>,
        owners: Vec<String>,
        expires: Float64Array,
    ) -> Result<()> {
        let ops = decode(&kinds, &sids, values, owners, &expires).map_err(to_napi)?;
        let on_reply = self.on_reply.clone();
        let reply = Reply::new(ops.len(), move |outcomes| {
            on_reply.call(
                (batch_id, encode(outcomes)),
                ThreadsafeFunctionCallMode::NonBlocking,
            );
        });
        self.inner.submit(ops, reply);
        Ok(())
    }

    /// Keeps Node alive while batches are in flight.
    #[napi]
    pub fn hold(&self, env: Env) -> Result<()> {
        check(unsafe { napi::sys::napi_ref_threadsafe_function(env.raw(), self.on_reply.raw()) })
    }

    /// Lets Node exit once no batch is in flight.
    #[napi]
    pub fn release(&self, env: Env) -> Result<()> {
        check(unsafe { napi::sys::napi_unref_threadsafe_function(env.raw(), self.on_reply.raw()) })
    }

    /// Runs a call over many sessions behind every batch already submitted
    /// (fenced now, in call order) and within the command timeout. A call
    /// that destroys (`exclusive`) also holds back the operations issued
    /// after it until it is done, so a login made after "log out
    /// everywhere" survives it; calls that only read see a snapshot.
    fn admin<'env, T, Fut>(
        &self,
        env: &'env Env,
        exclusive: bool,
        call: impl FnOnce(Arc<Store>, usize) -> Fut,
    ) -> Result<PromiseRaw<'env, T>>
    where
        T: 'static + Send + ToNapiValue,
        Fut: std::future::Future<Output = std::result::Result<T, StoreError>> + Send + 'static,
    {
        let (fence, hold) = if exclusive {
            let (fence, hold) = self.inner.exclusive();
            (fence.boxed(), Some(hold))
        } else {
            (self.inner.fence().boxed(), None)
        };
        let store = self.inner.clone();
        let work = call(self.inner.clone(), self.chunk);
        env.spawn_future(async move {
            let fenced = async move {
                fence.await?;
                let done = work.await;
                drop(hold);
                done
            };
            index::bounded(&store, fenced).await.map_err(to_napi)
        })
    }

    /// Hands every session to `onPage`, a page per round trip, while the
    /// next is fetched; resolves to the number of pages once all are sent.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn all<'env>(
        &self,
        env: &'env Env,
        #[napi(ts_arg_type = "(page: AllPage) => void")] on_page: OnPage,
    ) -> Result<PromiseRaw<'env, u32>> {
        self.admin(env, false, move |s, chunk| async move {
            let pages = index::all(&s, chunk, |found| {
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
        self.admin(env, false, move |s, chunk| async move {
            let page = index::scan_page(&s, &cursor, chunk).await?;
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

    #[napi(ts_return_type = "Promise<Array<string>>")]
    pub fn ids<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, Vec<String>>> {
        self.admin(env, false, move |s, chunk| async move {
            index::ids(&s, chunk).await
        })
    }

    #[napi(ts_return_type = "Promise<number>")]
    pub fn length<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, f64>> {
        self.admin(env, false, move |s, chunk| async move {
            index::length(&s, chunk).await.map(|n| n as f64)
        })
    }

    #[napi(ts_return_type = "Promise<number>")]
    pub fn clear<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, f64>> {
        self.admin(env, false, move |s, chunk| async move {
            index::clear(&s, chunk).await.map(|n| n as f64)
        })
    }

    #[napi(ts_return_type = "Promise<ListReply>")]
    pub fn list_user<'env>(
        &self,
        env: &'env Env,
        owner: String,
    ) -> Result<PromiseRaw<'env, ListReply>> {
        self.admin(env, false, move |s, chunk| async move {
            index::list_user(&s, &owner, chunk).await.map(list_reply)
        })
    }

    #[napi(ts_return_type = "Promise<number>")]
    pub fn destroy_user<'env>(
        &self,
        env: &'env Env,
        owner: String,
        except: Vec<String>,
    ) -> Result<PromiseRaw<'env, f64>> {
        self.admin(env, true, move |s, chunk| async move {
            index::destroy_user(&s, &owner, &except, chunk)
                .await
                .map(|n| n as f64)
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
        self.admin(env, true, move |s, chunk| async move {
            index::enforce_limit(&s, &owner, max as usize, chunk)
                .await
                .map(|n| n as f64)
        })
    }

    #[napi(ts_return_type = "Promise<StatsReply>")]
    pub fn stats<'env>(
        &self,
        env: &'env Env,
        active_within_ms: f64,
    ) -> Result<PromiseRaw<'env, StatsReply>> {
        self.admin(env, false, move |s, chunk| async move {
            let stats = index::stats(&s, active_within_ms as i64, chunk).await?;
            Ok(StatsReply {
                sessions: stats.sessions as f64,
                users: stats.users as f64,
                active: stats.active as f64,
            })
        })
    }

    /// Settles queued calls, then releases the connection.
    #[napi]
    pub async fn close(&self) -> Result<()> {
        self.inner.close().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_decodes_in_order_with_values_only_where_needed() {
        let ops = decode(
            &[GET, SET, DESTROY, REWRITE, TOUCH],
            "a\nb\nc\nd\ne",
            vec!["vb".into(), "vd".into()],
            vec!["ada".into(), "".into(), "bo".into()],
            &[f64::NAN, 10.0, f64::NAN, f64::INFINITY, 5.0],
        )
        .unwrap();
        assert_eq!(
            ops,
            vec![
                Op::Get { sid: "a".into() },
                Op::Set {
                    sid: "b".into(),
                    value: "vb".into(),
                    expiry: Expiry::At(10),
                    owner: Some("ada".into()),
                },
                Op::Destroy { sid: "c".into() },
                Op::Rewrite {
                    sid: "d".into(),
                    value: "vd".into(),
                    expiry: Expiry::Never,
                    owner: None,
                },
                Op::Touch {
                    sid: "e".into(),
                    expiry: Expiry::At(5),
                    owner: Some("bo".into()),
                },
            ]
        );
    }

    #[test]
    fn malformed_batches_are_refused_not_misread() {
        let v = |s: &str| vec![s.to_string()];
        for (kinds, sids, values, owners, expires) in [
            (vec![GET, GET], "a", vec![], vec![], vec![0.0, 0.0]),
            (vec![GET], "a\nb", vec![], vec![], vec![0.0]),
            (vec![SET], "a", vec![], v(""), vec![0.0]),
            (vec![SET], "a", v("x"), vec![], vec![0.0]),
            (vec![GET], "a", v("extra"), vec![], vec![0.0]),
            (vec![GET], "a", vec![], v("extra"), vec![0.0]),
            (vec![GET], "a", vec![], vec![], vec![]),
            (vec![9], "a", vec![], vec![], vec![0.0]),
        ] {
            let err = decode(&kinds, sids, values, owners, &expires).unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidArgument);
        }
    }
}
