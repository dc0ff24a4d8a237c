//! The writer task: it takes the queued jobs in order, sends each run of
//! them as one pipeline (loading the scripts on a new connection, retrying
//! once on a dropped one) and hands every job its outcomes. Near batches
//! handed back (`Resent`) go first; a job waits for the near batches issued
//! before it (`order::Gate`).

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::FutureExt;
use redis::Pipeline;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::merges::{self, refuse_oversized_merges, segments};
use super::order::Gate;
use super::replicas;
use super::server::Server;
use super::Reply;
use crate::backend::{self, Link, SendError};
use crate::error::StoreError;
use crate::ops::recent::Recent;
use crate::ops::{decode, encode, Context, Op, Outcome};
use crate::session::expiry::now_ms;
use crate::session::scripts;

/// Most operations merged into one pipeline; more wait for the next one.
const MAX_PIPELINE_OPS: usize = 4096;

pub(super) struct Job {
    pub(super) ops: Vec<Op>,
    pub(super) deadline: Instant,
    pub(super) reply: Reply,
    /// After this job the writer waits for the receiver to close (or the
    /// deadline): an exclusive call is running on the connection.
    pub(super) hold: Option<oneshot::Receiver<()>>,
    /// The near batches issued before this job (see `order`): it is not
    /// sent before they are answered.
    pub(super) after: u64,
}

/// What the writer task works with: shared with the `Store` that spawned
/// it, which queues jobs for it and reads what it learned.
pub(super) struct Writer {
    pub(super) link: Arc<Link>,
    pub(super) server: Arc<Server>,
    pub(super) ctx: Arc<Context>,
    pub(super) memory: Arc<Memory>,
    pub(super) gate: Arc<Gate>,
    pub(super) resent: Arc<Resent>,
    /// Operations queued for or in flight on the writer.
    pub(super) queued: Arc<AtomicUsize>,
    /// See `Store::panic_in_writer`.
    pub(super) panic_in_writer: Arc<AtomicBool>,
}

impl Writer {
    /// Runs until the queue closes (`Store::close`) and is drained.
    pub(super) async fn run(self, mut rx: mpsc::UnboundedReceiver<Job>) {
        let (memory, gate, resent) = (&self.memory, &self.gate, &self.resent);
        let (queued, panic_in_writer) = (&self.queued, &self.panic_in_writer);
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
                self.send(&mut seen, jobs).await
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
        &self,
        pipe: &Pipeline,
        logout: bool,
        deadline: Instant,
        indexes: &[String],
    ) -> Result<(Vec<backend::Reply>, Option<u64>), StoreError> {
        let (link, server) = (&self.link, &self.server);
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

    /// Merges each merge of a run that found another value with that value
    /// and sends it again, up to `merges::ATTEMPTS` times; one that still
    /// finds another value then fails.
    async fn settle_merges(
        &self,
        seen: &mut Recent,
        ops: &[Op],
        outcomes: &mut [Outcome],
        deadline: Instant,
    ) {
        for _ in 0..merges::ATTEMPTS {
            let (again, at) = merges::retries(&self.ctx, ops, outcomes);
            if again.is_empty() {
                return;
            }
            let done = self.exchange(seen, &again, deadline).await;
            for (i, outcome) in at.into_iter().zip(done) {
                outcomes[i] = outcome;
            }
        }
        merges::give_up(&self.ctx, ops, outcomes);
    }

    /// Sends a run of operations as one pipeline and reads their outcomes.
    pub(super) async fn exchange(
        &self,
        seen: &mut Recent,
        ops: &[Op],
        deadline: Instant,
    ) -> Vec<Outcome> {
        let ctx = &self.ctx;
        let wall = now_ms();
        let (pipe, counts) = encode::build(ops, ctx, wall, seen);
        let logout = ctx.wait_for_replicas && ops.iter().any(|op| matches!(op, Op::Destroy { .. }));
        let sent = self
            .attempt(&pipe, logout, deadline, &owner_indexes(&pipe))
            .await;
        match sent {
            Ok((mut values, waited)) => {
                let acked = waited
                    .map(|ms| replicas::check(values.pop().and_then(Result::ok).as_ref(), ms));
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

    async fn send(&self, seen: &mut Recent, jobs: Vec<Job>) {
        let (link, server, ctx) = (&self.link, &self.server, &self.ctx);
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
            let mut done = self.exchange(seen, ops, deadline).await;
            self.settle_merges(seen, ops, &mut done, deadline).await;
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

pub(super) fn fail(job: Job, err: &StoreError) {
    fail_ops(&job.ops, job.reply, err);
}

pub(super) fn fail_ops(ops: &[Op], reply: Reply, err: &StoreError) {
    reply.send(ops.iter().map(|_| Outcome::Failed(err.clone())).collect());
}

/// What this process wrote recently (see `recent`), shared by the writer
/// and the near path, which never use it at the same time.
#[derive(Default)]
pub(super) struct Memory {
    seen: tokio::sync::Mutex<Recent>,
    /// Set when near batches were lost: what `seen` says was written may
    /// never have reached Redis, so its next user clears it first.
    pub(super) forget: AtomicBool,
}

impl Memory {
    async fn lock(&self) -> tokio::sync::MutexGuard<'_, Recent> {
        self.fresh(self.seen.lock().await)
    }

    pub(super) fn try_lock(&self) -> Option<tokio::sync::MutexGuard<'_, Recent>> {
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
pub(super) struct Resent {
    jobs: Mutex<std::collections::VecDeque<Job>>,
    arrived: tokio::sync::Notify,
}

impl Resent {
    pub(super) fn push(&self, job: Job) {
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
