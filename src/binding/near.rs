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

/// A batch's outcomes, as `onReply` takes them (see `wire::BatchReply`).
#[napi(object)]
pub struct NearReply {
    pub id: u32,
    pub values: Vec<Option<String>>,
    pub expires_at: Vec<f64>,
    pub owner_sessions: Vec<u32>,
    pub error_codes: Option<Vec<Option<String>>>,
    pub error_messages: Option<Vec<Option<String>>>,
}

/// What bytes read from the near socket did.
#[napi(object)]
pub struct NearRead {
    pub replies: Vec<NearReply>,
    /// The socket must close; its other batches went to the writer.
    pub broken: bool,
}

fn replies(answered: Answered) -> Vec<NearReply> {
    answered
        .into_iter()
        .map(|(id, outcomes)| {
            let r = encode(outcomes);
            NearReply {
                id,
                values: r.values,
                expires_at: r.expires_at,
                owner_sessions: r.owner_sessions,
                error_codes: r.error_codes,
                error_messages: r.error_messages,
            }
        })
        .collect()
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
    pub fn near_read(&self, env: Env, data: BufferSlice) -> Result<NearRead> {
        let fed = self.near.feed(&data);
        let broken = fed.broken.is_some();
        if let Some(sent) = fed.broken {
            self.resend(&env, sent)?;
        }
        Ok(NearRead {
            replies: replies(fed.answered),
            broken,
        })
    }

    /// The near socket closed: its batches go to the writer.
    #[napi]
    pub fn near_lost(&self, env: Env) -> Result<()> {
        let sent = self.near.lost();
        self.resend(&env, sent)
    }

    /// A near batch outlived the command timeout: the socket's batches fail.
    #[napi]
    pub fn near_timed_out(&self) -> Vec<NearReply> {
        replies(self.near.timed_out())
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
