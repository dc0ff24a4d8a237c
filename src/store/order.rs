//! Order across the two paths a batch can take to Redis: the writer's
//! connection, or the JS thread's own socket when nothing else is in
//! flight (see `near`). Batches on the near path are counted here; the
//! writer sends nothing queued after one of them before it is answered,
//! and a call over many sessions waits for them the same way, so neither
//! path overtakes the other.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};

use tokio::sync::Notify;

/// Counters, and a wake-up only when someone waits: every near batch is
/// answered here, on the JS thread, and a `watch` channel's send takes a
/// lock and notifies eight lists each time.
#[derive(Default)]
pub struct Gate {
    issued: AtomicU64,
    answered: AtomicU64,
    waiting: AtomicUsize,
    moved: Notify,
}

impl Gate {
    /// A batch went out on the near path.
    pub fn issue(&self) {
        self.issued.fetch_add(1, SeqCst);
    }

    /// A near batch has its outcomes (near batches are answered in the
    /// order they were issued, on either path).
    pub fn answer(&self) {
        self.answered.fetch_add(1, SeqCst);
        // SeqCst on both sides: a waiter that counted itself after this
        // load sees the new count before it sleeps.
        if self.waiting.load(SeqCst) > 0 {
            self.moved.notify_waiters();
        }
    }

    /// What a batch queued now must wait for: every near batch so far.
    pub fn mark(&self) -> u64 {
        self.issued.load(SeqCst)
    }

    /// Whether the batches up to `mark` are all answered.
    pub fn passed(&self, mark: u64) -> bool {
        self.answered.load(SeqCst) >= mark
    }

    /// Resolves once the batches up to `mark` are all answered.
    pub async fn reached(&self, mark: u64) {
        let _waiting = Waiting::count(&self.waiting);
        loop {
            let moved = self.moved.notified();
            tokio::pin!(moved);
            // Registered before the check: an answer after it wakes us.
            moved.as_mut().enable();
            if self.passed(mark) {
                return;
            }
            moved.await;
        }
    }
}

/// A waiter counted while it waits, also when its future is dropped.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn count(waiting: &'a AtomicUsize) -> Self {
        waiting.fetch_add(1, SeqCst);
        Waiting(waiting)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn a_mark_is_reached_once_every_batch_before_it_is_answered() {
        let gate = Arc::new(Gate::default());
        assert!(gate.passed(gate.mark()));
        gate.issue();
        gate.issue();
        let mark = gate.mark();
        gate.issue();
        let waiting = tokio::spawn({
            let gate = gate.clone();
            async move { gate.reached(mark).await }
        });
        gate.answer();
        tokio::task::yield_now().await;
        assert!(!gate.passed(mark) && !waiting.is_finished());
        gate.answer();
        waiting.await.unwrap();
        assert!(gate.passed(mark));
        assert!(!gate.passed(gate.mark()), "a later batch is still out");
    }
}
