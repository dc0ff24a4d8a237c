//! The store's options as the user wrote them (after the JS face checked
//! them: a bad option is a TypeError at construction, with the option's
//! name), turned into what the core takes.

use std::sync::Arc;
use std::time::Duration;

use napi_derive::napi;

use crate::backend::{ConnectionOptions, SentinelOptions, Tls};
use crate::error::StoreResult;
use crate::ops::Context;
use crate::session::expiry::Lifetime;
use crate::session::keys::Keys;
use crate::session::seal::Keyring;

#[napi(object)]
pub struct TlsOptions {
    /// PEM: the CA to verify the server with (instead of the system's).
    pub ca: Option<String>,
    /// PEM: a client certificate and its key, for servers that ask for one.
    pub cert: Option<String>,
    pub key: Option<String>,
    /// False skips verifying the server's certificate.
    pub reject_unauthorized: Option<bool>,
    /// The name to verify the server's certificate against, if not the URL's host.
    pub servername: Option<String>,
}

#[napi(object)]
pub struct SentinelOptionsJs {
    pub nodes: Vec<String>,
    pub name: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub db: Option<u32>,
    pub tls: Option<bool>,
}

/// One key of `encryption.keys`: its bytes (the JS face decodes the
/// base64/hex forms).
#[napi(object)]
pub struct EncryptionKey {
    pub id: String,
    pub key: napi::bindgen_prelude::Buffer,
}

#[napi(object)]
pub struct EncryptionOptions {
    /// The first seals; all of them open.
    pub keys: Vec<EncryptionKey>,
    pub allow_plaintext: bool,
}

#[napi(object)]
pub struct ClusterOptions {
    pub nodes: Vec<String>,
}

/// The options of `new RedisSessionStore(options)` that the core uses, in
/// their names and units (seconds for the timeouts, ms for commands).
#[napi(object)]
pub struct NativeOptions {
    /// The server, or with `cluster` its first seed node.
    pub url: String,
    pub prefix: String,
    pub command_timeout: u32,
    pub connect_timeout: u32,
    /// Seconds, when the option is a number.
    pub idle_timeout: Option<f64>,
    pub absolute_timeout: Option<f64>,
    /// `idleTimeout` or `absoluteTimeout` is a function: every write
    /// carries its session's limits (see `wire::decode`).
    pub session_limits: bool,
    /// Sessions per command group of the calls over many sessions.
    pub scan_count: u32,
    /// `maxSessionsPerUser` is set: sets report the owner's session count.
    pub count_logins: bool,
    pub wait_for_replicas: bool,
    pub tls: Option<TlsOptions>,
    pub sentinel: Option<SentinelOptionsJs>,
    pub cluster: Option<ClusterOptions>,
    pub encryption: Option<EncryptionOptions>,
    pub merge: bool,
    /// One connection to the server (see `ConnectionOptions`).
    pub single_connection: bool,
    /// Reads also ask for the key's expiry, so `cookie.expires` shows the
    /// last touch (see `ops::Context::read_expiry`).
    pub read_expiry: bool,
}

fn ms(seconds: Option<f64>) -> Option<i64> {
    seconds.map(|s| (s * 1000.0).ceil() as i64)
}

impl NativeOptions {
    pub fn connection(&mut self) -> ConnectionOptions {
        let tls = self.tls.take();
        let (client, tls) = match tls {
            Some(t) => (
                t.cert.zip(t.key),
                Tls {
                    ca: t.ca,
                    client: None,
                    verify: t.reject_unauthorized.unwrap_or(true),
                    servername: t.servername,
                },
            ),
            None => (None, Tls::default()),
        };
        ConnectionOptions {
            tls: Tls { client, ..tls },
            url: self.url.clone(),
            sentinel: self.sentinel.take().map(|s| SentinelOptions {
                nodes: s.nodes,
                name: s.name,
                username: s.username,
                password: s.password,
                db: s.db.unwrap_or(0) as i64,
                tls: s.tls.unwrap_or(false),
            }),
            cluster: self.cluster.take().map(|c| c.nodes).unwrap_or_default(),
            command_timeout: Duration::from_millis(self.command_timeout.max(1) as u64),
            connect_timeout: Duration::from_millis(self.connect_timeout.max(1) as u64),
            single_connection: self.single_connection,
        }
    }

    /// What the core works with; a bad key is refused here too.
    pub fn context(&mut self) -> StoreResult<Context> {
        let seal = match self.encryption.take() {
            Some(e) => {
                let keys = e.keys.into_iter().map(|k| (k.id, k.key.to_vec())).collect();
                Some(Arc::new(Keyring::new(keys, e.allow_plaintext)?))
            }
            None => None,
        };
        Ok(Context {
            keys: Keys::new(self.prefix.clone()),
            lifetime: Lifetime {
                idle_ms: ms(self.idle_timeout),
                absolute_ms: ms(self.absolute_timeout),
            },
            count_logins: self.count_logins,
            session_limits: self.session_limits,
            wait_for_replicas: self.wait_for_replicas,
            seal,
            merge: self.merge,
            read_expiry: self.read_expiry,
            events: Default::default(),
            ended: Default::default(),
            repairs: Default::default(),
        })
    }
}
