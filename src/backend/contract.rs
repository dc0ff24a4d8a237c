//! The one interface every backend implements: a single server, a TLS
//! server under another name, the master found through Sentinel, a Redis
//! Cluster, and the embedded engine. The session logic above it (commands,
//! expiry, metas, indexes, the writer) speaks Redis commands and never asks
//! which backend it has.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use redis::{Pipeline, RedisResult, Value};
use tokio::time::Instant;

use crate::error::{StoreError, StoreResult};

/// One command's answer: what the server replied (an error reply such as
/// WRONGTYPE is a reply), or why this command got none (a cluster node that
/// failed answers only for its own commands).
pub type Reply = StoreResult<Value>;

/// Why a whole pipeline got no answers.
pub enum SendError {
    /// Finding the server failed (no master from the sentinels).
    Store(StoreError),
    /// Talking to it failed (refused, dropped, timed out).
    Redis(redis::RedisError),
}

impl SendError {
    /// What the caller of a call that got no answers is told.
    pub fn into_store(self) -> StoreError {
        match self {
            SendError::Store(e) => e,
            SendError::Redis(e) => StoreError::from_redis(&e),
        }
    }
}

impl From<redis::RedisError> for SendError {
    fn from(e: redis::RedisError) -> Self {
        SendError::Redis(e)
    }
}

/// The connection went (reset, closed, refused): after `Backend::lost`, a
/// pipeline may go once more, on the writer's connection and the reader's.
pub fn dropped(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped()
}

pub type Conn = Arc<dyn Backend>;

pub trait Backend: Send + Sync {
    /// Sends a pipeline: one reply per command, in order. `deadline` bounds
    /// each part where a backend splits the pipeline. Commands on the slots
    /// of the keys in `last` go after the others (on one server a pipeline
    /// runs in order anyway; across cluster masters this keeps an owner's
    /// index from listing a session before it is written).
    fn send<'a>(
        &'a self,
        pipe: &'a Pipeline,
        deadline: Option<Instant>,
        last: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Reply>, SendError>>;

    /// Loads the scripts (on a cluster: every node, before its next command).
    fn load_scripts(&self) -> BoxFuture<'_, RedisResult<()>>;

    /// The servers a SCAN walks and INFO asks: this one, or every master.
    fn servers(self: Arc<Self>) -> BoxFuture<'static, StoreResult<Vec<Conn>>>;

    /// A connection of its own to the same servers, as this one knows them
    /// now (a cluster's current nodes, which may no longer include the
    /// seeds); does not connect. None where nothing queues on a socket (the
    /// embedded engine, which one process opens once).
    fn another(&self) -> StoreResult<Option<Conn>>;

    /// A call timed out: the connection may be stalled for good (a
    /// black-holed peer never resets it), so the next call opens a new one.
    fn reopen(&self);

    /// The connection dropped: the server may have moved (a failover, a
    /// resharding); find it again before the next call.
    fn lost(&self);

    /// Whether these replies say the server is no longer the one to write
    /// to (a demoted master), so the pipeline should go again after `lost`.
    fn moved(&self, _replies: &[Reply]) -> bool {
        false
    }

    /// Whether `WAIT` for replicas means anything here (see `replicas`).
    fn can_wait(&self) -> bool;

    /// Housekeeping a backend needs now and then (the engine drops expired
    /// keys); called about once a second.
    fn tidy(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// One round trip of a multi-round-trip call (the calls over many sessions,
/// reclaim, reencrypt), every reply an answer. Not timed here: such calls
/// run within one bound as a whole, and the connection bounds each request
/// too. A cluster node that failed fails the whole call: its sessions'
/// answers are missing.
pub async fn round_trip(conn: &Conn, pipe: &Pipeline) -> StoreResult<Vec<Value>> {
    conn.send(pipe, None, &[])
        .await
        .map_err(SendError::into_store)?
        .into_iter()
        .collect()
}
