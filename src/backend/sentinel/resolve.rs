//! Where the master is now, asked of the sentinels, with the master's login
//! and TLS settings. redis-rs's sentinel client does not follow a failover;
//! the sentinel backend asks again whenever the master may have changed.

use redis::aio::ConnectionManager;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{IntoConnectionInfo, RedisResult};

use crate::backend::options::{
    certificates, install_crypto, invalid, manage, ConnectionOptions, SentinelOptions, Tls,
};
use crate::error::{ErrorKind, StoreError, StoreResult};

/// Checks the sentinel addresses and logins without connecting.
pub fn check_sentinels(options: &ConnectionOptions, sentinel: &SentinelOptions) -> StoreResult<()> {
    sentinel_client(options, sentinel).map(drop)
}

/// Asks the sentinels where the master is now, then opens a lazy
/// connection manager to it. redis-rs's own sentinel client does not follow
/// a failover; the store calls this again whenever the master it has may
/// have changed.
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
