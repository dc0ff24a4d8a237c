//! A connection of their own for the calls over many sessions that only
//! read (`all`, `ids`, `length`, `stats`, a user's sessions, `reindex`).
//! Their pipelines run to thousands of commands with several round trips
//! in flight; on the writer's connection the writes and logouts behind them
//! waited for every one of those replies, since Redis answers a connection
//! in order, while it serves two connections in turn.
//!
//! It counts its answers, so that a call that timed out can tell a
//! connection that died without a reset (nothing answered since the call
//! began: the next call opens a new one) from a server that is only slow.
//! With `singleConnection` it is the writer's connection, counted the same.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use redis::{Pipeline, RedisResult};
use tokio::time::Instant;

use super::contract::{dropped, Backend, Conn, Reply, SendError};
use super::link::Link;
use crate::error::StoreResult;

pub struct Reader {
    counted: Arc<Counted>,
}

impl Reader {
    /// Beside the writer's `link`: a backend opened from it on first use
    /// (see `Backend::another`), or the link itself with `singleConnection`.
    pub fn open(link: Arc<Link>) -> Reader {
        Reader {
            counted: Arc::new(Counted {
                link,
                own: Mutex::new(None),
                answered: AtomicU64::new(0),
            }),
        }
    }

    pub fn conn(&self) -> Conn {
        self.counted.clone()
    }

    /// Pipelines answered so far: a mark for `timed_out`.
    pub fn answered(&self) -> u64 {
        self.counted.answered.load(Ordering::Acquire)
    }

    /// A call that began at `mark` timed out: when nothing was answered
    /// since, the next call opens a new connection. Calls still waiting on
    /// the old one keep it until they settle.
    pub fn timed_out(&self, mark: u64) {
        if self.answered() == mark {
            self.counted.reopen();
        }
    }
}

/// The reader's backend: counting the pipelines it answers, and sending one
/// again once after a dropped connection or a demoted master, as the writer
/// does (these calls read, or drop index entries, which is the same done
/// twice).
struct Counted {
    link: Arc<Link>,
    /// Its own backend, once opened; never with `singleConnection`.
    own: Mutex<Option<Conn>>,
    answered: AtomicU64,
}

impl Counted {
    /// Whether it is the writer's link, whose `reopen` and `lost` also have
    /// the scripts loaded again.
    fn shared(&self) -> bool {
        self.link.options.single_connection
    }

    fn conn(&self) -> StoreResult<Conn> {
        if self.shared() {
            return Ok(self.link.current());
        }
        let mut own = self.own.lock().unwrap();
        if let Some(conn) = own.as_ref() {
            return Ok(conn.clone());
        }
        let writer = self.link.current();
        let conn = writer.another()?.unwrap_or(writer);
        Ok(own.insert(conn).clone())
    }
}

impl Backend for Counted {
    fn send<'a>(
        &'a self,
        pipe: &'a Pipeline,
        deadline: Option<Instant>,
        last: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Reply>, SendError>> {
        Box::pin(async move {
            let conn = self.conn().map_err(SendError::Store)?;
            let mut retried = false;
            loop {
                match conn.send(pipe, deadline, last).await {
                    Ok(replies) if !retried && conn.moved(&replies) => self.lost(),
                    Ok(replies) => {
                        self.answered.fetch_add(1, Ordering::AcqRel);
                        return Ok(replies);
                    }
                    Err(SendError::Redis(e)) if dropped(&e) => {
                        self.lost();
                        if retried {
                            return Err(SendError::Redis(e));
                        }
                    }
                    Err(e) => return Err(e),
                }
                retried = true;
            }
        })
    }

    fn load_scripts(&self) -> BoxFuture<'_, RedisResult<()>> {
        Box::pin(async move {
            match self.conn() {
                Ok(conn) => conn.load_scripts().await,
                // Reported by the call that follows.
                Err(_) => Ok(()),
            }
        })
    }

    fn servers(self: Arc<Self>) -> BoxFuture<'static, StoreResult<Vec<Conn>>> {
        Box::pin(async move { self.conn()?.servers().await })
    }

    fn another(&self) -> StoreResult<Option<Conn>> {
        self.link.current().another()
    }

    fn reopen(&self) {
        if self.shared() {
            self.link.reopen();
        } else if let Ok(conn) = self.conn() {
            conn.reopen();
        }
    }

    fn lost(&self) {
        if self.shared() {
            self.link.lost();
        } else if let Ok(conn) = self.conn() {
            conn.lost();
        }
    }

    fn moved(&self, replies: &[Reply]) -> bool {
        self.link.current().moved(replies)
    }

    fn can_wait(&self) -> bool {
        self.link.current().can_wait()
    }
}
