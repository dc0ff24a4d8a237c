//! Error kinds the store reports. Each maps to a stable `code` string that the
//! JS layer puts on the `Error` it hands to callbacks and promises.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Redis did not answer within the configured time.
    Timeout,
    /// No connection could be made, or it dropped mid-call.
    Unavailable,
    /// `close()` was called; no more calls are accepted.
    Closed,
    /// Redis answered with an error reply (e.g. WRONGTYPE).
    Reply,
    /// Redis refused a write for memory (OOM: `maxmemory` reached and
    /// nothing it may evict); nothing of the write was applied.
    Full,
    /// The stored value cannot be a session (not UTF-8; with encryption,
    /// one that fails to open or is plaintext when that is refused).
    Corrupt,
    /// An encrypted value names a key id that is not configured.
    UnknownKey,
    /// The caller passed something the store cannot use.
    InvalidArgument,
    /// A session too large for what was asked of it (merging one with too
    /// many top-level keys); nothing was written.
    TooLarge,
    /// A `file://` store's file is damaged: it cannot be read as one.
    FileCorrupt,
    /// The native core failed (a panic, caught); the call did not complete.
    Internal,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 11] = [
        ErrorKind::Timeout,
        ErrorKind::Unavailable,
        ErrorKind::Closed,
        ErrorKind::Reply,
        ErrorKind::Full,
        ErrorKind::Corrupt,
        ErrorKind::UnknownKey,
        ErrorKind::InvalidArgument,
        ErrorKind::TooLarge,
        ErrorKind::FileCorrupt,
        ErrorKind::Internal,
    ];

    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "ERR_REDIS_TIMEOUT",
            ErrorKind::Unavailable => "ERR_REDIS_UNAVAILABLE",
            ErrorKind::Closed => "ERR_STORE_CLOSED",
            ErrorKind::Reply => "ERR_REDIS_REPLY",
            ErrorKind::Full => "ERR_REDIS_FULL",
            ErrorKind::Corrupt => "ERR_SESSION_CORRUPT",
            ErrorKind::UnknownKey => "ERR_SESSION_KEY_UNKNOWN",
            ErrorKind::InvalidArgument => "ERR_INVALID_ARG",
            ErrorKind::TooLarge => "ERR_SESSION_TOO_LARGE",
            ErrorKind::FileCorrupt => "ERR_SESSION_FILE_CORRUPT",
            ErrorKind::Internal => "ERR_INTERNAL",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError {
    pub kind: ErrorKind,
    pub message: String,
}

impl StoreError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        StoreError {
            kind,
            message: message.into(),
        }
    }

    /// Redis did not answer within `timeout`.
    pub fn timed_out(timeout: std::time::Duration) -> Self {
        StoreError::new(
            ErrorKind::Timeout,
            format!("redis did not answer within {} ms", timeout.as_millis()),
        )
    }

    /// A call over many sessions (its round trips together) ran out of
    /// time: Redis may have answered every one of them, so the message
    /// does not blame it, and says what to do.
    pub fn unfinished(timeout: std::time::Duration) -> Self {
        StoreError::new(
            ErrorKind::Timeout,
            format!(
                "the call did not finish within {} ms (commandTimeout): redis is slow or down, or there is too much to do in one call (a user with very many sessions, a very large store); what it did stays done, so call it again, or raise commandTimeout",
                timeout.as_millis()
            ),
        )
    }

    /// A pipeline's replies did not match its commands.
    pub fn short_reply() -> Self {
        StoreError::new(ErrorKind::Reply, "redis sent fewer replies than commands")
    }

    /// Classifies a redis-rs error: the caller mostly needs to know whether
    /// Redis was slow, gone, or said no.
    pub fn from_redis(err: &redis::RedisError) -> Self {
        let kind = if err.is_timeout() {
            ErrorKind::Timeout
        } else if err.is_io_error()
            || err.is_connection_refusal()
            || err.is_connection_dropped()
            || err.is_unrecoverable_error()
        {
            ErrorKind::Unavailable
        } else {
            ErrorKind::Reply
        };
        let text = err.to_string();
        // A parse error dumps what the server sent (an HTTP page, say).
        let what = if text.contains("Parse error") || text.contains("Incompatible type") {
            "the server's answer is not Redis's protocol".to_owned()
        } else {
            text
        };
        StoreError::new(kind, format!("redis: {what}{}", hint(err)))
    }
}

/// One line on the usual cause of a connection error, for the person who
/// reads it in a log.
fn hint(err: &redis::RedisError) -> &'static str {
    let text = err.to_string();
    if err.is_connection_refusal() || text.contains("refused") {
        "; nothing listens there: is redis-server running, and are the host and port right?"
    } else if text.contains("Parse error") || text.contains("Incompatible type") {
        "; is it a Redis server (not HTTP or another service), and does it expect TLS (rediss://)?"
    } else if text.contains("uthentication")
        || text.contains("WRONGPASS")
        || text.contains("NOAUTH")
    {
        "; check the username and password in the URL (or the server's ACL)"
    } else {
        ""
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.code(), self.message)
    }
}

impl std::error::Error for StoreError {}

pub type StoreResult<T> = Result<T, StoreError>;
