//! The Redis connection: one multiplexed connection that reconnects by
//! itself, created lazily so a store can exist before Redis is reachable;
//! with Sentinel, found through the sentinels and found again when the
//! master may have moved (`Link`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
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

/// Sentinels to ask where the master of `name` is, and how to log in to it.
#[derive(Clone)]
pub struct SentinelOptions {
    pub nodes: Vec<String>,
    pub name: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub db: i64,
}

impl std::fmt::Debug for SentinelOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the password.
        f.debug_struct("SentinelOptions")
            .field("nodes", &self.nodes)
            .field("name", &self.name)
            .field("username", &self.username)
            .field("db", &self.db)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct ConnectionOptions {
    /// The server, unless `sentinel` says where it is.
    pub url: String,
    pub sentinel: Option<SentinelOptions>,
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

/// Checks the sentinel addresses without connecting.
pub fn check_sentinels(sentinel: &SentinelOptions) -> StoreResult<()> {
    redis::sentinel::Sentinel::build(sentinel.nodes.clone())
        .map(|_| ())
        .map_err(invalid)
}

/// Asks the sentinels where the master is now, then opens a lazy
/// connection manager to it. redis-rs's own sentinel client does not follow
/// a failover; the store calls this again whenever the master it has may
/// have changed (see `store::Link`).
pub async fn resolve(
    options: &ConnectionOptions,
    sentinel: &SentinelOptions,
) -> StoreResult<ConnectionManager> {
    let mut sentinels =
        redis::sentinel::Sentinel::build(sentinel.nodes.clone()).map_err(invalid)?;
    let mut login = redis::RedisConnectionInfo::default().set_db(sentinel.db);
    if let Some(username) = &sentinel.username {
        login = login.set_username(username);
    }
    if let Some(password) = &sentinel.password {
        login = login.set_password(password);
    }
    let master_info =
        redis::sentinel::SentinelNodeConnectionInfo::default().set_redis_connection_info(login);
    let master = sentinels
        .async_master_for(&sentinel.name, Some(&master_info))
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

/// Opens a lazy connection manager to `url`. Must run inside a tokio runtime.
pub fn open(options: &ConnectionOptions) -> StoreResult<ConnectionManager> {
    // rediss:// needs a process-wide rustls crypto provider; installing it
    // again (another store, or another addon) is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut info = options
        .url
        .as_str()
        .into_connection_info()
        .map_err(invalid)?;
    if !options.tls.verify {
        let addr = info.addr().clone();
        info = info.set_addr(match addr {
            redis::ConnectionAddr::TcpTls {
                host,
                port,
                tls_params,
                ..
            } => redis::ConnectionAddr::TcpTls {
                host,
                port,
                insecure: true,
                tls_params,
            },
            other => other,
        });
    }
    let client = match (&options.tls.ca, &options.tls.client) {
        (None, None) => redis::Client::open(info),
        (ca, client) => redis::Client::build_with_tls(
            info,
            redis::TlsCertificates {
                client_tls: client.as_ref().map(|(cert, key)| redis::ClientTlsConfig {
                    client_cert: cert.clone().into_bytes(),
                    client_key: key.clone().into_bytes(),
                }),
                root_cert: ca.as_ref().map(|ca| ca.clone().into_bytes()),
            },
        ),
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

/// The current connection, replaced when one stops answering.
pub struct Link {
    pub options: ConnectionOptions,
    /// None until the sentinels have said where the master is, and again
    /// whenever it may have moved.
    conn: Mutex<Option<ConnectionManager>>,
    /// Cleared whenever the connection may have changed servers.
    pub scripts_loaded: AtomicBool,
}

impl Link {
    pub fn open(options: &ConnectionOptions) -> StoreResult<Link> {
        let conn = match &options.sentinel {
            Some(sentinel) => {
                check_sentinels(sentinel)?;
                None
            }
            None => Some(open(options)?),
        };
        Ok(Link {
            conn: Mutex::new(conn),
            options: options.clone(),
            scripts_loaded: AtomicBool::new(false),
        })
    }

    pub async fn current(&self) -> StoreResult<ConnectionManager> {
        if let Some(conn) = self.conn.lock().unwrap().clone() {
            return Ok(conn);
        }
        let fresh = match &self.options.sentinel {
            Some(sentinel) => resolve(&self.options, sentinel).await?,
            None => open(&self.options)?,
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
    /// master may have moved, so ask again. A plain URL reconnects by itself.
    pub fn lost(&self) {
        if self.options.sentinel.is_some() {
            self.reopen();
        }
    }
}
