//! The store core: operations submitted from one event-loop tick arrive as a
//! batch; a single writer task sends queued batches to Redis in submission
//! order as one pipeline, so a client's own operations are never reordered.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use redis::Pipeline;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::backend::{self, Conn, ConnectionOptions, Link, Reader, SendError};
use crate::error::{ErrorKind, StoreError, StoreResult};
use crate::expiry::now_ms;
use crate::ops::{decode, encode, merge, scripts, Context, Op, Outcome};
use crate::order::Gate;
use crate::recent::Recent;
use crate::reclaim;
use crate::replicas;
use crate::server_info::{self, OnWarning};

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
    /// The near batches issued before this job (see `order`): it is not
    /// sent before they are answered.
    after: u64,
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

/// What the store learned of its server at the last connection.
pub struct Server {
    /// Replicas a logout waits for (see `replicas`); 0: none to wait for.
    replicas: AtomicUsize,
    /// The server may evict the store's own keys (see `Recent::set_evicting`).
    evicting: AtomicBool,
    /// When `replicas` was last asked: replicas come and go, so a logout
    /// asks again when this is older than `RELEARN`.
    learned: Mutex<Option<Instant>>,
    /// Dropped at `close()`: nothing is reported after it.
    on_warning: Mutex<Option<OnWarning>>,
}

/// How old a replica count may be when a logout relies on it.
const RELEARN: Duration = Duration::from_secs(10);

impl Server {
    /// Asks the server about itself on a new connection (warning once), or
    /// its replica count again when that is stale and a logout needs it.
    async fn learn(&self, conn: &Conn, new_connection: bool) {
        if !new_connection && !self.stale() {
            return;
        }
        let sink = self.on_warning.lock().unwrap().clone();
        let warn = sink.as_ref().filter(|_| new_connection);
        let learned = server_info::learn(conn, warn).await;
        self.replicas.store(learned.replicas, Ordering::Release);
        self.evicting.store(learned.evicting, Ordering::Release);
        *self.learned.lock().unwrap() = Some(Instant::now());
    }

    /// Whether the replica count is too old for a logout to rely on.
    fn stale(&self) -> bool {
        self.learned
            .lock()
            .unwrap()
            .is_none_or(|at| at.elapsed() > RELEARN)
    }

    /// Whether a pipeline holding a destroy waits for a replica: never
    /// without replicas, or with `waitForReplicas: false`.
    fn waits(&self, ctx: &Context) -> bool {
        ctx.wait_for_replicas && self.replicas.load(Ordering::Acquire) > 0
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
    /// application should know (see `server_info`).
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
        let server = Arc::new(Server {
            replicas: AtomicUsize::new(0),
            evicting: AtomicBool::new(false),
            learned: Mutex::new(None),
            on_warning: Mutex::new(Some(on_warning)),
        });
        let panic_in_writer = Arc::new(AtomicBool::new(false));
        let memory = Arc::new(Memory::default());
        let gate = Arc::new(Gate::default());
        let resent = Arc::new(Resent::default());
        let writer = tokio::spawn(write_loop(
            rx,
            (link.clone(), server.clone()),
            (ctx.clone(), memory.clone(), gate.clone(), resent.clone()),
            (queued.clone(), panic_in_writer.clone()),
        ));
        let reclaimer = reclaim::spawn(link.clone(), ctx.clone());
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

fn fail(job: Job, err: &StoreError) {
    fail_ops(&job.ops, job.reply, err);
}

fn fail_ops(ops: &[Op], reply: Reply, err: &StoreError) {
    reply.send(ops.iter().map(|_| Outcome::Failed(err.clone())).collect());
}

/// What this process wrote recently (see `recent`), shared by the writer
/// and the near path, which never use it at the same time.
#[derive(Default)]
struct Memory {
    seen: tokio::sync::Mutex<Recent>,
    /// Set when near batches were lost: what `seen` says was written may
    /// never have reached Redis, so its next user clears it first.
    forget: AtomicBool,
}

impl Memory {
    async fn lock(&self) -> tokio::sync::MutexGuard<'_, Recent> {
        self.fresh(self.seen.lock().await)
    }

    fn try_lock(&self) -> Option<tokio::sync::MutexGuard<'_, Recent>> {
        self.seen.try_lock().ok().map(|seen| self.fresh(seen))
    }

    fn fresh<'a>(
        &self,
        mut seen: tokio::sync::MutexGuard<'a, Recent>,
    ) -> tokio::sync::MutexGuard<'a, Recent> {
        if self.forget.swap(false, Ordering::AcqRel) {
            seen.clear();
        }
        seen
    }
}

/// Near batches handed back to the writer (see `Store::resend`).
#[derive(Default)]
struct Resent {
    jobs: Mutex<std::collections::VecDeque<Job>>,
    arrived: tokio::sync::Notify,
}

impl Resent {
    fn push(&self, job: Job) {
        self.jobs.lock().unwrap().push_back(job);
        self.arrived.notify_one();
    }

    fn take(&self) -> Option<Job> {
        self.jobs.lock().unwrap().pop_front()
    }

    async fn arrived(&self) {
        self.arrived.notified().await
    }
}

async fn write_loop(
    mut rx: mpsc::UnboundedReceiver<Job>,
    (link, server): (Arc<Link>, Arc<Server>),
    (ctx, memory, gate, resent): (Arc<Context>, Arc<Memory>, Arc<Gate>, Arc<Resent>),
    (queued, panic_in_writer): (Arc<AtomicUsize>, Arc<AtomicBool>),
) {
    // A job taken from the queue that had to wait for near batches: it
    // starts the next pipeline.
    let mut next: Option<Job> = None;
    loop {
        // Near batches sent again go first: queued jobs may wait for them.
        let mut first = match (resent.take(), next.take()) {
            (Some(job), held) => {
                next = held;
                job
            }
            (None, Some(job)) => job,
            (None, None) => tokio::select! {
                biased;
                () = resent.arrived() => continue,
                job = rx.recv() => match job {
                    Some(job) => job,
                    None => break,
                },
            },
        };
        // Not before the near batches issued ahead of it are answered (the
        // near path bounds them by the command timeout; this bound is a
        // backstop).
        if !gate.passed(first.after) {
            let answered = tokio::select! {
                biased;
                () = resent.arrived() => false,
                _ = tokio::time::timeout_at(first.deadline, gate.reached(first.after)) => true,
            };
            if !answered {
                next = Some(first);
                continue;
            }
        }
        let mut hold = first.hold.take().map(|h| (h, first.deadline));
        let mut jobs = vec![first];
        let mut count = jobs[0].ops.len();
        // A held job goes before anything else queued: nothing joins a
        // resent batch while one waits.
        while count < MAX_PIPELINE_OPS && hold.is_none() && next.is_none() {
            match rx.try_recv() {
                Ok(job) if !gate.passed(job.after) => {
                    next = Some(job);
                    break;
                }
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
        let panic_now = panic_in_writer.swap(false, Ordering::AcqRel);
        let _ = AssertUnwindSafe(async {
            if panic_now {
                drop(jobs);
                panic!("a panic in the writer, asked for by a test");
            }
            let mut seen = memory.lock().await;
            send((&link, &server), &ctx, &mut seen, jobs).await
        })
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
/// so a replay after a half-applied attempt leaves the same state. With
/// `logout` (the pipeline destroys, and `waitForReplicas` is on) and a
/// master with replicas, a WAIT follows it: its reply is the last one, and
/// the milliseconds it may block come back beside the replies.
async fn attempt(
    (link, server): (&Link, &Server),
    (pipe, logout): (&Pipeline, bool),
    deadline: Instant,
    indexes: &[String],
) -> Result<(Vec<backend::Reply>, Option<u64>), StoreError> {
    let timeout = link.options.command_timeout;
    let mut retried = false;
    let mut reloaded = false;
    loop {
        let conn = link.current();
        let sent = tokio::time::timeout_at(deadline, async {
            // A new connection: load the scripts before anything runs (see
            // `Link`), and ask the server about itself.
            let new_connection = !link.scripts_loaded.load(Ordering::Acquire);
            if new_connection {
                conn.load_scripts().await?;
            }
            if new_connection || logout {
                server.learn(&conn, new_connection).await;
            }
            link.scripts_loaded.store(true, Ordering::Release);
            let waited = (logout && server.replicas.load(Ordering::Acquire) > 0).then(|| {
                let mut waiting = pipe.clone();
                let left = deadline.saturating_duration_since(Instant::now());
                let ms = replicas::append(&mut waiting, left);
                (waiting, ms)
            });
            let sending = waited.as_ref().map_or(pipe, |(p, _)| p);
            // Index updates after the session writes (see `Backend::send`).
            let values = conn.send(sending, Some(deadline), indexes).await?;
            Ok::<_, SendError>((values, waited.map(|(_, ms)| ms)))
        })
        .await;
        match sent {
            // Lost while connected (SCRIPT FLUSH): load and send again.
            Ok(Ok((values, _))) if !reloaded && values.iter().any(is_noscript) => {
                reloaded = true;
                link.scripts_loaded.store(false, Ordering::Release);
            }
            // A master demoted by a failover: find the new one, send again.
            Ok(Ok((values, _))) if !retried && conn.moved(&values) => {
                retried = true;
                link.lost();
            }
            Ok(Ok(sent)) => return Ok(sent),
            Ok(Err(SendError::Store(e))) => return Err(e),
            Ok(Err(SendError::Redis(e))) if e.is_timeout() => {
                link.reopen();
                return Err(StoreError::timed_out(timeout));
            }
            Ok(Err(SendError::Redis(e)))
                if !retried && backend::dropped(&e) && Instant::now() < deadline =>
            {
                retried = true;
                link.lost();
            }
            Ok(Err(SendError::Redis(e))) => {
                if backend::dropped(&e) {
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

/// The owners' indexes the pipeline updates (the key of each `INDEX`
/// call): their commands go after the session writes (see
/// `Backend::send`). Most batches update none.
fn owner_indexes(pipe: &Pipeline) -> Vec<String> {
    let index = scripts::INDEX.hash.as_bytes();
    let mut keys: Vec<String> = pipe
        .cmd_iter()
        .filter_map(|cmd| {
            let mut args = cmd.args_iter().map(|a| match a {
                redis::Arg::Simple(b) => b,
                _ => &[][..],
            });
            let (_evalsha, sha, _numkeys, key) =
                (args.next(), args.next()?, args.next(), args.next()?);
            (sha == index).then(|| String::from_utf8_lossy(key).into_owned())
        })
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

fn is_noscript(reply: &backend::Reply) -> bool {
    matches!(reply, Ok(v) if scripts::is_noscript(v))
}

/// Runs of a batch sent one after the other: a run ends after a merge
/// when a later operation of the batch is on the same session, since a
/// merge may have to be sent again (see `settle_merges`) and must still
/// come first.
fn segments(ops: &[Op]) -> Vec<std::ops::Range<usize>> {
    let mut runs = Vec::new();
    let mut start = 0;
    let mut merged: Vec<&str> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        if merged.contains(&op.sid()) {
            runs.push(start..i);
            start = i;
            merged.clear();
        }
        if matches!(op, Op::Merge { .. }) {
            merged.push(op.sid());
        }
    }
    runs.push(start..ops.len());
    runs
}

/// Sends a run of operations as one pipeline and reads their outcomes.
async fn exchange(
    (link, server): (&Link, &Server),
    ctx: &Context,
    seen: &mut Recent,
    ops: &[Op],
    deadline: Instant,
) -> Vec<Outcome> {
    let wall = now_ms();
    let (pipe, counts) = encode::build(ops, ctx, wall, seen);
    let logout = ctx.wait_for_replicas && ops.iter().any(|op| matches!(op, Op::Destroy { .. }));
    let sent = attempt(
        (link, server),
        (&pipe, logout),
        deadline,
        &owner_indexes(&pipe),
    )
    .await;
    match sent {
        Ok((mut values, waited)) => {
            let acked =
                waited.map(|ms| replicas::check(values.pop().and_then(Result::ok).as_ref(), ms));
            let mut outcomes = decode::read_all(ops, ctx, (wall, seen), &counts, values);
            if let Some(Err(e)) = acked {
                for (op, outcome) in ops.iter().zip(outcomes.iter_mut()) {
                    if matches!(op, Op::Destroy { .. }) && *outcome == Outcome::Done {
                        *outcome = Outcome::Failed(e.clone());
                    }
                }
            }
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
}

/// Merges that found another value than they expected are merged with it
/// and sent again, a few times at most (each retry is a round trip in
/// which another save landed on the same session).
const MERGE_ATTEMPTS: usize = 8;

async fn settle_merges(
    (link, server): (&Link, &Server),
    ctx: &Context,
    seen: &mut Recent,
    (ops, outcomes): (&[Op], &mut [Outcome]),
    deadline: Instant,
) {
    for _ in 0..MERGE_ATTEMPTS {
        let mut again = Vec::new();
        let mut at = Vec::new();
        for (i, outcome) in outcomes.iter_mut().enumerate() {
            if let Outcome::Changed { current, owner } = outcome {
                let found = (std::mem::take(current), std::mem::take(owner));
                match merge::remerge(&ops[i], ctx, found) {
                    Ok(op) => {
                        again.push(op);
                        at.push(i);
                    }
                    Err(e) => *outcome = Outcome::Failed(e),
                }
            }
        }
        if again.is_empty() {
            return;
        }
        let done = exchange((link, server), ctx, seen, &again, deadline).await;
        for (i, outcome) in at.into_iter().zip(done) {
            outcomes[i] = outcome;
        }
    }
    for (op, outcome) in ops.iter().zip(outcomes.iter_mut()) {
        if matches!(outcome, Outcome::Changed { .. }) {
            *outcome = Outcome::Failed(StoreError::new(
                ErrorKind::Reply,
                format!(
                    "{} changed at every one of {MERGE_ATTEMPTS} attempts to merge into it: retry the request",
                    crate::keys::named(&ctx.keys.session(op.sid()))
                ),
            ));
        }
    }
}

/// Takes out the merges of sessions over `merge::MAX_KEYS` (every time,
/// not only when they conflict, so whether a save works does not depend
/// on another request), with their places in `ops` and their errors.
fn refuse_oversized_merges(ops: Vec<Op>) -> (Vec<Op>, Vec<(usize, StoreError)>) {
    if !ops.iter().any(|op| matches!(op, Op::Merge { .. })) {
        return (ops, Vec::new());
    }
    let mut kept = Vec::with_capacity(ops.len());
    let mut refused = Vec::new();
    for (i, op) in ops.into_iter().enumerate() {
        match &op {
            Op::Merge { value, .. } => match merge::oversized(value) {
                Some(keys) => refused.push((i, merge::too_large(keys))),
                None => kept.push(op),
            },
            _ => kept.push(op),
        }
    }
    (kept, refused)
}

async fn send((link, server): (&Link, &Server), ctx: &Context, seen: &mut Recent, jobs: Vec<Job>) {
    let now = Instant::now();
    // The error is made only when a job is late: formatting its message for
    // every batch cost about 2% of the writer's instructions.
    let mut expired = None;
    let mut live = Vec::with_capacity(jobs.len());
    for job in jobs {
        if job.deadline > now {
            live.push(job);
        } else {
            let timeout = link.options.command_timeout;
            fail(
                job,
                expired.get_or_insert_with(|| StoreError::timed_out(timeout)),
            );
        }
    }
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
    let (mut ops, refused) = refuse_oversized_merges(ops);
    seen.set_evicting(server.evicting.load(Ordering::Acquire));
    encode::prefer_rewrites(&mut ops, ctx, seen);
    let mut outcomes = Vec::with_capacity(ops.len() + refused.len());
    // Every merge refused leaves nothing to send.
    for part in segments(&ops).into_iter().filter(|run| !run.is_empty()) {
        let ops = &ops[part];
        let mut done = exchange((link, server), ctx, seen, ops, deadline).await;
        settle_merges((link, server), ctx, seen, (ops, &mut done), deadline).await;
        outcomes.extend(done);
    }
    // In ascending order, each goes back to its place among the others.
    for (i, err) in refused {
        outcomes.insert(i, Outcome::Failed(err));
    }
    let mut outcomes = outcomes.into_iter();
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
