//! The embedded engine (`memory://`, `file://`) as a backend: the same
//! commands and scripts as a Redis server, answered in this process. A
//! file's commit waits for the disk, so its calls run on the blocking pool;
//! memory's are short and run on the calling task.
//!
//! Not `block_in_place`: a task blocked in it when the runtime shuts down
//! (a process exiting without `close()`) goes on running on that thread
//! after the timer driver is gone, and the next timer it polls panics
//! ("A Tokio 1.x context was found, but it is being shutdown"). A task
//! awaiting the blocking pool is dropped instead.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use redis::{ErrorKind, Pipeline, RedisError, RedisResult};
use tokio::time::Instant;

use super::contract::{Backend, Conn, Reply, SendError};
use crate::engine::Engine;
use crate::error::StoreResult;
use crate::session::scripts;

/// Expired keys dropped per engine call of `tidy`: on a file each call is
/// one commit, about 25 ms for 10,000; the writer gets the engine between
/// calls.
const SWEEP_CHUNK: usize = 10_000;

/// How long one `tidy` (once a second) may go on sweeping. With one chunk
/// per `tidy`, sessions ending faster than 10,000 a second piled up, held
/// though expired (memory:// grew by a round's leftovers every round).
const SWEEP_BUDGET: std::time::Duration = std::time::Duration::from_millis(250);

pub struct Embedded {
    engine: Arc<Engine>,
}

impl Embedded {
    /// Runs `call` on the engine where it may (see the module's comment);
    /// an error when the runtime is shutting down.
    async fn run<T: Send + 'static>(
        &self,
        call: impl FnOnce(&Engine) -> T + Send + 'static,
    ) -> RedisResult<T> {
        if !self.engine.on_disk() {
            return Ok(call(&self.engine));
        }
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || call(&engine))
            .await
            .map_err(|_| RedisError::from((ErrorKind::Io, "the store is shutting down")))
    }

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
            let values = if self.engine.on_disk() {
                let pipe = pipe.clone();
                self.run(move |engine| engine.exec(&pipe)).await?
            } else {
                // In memory it runs here: no copy of the pipeline for a thread.
                self.engine.exec(pipe)
            };
            Ok(values.into_iter().map(Ok).collect())
        })
    }

    fn load_scripts(&self) -> BoxFuture<'_, RedisResult<()>> {
        Box::pin(async move {
            self.run(|engine| engine.exec(&scripts::load_pipeline()))
                .await
                .map(drop)
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
            let started = std::time::Instant::now();
            // Until fewer than a chunk were due; an error (shutting down)
            // leaves nothing to tidy for.
            while let Ok(SWEEP_CHUNK) = self.run(|engine| engine.sweep(SWEEP_CHUNK)).await {
                if started.elapsed() >= SWEEP_BUDGET {
                    break;
                }
                tokio::task::yield_now().await;
            }
        })
    }
}
