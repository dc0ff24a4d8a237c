//! A TLS server verified under another name than the address it is reached
//! at (`tls.servername`). redis-rs takes the TLS name from the host it
//! connects to, so the connection is opened to the server name and a
//! resolver sends that name to the URL's address. Its reconnecting
//! `ConnectionManager` takes no resolver, so this keeps one multiplexed
//! connection and opens a fresh one after it fails.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures_util::future::BoxFuture;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::io::AsyncDNSResolver;
use redis::{AsyncConnectionConfig, Pipeline, RedisFuture, RedisResult, Value};
use tokio::time::Instant;

use super::contract::{Backend, Conn, Reply, SendError};
use super::options::{self, ConnectionOptions};
use crate::error::{ErrorKind, StoreError, StoreResult};
use crate::session::scripts;

/// Resolves any name to the URL's own host and port.
struct Pinned {
    host: String,
    port: u16,
}

impl AsyncDNSResolver for Pinned {
    fn resolve<'a, 'b: 'a>(
        &'a self,
        _host: &'b str,
        _port: u16,
    ) -> RedisFuture<'a, Box<dyn Iterator<Item = SocketAddr> + Send + 'a>> {
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((self.host.as_str(), self.port))
                .await?
                .collect();
            Ok(Box::new(found.into_iter()) as Box<dyn Iterator<Item = SocketAddr> + Send>)
        })
    }
}

pub struct Named {
    client: redis::Client,
    config: AsyncConnectionConfig,
    conn: tokio::sync::Mutex<Option<MultiplexedConnection>>,
    /// Set by `reopen`: the next call opens a new connection.
    stale: AtomicBool,
}

impl Named {
    /// Must run inside a tokio runtime; does not connect.
    pub fn open(options: &ConnectionOptions, servername: &str) -> StoreResult<Named> {
        let info = options::info_at(options, &options.url, None)?;
        let redis::ConnectionAddr::TcpTls {
            host,
            port,
            insecure,
            tls_params,
        } = info.addr().clone()
        else {
            return Err(StoreError::new(
                ErrorKind::InvalidArgument,
                "tls.servername needs a rediss:// URL",
            ));
        };
        let info = info.set_addr(redis::ConnectionAddr::TcpTls {
            host: servername.to_owned(),
            port,
            insecure,
            tls_params,
        });
        let client = options::client(info, options)?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(options.command_timeout))
            .set_dns_resolver(Pinned { host, port });
        Ok(Named {
            client,
            config,
            conn: tokio::sync::Mutex::new(None),
            stale: AtomicBool::new(false),
        })
    }

    async fn request(&self, pipe: &Pipeline) -> RedisResult<Vec<Value>> {
        let mut conn = {
            let mut current = self.conn.lock().await;
            if self.stale.swap(false, Ordering::AcqRel) {
                current.take();
            }
            match current.as_ref() {
                Some(conn) => conn.clone(),
                None => {
                    let fresh = self
                        .client
                        .get_multiplexed_async_connection_with_config(&self.config)
                        .await?;
                    current.insert(fresh).clone()
                }
            }
        };
        let sent = conn.req_packed_commands(pipe, 0, pipe.len()).await;
        if let Err(e) = &sent {
            // A dropped or stalled connection never recovers: open anew.
            if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() {
                self.conn.lock().await.take();
            }
        }
        sent
    }
}

impl Backend for Named {
    fn send<'a>(
        &'a self,
        pipe: &'a Pipeline,
        _deadline: Option<Instant>,
        _last: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Reply>, SendError>> {
        Box::pin(async move { Ok(self.request(pipe).await?.into_iter().map(Ok).collect()) })
    }

    fn load_scripts(&self) -> BoxFuture<'_, RedisResult<()>> {
        Box::pin(async move { self.request(&scripts::load_pipeline()).await.map(drop) })
    }

    fn servers(self: Arc<Self>) -> BoxFuture<'static, StoreResult<Vec<Conn>>> {
        Box::pin(async move { Ok(vec![self as Conn]) })
    }

    fn another(&self) -> StoreResult<Option<Conn>> {
        Ok(Some(Arc::new(Named {
            client: self.client.clone(),
            config: self.config.clone(),
            conn: tokio::sync::Mutex::new(None),
            stale: AtomicBool::new(false),
        })))
    }

    fn reopen(&self) {
        self.stale.store(true, Ordering::Release);
    }

    /// A dropped connection is replaced at the next call (see `request`).
    fn lost(&self) {}

    fn can_wait(&self) -> bool {
        true
    }
}
