//! `merge: true` on the writer: a batch is cut where a merge must still go
//! first, merges of sessions over `merge::MAX_KEYS` are refused before
//! anything is sent, and merges that found another value than they
//! expected are merged with it and sent again.

use crate::error::{ErrorKind, StoreError};
use crate::ops::{merge, Context, Op, Outcome};

/// Merges that found another value than they expected are merged with it
/// and sent again, a few times at most (each retry is a round trip in
/// which another save landed on the same session).
pub(super) const ATTEMPTS: usize = 8;

/// Runs of a batch sent one after the other: a run ends after a merge
/// when a later operation of the batch is on the same session, since a
/// merge may have to be sent again (see `retries`) and must still
/// come first.
pub(super) fn segments(ops: &[Op]) -> Vec<std::ops::Range<usize>> {
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

/// Takes out the merges of sessions over `merge::MAX_KEYS` (every time,
/// not only when they conflict, so whether a save works does not depend
/// on another request), with their places in `ops` and their errors.
pub(super) fn refuse_oversized_merges(ops: Vec<Op>) -> (Vec<Op>, Vec<(usize, StoreError)>) {
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

/// The merges of a run that found another value, each merged with that
/// value to be sent again (with its place in the run); one that cannot be
/// merged fails.
pub(super) fn retries(
    ctx: &Context,
    ops: &[Op],
    outcomes: &mut [Outcome],
) -> (Vec<Op>, Vec<usize>) {
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
    (again, at)
}

/// After `ATTEMPTS`, a merge that still finds another value fails.
pub(super) fn give_up(ctx: &Context, ops: &[Op], outcomes: &mut [Outcome]) {
    for (op, outcome) in ops.iter().zip(outcomes.iter_mut()) {
        if matches!(outcome, Outcome::Changed { .. }) {
            *outcome = Outcome::Failed(StoreError::new(
                ErrorKind::Reply,
                format!(
                    "{} changed at every one of {ATTEMPTS} attempts to merge into it: retry the request",
                    crate::session::keys::named(&ctx.keys.session(op.sid()))
                ),
            ));
        }
    }
}
