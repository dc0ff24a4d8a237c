//! A TLS server verified under another name than the address it is reached
//! at (`tls.servername`). redis-rs takes the TLS name from the host it
//! connects to, so the connection is opened to the server name and a
//! resolver sends that name to the URL's address. Its reconnecting
//! `ConnectionManager` takes no resolver, so this keeps one multiplexed
//! connection and opens a fresh one after it fails.

use std::net::SocketAddr;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::io::AsyncDNSResolver;
use redis::{AsyncConnectionConfig, Pipeline, RedisFuture, RedisResult, Value};

use crate::connection::{self, ConnectionOptions};
use crate::error::{ErrorKind, StoreError, StoreResult};

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
}

impl Named {
    /// Must run inside a tokio runtime; does not connect.
    pub fn open(options: &ConnectionOptions, servername: &str) -> StoreResult<Named> {
        let info = connection::info_at(options, &options.url, None)?;
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
        let client = connection::client(info, options)?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(options.command_timeout))
            .set_dns_resolver(Pinned { host, port });
        Ok(Named {
            client,
            config,
            conn: tokio::sync::Mutex::new(None),
        })
    }

    pub async fn send(&self, pipe: &Pipeline) -> RedisResult<Vec<Value>> {
        let mut conn = {
            let mut current = self.conn.lock().await;
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
