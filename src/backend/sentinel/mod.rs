//! Redis Sentinel: the master the sentinels name, asked again whenever it
//! may have moved (the connection dropped or stalled, or the server
//! answers READONLY: a master demoted by a failover).

mod resolve;

use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use redis::aio::ConnectionManager;
use redis::{Pipeline, RedisResult, Value};
use tokio::time::Instant;

pub use resolve::check_sentinels;

use super::contract::{Backend, Conn, Reply, SendError};
use super::options::{ConnectionOptions, SentinelOptions};
use super::single::{self, Single};
use crate::error::StoreResult;

pub struct Sentinel {
    options: ConnectionOptions,
    sentinel: SentinelOptions,
    /// None until the sentinels have said where the master is, and again
    /// whenever it may have moved.
    master: Mutex<Option<ConnectionManager>>,
}

impl Sentinel {
    /// Checks the sentinels' addresses; does not connect.
    pub fn open(options: &ConnectionOptions, sentinel: &SentinelOptions) -> StoreResult<Sentinel> {
        check_sentinels(options, sentinel)?;
        Ok(Sentinel {
            options: options.clone(),
            sentinel: sentinel.clone(),
            master: Mutex::new(None),
        })
    }

    async fn current(&self) -> StoreResult<ConnectionManager> {
        if let Some(conn) = self.master.lock().unwrap().clone() {
            return Ok(conn);
        }
        let fresh = resolve::resolve(&self.options, &self.sentinel).await?;
        Ok(self.master.lock().unwrap().get_or_insert(fresh).clone())
    }
}

impl Backend for Sentinel {
    fn send<'a>(
        &'a self,
        pipe: &'a Pipeline,
        _deadline: Option<Instant>,
        _last: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Reply>, SendError>> {
        Box::pin(async move {
            let master = self.current().await.map_err(SendError::Store)?;
            single::request(master, pipe).await
        })
    }

    fn load_scripts(&self) -> BoxFuture<'_, RedisResult<()>> {
        Box::pin(async move {
            match self.current().await {
                Ok(master) => single::load(master).await,
                // No master yet: the call that follows reports why.
                Err(_) => Ok(()),
            }
        })
    }

    fn servers(self: Arc<Self>) -> BoxFuture<'static, StoreResult<Vec<Conn>>> {
        Box::pin(async move {
            let master = self.current().await?;
            Ok(vec![Arc::new(Single::fixed(master, &self.options)) as Conn])
        })
    }

    fn another(&self) -> StoreResult<Option<Conn>> {
        Ok(Some(Arc::new(Sentinel::open(
            &self.options,
            &self.sentinel,
        )?)))
    }

    fn reopen(&self) {
        self.master.lock().unwrap().take();
    }

    fn lost(&self) {
        self.reopen();
    }

    fn moved(&self, replies: &[Reply]) -> bool {
        let demoted = replies
            .iter()
            .any(|r| matches!(r, Ok(Value::ServerError(e)) if e.code() == "READONLY"));
        if demoted {
            self.lost();
        }
        demoted
    }

    fn can_wait(&self) -> bool {
        true
    }
}
