//! How the store reaches its server, as the user configured it, and the
//! redis-rs clients every Redis backend is built from: lazy, reconnecting
//! connection managers, so a store can exist before Redis is reachable.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::IntoConnectionInfo;

use crate::error::{ErrorKind, StoreError, StoreResult};

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

/// Sentinels to ask where the master of `name` is, how to log in to it,
/// and whether it speaks TLS.
#[derive(Clone)]
pub struct SentinelOptions {
    pub nodes: Vec<String>,
    pub name: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub db: i64,
    /// The master and its replicas speak TLS, verified with `Tls`.
    pub tls: bool,
}

impl std::fmt::Debug for SentinelOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the password.
        f.debug_struct("SentinelOptions")
            .field("nodes", &self.nodes)
            .field("name", &self.name)
            .field("username", &self.username)
            .field("db", &self.db)
            .field("tls", &self.tls)
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
    /// One connection to the server: the reading calls over many sessions
    /// use the writer's (see `reader`), and no socket on the JS thread
    /// (see `crate::near`).
    pub single_connection: bool,
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
