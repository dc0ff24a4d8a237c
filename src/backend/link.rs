//! The store's backend, with whether the scripts are loaded on the
//! connection it has now: a new connection may reach a server that lost
//! them (a restart, a failover), so they are loaded before anything runs
//! and a write cannot fail NOSCRIPT while the operations after it run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::cluster::Cluster;
use super::contract::Conn;
use super::embedded::Embedded;
use super::named::Named;
use super::options::{self, ConnectionOptions};
use super::sentinel::Sentinel;
use super::single::Single;
use crate::error::StoreResult;
use crate::session::scripts;

/// The backend the options name; does not connect, so a store can exist
/// before its server is reachable.
fn open(options: &ConnectionOptions) -> StoreResult<Conn> {
    if Embedded::names(&options.url) {
        return Ok(Arc::new(Embedded::open(&options.url)?));
    }
    if let Some(sentinel) = &options.sentinel {
        return Ok(Arc::new(Sentinel::open(options, sentinel)?));
    }
    if let Some(name) = &options.tls.servername {
        return Ok(Arc::new(Named::open(options, name)?));
    }
    if !options.cluster.is_empty() {
        return Ok(Arc::new(Cluster::new(options, scripts::load_pipeline())?));
    }
    Ok(Arc::new(Single::open(options)?))
}

/// A single server over plain TCP and RESP2: a socket of the JS thread can
/// talk to it too (see `near`). Where it is, and how to log in.
pub struct Plain {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    pub db: i64,
}

pub struct Link {
    pub options: ConnectionOptions,
    backend: Conn,
    /// Cleared whenever the connection may have changed servers.
    pub scripts_loaded: AtomicBool,
}

impl Link {
    /// Must run inside a tokio runtime; does not connect.
    pub fn open(options: &ConnectionOptions) -> StoreResult<Link> {
        Ok(Link {
            backend: open(options)?,
            options: options.clone(),
            scripts_loaded: AtomicBool::new(false),
        })
    }

    /// The server, when the options name one plain server.
    pub fn plain(&self) -> Option<Plain> {
        let o = &self.options;
        if Embedded::names(&o.url)
            || o.sentinel.is_some()
            || o.tls.servername.is_some()
            || !o.cluster.is_empty()
        {
            return None;
        }
        let info = options::info_at(o, &o.url, None).ok()?;
        let settings = info.redis_settings();
        if settings.protocol() != redis::ProtocolVersion::RESP2 {
            return None;
        }
        match info.addr() {
            redis::ConnectionAddr::Tcp(host, port) => Some(Plain {
                host: host.clone(),
                port: *port,
                username: settings.username().map(str::to_owned),
                password: settings.password().map(str::to_owned),
                db: settings.db(),
            }),
            _ => None,
        }
    }

    pub fn current(&self) -> Conn {
        self.backend.clone()
    }

    /// See `Backend::reopen`.
    pub fn reopen(&self) {
        self.backend.reopen();
        self.scripts_loaded.store(false, Ordering::Release);
    }

    /// See `Backend::lost`.
    pub fn lost(&self) {
        self.backend.lost();
        self.scripts_loaded.store(false, Ordering::Release);
    }
}
