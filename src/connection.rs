//! The Redis connection: one multiplexed connection that reconnects by
//! itself, created lazily so a store can exist before Redis is reachable;
//! with Sentinel, found through the sentinels (`sentinel`) and found again
//! when the master may have moved (`Link`); on a cluster, one per master
//! (`Conn`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use std::sync::Arc;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{IntoConnectionInfo, Pipeline, RedisResult, Value};
use tokio::time::Instant;

use crate::cluster::Cluster;
use crate::error::{ErrorKind, StoreError, StoreResult};
use crate::keys;
use crate::named::Named;
use crate::scripts;
use crate::sentinel::{check_sentinels, resolve, SentinelOptions};

/// TLS settings beyond what a rediss:// URL says.
#[derive(Clone)]
pub struct Tls {
    /// PEM CA certificate(s) to verify the server with, instead of the
    /// system's roots.
    pub ca: Option<String>,
    /// PEM client certificate and key.
    pub client: Option<(String, String)>,
    /// False: accept any server certificate (like the URL's `#insecure`).
    pub verify: bool,
    /// The name to verify the server's certificate against, when it is not
    /// the URL's host (see `named`).
    pub servername: Option<String>,
}

impl Default for Tls {
    /// The system's roots, no client certificate, verified.
    fn default() -> Self {
        Tls {
            ca: None,
            client: None,
            verify: true,
            servername: None,
        }
    }
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("Tls")
            .field("ca", &self.ca.is_some())
            .field("client", &self.client.is_some())
            .field("verify", &self.verify)
            .field("servername", &self.servername)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct ConnectionOptions {
    /// The server, unless `sentinel` or `cluster` says where it is.
    pub url: String,
    pub sentinel: Option<SentinelOptions>,
    /// Seed nodes of a Redis Cluster (empty: not a cluster).
    pub cluster: Vec<String>,
    pub tls: Tls,
    /// Upper bound for any one call, from the moment it is issued.
    pub command_timeout: Duration,
    pub connect_timeout: Duration,
}

pub(crate) fn invalid(e: redis::RedisError) -> StoreError {
    StoreError::new(
        ErrorKind::InvalidArgument,
        format!("invalid redis url or tls option: {e}"),
    )
}

/// The `tls` option's CA and client certificate, if it gives either.
pub(crate) fn certificates(tls: &Tls) -> Option<redis::TlsCertificates> {
    if tls.ca.is_none() && tls.client.is_none() {
        return None;
    }
    Some(redis::TlsCertificates {
        client_tls: tls
            .client
            .as_ref()
            .map(|(cert, key)| redis::ClientTlsConfig {
                client_cert: cert.clone().into_bytes(),
                client_key: key.clone().into_bytes(),
            }),
        root_cert: tls.ca.as_ref().map(|ca| ca.clone().into_bytes()),
    })
}

/// rediss:// needs a process-wide rustls crypto provider; installing it
/// again (another store, or another addon) is harmless.
pub(crate) fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The connection info of `url` (the TLS option applied), or of another
/// server at `addr` ("host:port") with the same login and TLS settings: a
/// cluster's nodes are reached the way its seed was.
pub fn info_at(
    options: &ConnectionOptions,
    url: &str,
    addr: Option<&str>,
) -> StoreResult<redis::ConnectionInfo> {
    let info = url.into_connection_info().map_err(invalid)?;
    let elsewhere = addr.and_then(|a| {
        let (host, port) = a.rsplit_once(':')?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Some((host.to_owned(), port.parse::<u16>().ok()?))
    });
    let addr = match (info.addr().clone(), elsewhere) {
        (
            redis::ConnectionAddr::TcpTls {
                host,
                port,
                insecure,
                tls_params,
            },
            at,
        ) => {
            let (host, port) = at.unwrap_or((host, port));
            redis::ConnectionAddr::TcpTls {
                host,
                port,
                insecure: insecure || !options.tls.verify,
                tls_params,
            }
        }
        (redis::ConnectionAddr::Tcp(_, _), Some((host, port))) => {
            redis::ConnectionAddr::Tcp(host, port)
        }
        (same, _) => same,
    };
    Ok(info.set_addr(addr))
}

/// "host:port" of a connection info.
pub fn address(info: &redis::ConnectionInfo) -> String {
    match info.addr() {
        redis::ConnectionAddr::Tcp(host, port)
        | redis::ConnectionAddr::TcpTls { host, port, .. } => {
            if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            }
        }
        other => other.to_string(),
    }
}

/// Opens a lazy connection manager to `url`. Must run inside a tokio runtime.
pub fn open(options: &ConnectionOptions) -> StoreResult<ConnectionManager> {
    manage_info(info_at(options, &options.url, None)?, options)
}

/// Opens a lazy connection manager to one server, with the TLS option's
/// certificates. Must run inside a tokio runtime.
pub fn manage_info(
    info: redis::ConnectionInfo,
    options: &ConnectionOptions,
) -> StoreResult<ConnectionManager> {
    manage(client(info, options)?, options)
}

/// A client for one server, with the TLS option's certificates.
pub(crate) fn client(
    info: redis::ConnectionInfo,
    options: &ConnectionOptions,
) -> StoreResult<redis::Client> {
    install_crypto();
    match certificates(&options.tls) {
        None => redis::Client::open(info),
        Some(certs) => redis::Client::build_with_tls(info, certs),
    }
    .map_err(invalid)
}

pub(crate) fn manage(
    client: redis::Client,
    options: &ConnectionOptions,
) -> StoreResult<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(options.connect_timeout))
        .set_response_timeout(Some(options.command_timeout))
        // Redis-rs's default retry cycle blocks each call ~9.5 s while Redis
        // is down; calls here are bounded by `command_timeout` instead.
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(20))
        .set_max_delay(Duration::from_millis(500));
    ConnectionManager::new_lazy_with_config(client, config).map_err(|e| StoreError::from_redis(&e))
}

/// A connection to one server, or to a cluster through its slot map.
#[derive(Clone)]
pub enum Conn {
    Server(ConnectionManager),
    /// A TLS server verified under `tls.servername`.
    Named(Arc<Named>),
    Cluster(Arc<Cluster>),
}

impl Conn {
    /// Sends a pipeline; one reply per command, in order. On a cluster each
    /// node's share is given until `deadline`, a node that fails answers
    /// its own commands with error replies, and the commands on the slot of
    /// `last` go after the others (see `Cluster::send`).
    pub async fn send(
        &mut self,
        pipe: &Pipeline,
        deadline: Option<Instant>,
        last: Option<&str>,
    ) -> RedisResult<Vec<Value>> {
        match self {
            Conn::Server(conn) => conn.req_packed_commands(pipe, 0, pipe.len()).await,
            Conn::Named(named) => named.send(pipe).await,
            Conn::Cluster(cluster) => {
                let last = last.map(|key| keys::slot(key.as_bytes()));
                Ok(cluster.send(pipe, deadline, last).await)
            }
        }
    }

    /// Loads the scripts; on a cluster, every node loads them before its
    /// next command.
    pub async fn load_scripts(&mut self) -> RedisResult<()> {
        match self {
            Conn::Server(_) | Conn::Named(_) => self
                .send(&scripts::load_pipeline(), None, None)
                .await
                .map(drop),
            Conn::Cluster(cluster) => {
                cluster.reset_setup();
                Ok(())
            }
        }
    }

    /// The servers a SCAN must walk: this one, or every master.
    pub async fn servers(&self) -> StoreResult<Vec<Conn>> {
        match self {
            Conn::Server(_) | Conn::Named(_) => Ok(vec![self.clone()]),
            Conn::Cluster(cluster) => Ok(cluster
                .masters()
                .await?
                .into_iter()
                .map(Conn::Server)
                .collect()),
        }
    }
}

/// The current connection, replaced when one stops answering.
pub struct Link {
    pub options: ConnectionOptions,
    /// None until the sentinels have said where the master is, and again
    /// whenever it may have moved.
    conn: Mutex<Option<Conn>>,
    /// Cleared whenever the connection may have changed servers.
    pub scripts_loaded: AtomicBool,
}

impl Link {
    pub fn open(options: &ConnectionOptions) -> StoreResult<Link> {
        let conn = match &options.sentinel {
            Some(sentinel) => {
                check_sentinels(options, sentinel)?;
                None
            }
            None => Some(Self::connect(options)?),
        };
        Ok(Link {
            conn: Mutex::new(conn),
            options: options.clone(),
            scripts_loaded: AtomicBool::new(false),
        })
    }

    /// A lazy connection to the URL, or to the cluster.
    fn connect(options: &ConnectionOptions) -> StoreResult<Conn> {
        if let Some(name) = &options.tls.servername {
            return Named::open(options, name).map(|n| Conn::Named(Arc::new(n)));
        }
        if options.cluster.is_empty() {
            return open(options).map(Conn::Server);
        }
        Cluster::new(options, scripts::load_pipeline()).map(|c| Conn::Cluster(Arc::new(c)))
    }

    pub async fn current(&self) -> StoreResult<Conn> {
        if let Some(conn) = self.conn.lock().unwrap().clone() {
            return Ok(conn);
        }
        let fresh = match &self.options.sentinel {
            Some(sentinel) => Conn::Server(resolve(&self.options, sentinel).await?),
            None => Self::connect(&self.options)?,
        };
        self.scripts_loaded.store(false, Ordering::Release);
        Ok(self.conn.lock().unwrap().get_or_insert(fresh).clone())
    }

    /// A connection that timed out may be stalled for good (a black-holed
    /// peer never resets it), so start a fresh one rather than wait on it.
    pub fn reopen(&self) {
        self.conn.lock().unwrap().take();
        self.scripts_loaded.store(false, Ordering::Release);
    }

    /// The server dropped us or stopped taking writes: with sentinels, the
    /// master may have moved, so ask again; on a cluster, the slots may
    /// have. A plain URL reconnects by itself.
    pub fn lost(&self) {
        if self.options.sentinel.is_some() {
            self.reopen();
        } else if let Some(Conn::Cluster(cluster)) = self.conn.lock().unwrap().as_ref() {
            cluster.mark_stale();
        }
    }
}
