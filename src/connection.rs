//! The Redis connection: one multiplexed connection that reconnects by
//! itself, created lazily so a store can exist before Redis is reachable;
//! with Sentinel, found through the sentinels and found again when the
//! master may have moved (`Link`); on a cluster, one per master (`Conn`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use std::sync::Arc;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{IntoConnectionInfo, Pipeline, RedisResult, Value};
use tokio::time::Instant;

use crate::cluster::Cluster;
use crate::error::{ErrorKind, StoreError, StoreResult};
use crate::scripts;

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
}

impl Default for Tls {
    /// The system's roots, no client certificate, verified.
    fn default() -> Self {
        Tls {
            ca: None,
            client: None,
            verify: true,
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
}

fn invalid(e: redis::RedisError) -> StoreError {
    StoreError::new(
        ErrorKind::InvalidArgument,
        format!("invalid redis url or tls option: {e}"),
    )
}

/// Checks the sentinel addresses and logins without connecting.
pub fn check_sentinels(options: &ConnectionOptions, sentinel: &SentinelOptions) -> StoreResult<()> {
    sentinel_client(options, sentinel).map(drop)
}

/// Asks the sentinels where the master is now, then opens a lazy
/// connection manager to it. redis-rs's own sentinel client does not follow
/// a failover; the store calls this again whenever the master it has may
/// have changed (see `store::Link`).
pub async fn resolve(
    options: &ConnectionOptions,
    sentinel: &SentinelOptions,
) -> StoreResult<ConnectionManager> {
    install_crypto();
    // Checks the master's role over the master's TLS settings, so the
    // client it returns already carries them.
    let master = sentinel_client(options, sentinel)?
        .async_get_client()
        .await
        .map_err(|e| {
            StoreError::new(
                ErrorKind::Unavailable,
                format!(
                    "no master for \"{}\" from the sentinels: {e}",
                    sentinel.name
                ),
            )
        })?;
    manage(master, options)
}

/// A client for the master of `sentinel.name`. The builder, unlike
/// `Sentinel::build`, hands the certificates to the master's connections.
fn sentinel_client(
    options: &ConnectionOptions,
    sentinel: &SentinelOptions,
) -> StoreResult<SentinelClient> {
    let nodes = sentinel
        .nodes
        .iter()
        .map(|url| url.as_str().into_connection_info())
        .collect::<RedisResult<Vec<_>>>()
        .map_err(invalid)?;
    let mut builder = SentinelClientBuilder::new(
        nodes.iter().map(|n| n.addr().clone()),
        &sentinel.name,
        SentinelServerType::Master,
    )
    .map_err(invalid)?
    .set_client_to_redis_db(sentinel.db);
    if let Some(username) = &sentinel.username {
        builder = builder.set_client_to_redis_username(username);
    }
    if let Some(password) = &sentinel.password {
        builder = builder.set_client_to_redis_password(password);
    }
    builder = sentinel_login(builder, &nodes)?;
    builder = with_tls(builder, &options.tls, sentinel.tls, &nodes);
    builder.build().map_err(invalid)
}

/// The sentinels' own login, from their URLs. redis-rs logs in to every
/// sentinel with one, so the URLs must agree on it.
fn sentinel_login(
    mut builder: SentinelClientBuilder,
    nodes: &[redis::ConnectionInfo],
) -> StoreResult<SentinelClientBuilder> {
    let logins: Vec<_> = nodes
        .iter()
        .map(|n| (n.redis_settings().username(), n.redis_settings().password()))
        .collect();
    if logins.windows(2).any(|pair| pair[0] != pair[1]) {
        return Err(StoreError::new(
            ErrorKind::InvalidArgument,
            "the URLs in \"sentinel.nodes\" must all carry the same login (or none)",
        ));
    }
    let Some(&(username, password)) = logins.first() else {
        return Ok(builder);
    };
    if let Some(username) = username {
        builder = builder.set_client_to_sentinel_username(username);
    }
    if let Some(password) = password {
        builder = builder.set_client_to_sentinel_password(password);
    }
    Ok(builder)
}

/// TLS to the master when `master_tls`, and to the sentinels when their
/// URLs are rediss:// (the options refuse a mix), with the same certificates.
fn with_tls(
    mut builder: SentinelClientBuilder,
    tls: &Tls,
    master_tls: bool,
    nodes: &[redis::ConnectionInfo],
) -> SentinelClientBuilder {
    let certs = certificates(tls);
    if master_tls {
        let mode = if tls.verify {
            redis::TlsMode::Secure
        } else {
            redis::TlsMode::Insecure
        };
        builder = builder.set_client_to_redis_tls_mode(mode);
        if let Some(certs) = certs.clone() {
            builder = builder.set_client_to_redis_certificates(certs);
        }
    }
    let sentinels_tls = nodes
        .iter()
        .any(|n| matches!(n.addr(), redis::ConnectionAddr::TcpTls { .. }));
    if sentinels_tls {
        // Otherwise each URL's own `#insecure` decides.
        if !tls.verify {
            builder = builder.set_client_to_sentinel_tls_mode(redis::TlsMode::Insecure);
        }
        if let Some(certs) = certs {
            builder = builder.set_client_to_sentinel_certificates(certs);
        }
    }
    builder
}

/// The `tls` option's CA and client certificate, if it gives either.
fn certificates(tls: &Tls) -> Option<redis::TlsCertificates> {
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
fn install_crypto() {
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
    install_crypto();
    let client = match certificates(&options.tls) {
        None => redis::Client::open(info),
        Some(certs) => redis::Client::build_with_tls(info, certs),
    }
    .map_err(invalid)?;
    manage(client, options)
}

fn manage(client: redis::Client, options: &ConnectionOptions) -> StoreResult<ConnectionManager> {
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
    Cluster(Arc<Cluster>),
}

impl Conn {
    /// Sends a pipeline; one reply per command, in order. On a cluster each
    /// node's share is given until `deadline`, and a node that fails answers
    /// its own commands with error replies.
    pub async fn send(
        &mut self,
        pipe: &Pipeline,
        deadline: Option<Instant>,
    ) -> RedisResult<Vec<Value>> {
        match self {
            Conn::Server(conn) => conn.req_packed_commands(pipe, 0, pipe.len()).await,
            Conn::Cluster(cluster) => Ok(cluster.send(pipe, deadline).await),
        }
    }

    /// Loads the scripts; on a cluster, every node loads them before its
    /// next command.
    pub async fn load_scripts(&mut self) -> RedisResult<()> {
        match self {
            Conn::Server(conn) => {
                let load = scripts::load_pipeline();
                conn.req_packed_commands(&load, 0, load.len())
                    .await
                    .map(drop)
            }
            Conn::Cluster(cluster) => {
                cluster.reset_setup();
                Ok(())
            }
        }
    }

    /// The servers a SCAN must walk: this one, or every master.
    pub async fn servers(&self) -> StoreResult<Vec<ConnectionManager>> {
        match self {
            Conn::Server(conn) => Ok(vec![conn.clone()]),
            Conn::Cluster(cluster) => cluster.masters().await,
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
