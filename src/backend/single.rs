//! One Redis server at a URL, through redis-rs's reconnecting connection
//! manager, replaced by a fresh one after a timeout.

use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use redis::aio::{ConnectionLike, ConnectionManager};
use redis::{Pipeline, RedisResult};
use tokio::time::Instant;

use super::contract::{Backend, Conn, Reply, SendError};
use super::options::{self, ConnectionOptions};
use crate::error::StoreResult;
use crate::session::scripts;

pub struct Single {
    options: ConnectionOptions,
    /// None after a timeout, until the next call opens a new one.
    conn: Mutex<Option<ConnectionManager>>,
    /// A master of a cluster, handed out for SCAN and INFO: never replaced.
    fixed: bool,
}

impl Single {
    /// Must run inside a tokio runtime; does not connect.
    pub fn open(options: &ConnectionOptions) -> StoreResult<Single> {
        Ok(Single {
            conn: Mutex::new(Some(options::open(options)?)),
            options: options.clone(),
            fixed: false,
        })
    }

    /// One connection as it is (a cluster's master).
    pub fn fixed(conn: ConnectionManager, options: &ConnectionOptions) -> Single {
        Single {
            conn: Mutex::new(Some(conn)),
            options: options.clone(),
            fixed: true,
        }
    }

    fn current(&self) -> StoreResult<ConnectionManager> {
        let mut conn = self.conn.lock().unwrap();
        if let Some(c) = conn.as_ref() {
            return Ok(c.clone());
        }
        Ok(conn.insert(options::open(&self.options)?).clone())
    }
}

/// Sends a pipeline on one connection: every reply is the server's.
pub(super) async fn request(
    mut conn: ConnectionManager,
    pipe: &Pipeline,
) -> Result<Vec<Reply>, SendError> {
    let values = conn.req_packed_commands(pipe, 0, pipe.len()).await?;
    Ok(values.into_iter().map(Ok).collect())
}

/// Loads the scripts on one connection.
pub(super) async fn load(mut conn: ConnectionManager) -> RedisResult<()> {
    let load = scripts::load_pipeline();
    conn.req_packed_commands(&load, 0, load.len())
        .await
        .map(drop)
}

impl Backend for Single {
    fn send<'a>(
        &'a self,
        pipe: &'a Pipeline,
        _deadline: Option<Instant>,
        _last: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Reply>, SendError>> {
        Box::pin(async move { request(self.current().map_err(SendError::Store)?, pipe).await })
    }

    fn load_scripts(&self) -> BoxFuture<'_, RedisResult<()>> {
        Box::pin(async move {
            match self.current() {
                Ok(conn) => load(conn).await,
                // Opening is lazy and only fails for bad options, which the
                // constructor already checked.
                Err(_) => Ok(()),
            }
        })
    }

    fn servers(self: Arc<Self>) -> BoxFuture<'static, StoreResult<Vec<Conn>>> {
        Box::pin(async move { Ok(vec![self as Conn]) })
    }

    fn another(&self) -> StoreResult<Option<Conn>> {
        Ok(Some(Arc::new(Single::open(&self.options)?)))
    }

    fn reopen(&self) {
        if !self.fixed {
            self.conn.lock().unwrap().take();
        }
    }

    /// The connection manager reconnects by itself.
    fn lost(&self) {}

    fn can_wait(&self) -> bool {
        true
    }
}
