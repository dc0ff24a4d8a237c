//! Sessions whose logout marker a touch of this instance may have turned
//! back into a live meta: the touch's expiry found no session, and its
//! HSET of the meta went through anyway (see `scripts::DESTROY`). The
//! cleanup's next tick sends `REPAIR` for each, with the command it sends
//! anyway; `RECLAIM` does the same if that is lost.

use std::sync::{Arc, Mutex};

use redis::Pipeline;

use super::keys::{self, Keys};
use super::scripts;

/// Most kept between two ticks (Redis down): past it the rest are left to
/// `RECLAIM`.
const CAPACITY: usize = 10_000;

#[derive(Debug, Clone, Default)]
pub struct Repairs {
    pending: Arc<Mutex<Vec<String>>>,
}

impl Repairs {
    pub fn note(&self, sid: &str) {
        let mut pending = self.pending.lock().unwrap();
        if pending.len() < CAPACITY {
            pending.push(sid.to_owned());
        }
    }

    /// Appends a `REPAIR` per noted session to `pipe` and forgets them.
    pub fn send_with(&self, pipe: &mut Pipeline, keys: &Keys) {
        for sid in std::mem::take(&mut *self.pending.lock().unwrap()) {
            let key = keys.session(&sid);
            pipe.cmd("EVALSHA")
                .arg(&scripts::REPAIR.hash)
                .arg(4)
                .arg(&key)
                .arg(keys.shard(&sid))
                .arg(keys.devices(&sid))
                .arg(keys::tombstone(&key))
                .arg(&sid);
        }
    }
}
