//! The tasks in memory ([`Tasks`]): each in a dense slot of a chunked slab, found by its id
//! — by the number in it for the engine's `t_<n>` ids ([`NumberedHandles`]), through a hash
//! index for any other — or directly by its [`TaskHandle`].
//!
//! A deadline's timer slot keeps the task's handle, so firing a deadline reaches the task
//! without hashing its id: at a million tasks that lookup was 40 % of a fire (the index's
//! control bytes and bucket, two cache misses; docs/benchmarks.md, "task handles"). The
//! index remembers the task last found, so the `evolve` that follows a decision about that
//! task finds it again by comparing one pointer (ids are shared `Arc<str>`s).
//!
//! Slots live in fixed chunks of [`CHUNK`] tasks: growing the slab never moves a task (no
//! pause copying a million of them), and a handle is reused only after its task is removed
//! (archived). Handles are derived data: never serialized; a restored state numbers its tasks
//! afresh. The serialized form is the map of id → task, as before.

use std::fmt;
use std::ops::Index;
use std::sync::atomic::{AtomicU32, Ordering};

use gavel_protocol::TaskId;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ids::task_no;
use crate::state::IdMap;
use crate::task::Task;
use crate::task_numbers::NumberedHandles;

/// Where a task lives in [`Tasks`], while it is in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskHandle(u32);

#[cfg(test)]
impl TaskHandle {
    pub(crate) const fn new(n: u32) -> Self {
        TaskHandle(n)
    }
}

/// log2 of the tasks one chunk holds.
const CHUNK_BITS: u32 = 8;
/// Tasks per chunk: ~120 KB, so a new engine does not pay for a big empty slab.
pub const CHUNK: usize = 1 << CHUNK_BITS;
/// No task remembered.
const NONE: u32 = u32::MAX;

/// Every task in memory, by id and by handle.
pub struct Tasks {
    /// The handles of tasks with an id `t_<n>`, by `n` (those it [takes](NumberedHandles::takes)).
    numbered: NumberedHandles,
    /// The handles of every other task, by id.
    index: IdMap<TaskId, TaskHandle>,
    chunks: Vec<Box<[Option<Task>]>>,
    /// Handles of removed tasks, for reuse.
    free: Vec<u32>,
    /// The handle of the task last found by id (or [`NONE`]); checked against the id before
    /// use, so it never needs to be forgotten. Atomic only so that `Tasks` stays `Sync`: one
    /// thread (the engine's) reads and writes it.
    recent: AtomicU32,
}

impl Default for Tasks {
    fn default() -> Self {
        Tasks {
            numbered: NumberedHandles::default(),
            index: IdMap::default(),
            chunks: Vec::new(),
            free: Vec::new(),
            recent: AtomicU32::new(NONE),
        }
    }
}

impl Clone for Tasks {
    fn clone(&self) -> Self {
        Tasks {
            numbered: self.numbered.clone(),
            index: self.index.clone(),
            chunks: self.chunks.clone(),
            free: self.free.clone(),
            recent: AtomicU32::new(self.recent.load(Ordering::Relaxed)),
        }
    }
}

impl fmt::Debug for Tasks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// Equal when they hold the same tasks under the same ids, wherever each is kept.
impl PartialEq for Tasks {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(id, t)| other.get(id) == Some(t))
    }
}

impl Tasks {
    pub fn len(&self) -> usize {
        self.numbered.len() + self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.numbered.is_empty() && self.index.is_empty()
    }

    /// Makes room for `additional` more tasks in the hash index.
    pub fn reserve(&mut self, additional: usize) {
        self.index.reserve(additional);
    }

    pub fn contains_key(&self, id: &TaskId) -> bool {
        self.handle(id).is_some()
    }

    /// The handle of the task with this id, if it is in memory.
    pub fn handle(&self, id: &TaskId) -> Option<TaskHandle> {
        let recent = self.recent.load(Ordering::Relaxed);
        if self.slot(recent).is_some_and(|t| t.spec.task_id == *id) {
            return Some(TaskHandle(recent));
        }
        let handle = self.lookup(id)?;
        self.recent.store(handle.0, Ordering::Relaxed);
        Some(handle)
    }

    /// The handle of the task with this id: by its number, else by the hash index (which
    /// holds a `t_<n>` too when its number was too far out to be filed by number).
    fn lookup(&self, id: &TaskId) -> Option<TaskHandle> {
        if let Some(n) = task_no(id)
            && let Some(handle) = self.numbered.get(n)
        {
            return Some(TaskHandle(handle));
        }
        self.index.get(id).copied()
    }

    pub fn get(&self, id: &TaskId) -> Option<&Task> {
        self.handle(id).map(|h| self.at(h))
    }

    pub fn get_mut(&mut self, id: &TaskId) -> Option<&mut Task> {
        self.find_mut(id).map(|(_, t)| t)
    }

    /// The task with this id and its handle.
    pub fn find_mut(&mut self, id: &TaskId) -> Option<(TaskHandle, &mut Task)> {
        let handle = self.handle(id)?;
        Some((handle, self.at_mut(handle)))
    }

    /// The task at `handle`, remembered as the one last found (the `evolve` after a deadline
    /// fires finds it by id without hashing). Panics if no task is there: a handle is only
    /// held while its task is in memory.
    pub fn at(&self, handle: TaskHandle) -> &Task {
        self.recent.store(handle.0, Ordering::Relaxed);
        self.slot(handle.0)
            .expect("a task handle names a task in memory")
    }

    fn at_mut(&mut self, handle: TaskHandle) -> &mut Task {
        let (chunk, i) = split(handle.0);
        self.chunks[chunk][i]
            .as_mut()
            .expect("a task handle names a task in memory")
    }

    fn slot(&self, n: u32) -> Option<&Task> {
        let (chunk, i) = split(n);
        self.chunks.get(chunk)?[i].as_ref()
    }

    /// Adds a task under its own id (`task.spec.task_id`), replacing one with the same id;
    /// returns its handle.
    pub fn insert(&mut self, task: Task) -> TaskHandle {
        if let Some((handle, slot)) = self.find_mut(&task.spec.task_id) {
            *slot = task;
            return handle;
        }
        let handle = TaskHandle(self.free.pop().unwrap_or_else(|| self.grow()));
        let (chunk, i) = split(handle.0);
        match task_no(&task.spec.task_id).filter(|n| self.numbered.takes(*n)) {
            Some(n) => {
                self.numbered.insert(n, handle.0);
            }
            None => {
                self.index.insert(task.spec.task_id.clone(), handle);
            }
        }
        self.chunks[chunk][i] = Some(task);
        handle
    }

    /// A never used handle, adding a chunk when the last is full.
    fn grow(&mut self) -> u32 {
        let used = self.chunks.len() * CHUNK;
        let n = u32::try_from(used).expect("fewer than 2^32 tasks in memory");
        assert!(n != NONE, "fewer than 2^32 - 1 tasks in memory");
        self.chunks
            .push(std::iter::repeat_with(|| None).take(CHUNK).collect());
        // Every handle of the new chunk but the first goes to the free list, last first so
        // that handles are given out in order.
        self.free.extend((n + 1..n + CHUNK as u32).rev());
        n
    }

    /// Removes the task with this id (its handle may then name another task).
    pub fn remove(&mut self, id: &TaskId) -> Option<Task> {
        let handle = match task_no(id).and_then(|n| self.numbered.remove(n)) {
            Some(handle) => TaskHandle(handle),
            None => self.index.remove(id)?,
        };
        let (chunk, i) = split(handle.0);
        self.free.push(handle.0);
        self.chunks[chunk][i].take()
    }

    /// Every task with its id, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&TaskId, &Task)> {
        self.values().map(|t| (&t.spec.task_id, t))
    }

    /// Every task with its handle, in no particular order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (TaskHandle, &mut Task)> {
        self.chunks.iter_mut().enumerate().flat_map(|(c, chunk)| {
            chunk.iter_mut().enumerate().filter_map(move |(i, t)| {
                let handle = TaskHandle(((c << CHUNK_BITS) + i) as u32);
                t.as_mut().map(|t| (handle, t))
            })
        })
    }

    pub fn keys(&self) -> impl Iterator<Item = &TaskId> {
        self.values().map(|t| &t.spec.task_id)
    }

    pub fn values(&self) -> impl Iterator<Item = &Task> {
        self.chunks.iter().flat_map(|c| c.iter()).flatten()
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut Task> {
        self.iter_mut().map(|(_, t)| t)
    }
}

/// A handle's chunk and place in it.
const fn split(n: u32) -> (usize, usize) {
    ((n >> CHUNK_BITS) as usize, (n as usize) & (CHUNK - 1))
}

impl Index<&TaskId> for Tasks {
    type Output = Task;

    fn index(&self, id: &TaskId) -> &Task {
        self.get(id).expect("no task with this id in memory")
    }
}

impl<'a> IntoIterator for &'a Tasks {
    type Item = (&'a TaskId, &'a Task);
    type IntoIter = Box<dyn Iterator<Item = (&'a TaskId, &'a Task)> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

/// The map of id → task (the JSON snapshot's form).
impl Serialize for Tasks {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Tasks {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(TasksVisitor)
    }
}

struct TasksVisitor;

impl<'de> Visitor<'de> for TasksVisitor {
    type Value = Tasks;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map of task id to task")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tasks, A::Error> {
        let mut tasks = Tasks::default();
        tasks.reserve(map.size_hint().unwrap_or(0));
        while let Some((id, task)) = map.next_entry::<TaskId, Task>()? {
            if id != task.spec.task_id {
                return Err(serde::de::Error::custom(format!(
                    "the task under {id} is {}",
                    task.spec.task_id
                )));
            }
            tasks.insert(task);
        }
        Ok(tasks)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use gavel_protocol::{Award, Urgency, UserId};

    use super::*;
    use crate::event::TaskSpec;

    /// Ids of every kind the index files differently: the engine's `t_<n>` (by number), one
    /// too far out to be filed by number, another spelling of a number, and a free-form id.
    fn id(n: usize) -> TaskId {
        let id = match n % 4 {
            0 => format!("t_{n}"),
            1 => format!("t_{}", n as u64 + (1 << 40)),
            2 => format!("t_0{n}"),
            _ => format!("task-{n}"),
        };
        TaskId::new(&id).unwrap()
    }

    fn task(n: usize) -> Task {
        Task::posted(
            TaskSpec {
                task_id: id(n),
                owner: UserId::new("seeker").unwrap(),
                resume_id: "r".into(),
                task_type: "resume_review".into(),
                urgency: Urgency::Standard,
                award: Award::Manual,
                base_price: 2500,
                suggested_price: 2500,
                price_range: [2000, 3000],
                created_at: n as u64,
            },
            0,
        )
    }

    /// Against a map model: inserts, replacements and removals across several chunks, with
    /// removed handles reused and the remembered task never answering for another id.
    #[test]
    fn behaves_as_a_map_by_id_and_keeps_handles() {
        let mut tasks = Tasks::default();
        let mut model: BTreeMap<usize, (TaskHandle, u64)> = BTreeMap::new();
        let mut x: u64 = 7;
        for round in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let n = (x % 1_500) as usize;
            if x.is_multiple_of(3) {
                let removed = tasks.remove(&id(n)).map(|t| t.spec.task_id);
                assert_eq!(removed, model.remove(&n).map(|_| id(n)));
                assert!(!tasks.contains_key(&id(n)));
            } else {
                let mut t = task(n);
                t.revisions = round as u32;
                let handle = tasks.insert(t);
                if let Some((kept, _)) = model.get(&n) {
                    assert_eq!(*kept, handle, "replacing keeps the handle");
                }
                model.insert(n, (handle, round));
            }
            // The task last found is checked against the id asked for.
            let probe = (x >> 20) as usize % 1_500;
            assert_eq!(tasks.get(&id(probe)).is_some(), model.contains_key(&probe));
            assert_eq!(tasks.len(), model.len());
        }
        assert!(tasks.chunks.len() > 1, "the model spans several chunks");
        assert!(
            !tasks.numbered.is_empty() && !tasks.index.is_empty(),
            "both indexes are used"
        );
        for (n, (handle, round)) in &model {
            assert_eq!(tasks.handle(&id(*n)), Some(*handle));
            assert_eq!(tasks.at(*handle).spec.task_id, id(*n));
            assert_eq!(tasks[&id(*n)].revisions, *round as u32);
        }
        let mut handles: Vec<u32> = tasks.iter_mut().map(|(h, _)| h.0).collect();
        handles.sort_unstable();
        let mut expect: Vec<u32> = model.values().map(|(h, _)| h.0).collect();
        expect.sort_unstable();
        assert_eq!(handles, expect);
        assert_eq!(tasks.keys().count(), model.len());
    }

    #[test]
    fn serializes_as_a_map_of_id_to_task_and_compares_by_id() {
        let mut a = Tasks::default();
        let mut b = Tasks::default();
        for n in 0..300 {
            a.insert(task(n));
        }
        for n in (0..300).rev() {
            b.insert(task(n));
        }
        assert_ne!(a.handle(&id(0)), b.handle(&id(0)), "laid out differently");
        assert_eq!(a, b);
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(json.as_object().unwrap().len(), 300);
        assert_eq!(json["t_8"]["spec"]["task_id"], "t_8");
        assert_eq!(json["task-7"]["spec"]["task_id"], "task-7");
        let back: Tasks = serde_json::from_value(json).unwrap();
        assert_eq!(back, a);
        b.get_mut(&id(5)).unwrap().revisions = 1;
        assert_ne!(a, b);
        b.remove(&id(5));
        assert_ne!(a, b);
    }

    #[test]
    fn refuses_a_task_under_another_id() {
        let mut json = serde_json::json!({ "t_1": task(1) });
        json["t_1"]["spec"]["task_id"] = "t_2".into();
        let err = serde_json::from_value::<Tasks>(json).unwrap_err();
        assert!(
            err.to_string().contains("the task under t_1 is t_2"),
            "{err}"
        );
    }
}
