//! The napi surface: thin. A batch crosses as parallel arrays (one napi call
//! per event-loop tick); sessions stay JSON strings made and read by V8.

use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;

use crate::commands::{Op, Outcome};
use crate::connection::ConnectionOptions;
use crate::error::{ErrorKind, StoreError};
use crate::expiry::Expiry;
use crate::keys::Keys;
use crate::scan;
use crate::store::{Reply, Store};

/// Called on the JS thread with `(batchId, reply)` as batches complete. One
/// long-lived threadsafe function replaces a promise (and its own
/// threadsafe function) per batch. Weak: it keeps Node alive only while JS
/// holds it (`hold`/`release`), i.e. while batches are in flight.
type OnReply =
    ThreadsafeFunction<(u32, BatchReply), Unknown<'static>, (u32, BatchReply), Status, false, true>;

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
}

/// One entry per operation of the batch, in order. `errorCodes` and
/// `errorMessages` are present only when some operation failed.
#[napi(object)]
pub struct BatchReply {
    pub values: Vec<Option<String>>,
    /// Absolute expiry (epoch ms) of each session read, or NaN.
    pub expires_at: Vec<f64>,
    pub error_codes: Option<Vec<Option<String>>>,
    pub error_messages: Option<Vec<Option<String>>>,
}

#[napi(object)]
pub struct AllReply {
    pub ids: Vec<String>,
    pub values: Vec<String>,
    /// Absolute expiry (epoch ms) of each session's key, or NaN.
    pub expires_at: Vec<f64>,
}

/// Operation kinds on the wire; must match `lib/ops.js`.
const GET: u8 = 0;
const SET: u8 = 1;
const TOUCH: u8 = 2;
const REWRITE: u8 = 3;
const DESTROY: u8 = 4;

#[napi]
pub struct NativeStore {
    inner: Arc<Store>,
    on_reply: Arc<OnReply>,
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
/// characters), and values only for the operations that carry one.
fn decode(
    keys: &Keys,
    kinds: &[u8],
    sids: &str,
    values: Vec<String>,
    expires: &[f64],
) -> std::result::Result<Vec<Op>, StoreError> {
    let malformed = || StoreError::new(ErrorKind::InvalidArgument, "malformed batch");
    if expires.len() != kinds.len() {
        return Err(malformed());
    }
    let mut sids = sids.split('\n');
    let mut values = values.into_iter();
    let ops = kinds
        .iter()
        .zip(expires)
        .map(|(&kind, &at)| {
            let key = keys.session(sids.next().ok_or_else(malformed)?);
            let expiry = Expiry::from_wire(at);
            let mut value = || values.next().ok_or_else(malformed);
            Ok(match kind {
                GET => Op::Get { key },
                SET => Op::Set {
                    key,
                    value: value()?,
                    expiry,
                },
                TOUCH => Op::Touch { key, expiry },
                REWRITE => Op::Rewrite {
                    key,
                    value: value()?,
                    expiry,
                },
                DESTROY => Op::Destroy { key },
                other => {
                    return Err(StoreError::new(
                        ErrorKind::InvalidArgument,
                        format!("unknown operation kind {other}"),
                    ))
                }
            })
        })
        .collect::<std::result::Result<Vec<Op>, StoreError>>()?;
    if sids.next().is_some() || values.next().is_some() {
        return Err(malformed());
    }
    Ok(ops)
}

fn encode(outcomes: Vec<Outcome>) -> BatchReply {
    let n = outcomes.len();
    let mut values = Vec::with_capacity(n);
    let mut expires_at = Vec::with_capacity(n);
    let mut codes: Option<Vec<Option<String>>> = None;
    let mut messages: Option<Vec<Option<String>>> = None;
    for (i, outcome) in outcomes.into_iter().enumerate() {
        match outcome {
            Outcome::Session {
                value,
                expires_at: at,
            } => {
                values.push(value);
                expires_at.push(at.map_or(f64::NAN, |t| t as f64));
            }
            Outcome::Done => {
                values.push(None);
                expires_at.push(f64::NAN);
            }
            Outcome::Failed(err) => {
                values.push(None);
                expires_at.push(f64::NAN);
                codes.get_or_insert_with(|| vec![None; n])[i] = Some(err.kind.code().to_owned());
                messages.get_or_insert_with(|| vec![None; n])[i] = Some(err.message);
            }
        }
    }
    BatchReply {
        values,
        expires_at,
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
    ) -> Result<Self> {
        let connection = ConnectionOptions {
            url: options.url,
            command_timeout: Duration::from_millis(options.command_timeout_ms.max(1) as u64),
            connect_timeout: Duration::from_millis(options.connect_timeout_ms.max(1) as u64),
        };
        // The connection manager spawns onto tokio; the constructor is not
        // called inside a runtime, so enter napi's.
        let store = within_runtime_if_available(|| Store::open(&options.prefix, &connection))
            .map_err(to_napi)?;
        Ok(NativeStore {
            inner: Arc::new(store),
            on_reply: Arc::new(on_reply),
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
        expires: Float64Array,
    ) -> Result<()> {
        let ops = decode(self.inner.keys(), &kinds, &sids, values, &expires).map_err(to_napi)?;
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

    #[napi]
    pub async fn all(&self, scan_count: u32) -> Result<AllReply> {
        let found = scan::all(&self.inner, scan_count).await.map_err(to_napi)?;
        let mut reply = AllReply {
            ids: Vec::with_capacity(found.len()),
            values: Vec::with_capacity(found.len()),
            expires_at: Vec::with_capacity(found.len()),
        };
        for session in found {
            reply.ids.push(session.sid);
            reply.values.push(session.value);
            reply
                .expires_at
                .push(session.expires_at.map_or(f64::NAN, |t| t as f64));
        }
        Ok(reply)
    }

    #[napi]
    pub async fn ids(&self, scan_count: u32) -> Result<Vec<String>> {
        scan::ids(&self.inner, scan_count).await.map_err(to_napi)
    }

    #[napi]
    pub async fn clear(&self, scan_count: u32) -> Result<f64> {
        Ok(scan::clear(&self.inner, scan_count)
            .await
            .map_err(to_napi)? as f64)
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
        let keys = Keys::new("p:");
        let ops = decode(
            &keys,
            &[GET, SET, DESTROY, REWRITE],
            "a\nb\nc\nd",
            vec!["vb".into(), "vd".into()],
            &[f64::NAN, 10.0, f64::NAN, f64::INFINITY],
        )
        .unwrap();
        assert_eq!(
            ops,
            vec![
                Op::Get { key: "p:a".into() },
                Op::Set {
                    key: "p:b".into(),
                    value: "vb".into(),
                    expiry: Expiry::At(10)
                },
                Op::Destroy { key: "p:c".into() },
                Op::Rewrite {
                    key: "p:d".into(),
                    value: "vd".into(),
                    expiry: Expiry::Never
                },
            ]
        );
    }

    #[test]
    fn malformed_batches_are_refused_not_misread() {
        let keys = Keys::new("p:");
        for (kinds, sids, values, expires) in [
            (vec![GET, GET], "a", vec![], vec![0.0, 0.0]),
            (vec![GET], "a\nb", vec![], vec![0.0]),
            (vec![SET], "a", vec![], vec![0.0]),
            (vec![GET], "a", vec!["extra".to_string()], vec![0.0]),
            (vec![GET], "a", vec![], vec![]),
            (vec![9], "a", vec![], vec![0.0]),
        ] {
            let err = decode(&keys, &kinds, sids, values, &expires).unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidArgument);
        }
    }
}
