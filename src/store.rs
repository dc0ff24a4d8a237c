//! The store core: operations submitted from one event-loop tick arrive as a
//! batch; a single writer task sends queued batches to Redis in submission
//! order as one pipeline, so a client's own operations are never reordered.

use std::sync::Mutex;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::commands::{self, Op, Outcome};
use crate::connection::{self, ConnectionOptions};
use crate::error::{ErrorKind, StoreError, StoreResult};
use crate::expiry::now_ms;
use crate::keys::Keys;

/// Most operations merged into one pipeline; more wait for the next one.
const MAX_PIPELINE_OPS: usize = 4096;

struct Job {
    ops: Vec<Op>,
    deadline: Instant,
    reply: oneshot::Sender<Vec<Outcome>>,
}

pub struct Store {
    keys: Keys,
    conn: ConnectionManager,
    command_timeout: Duration,
    queue: Mutex<Option<mpsc::UnboundedSender<Job>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl Store {
    /// Creates the store without connecting. Must run inside a tokio runtime.
    pub fn open(prefix: &str, options: &ConnectionOptions) -> StoreResult<Store> {
        let conn = connection::open(options)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = tokio::spawn(write_loop(rx, conn.clone(), options.command_timeout));
        Ok(Store {
            keys: Keys::new(prefix),
            conn,
            command_timeout: options.command_timeout,
            queue: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
        })
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn command_timeout(&self) -> Duration {
        self.command_timeout
    }

    /// A connection handle for multi-round-trip calls (all/ids/clear).
    pub fn connection(&self) -> StoreResult<ConnectionManager> {
        match self.queue.lock().unwrap().as_ref() {
            Some(_) => Ok(self.conn.clone()),
            None => Err(closed()),
        }
    }

    /// Queues a batch. Synchronous, so batches go out in the order they were
    /// submitted; the receiver settles within `command_timeout`.
    pub fn submit(&self, ops: Vec<Op>) -> oneshot::Receiver<Vec<Outcome>> {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            deadline: Instant::now() + self.command_timeout,
            ops,
            reply,
        };
        if let Err(mpsc::error::SendError(job)) = match self.queue.lock().unwrap().as_ref() {
            Some(queue) => queue.send(job),
            None => Err(mpsc::error::SendError(job)),
        } {
            fail(job, &closed());
        }
        rx
    }

    /// Stops accepting calls, lets queued ones finish, then drops the
    /// connection.
    pub async fn close(&self) {
        self.queue.lock().unwrap().take();
        let writer = self.writer.lock().unwrap().take();
        if let Some(writer) = writer {
            let _ = writer.await;
        }
    }
}

fn closed() -> StoreError {
    StoreError::new(ErrorKind::Closed, "the store is closed")
}

fn fail(job: Job, err: &StoreError) {
    let outcomes = job
        .ops
        .iter()
        .map(|_| Outcome::Failed(err.clone()))
        .collect();
    let _ = job.reply.send(outcomes);
}

async fn write_loop(
    mut rx: mpsc::UnboundedReceiver<Job>,
    mut conn: ConnectionManager,
    timeout: Duration,
) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        let mut count = jobs[0].ops.len();
        while count < MAX_PIPELINE_OPS {
            match rx.try_recv() {
                Ok(job) => {
                    count += job.ops.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        send(&mut conn, jobs, timeout).await;
    }
}

async fn send(conn: &mut ConnectionManager, jobs: Vec<Job>, timeout: Duration) {
    let now = Instant::now();
    let (live, late): (Vec<Job>, Vec<Job>) = jobs.into_iter().partition(|j| j.deadline > now);
    let expired = timed_out(timeout);
    late.into_iter().for_each(|job| fail(job, &expired));
    let Some(deadline) = live.iter().map(|j| j.deadline).min() else {
        return;
    };

    let sizes: Vec<usize> = live.iter().map(|j| j.ops.len()).collect();
    let mut ops = Vec::with_capacity(sizes.iter().sum());
    let mut replies = Vec::with_capacity(live.len());
    for job in live {
        ops.extend(job.ops);
        replies.push(job.reply);
    }
    let (pipe, counts) = commands::build(&ops, now_ms());
    let result = tokio::time::timeout_at(deadline, conn.req_packed_commands(&pipe, 0, pipe.len()))
        .await
        .unwrap_or_else(|_| {
            Err(redis::RedisError::from(std::io::Error::from(
                std::io::ErrorKind::TimedOut,
            )))
        });

    let mut outcomes = match result {
        Ok(values) => commands::read_all(&ops, &counts, &values),
        Err(e) => {
            let err = if e.is_timeout() {
                timed_out(timeout)
            } else {
                StoreError::from_redis(&e)
            };
            ops.iter().map(|_| Outcome::Failed(err.clone())).collect()
        }
    }
    .into_iter();
    for (reply, size) in replies.into_iter().zip(sizes) {
        let _ = reply.send(outcomes.by_ref().take(size).collect());
    }
}

fn timed_out(timeout: Duration) -> StoreError {
    StoreError::new(
        ErrorKind::Timeout,
        format!("redis did not answer within {} ms", timeout.as_millis()),
    )
}
