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

/// What bytes read from the near socket (or its timeout) did, flat: whether
/// the socket must close (its other batches went to the writer), then for
/// each batch answered `onReply`'s six arguments (id, values, expiresAt,
/// ownerSessions, errorCodes, errorMessages; see `wire::BatchReply`).
/// Elements rather than an object per batch: named properties cost more
/// than the arrays themselves.
fn flat(env: &Env, broken: bool, answered: Answered) -> Result<Array<'_>> {
    let mut out = env.create_array((1 + 6 * answered.len()) as u32)?;
    out.set(0, broken)?;
    let mut at = 1;
    for (id, outcomes) in answered {
        let r = encode(outcomes);
        out.set(at, id)?;
        out.set(at + 1, r.values)?;
        out.set(at + 2, r.expires_at)?;
        out.set(at + 3, r.owner_sessions)?;
        out.set(at + 4, r.error_codes)?;
        out.set(at + 5, r.error_messages)?;
        at += 6;
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
