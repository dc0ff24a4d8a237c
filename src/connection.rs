//! The Redis connection: one multiplexed connection that reconnects by
//! itself, created lazily so a store can exist before Redis is reachable.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::error::{ErrorKind, StoreError, StoreResult};

#[derive(Debug, Clone)]
pub struct ConnectionOptions {
    pub url: String,
    /// Upper bound for any one call, from the moment it is issued.
    pub command_timeout: Duration,
    pub connect_timeout: Duration,
}

/// Opens a lazy connection manager. Must run inside a tokio runtime.
pub fn open(options: &ConnectionOptions) -> StoreResult<ConnectionManager> {
    // rediss:// needs a process-wide rustls crypto provider; installing it
    // again (another store, or another addon) is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = redis::Client::open(options.url.as_str()).map_err(|e| {
        StoreError::new(
            ErrorKind::InvalidArgument,
            format!("invalid redis url: {e}"),
        )
    })?;
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
