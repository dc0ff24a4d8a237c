//! The embedded engine (`memory://`, `file://`) as a backend: the same
//! commands and scripts as a Redis server, answered in this process. A
//! file's commit waits for the disk, so calls run where blocking is allowed.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use redis::{Pipeline, RedisResult};
use tokio::time::Instant;

use super::contract::{Backend, Conn, Reply, SendError};
use crate::engine::Engine;
use crate::error::StoreResult;
use crate::scripts;

/// Expired keys dropped per `tidy` (at least once a second, more while
/// sessions end fast): on a file each call is one commit, about 25 ms for
/// 10,000.
const SWEEP_PER_TIDY: usize = 10_000;

pub struct Embedded {
    engine: Arc<Engine>,
}

impl Embedded {
    pub fn open(url: &str) -> StoreResult<Embedded> {
        Ok(Embedded {
            engine: Engine::open(url)?,
        })
    }

    /// Whether `url` names the embedded engine rather than a server.
    pub fn names(url: &str) -> bool {
        url.starts_with("memory://") || url.starts_with("file://")
    }
}

impl Backend for Embedded {
    fn send<'a>(
        &'a self,
        pipe: &'a Pipeline,
        _deadline: Option<Instant>,
        _last: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Reply>, SendError>> {
        Box::pin(async move {
            let values = tokio::task::block_in_place(|| self.engine.exec(pipe));
            Ok(values.into_iter().map(Ok).collect())
        })
    }

    fn load_scripts(&self) -> BoxFuture<'_, RedisResult<()>> {
        Box::pin(async move {
            tokio::task::block_in_place(|| self.engine.exec(&scripts::load_pipeline()));
            Ok(())
        })
    }

    fn servers(self: Arc<Self>) -> BoxFuture<'static, StoreResult<Vec<Conn>>> {
        Box::pin(async move { Ok(vec![self as Conn]) })
    }

    fn another(&self) -> StoreResult<Option<Conn>> {
        Ok(None)
    }

    /// Nothing to stall or lose.
    fn reopen(&self) {}

    fn lost(&self) {}

    /// No replicas.
    fn can_wait(&self) -> bool {
        false
    }

    fn tidy(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            tokio::task::block_in_place(|| self.engine.sweep(SWEEP_PER_TIDY));
        })
    }
}
