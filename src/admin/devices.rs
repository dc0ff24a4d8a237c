//! The calls `captureDevice` makes for one session: write its device data
//! (on the writer's connection) and read it back (on the reader's), one
//! round trip each.

use redis::Value;

use crate::backend::round_trip;
use crate::error::{ErrorKind, StoreError, StoreResult};
use crate::ops::decode::reply_error;
use crate::ops::devices::{append_read, append_write, open};
use crate::store::Store;

/// Writes a session's device data if the session exists; whether it did.
/// On the writer's connection, behind the batches issued before it (the
/// login that saved the session).
pub async fn write(store: &Store, sid: &str, text: &str) -> StoreResult<bool> {
    let ctx = store.context();
    let conn = store.connection().await?;
    let mut pipe = redis::pipe();
    append_write(&mut pipe, ctx, sid, text);
    match round_trip(&conn, &pipe).await?.pop() {
        Some(Value::Int(n)) => Ok(n == 1),
        // Errors name the hash, never the session.
        Some(Value::ServerError(e)) => Err(reply_error(&ctx.keys.devices(sid), &e)),
        other => Err(unexpected(other)),
    }
}

/// A session's device data, if recorded (see `open`).
pub async fn read(store: &Store, sid: &str) -> StoreResult<Option<String>> {
    let ctx = store.context();
    let conn = store.reader().await?;
    let mut pipe = redis::pipe();
    append_read(&mut pipe, ctx, sid);
    match round_trip(&conn, &pipe).await?.pop() {
        Some(Value::ServerError(e)) => Err(reply_error(&ctx.keys.devices(sid), &e)),
        Some(reply) => Ok(open(ctx, sid, reply)),
        None => Err(StoreError::short_reply()),
    }
}

fn unexpected(reply: Option<Value>) -> StoreError {
    StoreError::new(
        ErrorKind::Reply,
        format!("unexpected reply to a device write: {reply:?}"),
    )
}
