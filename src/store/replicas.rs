//! Logouts that survive a failover. Replication is asynchronous: a master
//! that dies right after answering a destroy may not have passed the DEL
//! on, and the promoted replica still holds the session. So when the master
//! has replicas (`waitForReplicas`, on by default), a pipeline with a
//! destroy ends with `WAIT 1 <ms>`, and its destroys are answered only once
//! a replica has every write before it.

use std::time::Duration;

use redis::{Pipeline, Value};

use crate::error::{ErrorKind, StoreError};

/// Left of the deadline for the WAIT reply to travel back.
const MARGIN_MS: u128 = 20;

/// Appends the WAIT, given the time left until the deadline; returns the
/// milliseconds it may block.
pub fn append(pipe: &mut Pipeline, left: Duration) -> u64 {
    let ms = left.as_millis().saturating_sub(MARGIN_MS).max(1) as u64;
    pipe.cmd("WAIT").arg(1).arg(ms);
    ms
}

/// Whether a replica acknowledged, from WAIT's reply.
pub fn check(reply: Option<&Value>, ms: u64) -> Result<(), StoreError> {
    match reply {
        Some(Value::Int(n)) if *n >= 1 => Ok(()),
        Some(Value::ServerError(e)) => Err(StoreError::new(
            ErrorKind::Reply,
            format!("redis refused WAIT after a logout ({e}); set waitForReplicas: false if the server does not allow it"),
        )),
        _ => Err(StoreError::new(
            ErrorKind::Timeout,
            format!("no replica acknowledged the logout within {ms} ms: the session is deleted on the master, but a failover now could bring it back; try again"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_acknowledgement_is_enough_and_none_times_out() {
        assert!(check(Some(&Value::Int(1)), 5).is_ok());
        assert!(check(Some(&Value::Int(2)), 5).is_ok());
        let e = check(Some(&Value::Int(0)), 5).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Timeout);
        assert!(e.message.contains("5 ms"), "{}", e.message);
        assert_eq!(check(None, 5).unwrap_err().kind, ErrorKind::Timeout);
    }

    #[test]
    fn the_wait_leaves_room_for_its_reply() {
        let mut pipe = redis::pipe();
        assert_eq!(append(&mut pipe, Duration::from_millis(500)), 480);
        assert_eq!(append(&mut pipe, Duration::from_millis(3)), 1);
        let wire = String::from_utf8_lossy(&pipe.get_packed_pipeline()).replace("\r\n", " ");
        assert!(wire.contains("WAIT $1 1 $3 480"), "{wire}");
    }
}
