//! Order across the two paths a batch can take to Redis: the writer's
//! connection, or the JS thread's own socket when nothing else is in
//! flight (see `near`). Batches on the near path are counted here; the
//! writer sends nothing queued after one of them before it is answered,
//! and a call over many sessions waits for them the same way, so neither
//! path overtakes the other.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::watch;

pub struct Gate {
    issued: AtomicU64,
    answered: watch::Sender<u64>,
}

impl Default for Gate {
    fn default() -> Self {
        Gate {
            issued: AtomicU64::new(0),
            answered: watch::Sender::new(0),
        }
    }
}

impl Gate {
    /// A batch went out on the near path.
    pub fn issue(&self) {
        self.issued.fetch_add(1, Ordering::AcqRel);
    }

    /// A near batch has its outcomes (near batches are answered in the
    /// order they were issued, on either path).
    pub fn answer(&self) {
        self.answered.send_modify(|n| *n += 1);
    }

    /// What a batch queued now must wait for: every near batch so far.
    pub fn mark(&self) -> u64 {
        self.issued.load(Ordering::Acquire)
    }

    /// Whether the batches up to `mark` are all answered.
    pub fn passed(&self, mark: u64) -> bool {
        *self.answered.borrow() >= mark
    }

    /// Resolves once the batches up to `mark` are all answered.
    pub async fn reached(&self, mark: u64) {
        let mut answered = self.answered.subscribe();
        let _ = answered.wait_for(|n| *n >= mark).await;
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
