//! The store core: operations submitted from one event-loop tick arrive as a
//! batch; a single writer task sends queued batches to Redis in submission
//! order as one pipeline, so a client's own operations are never reordered.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use redis::{Pipeline, Value};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::commands::{self, Context, Op, Outcome};
use crate::connection::{Conn, ConnectionOptions, Link};
use crate::error::{ErrorKind, StoreError, StoreResult};
use crate::expiry::now_ms;
use crate::recent::Recent;
use crate::scripts;

/// Most operations merged into one pipeline; more wait for the next one.
const MAX_PIPELINE_OPS: usize = 4096;

/// Most operations waiting for Redis at once; beyond it calls fail fast, so
/// a long outage cannot grow memory without bound.
const MAX_QUEUED_OPS: usize = 200_000;

/// Delivers a batch's outcomes exactly once. Dropped undelivered (the
/// writer panicked on it), it still answers, with an internal error, so no
/// caller waits forever.
pub struct Reply {
    deliver: Option<Box<dyn FnOnce(Vec<Outcome>) + Send>>,
    len: usize,
}

impl Reply {
    pub fn new(len: usize, deliver: impl FnOnce(Vec<Outcome>) + Send + 'static) -> Self {
        Reply {
            deliver: Some(Box::new(deliver)),
            len,
        }
    }

    fn send(mut self, outcomes: Vec<Outcome>) {
        if let Some(deliver) = self.deliver.take() {
            deliver(outcomes);
        }
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        if let Some(deliver) = self.deliver.take() {
            let err = StoreError::new(
                ErrorKind::Internal,
                "the native core failed while running this call",
            );
            deliver(
                (0..self.len)
                    .map(|_| Outcome::Failed(err.clone()))
                    .collect(),
            );
        }
    }
}

struct Job {
    ops: Vec<Op>,
    deadline: Instant,
    reply: Reply,
    /// After this job the writer waits for the receiver to close (or the
    /// deadline): an exclusive call is running on the connection.
    hold: Option<oneshot::Receiver<()>>,
}

/// Lets the writer go on when dropped.
pub struct Hold {
    _release: oneshot::Sender<()>,
}

pub struct Store {
    ctx: Arc<Context>,
    link: Arc<Link>,
    queued: Arc<AtomicUsize>,
    queue: Mutex<Option<mpsc::UnboundedSender<Job>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl Store {
    /// Creates the store without connecting. Must run inside a tokio runtime.
    pub fn open(ctx: Context, options: &ConnectionOptions) -> StoreResult<Store> {
        let link = Arc::new(Link::open(options)?);
        let queued = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::unbounded_channel();
        let ctx = Arc::new(ctx);
        let writer = tokio::spawn(write_loop(rx, link.clone(), ctx.clone(), queued.clone()));
        Ok(Store {
            ctx,
            link,
            queued,
            queue: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
        })
    }

    pub fn context(&self) -> &Context {
        &self.ctx
    }

    pub fn command_timeout(&self) -> Duration {
        self.link.options.command_timeout
    }

    /// Queues a marker behind every batch submitted so far (now, not when
    /// polled); the future resolves once they have all been answered, so a
    /// call made on `connection()` after it does not overtake them.
    pub fn fence(&self) -> impl Future<Output = StoreResult<()>> + Send + 'static {
        self.marker(None)
    }

    /// A fence after which the writer also waits until the returned `Hold`
    /// is dropped (at most the command timeout): operations issued after an
    /// exclusive call wait for it, so it sees none of them.
    pub fn exclusive(&self) -> (impl Future<Output = StoreResult<()>> + Send + 'static, Hold) {
        let (release, hold) = oneshot::channel();
        (self.marker(Some(hold)), Hold { _release: release })
    }

    fn marker(
        &self,
        hold: Option<oneshot::Receiver<()>>,
    ) -> impl Future<Output = StoreResult<()>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let reply = Reply::new(0, move |_| {
            let _ = tx.send(());
        });
        self.enqueue(Vec::new(), reply, hold);
        async move { rx.await.map_err(|_| closed()) }
    }

    /// A connection handle for multi-round-trip calls (the index reads).
    pub async fn connection(&self) -> StoreResult<Conn> {
        if self.queue.lock().unwrap().is_none() {
            return Err(closed());
        }
        self.link.current().await
    }

    /// Queues a batch. Synchronous, so batches go out in the order they were
    /// submitted; `reply` gets the outcomes within `command_timeout`, on a
    /// runtime thread, or at once on this thread if the store is closed or full.
    pub fn submit(&self, ops: Vec<Op>, reply: Reply) {
        self.enqueue(ops, reply, None)
    }

    fn enqueue(&self, ops: Vec<Op>, reply: Reply, hold: Option<oneshot::Receiver<()>>) {
        let job = Job {
            deadline: Instant::now() + self.command_timeout(),
            ops,
            reply,
            hold,
        };
        let n = job.ops.len();
        if self.queued.fetch_add(n, Ordering::AcqRel) + n > MAX_QUEUED_OPS {
            self.queued.fetch_sub(n, Ordering::AcqRel);
            fail(
                job,
                &StoreError::new(
                    ErrorKind::Unavailable,
                    format!("more than {MAX_QUEUED_OPS} calls are waiting for redis"),
                ),
            );
            return;
        }
        if let Err(mpsc::error::SendError(job)) = match self.queue.lock().unwrap().as_ref() {
            Some(queue) => queue.send(job),
            None => Err(mpsc::error::SendError(job)),
        } {
            self.queued.fetch_sub(n, Ordering::AcqRel);
            fail(job, &closed());
        }
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
    job.reply.send(outcomes);
}

async fn write_loop(
    mut rx: mpsc::UnboundedReceiver<Job>,
    link: Arc<Link>,
    ctx: Arc<Context>,
    queued: Arc<AtomicUsize>,
) {
    let mut seen = Recent::default();
    while let Some(mut first) = rx.recv().await {
        let mut hold = first.hold.take().map(|h| (h, first.deadline));
        let mut jobs = vec![first];
        let mut count = jobs[0].ops.len();
        while count < MAX_PIPELINE_OPS && hold.is_none() {
            match rx.try_recv() {
                Ok(mut job) => {
                    count += job.ops.len();
                    hold = job.hold.take().map(|h| (h, job.deadline));
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        // A panic fails this batch's calls (their replies drop, see Reply)
        // but must not stop the writer, or every later call would fail too.
        let _ = AssertUnwindSafe(send(&link, &ctx, &mut seen, jobs))
            .catch_unwind()
            .await;
        queued.fetch_sub(count, Ordering::AcqRel);
        if let Some((hold, deadline)) = hold {
            let _ = tokio::time::timeout_at(deadline, hold).await;
        }
    }
}

/// Sends the pipeline, retrying once on a dropped connection. Every
/// operation carries absolute values (the session text, deadlines, `now`),
/// so a replay after a half-applied attempt leaves the same state.
async fn attempt(
    link: &Link,
    pipe: &Pipeline,
    deadline: Instant,
    index_key: &str,
) -> Result<Vec<Value>, StoreError> {
    let timeout = link.options.command_timeout;
    let mut retried = false;
    let mut reloaded = false;
    loop {
        let sent = tokio::time::timeout_at(deadline, async {
            let mut conn = link.current().await.map_err(Failed::Store)?;
            // A new connection may reach a server that lost the scripts (a
            // restart, a failover): load them before anything runs, so a
            // write cannot fail NOSCRIPT while the operations after it run.
            if !link.scripts_loaded.load(Ordering::Acquire) {
                conn.load_scripts().await?;
                link.scripts_loaded.store(true, Ordering::Release);
            }
            // Index updates after the session writes: see `Cluster::send`.
            Ok(conn.send(pipe, Some(deadline), Some(index_key)).await?)
        })
        .await;
        match sent {
            // Lost while connected (SCRIPT FLUSH): load and send again.
            Ok(Ok(values)) if !reloaded && values.iter().any(scripts::is_noscript) => {
                reloaded = true;
                link.scripts_loaded.store(false, Ordering::Release);
            }
            // A master demoted by a failover: find the new one, send again.
            Ok(Ok(values))
                if !retried
                    && link.options.sentinel.is_some()
                    && values.iter().any(is_readonly) =>
            {
                retried = true;
                link.lost();
            }
            Ok(Ok(values)) => return Ok(values),
            Ok(Err(Failed::Store(e))) => return Err(e),
            Ok(Err(Failed::Redis(e))) if e.is_timeout() => {
                link.reopen();
                return Err(StoreError::timed_out(timeout));
            }
            Ok(Err(Failed::Redis(e)))
                if !retried
                    && (e.is_io_error() || e.is_connection_dropped())
                    && Instant::now() < deadline =>
            {
                retried = true;
                link.scripts_loaded.store(false, Ordering::Release);
                link.lost();
            }
            Ok(Err(Failed::Redis(e))) => {
                if e.is_io_error() || e.is_connection_dropped() {
                    link.lost();
                }
                return Err(StoreError::from_redis(&e));
            }
            Err(_) => {
                link.reopen();
                return Err(StoreError::timed_out(timeout));
            }
        }
    }
}

/// Why an attempt failed: finding the server, or talking to it.
enum Failed {
    Store(StoreError),
    Redis(redis::RedisError),
}

impl From<redis::RedisError> for Failed {
    fn from(e: redis::RedisError) -> Self {
        Failed::Redis(e)
    }
}

fn is_readonly(reply: &Value) -> bool {
    matches!(reply, Value::ServerError(e) if e.code() == "READONLY")
}

async fn send(link: &Link, ctx: &Context, seen: &mut Recent, jobs: Vec<Job>) {
    let now = Instant::now();
    let (live, late): (Vec<Job>, Vec<Job>) = jobs.into_iter().partition(|j| j.deadline > now);
    let expired = StoreError::timed_out(link.options.command_timeout);
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
    if ops.is_empty() {
        // Only fences: nothing to send.
        replies.into_iter().for_each(|r| r.send(Vec::new()));
        return;
    }
    let wall = now_ms();
    let (pipe, counts) = commands::build(&ops, ctx, wall, seen);
    let mut outcomes = match attempt(link, &pipe, deadline, ctx.keys.all_index()).await {
        Ok(values) => {
            let outcomes = commands::read_all(&ops, ctx, wall, &counts, values);
            // One operation failing alone (a cluster node down) may have
            // missed its index update: let the next write redo it.
            for (op, outcome) in ops.iter().zip(&outcomes) {
                if matches!(outcome, Outcome::Failed(_)) {
                    seen.forget(op.sid());
                }
            }
            outcomes
        }
        Err(err) => {
            seen.clear();
            ops.iter().map(|_| Outcome::Failed(err.clone())).collect()
        }
    }
    .into_iter();
    for (reply, size) in replies.into_iter().zip(sizes) {
        reply.send(outcomes.by_ref().take(size).collect());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_dropped_undelivered_still_answers_with_internal_errors() {
        let (tx, rx) = std::sync::mpsc::channel();
        let reply = Reply::new(2, move |outcomes| tx.send(outcomes).unwrap());
        // What a panic in the writer does to the batch it was sending.
        drop(reply);
        let outcomes = rx.try_recv().expect("answered on drop");
        assert_eq!(outcomes.len(), 2);
        assert!(outcomes
            .iter()
            .all(|o| matches!(o, Outcome::Failed(e) if e.kind == ErrorKind::Internal)));
    }

    #[test]
    fn a_reply_answers_exactly_once() {
        let (tx, rx) = std::sync::mpsc::channel();
        let reply = Reply::new(1, move |outcomes| tx.send(outcomes).unwrap());
        reply.send(vec![Outcome::Done]);
        assert_eq!(rx.try_recv().unwrap(), vec![Outcome::Done]);
        assert!(rx.try_recv().is_err());
    }
}
