//! Session operations and how each becomes Redis commands. A batch of
//! operations becomes one pipeline (`encode`); each operation knows how many
//! replies it owns and how to read them back (`decode`). The Lua scripts
//! those commands run are in `session::scripts`; `merge` is what a save
//! with `merge: true` applies when it finds another value than it loaded;
//! `devices` the commands of a session's device data; `recent` what this
//! process wrote lately, which spares commands; `commands` where commands
//! are written (a redis-rs pipeline, or RESP bytes).

pub mod commands;
pub mod decode;
pub mod devices;
pub mod encode;
pub mod merge;
pub mod recent;

#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::sync::Arc;

use redis::Value;

use crate::error::{StoreError, StoreResult};
use crate::session::ended::Ended;
use crate::session::events::{Events, Reason};
use crate::session::expiry::{Expiry, Lifetime};
use crate::session::keys::Keys;
use crate::session::repairs::Repairs;
use crate::session::seal::Keyring;

/// What every operation of a store shares: its key layout and limits.
#[derive(Debug, Clone)]
pub struct Context {
    pub keys: Keys,
    /// The store's own limits, when they are numbers (an op without its
    /// own `life` takes these).
    pub lifetime: Lifetime,
    /// Limits are per session (functions of the session, computed in JS):
    /// each write carries its own `life`, and no meta tells them back.
    pub session_limits: bool,
    /// Sets report the owner's session count (for `maxSessionsPerUser`),
    /// so they always run the index script.
    pub count_logins: bool,
    /// Destroys wait for a replica's acknowledgement when the master has
    /// replicas (see `replicas`).
    pub wait_for_replicas: bool,
    /// Values are sealed at rest with these keys (see `seal`).
    pub seal: Option<Arc<Keyring>>,
    /// Saves may be merges (`merge: true`): sealed reads note what they
    /// found (see `Recent::learn_sealed`).
    pub merge: bool,
    /// A read without idle/absolute limits also asks for the key's expiry
    /// (`PEXPIRETIME`), so `cookie.expires` shows the last touch, as
    /// MemoryStore's does. Off by default: express-session overwrites a
    /// loaded session's `cookie.expires` before it saves or touches it, so
    /// only direct `get` callers would see it, at one more command a read.
    pub read_expiry: bool,
    /// Lifecycle events, told from the replies (see `events`).
    pub events: Events,
    /// The ends told here, counted for the fleet's numbers (see `ended`).
    pub ended: Ended,
    /// Logout markers a touch here may have undone (see `repairs`).
    pub repairs: Repairs,
}

impl Context {
    /// Whether sessions may end before their cookie: reads then need the
    /// meta for `cookie.expires`, and metas linger after sessions end.
    pub fn limited(&self) -> bool {
        self.session_limits || self.lifetime.has_limits()
    }

    /// The limits of one write: its own, or the store's.
    pub fn life(&self, own: &Option<Lifetime>) -> Lifetime {
        own.unwrap_or(self.lifetime)
    }

    /// A session's text as the backend stores it at `key`.
    pub fn stored<'a>(&self, key: &str, text: &'a str) -> Cow<'a, [u8]> {
        match &self.seal {
            Some(ring) => Cow::Owned(ring.seal(key, text.as_bytes())),
            None => Cow::Borrowed(text.as_bytes()),
        }
    }

    /// The session text in a reply for `key`: `None` for a missing key, an
    /// error naming the key for anything that cannot be session text (or,
    /// sealed, does not open).
    pub fn text(&self, key: &str, reply: Value) -> StoreResult<Option<String>> {
        match (&self.seal, reply) {
            (Some(ring), Value::BulkString(bytes)) => ring.open(key, bytes).map(Some),
            (_, reply) => decode::read_string(key, reply),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Read a session and the cookie deadline its last touch set.
    Get { sid: String },
    /// Write a session; a deadline already past deletes it instead.
    Set {
        sid: String,
        value: String,
        expiry: Expiry,
        owner: Option<String>,
        /// This session's idle/absolute limits (`None`: the store's).
        life: Option<Lifetime>,
    },
    /// Move the expiry of an existing session without rewriting it.
    Touch {
        sid: String,
        expiry: Expiry,
        owner: Option<String>,
        life: Option<Lifetime>,
    },
    /// Rewrite an existing session (never recreates a destroyed one).
    Rewrite {
        sid: String,
        value: String,
        expiry: Expiry,
        owner: Option<String>,
        life: Option<Lifetime>,
    },
    Destroy {
        sid: String,
        /// What the `sessionEnded` event says, if this ends a session.
        reason: Reason,
    },
    /// Save what a request changed since it loaded the session (`base`) on
    /// top of what is stored (see `merge`): the write script as a
    /// compare-and-set, as a rewrite (a destroyed session stays destroyed).
    Merge {
        sid: String,
        base: String,
        value: String,
        expiry: Expiry,
        owner: Option<String>,
        /// The owner of what the request loaded: when it is `owner`, the
        /// request did not change who owns the session, and a merge keeps
        /// the stored owner (another request may have logged in).
        loaded_owner: Option<String>,
        /// After a conflict: the stored value's SHA1 and the merged text.
        against: Option<(String, String)>,
        life: Option<Lifetime>,
    },
    /// Record a session this store did not write (connect-redis's, or an
    /// older version's) in the meta and indexes, leaving it as it is.
    Adopt {
        sid: String,
        /// The key's current expiry.
        expiry: Expiry,
        owner: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Session {
        value: Option<String>,
        /// The cookie deadline the last set/touch asked for.
        expires_at: Option<i64>,
    },
    /// A write went through; `owner_sessions` is the owner's session count
    /// when this session is new to that owner (a login), else 0.
    Written {
        owner_sessions: u32,
    },
    /// A merge found another value than the one it expected: this one
    /// (as stored) and its meta's owner ('' for none). The writer merges
    /// again (see `merge::remerge`).
    Changed {
        current: Vec<u8>,
        owner: String,
    },
    Done,
    Failed(StoreError),
}

impl Op {
    pub fn sid(&self) -> &str {
        match self {
            Op::Get { sid }
            | Op::Set { sid, .. }
            | Op::Touch { sid, .. }
            | Op::Rewrite { sid, .. }
            | Op::Destroy { sid, .. }
            | Op::Merge { sid, .. }
            | Op::Adopt { sid, .. } => sid,
        }
    }
}
