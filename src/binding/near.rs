//! The napi surface of the near path (see `crate::near`): `lib/near.js`
//! owns the socket; these encode what it writes and read what it receives,
//! on the JS thread.

use napi::bindgen_prelude::*;
use napi_derive::napi;

use super::wire::encode;
use super::NativeStore;
use crate::near::{Answered, Sent};

/// Where a near socket connects.
#[napi(object)]
pub struct NearServer {
    pub host: String,
    pub port: u32,
}

/// What bytes read from the near socket (or its timeout) did, in one flat
/// array: whether the socket must close (its other batches went to the
/// writer), then for each batch answered its id, its number of operations
/// n, its errors (null, or [codes, messages] when one failed; see
/// `wire::BatchReply`), and n triples (value, expiresAt, ownerSessions).
/// One array in all: through napi each array made, and each element set,
/// costs more than the values themselves.
fn flat(env: &Env, broken: bool, answered: Answered) -> Result<Array<'_>> {
    let len: usize = answered.iter().map(|(_, o)| 3 + 3 * o.len()).sum();
    let mut out = env.create_array((1 + len) as u32)?;
    out.set(0, broken)?;
    let mut at = 1;
    for (id, outcomes) in answered {
        let r = encode(outcomes);
        let n = r.values.len() as u32;
        out.set(at, id)?;
        out.set(at + 1, n)?;
        match (r.error_codes, r.error_messages) {
            (Some(codes), Some(messages)) => {
                let mut errors = env.create_array(2)?;
                errors.set(0, codes)?;
                errors.set(1, messages)?;
                out.set(at + 2, errors)?;
            }
            _ => out.set(at + 2, Null)?,
        }
        at += 3;
        let numbers = r.expires_at.into_iter().zip(r.owner_sessions);
        for (value, (expires_at, owner_sessions)) in r.values.into_iter().zip(numbers) {
            out.set(at, value)?;
            out.set(at + 1, expires_at)?;
            out.set(at + 2, owner_sessions)?;
            at += 3;
        }
    }
    Ok(out)
}

#[napi]
impl NativeStore {
    /// Where a near socket connects, or null when this store's server is
    /// not one plain server (TLS, Sentinel, a cluster, the engine), its
    /// values are sealed (sealing stays off the JS thread), or it keeps to
    /// one connection (`singleConnection`).
    #[napi]
    pub fn near_server(&self) -> Option<NearServer> {
        let link = self.inner.link();
        if link.options.single_connection || self.inner.context().seal.is_some() {
            return None;
        }
        link.plain().map(|p| NearServer {
            host: p.host,
            port: u32::from(p.port),
        })
    }

    /// A near socket connected: the bytes it sends first.
    #[napi]
    pub fn near_open(&self) -> Buffer {
        self.near.open().into()
    }

    /// Bytes the near socket read: the batches they complete.
    #[napi]
    pub fn near_read<'env>(&self, env: &'env Env, data: BufferSlice) -> Result<Array<'env>> {
        let fed = self.near.feed(&data);
        let broken = fed.broken.is_some();
        if let Some(sent) = fed.broken {
            self.resend(env, sent)?;
        }
        flat(env, broken, fed.answered)
    }

    /// The near socket closed: its batches go to the writer.
    #[napi]
    pub fn near_lost(&self, env: Env) -> Result<()> {
        let sent = self.near.lost();
        self.resend(&env, sent)
    }

    /// A near batch outlived the command timeout: the socket's batches fail.
    #[napi]
    pub fn near_timed_out<'env>(&self, env: &'env Env) -> Result<Array<'env>> {
        flat(env, false, self.near.timed_out())
    }
}

impl NativeStore {
    /// Hands near batches to the writer, in order; each counts as answered
    /// (see `order::Gate`) once the writer has its outcomes.
    fn resend(&self, env: &Env, sent: Vec<Sent>) -> Result<()> {
        for s in sent {
            let gate = self.inner.gate().clone();
            let reply = self.reply_to(env, s.id, s.ops.len(), move || gate.answer())?;
            self.inner.resend(s.ops, reply, s.deadline);
        }
        Ok(())
    }
}
