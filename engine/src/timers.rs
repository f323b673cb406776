//! Deadline timers: every task has at most one live deadline (its bidding window closing, a
//! delivery reminder, or the overdue point), and [`Timers`] indexes them by time.
//!
//! The index is a binary heap of `(when, task)`. Moving or cancelling a deadline does not
//! search the heap: the task's own `deadline` field is the truth, and a heap entry that no
//! longer matches it is stale and skipped when it reaches the top ("cancellation by
//! comparison"). So scheduling and cancelling cost O(log n) even with a million pending
//! deadlines, and nothing polls. When stale entries outnumber live ones the heap is rebuilt
//! from the tasks (amortized O(1) per operation).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use gavel_protocol::{Millis, TaskId};
use serde::{Deserialize, Serialize};

use crate::state::{IdMap, Task};

/// What happens when a deadline passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadlineKind {
    /// The bidding window closes: award, go on call, or reopen.
    BiddingCloses,
    /// `deadline - lead`: remind the coach.
    Reminder,
    /// `deadline + lead` without a submission: strike and reassign.
    Overdue,
}

/// A task's one live deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deadline {
    pub at: Millis,
    pub kind: DeadlineKind,
}

/// The deadline index (derived from the tasks; never serialized).
#[derive(Debug, Clone, Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(Millis, TaskId)>>,
    /// Live deadlines (tasks with `deadline: Some`).
    live: usize,
}

/// The index is derived data, never serialized: it takes no part in comparing states (the
/// deadlines themselves are compared as part of the tasks, and `check_invariants` checks the
/// index against them). Otherwise a snapshot would not equal itself after a serde round trip,
/// which leaves the index empty until `Engine::restore` rebuilds it.
impl PartialEq for Timers {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl Timers {
    /// Records that `task`'s deadline changed from `old` to `new`.
    pub fn replace(&mut self, task: &TaskId, old: Option<Deadline>, new: Option<Deadline>) {
        if old.is_some() {
            self.live -= 1;
        }
        if let Some(d) = new {
            self.live += 1;
            // Re-pushing an unchanged time would only add a duplicate entry.
            if old.map(|o| o.at) != Some(d.at) {
                self.heap.push(Reverse((d.at, task.clone())));
            }
        }
    }

    /// Whether stale entries have piled up enough to rebuild the heap.
    pub fn needs_compaction(&self) -> bool {
        self.heap.len() > 2 * self.live + 1024
    }

    /// Live deadlines.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Entries in the heap, live and stale.
    pub fn heap_len(&self) -> usize {
        self.heap.len()
    }

    /// The earliest time worth waking up for. It may be a stale entry's time (then
    /// [`Timers::pop_due`] finds nothing due and the caller simply waits again).
    pub fn next_due(&self) -> Option<Millis> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Pops the next live deadline due at `now`, skipping stale entries.
    pub fn pop_due(
        &mut self,
        now: Millis,
        tasks: &IdMap<TaskId, Task>,
    ) -> Option<(TaskId, Deadline)> {
        while let Some(Reverse((at, _))) = self.heap.peek() {
            if *at > now {
                return None;
            }
            let Reverse((at, id)) = self.heap.pop().expect("peeked");
            if let Some(d) = tasks
                .get(&id)
                .and_then(|t| t.deadline)
                .filter(|d| d.at == at)
            {
                return Some((id, d));
            }
        }
        None
    }

    /// Whether the heap holds an entry for this task at this time (for invariant checks).
    pub fn contains(&self, task: &TaskId, at: Millis) -> bool {
        self.heap
            .iter()
            .any(|Reverse((t, id))| *t == at && id == task)
    }
}
