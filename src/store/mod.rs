//! The store core: operations submitted from one event-loop tick arrive as a
//! batch; a single writer task (`writer`) sends queued batches to Redis in
//! submission order as one pipeline, so a client's own operations are never
//! reordered. `Store` is the handle over it: the queue, the fences and
//! exclusive holds that calls over many sessions run behind, and the
//! connections they use.

pub mod order;
pub mod replicas;
pub mod server;

mod cleanup;
mod merges;
mod writer;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::backend::{self, Conn, ConnectionOptions, Link, Reader};
use crate::error::{ErrorKind, StoreError, StoreResult};
use crate::ops::recent::Recent;
use crate::ops::{Context, Op, Outcome};
use crate::session::expiry::now_ms;
use order::Gate;
use server::{OnWarning, Server};
use writer::{fail, fail_ops, Job, Memory, Resent, Writer};

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

/// Lets the writer go on when dropped.
pub struct Hold {
    _release: oneshot::Sender<()>,
    exclusive: Arc<AtomicUsize>,
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.exclusive.fetch_sub(1, Ordering::AcqRel);
    }
}

pub struct Store {
    /// The writer panics on the next batch it sends (`NativeStore.panicOnce`,
    /// for the tests of what a panic does).
    pub panic_in_writer: Arc<AtomicBool>,
    ctx: Arc<Context>,
    link: Arc<Link>,
    /// Where the calls over many sessions that only read go (see
    /// `backend::reader`).
    reader: Reader,
    server: Arc<Server>,
    queued: Arc<AtomicUsize>,
    /// Operations waiting for Redis on the near path: they count against
    /// `MAX_QUEUED_OPS` too.
    near_waiting: AtomicUsize,
    /// Exclusive calls running or waiting: the near path is closed to
    /// batches meanwhile, so they queue behind the call.
    exclusive: Arc<AtomicUsize>,
    /// Shared with the near path, which uses it while the writer is idle.
    memory: Arc<Memory>,
    gate: Arc<Gate>,
    resent: Arc<Resent>,
    queue: Mutex<Option<mpsc::UnboundedSender<Job>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    reclaimer: JoinHandle<()>,
}

impl Store {
    /// Creates the store without connecting. Must run inside a tokio runtime.
    /// `on_warning` hears what the store learns of its server that the
    /// application should know (see `server`).
    pub fn open(
        ctx: Context,
        options: &ConnectionOptions,
        on_warning: OnWarning,
    ) -> StoreResult<Store> {
        let link = Arc::new(Link::open(options)?);
        let reader = Reader::open(link.clone());
        let queued = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::unbounded_channel();
        let ctx = Arc::new(ctx);
        let server = Arc::new(Server::new(on_warning));
        let panic_in_writer = Arc::new(AtomicBool::new(false));
        let memory = Arc::new(Memory::default());
        let gate = Arc::new(Gate::default());
        let resent = Arc::new(Resent::default());
        let writer = Writer {
            link: link.clone(),
            server: server.clone(),
            ctx: ctx.clone(),
            memory: memory.clone(),
            gate: gate.clone(),
            resent: resent.clone(),
            queued: queued.clone(),
            panic_in_writer: panic_in_writer.clone(),
        };
        let writer = tokio::spawn(writer.run(rx));
        let reclaimer = cleanup::spawn(link.clone(), ctx.clone());
        Ok(Store {
            panic_in_writer,
            ctx,
            link,
            reader,
            server,
            queued,
            near_waiting: AtomicUsize::new(0),
            exclusive: Arc::new(AtomicUsize::new(0)),
            memory,
            gate,
            resent,
            queue: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            reclaimer,
        })
    }

    pub fn context(&self) -> &Context {
        &self.ctx
    }

    pub fn command_timeout(&self) -> Duration {
        self.link.options.command_timeout
    }

    /// Whether destroys made on `conn` must wait for a replica: asks the
    /// server again when its replica count is stale.
    pub async fn waits_for_replicas(&self, conn: &Conn) -> bool {
        if !self.ctx.wait_for_replicas {
            return false;
        }
        self.server.learn(conn, false).await;
        self.server.waits(&self.ctx)
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
        self.exclusive.fetch_add(1, Ordering::AcqRel);
        let hold_guard = Hold {
            _release: release,
            exclusive: self.exclusive.clone(),
        };
        (self.marker(Some(hold)), hold_guard)
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

    /// The writer's connection, for multi-round-trip calls that write (they
    /// run behind `fence` or `exclusive`).
    pub async fn connection(&self) -> StoreResult<Conn> {
        if self.queue.lock().unwrap().is_none() {
            return Err(closed());
        }
        Ok(self.link.current())
    }

    /// The connection for multi-round-trip calls that only read.
    pub async fn reader(&self) -> StoreResult<Conn> {
        if self.queue.lock().unwrap().is_none() {
            return Err(closed());
        }
        Ok(self.reader.conn())
    }

    /// A mark for `reader_timed_out`, taken as a call begins.
    pub fn reader_answered(&self) -> u64 {
        self.reader.answered()
    }

    /// A read that began at `mark` timed out (see `Reader::timed_out`).
    pub fn reader_timed_out(&self, mark: u64) {
        self.reader.timed_out(mark);
    }

    /// Queues a batch. Synchronous, so batches go out in the order they were
    /// submitted; `reply` gets the outcomes within `command_timeout`, on a
    /// runtime thread, or at once on this thread if the store is closed or full.
    pub fn submit(&self, ops: Vec<Op>, reply: Reply) {
        self.enqueue(ops, reply, None)
    }

    /// Queues near batches whose socket was lost, first, with their own
    /// deadline: every operation carries absolute values, so sending them
    /// again leaves the state one send would have.
    pub fn resend(&self, ops: Vec<Op>, reply: Reply, deadline: Instant) {
        if self.queue.lock().unwrap().is_none() {
            return fail_ops(&ops, reply, &closed());
        }
        self.queued.fetch_add(ops.len(), Ordering::AcqRel);
        self.resent.push(Job {
            deadline,
            ops,
            reply,
            hold: None,
            after: 0,
        });
    }

    /// Whether a batch may take the near path now: nothing is queued for
    /// or in flight on the writer, no exclusive call is running, and no
    /// test has asked the writer to panic.
    pub fn writer_idle(&self) -> bool {
        self.queued.load(Ordering::Acquire) == 0
            && self.exclusive.load(Ordering::Acquire) == 0
            && !self.panic_in_writer.load(Ordering::Acquire)
    }

    /// Counts `n` operations sent on the near path, unless that would pass
    /// `MAX_QUEUED_OPS` (the writer then refuses them).
    pub fn near_started(&self, n: usize) -> bool {
        let waiting = self.near_waiting.fetch_add(n, Ordering::AcqRel) + n;
        let admitted = waiting + self.queued.load(Ordering::Acquire) <= MAX_QUEUED_OPS;
        if !admitted {
            self.near_ended(n);
        }
        admitted
    }

    /// `n` near operations were answered, failed or handed to the writer.
    pub fn near_ended(&self, n: usize) {
        self.near_waiting.fetch_sub(n, Ordering::AcqRel);
    }

    /// What this process wrote recently, when nobody else is using it.
    pub fn try_seen(&self) -> Option<tokio::sync::MutexGuard<'_, Recent>> {
        self.memory.try_lock()
    }

    /// Near batches were lost: see `Memory::forget`.
    pub fn forget_recent(&self) {
        self.memory.forget.store(true, Ordering::Release);
    }

    pub fn gate(&self) -> &Arc<Gate> {
        &self.gate
    }

    pub fn link(&self) -> &Link {
        &self.link
    }

    /// Whether the server may evict the store's keys (see `Recent::set_evicting`).
    pub fn evicting(&self) -> bool {
        self.server.evicting.load(Ordering::Acquire)
    }

    /// Whether a destroy must go through the writer: it waits for a
    /// replica, or the replica count is stale and must be asked again.
    pub fn destroys_need_writer(&self) -> bool {
        self.ctx.wait_for_replicas && (self.server.waits(&self.ctx) || self.server.stale())
    }

    fn enqueue(&self, ops: Vec<Op>, reply: Reply, hold: Option<oneshot::Receiver<()>>) {
        let job = Job {
            deadline: Instant::now() + self.command_timeout(),
            ops,
            reply,
            hold,
            after: self.gate.mark(),
        };
        let n = job.ops.len();
        let near = self.near_waiting.load(Ordering::Acquire);
        if self.queued.fetch_add(n, Ordering::AcqRel) + n + near > MAX_QUEUED_OPS {
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

    /// Stops accepting calls, lets queued ones finish, sends the ends
    /// counted since the cleanup's last tick, then drops the connection.
    pub async fn close(&self) {
        self.queue.lock().unwrap().take();
        self.reclaimer.abort();
        self.server.on_warning.lock().unwrap().take();
        let writer = self.writer.lock().unwrap().take();
        if let Some(writer) = writer {
            let _ = writer.await;
        }
        self.send_ended().await;
    }

    /// The ends this instance counted and has not sent yet (see `ended`),
    /// within the command timeout.
    async fn send_ended(&self) {
        let (ctx, mut pipe) = (&self.ctx, redis::pipe());
        if ctx.ended.send_with(&mut pipe, &ctx.keys, now_ms()) == 0 {
            return;
        }
        let conn = self.link.current();
        let timeout = self.command_timeout();
        let _ = tokio::time::timeout(timeout, backend::round_trip(&conn, &pipe)).await;
    }
}

impl Drop for Store {
    /// A store dropped without `close()` stops cleaning up, too.
    fn drop(&mut self) {
        self.reclaimer.abort();
    }
}

fn closed() -> StoreError {
    StoreError::new(ErrorKind::Closed, "the store is closed")
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
