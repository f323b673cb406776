//! Deadline timers: every task has at most one live deadline (its bidding window closing, a
//! delivery reminder, or the overdue point), and [`Timers`] indexes them by time.
//!
//! The index is a 4-ary min-heap of 16-byte entries `(at, slot, generation)`, ordered by
//! `(at, task id)` like the deadlines themselves (so equal times fire in task-id order, the
//! same live, restored and replayed). Each task that has (had) a deadline owns a dense timer
//! *slot* (its [`TimerSlot`], derived data kept on the task): the slot holds the task's id, its
//! live deadline and a generation. Moving or cancelling a deadline does not search the heap:
//! it bumps the slot's generation, so the old entry no longer matches and is skipped when it
//! reaches the top ("cancellation by generation") — no hashing, no string compare unless two
//! entries are due at the same millisecond, no reference count touched per push. So scheduling
//! and cancelling cost O(log n) even with a million pending deadlines, and nothing polls. When
//! stale entries outnumber live ones the heap keeps only its live entries
//! ([`Timers::compact`], amortized O(1) per operation).
//!
//! Four children per node halve the heap's depth against a binary heap, and the heap is laid
//! out so each node's four children fill one 64-byte cache line: a pop at a million pending
//! deadlines touches about ten lines rather than twenty.

use gavel_protocol::{Millis, TaskId};
use serde::{Deserialize, Serialize};

use crate::tasks::TaskHandle;

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

/// A task's slot in [`Timers`] (`None` until it first has a deadline). Derived data, kept on
/// the task so that changing its deadline finds the slot without a lookup: never serialized,
/// and like [`Timers`] it takes no part in comparing tasks (a restored task has none until
/// `State::rebuild_index` gives it one).
#[derive(Debug, Clone, Copy, Default)]
pub struct TimerSlot(Option<u32>);

impl PartialEq for TimerSlot {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl Eq for TimerSlot {}

/// One heap entry: live while `generation` is its slot's.
#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    at: Millis,
    slot: u32,
    generation: u32,
}

/// Four entries, one cache line: the children of one node.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(64))]
struct Quad([Entry; 4]);

/// A task's timer slot.
#[derive(Debug, Clone)]
struct Slot {
    task: TaskId,
    /// Where the task is in `State::tasks` (fixed while it is in memory).
    handle: TaskHandle,
    /// Bumped whenever the slot's heap entry stops being the live one.
    generation: u32,
    /// The task's live deadline (a copy of `Task::deadline`).
    deadline: Option<Deadline>,
    /// Whether the heap holds the live entry for `deadline` (it is popped when it fires).
    queued: bool,
    /// Heap entries naming this slot, live or stale. A slot is reused only once none does, so
    /// an entry's task (its place in the order) never changes while it is in the heap.
    entries: u32,
    /// The task left memory (archived): reuse the slot once `entries` is 0.
    released: bool,
}

/// The deadline index (derived from the tasks; never serialized).
#[derive(Debug, Clone, Default)]
pub struct Timers {
    /// The 4-ary heap: logical entry `i` is at position `i + 3` of the flattened quads, so the
    /// children of entry `i` (`4i + 1 ..= 4i + 4`) are exactly quad `i + 1`.
    quads: Vec<Quad>,
    /// Entries in the heap, live and stale.
    size: usize,
    slots: Vec<Slot>,
    /// Released slots no entry names any longer.
    free: Vec<u32>,
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

const fn pos(i: usize) -> (usize, usize) {
    ((i + 3) >> 2, (i + 3) & 3)
}

impl Timers {
    /// Records that `task`'s deadline changed from `old` to `new`; `slot` is the task's own,
    /// `handle` its place in `State::tasks`.
    pub fn replace(
        &mut self,
        slot: &mut TimerSlot,
        task: &TaskId,
        handle: TaskHandle,
        old: Option<Deadline>,
        new: Option<Deadline>,
    ) {
        if old.is_some() {
            self.live -= 1;
        }
        if new.is_some() {
            self.live += 1;
        }
        let n = match (slot.0, new) {
            (Some(n), _) => n,
            (None, None) => return,
            (None, Some(_)) => {
                let n = self.allocate(task, handle);
                slot.0 = Some(n);
                n
            }
        };
        let s = &mut self.slots[n as usize];
        debug_assert_eq!(s.deadline, old, "the slot mirrors the task's deadline");
        debug_assert!(&s.task == task && s.handle == handle && !s.released);
        s.deadline = new;
        match new {
            // Still queued at the same time: the entry stays live (only the kind changed).
            Some(d) if s.queued && old.map(|o| o.at) == Some(d.at) => {}
            Some(d) => {
                s.generation = s.generation.wrapping_add(1);
                s.queued = true;
                s.entries += 1;
                let entry = Entry {
                    at: d.at,
                    slot: n,
                    generation: s.generation,
                };
                self.push(entry);
            }
            None => {
                s.generation = s.generation.wrapping_add(1);
                s.queued = false;
            }
        }
    }

    /// The task left memory: its slot may serve another task once no heap entry names it.
    pub fn release(&mut self, slot: TimerSlot) {
        let Some(n) = slot.0 else { return };
        let s = &mut self.slots[n as usize];
        debug_assert!(s.deadline.is_none(), "a released task has no deadline");
        s.released = true;
        if s.entries == 0 {
            self.free.push(n);
        }
    }

    fn allocate(&mut self, task: &TaskId, handle: TaskHandle) -> u32 {
        if let Some(n) = self.free.pop() {
            let s = &mut self.slots[n as usize];
            s.task = task.clone();
            s.handle = handle;
            s.released = false;
            s.queued = false;
            s.deadline = None;
            return n;
        }
        let n = u32::try_from(self.slots.len()).expect("fewer than 2^32 timer slots");
        self.slots.push(Slot {
            task: task.clone(),
            handle,
            generation: 0,
            deadline: None,
            queued: false,
            entries: 0,
            released: false,
        });
        n
    }

    /// Whether stale entries have piled up enough to compact the heap.
    pub fn needs_compaction(&self) -> bool {
        self.size > 2 * self.live + 1024
    }

    /// Drops every stale entry (and frees the released slots they kept).
    pub fn compact(&mut self) {
        let entries: Vec<Entry> = (0..self.size)
            .map(|i| self.get(i))
            .filter(|e| self.is_live(e))
            .collect();
        // Only live entries remain, one per queued slot; a released slot has none.
        self.free.clear();
        for (n, s) in self.slots.iter_mut().enumerate() {
            s.entries = u32::from(s.queued);
            if s.released {
                self.free.push(n as u32);
            }
        }
        self.quads.clear();
        self.size = 0;
        for e in entries {
            self.set_len_push(e);
        }
        // Heapify: sift every parent down, last first.
        for i in (0..self.size.div_ceil(4)).rev() {
            let e = self.get(i);
            self.sift_down(i, e);
        }
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
        self.size
    }

    /// The earliest time worth waking up for. It may be a stale entry's time (then
    /// [`Timers::pop_due`] finds nothing due and the caller simply waits again).
    pub fn next_due(&self) -> Option<Millis> {
        (self.size > 0).then(|| self.get(0).at)
    }

    /// Pops the next live deadline due at `now`, skipping stale entries: the task's handle
    /// and its deadline, read from the slot (no lookup of the task).
    pub fn pop_due(&mut self, now: Millis) -> Option<(TaskHandle, Deadline)> {
        while self.size > 0 && self.get(0).at <= now {
            let e = self.pop();
            let s = &mut self.slots[e.slot as usize];
            s.entries -= 1;
            let live = s.queued && s.generation == e.generation;
            if live {
                s.queued = false;
                let d = s.deadline.expect("a queued slot has a deadline");
                debug_assert_eq!(d.at, e.at);
                return Some((s.handle, d));
            }
            if s.released && s.entries == 0 {
                self.free.push(e.slot);
            }
        }
        None
    }

    /// Whether the heap holds the live entry for this task at this time (for invariant
    /// checks).
    pub fn contains(&self, task: &TaskId, at: Millis) -> bool {
        (0..self.size)
            .map(|i| self.get(i))
            .any(|e| e.at == at && self.is_live(&e) && self.slots[e.slot as usize].task == *task)
    }

    fn is_live(&self, e: &Entry) -> bool {
        let s = &self.slots[e.slot as usize];
        s.queued && s.generation == e.generation
    }

    fn get(&self, i: usize) -> Entry {
        let (q, l) = pos(i);
        self.quads[q].0[l]
    }

    fn set(&mut self, i: usize, e: Entry) {
        let (q, l) = pos(i);
        self.quads[q].0[l] = e;
    }

    /// Whether `a` comes before `b`: by time, then by task id.
    #[inline(always)]
    fn less(&self, a: &Entry, b: &Entry) -> bool {
        a.at < b.at || (a.at == b.at && self.id_less(a, b))
    }

    /// The tie-break of [`Timers::less`] (two entries due at the same millisecond).
    #[cold]
    #[inline(never)]
    fn id_less(&self, a: &Entry, b: &Entry) -> bool {
        self.slots[a.slot as usize].task < self.slots[b.slot as usize].task
    }

    /// Appends `e` at the end (not yet in heap order).
    fn set_len_push(&mut self, e: Entry) {
        let (q, _) = pos(self.size);
        if q >= self.quads.len() {
            self.quads.push(Quad::default());
        }
        self.size += 1;
        self.set(self.size - 1, e);
    }

    fn push(&mut self, e: Entry) {
        self.set_len_push(e);
        self.sift_up(self.size - 1, e);
    }

    fn sift_up(&mut self, mut i: usize, e: Entry) {
        while i > 0 {
            let parent = (i - 1) / 4;
            let p = self.get(parent);
            if !self.less(&e, &p) {
                break;
            }
            self.set(i, p);
            i = parent;
        }
        self.set(i, e);
    }

    /// Which of `i`'s children (quad `i + 1`) is least, if it has any: its lane, 0 to 3.
    #[inline(always)]
    fn least_child(&self, i: usize) -> Option<usize> {
        let first = 4 * i + 1;
        if first + 4 <= self.size {
            // All four (every level but the last): a tournament, three compares.
            let [k0, k1, k2, k3] = &self.quads[i + 1].0;
            let (a, ea) = if self.less(k1, k0) { (1, k1) } else { (0, k0) };
            let (b, eb) = if self.less(k3, k2) { (3, k3) } else { (2, k2) };
            Some(if self.less(eb, ea) { b } else { a })
        } else if first < self.size {
            Some(self.least_of_last(i))
        } else {
            None
        }
    }

    /// [`Timers::least_child`] of a node with fewer than four children.
    #[inline(never)]
    fn least_of_last(&self, i: usize) -> usize {
        let kids = &self.quads[i + 1].0;
        let n = self.size - (4 * i + 1);
        let mut best = 0;
        for k in 1..n.min(4) {
            if self.less(&kids[k], &kids[best]) {
                best = k;
            }
        }
        best
    }

    fn sift_down(&mut self, mut i: usize, e: Entry) {
        while let Some(k) = self.least_child(i) {
            let child = self.quads[i + 1].0[k];
            if !self.less(&child, &e) {
                break;
            }
            self.set(i, child);
            i = 4 * i + 1 + k;
        }
        self.set(i, e);
    }

    /// Removes the least entry. The last entry takes its place: the hole goes down to a leaf
    /// along the least children (no compare with the moved entry, which almost always
    /// belongs near the bottom), then the entry sifts up from there.
    fn pop(&mut self) -> Entry {
        let top = self.get(0);
        self.size -= 1;
        let last = self.get(self.size);
        if self.size > 0 {
            // The hole: logical index `i`, at lane `lane` of quad `quad`.
            let (mut i, mut quad, mut lane) = (0, 0, 3);
            while let Some(k) = self.least_child(i) {
                self.quads[quad].0[lane] = self.quads[i + 1].0[k];
                (quad, lane) = (i + 1, k);
                i = 4 * i + 1 + k;
            }
            self.sift_up(i, last);
        }
        top
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> TaskId {
        TaskId::new(s).unwrap()
    }

    fn handle(i: usize) -> TaskHandle {
        TaskHandle::new(i as u32)
    }

    fn deadline(at: Millis) -> Option<Deadline> {
        Some(Deadline {
            at,
            kind: DeadlineKind::Reminder,
        })
    }

    /// Pops in `(at, task id)` order against a sorted model, through reschedules, cancels,
    /// releases (slot reuse) and compactions.
    #[test]
    fn pops_in_time_then_id_order() {
        let mut timers = Timers::default();
        let n = 500usize;
        let ids: Vec<TaskId> = (0..n)
            .map(|i| id(&format!("t{}", (i * 7919) % n)))
            .collect();
        let mut slots = vec![TimerSlot::default(); n];
        let mut model: Vec<Option<Deadline>> = vec![None; n];
        let mut x: u64 = 12345;
        let mut rand = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut now = 0;
        for round in 0..20_000 {
            let i = (rand() % n as u64) as usize;
            let new = match rand() % 4 {
                0 => None,
                _ => deadline(now + rand() % 50),
            };
            timers.replace(&mut slots[i], &ids[i], handle(i), model[i], new);
            model[i] = new;
            if round % 7 == 0 {
                now += rand() % 20;
                let mut expect: Vec<(Millis, TaskId, usize)> = model
                    .iter()
                    .enumerate()
                    .filter_map(|(k, d)| {
                        d.filter(|d| d.at <= now).map(|d| (d.at, ids[k].clone(), k))
                    })
                    .collect();
                expect.sort();
                for (at, task, k) in expect {
                    let (got, d) = timers.pop_due(now).expect("due");
                    assert_eq!((d.at, got), (at, handle(k)));
                    // Fired: clear it, and sometimes let the task leave and a new one come.
                    timers.replace(&mut slots[k], &task, handle(k), model[k], None);
                    model[k] = None;
                    if rand() % 3 == 0 {
                        timers.release(std::mem::take(&mut slots[k]));
                    }
                }
                assert!(timers.pop_due(now).is_none());
                if timers.needs_compaction() || round % 1000 == 0 {
                    timers.compact();
                }
                assert_eq!(timers.len(), model.iter().flatten().count());
                for (k, d) in model.iter().enumerate() {
                    if let Some(d) = d {
                        assert!(timers.contains(&ids[k], d.at));
                    }
                }
            }
        }
    }
}
