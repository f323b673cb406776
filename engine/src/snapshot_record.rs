//! The state as a snapshot stores it: a record of its own, written by position (no field
//! names, so formats like postcard can carry it) and without what is derived.
//!
//! The state holds protocol types whose serde attributes (`skip_serializing_if`, internally
//! tagged enums) only self-describing formats read back, and indexes that repeat what the tasks
//! say. The record leaves both out:
//! - a bid is written without its task id (the task it is in), and its optional coach summary
//!   as a plain `Option`;
//! - a reply remembered for idempotency is written in its externally tagged form (its
//!   derive with `remote = "Self"`: the variant's index, then its result);
//! - `bid_tasks` and `open_tasks` are not written: they follow from the tasks and are rebuilt
//!   by [`StateRecord::into_state`] (the other derived indexes by [`State::rebuild_index`], as
//!   before).
//!
//! Writing borrows the state ([`StateRecordRef`]); reading builds it ([`StateRecord`]). The two
//! describe the same fields in the same order, which the round-trip tests check.

use std::collections::{BTreeMap, HashSet, VecDeque};

use gavel_protocol::views::{BidCoach, BidView, EscrowView, Score, UrgencyCounts};
use gavel_protocol::{BidId, BidStatus, Cents, Millis, RequestId, Seq, TaskId, TaskStatus, UserId};
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

use crate::coach::CoachNo;
use crate::event::TaskSpec;
use crate::idempotency::{Entry, Idempotency};
use crate::ids::BidNo;
use crate::market::Market;
use crate::reply::Reply;
use crate::state::{Assignment, Bid, Coach, IdMap, State, Task};
use crate::task_bids::TaskBids;
use crate::tasks::Tasks;
use crate::timers::Deadline;

/// Writes `items` as a sequence of `record(item)`, without collecting them first.
fn write_seq<S, T, R, I>(s: S, len: usize, items: I, record: fn(T) -> R) -> Result<S::Ok, S::Error>
where
    S: Serializer,
    R: Serialize,
    I: Iterator<Item = T>,
{
    let mut seq = s.serialize_seq(Some(len))?;
    for item in items {
        seq.serialize_element(&record(item))?;
    }
    seq.end()
}

/// The state, borrowed, in the record's layout (see the module's documentation).
#[derive(Debug, Serialize)]
pub struct StateRecordRef<'a> {
    seq: Seq,
    now: Millis,
    tasks: TasksRef<'a>,
    coaches: CoachesRef<'a>,
    tasks_by_status: &'a BTreeMap<TaskStatus, u64>,
    open_by_urgency: &'a UrgencyCounts,
    next_task_no: u64,
    next_bid_no: BidNo,
    idempotency: IdempotencyRef<'a>,
    finals: &'a VecDeque<(Millis, TaskId)>,
    archived_by_status: &'a BTreeMap<TaskStatus, u64>,
    archived_ids: &'a HashSet<u64, foldhash::fast::RandomState>,
    market: &'a Market,
}

impl<'a> StateRecordRef<'a> {
    pub fn new(state: &'a State) -> Self {
        StateRecordRef {
            seq: state.seq,
            now: state.now,
            tasks: TasksRef(&state.tasks),
            coaches: CoachesRef(&state.coaches),
            tasks_by_status: &state.tasks_by_status,
            open_by_urgency: &state.open_by_urgency,
            next_task_no: state.next_task_no,
            next_bid_no: state.next_bid_no,
            idempotency: IdempotencyRef(&state.idempotency),
            finals: &state.finals,
            archived_by_status: &state.archived_by_status,
            archived_ids: &state.archived_ids,
            market: &state.market,
        }
    }
}

/// The state as read from a record; [`StateRecord::into_state`] rebuilds what was left out.
#[derive(Debug, Deserialize)]
pub struct StateRecord {
    seq: Seq,
    now: Millis,
    tasks: Vec<TaskRecord>,
    coaches: Vec<Coach>,
    tasks_by_status: BTreeMap<TaskStatus, u64>,
    open_by_urgency: UrgencyCounts,
    next_task_no: u64,
    next_bid_no: BidNo,
    idempotency: Vec<EntryRecord>,
    finals: VecDeque<(Millis, TaskId)>,
    archived_by_status: BTreeMap<TaskStatus, u64>,
    archived_ids: Vec<u64>,
    market: Market,
}

impl StateRecord {
    /// The state the record describes, with `bid_tasks` and `open_tasks` rebuilt. The other
    /// derived indexes are left empty, for [`State::rebuild_index`] (which `Engine::restore`
    /// runs).
    pub fn into_state(self) -> Result<State, String> {
        let mut state = State {
            seq: self.seq,
            now: self.now,
            tasks_by_status: self.tasks_by_status,
            open_by_urgency: self.open_by_urgency,
            next_task_no: self.next_task_no,
            next_bid_no: self.next_bid_no,
            idempotency: Idempotency::from(
                self.idempotency
                    .into_iter()
                    .map(EntryRecord::into_entry)
                    .collect::<Vec<_>>(),
            ),
            finals: self.finals,
            archived_by_status: self.archived_by_status,
            archived_ids: self.archived_ids.into_iter().collect(),
            market: self.market,
            ..State::default()
        };
        state.coaches.reserve(self.coaches.len());
        for coach in self.coaches {
            state.coaches.insert(coach.profile.coach_id.clone(), coach);
        }
        state.tasks.reserve(self.tasks.len());
        for record in self.tasks {
            let task = record.into_task()?;
            let id = task.spec.task_id.clone();
            for bid in task.bids.values() {
                state.bid_tasks.insert(bid.no, id.clone());
            }
            if task.status == TaskStatus::Open {
                state.open_tasks.insert(id.clone());
            }
            state.tasks.insert(task);
        }
        Ok(state)
    }
}

#[derive(Debug)]
struct TasksRef<'a>(&'a Tasks);

impl Serialize for TasksRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        write_seq(s, self.0.len(), self.0.values(), TaskRecordRef::new)
    }
}

#[derive(Debug)]
struct CoachesRef<'a>(&'a IdMap<UserId, Coach>);

impl Serialize for CoachesRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        write_seq(s, self.0.len(), self.0.values(), |c| c)
    }
}

#[derive(Debug)]
struct IdempotencyRef<'a>(&'a Idempotency);

impl Serialize for IdempotencyRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        write_seq(s, self.0.len(), self.0.live_entries(), EntryRecordRef::new)
    }
}

/// A task, borrowed: the task id is its spec's; bids without the derived indexes.
#[derive(Debug, Serialize)]
struct TaskRecordRef<'a> {
    spec: &'a TaskSpec,
    status: TaskStatus,
    bidding_closes_at: Millis,
    awaiting_owner: bool,
    bids: BidsRef<'a>,
    assigned: &'a Option<Assignment>,
    escrow: &'a EscrowView,
    revisions: u32,
    deadline: &'a Option<Deadline>,
    coaches_ever: &'a [UserId],
}

impl<'a> TaskRecordRef<'a> {
    fn new(task: &'a Task) -> Self {
        TaskRecordRef {
            spec: &task.spec,
            status: task.status,
            bidding_closes_at: task.bidding_closes_at,
            awaiting_owner: task.awaiting_owner,
            bids: BidsRef(&task.bids),
            assigned: &task.assigned,
            escrow: &task.escrow,
            revisions: task.revisions,
            deadline: &task.deadline,
            coaches_ever: &task.coaches_ever,
        }
    }
}

#[derive(Debug, Deserialize)]
struct TaskRecord {
    spec: TaskSpec,
    status: TaskStatus,
    bidding_closes_at: Millis,
    awaiting_owner: bool,
    bids: Vec<BidRecord>,
    assigned: Option<Assignment>,
    escrow: EscrowView,
    revisions: u32,
    deadline: Option<Deadline>,
    coaches_ever: Vec<UserId>,
}

impl TaskRecord {
    /// The task its record describes.
    fn into_task(self) -> Result<Task, String> {
        let mut task = Task {
            spec: self.spec,
            status: self.status,
            bidding_closes_at: self.bidding_closes_at,
            awaiting_owner: self.awaiting_owner,
            bids: Default::default(),
            assigned: self.assigned,
            escrow: self.escrow,
            revisions: self.revisions,
            deadline: self.deadline,
            coaches_ever: self.coaches_ever,
            timer: Default::default(),
        };
        task.bids.reserve(self.bids.len());
        for record in self.bids {
            let bid = record.into_bid(&task.spec.task_id)?;
            task.bids.insert(bid);
        }
        Ok(task)
    }
}

#[derive(Debug)]
struct BidsRef<'a>(&'a TaskBids);

impl Serialize for BidsRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        write_seq(s, self.0.len(), self.0.values(), BidRecordRef::new)
    }
}

/// A bid, borrowed: its number is its id's, its task the one it is in.
#[derive(Debug, Serialize)]
struct BidRecordRef<'a> {
    bid_id: &'a BidId,
    coach_id: &'a UserId,
    amount: Cents,
    eta_hours: u32,
    score: Score,
    status: BidStatus,
    created_at: Millis,
    coach: &'a Option<BidCoach>,
}

impl<'a> BidRecordRef<'a> {
    fn new(bid: &'a Bid) -> Self {
        let v = &bid.view;
        BidRecordRef {
            bid_id: &v.bid_id,
            coach_id: &v.coach_id,
            amount: v.amount,
            eta_hours: v.eta_hours,
            score: v.score,
            status: v.status,
            created_at: v.created_at,
            coach: &v.coach,
        }
    }
}

#[derive(Debug, Deserialize)]
struct BidRecord {
    bid_id: BidId,
    coach_id: UserId,
    amount: Cents,
    eta_hours: u32,
    score: Score,
    status: BidStatus,
    created_at: Millis,
    coach: Option<BidCoach>,
}

impl BidRecord {
    fn into_bid(self, task_id: &TaskId) -> Result<Bid, String> {
        let no = crate::ids::bid_no(&self.bid_id)
            .ok_or_else(|| format!("snapshot bid id {} is not an engine bid id", self.bid_id))?;
        Ok(Bid {
            no,
            view: BidView {
                bid_id: self.bid_id,
                task_id: task_id.clone(),
                coach_id: self.coach_id,
                amount: self.amount,
                eta_hours: self.eta_hours,
                score: self.score,
                status: self.status,
                created_at: self.created_at,
                coach: self.coach,
            },
            // Numbered by `State::rebuild_index`, which `Engine::restore` runs.
            coach: CoachNo::NONE,
        })
    }
}

/// A remembered reply, borrowed.
#[derive(Debug, Serialize)]
struct EntryRecordRef<'a> {
    user: &'a UserId,
    request_id: &'a RequestId,
    expires_at: Millis,
    #[serde(serialize_with = "reply_by_index::serialize")]
    reply: &'a Reply,
}

impl<'a> EntryRecordRef<'a> {
    fn new(entry: &'a Entry) -> Self {
        EntryRecordRef {
            user: &entry.user,
            request_id: &entry.request_id,
            expires_at: entry.expires_at,
            reply: &entry.reply,
        }
    }
}

#[derive(Debug, Deserialize)]
struct EntryRecord {
    user: UserId,
    request_id: RequestId,
    expires_at: Millis,
    #[serde(deserialize_with = "reply_by_index::deserialize")]
    reply: Reply,
}

impl EntryRecord {
    fn into_entry(self) -> Entry {
        Entry {
            user: self.user,
            request_id: self.request_id,
            expires_at: self.expires_at,
            reply: self.reply,
        }
    }
}

/// A remembered [`Reply`] in the record: its externally tagged form (`Reply`'s derive with
/// `remote = "Self"`, see [`crate::tag_first`]), which postcard writes as the variant's index
/// and its result — the internally tagged form needs a self-describing format.
mod reply_by_index {
    use serde::{Deserializer, Serializer};

    use crate::reply::Reply;
    use crate::tag_first::InternallyTagged;

    pub(super) fn serialize<S: Serializer>(reply: &&Reply, s: S) -> Result<S::Ok, S::Error> {
        reply.serialize_external(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Reply, D::Error> {
        Reply::deserialize_external(d)
    }
}

#[cfg(test)]
mod tests {
    use gavel_protocol::BidId;
    use gavel_protocol::views::{Empty, PlaceBidResult};

    use super::*;

    /// Format 2 frames already written hold replies as the variant's index and its result:
    /// the record must keep writing (and reading) exactly those bytes.
    #[test]
    fn a_remembered_reply_is_its_variant_index_then_its_result() {
        let entry = |reply| Entry {
            user: UserId::new("u").unwrap(),
            request_id: RequestId::new("r").unwrap(),
            expires_at: 5,
            reply,
        };
        let place_bid = entry(Reply::PlaceBid(PlaceBidResult {
            bid_id: BidId::new("b_7").unwrap(),
        }));
        let bytes = postcard::to_allocvec(&EntryRecordRef::new(&place_bid)).unwrap();
        // user, request id, expires_at, then variant 1 (`place_bid`) and its bid id.
        assert_eq!(bytes, [1, b'u', 1, b'r', 5, 1, 3, b'b', b'_', b'7']);
        let back: EntryRecord = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back.into_entry(), place_bid);

        let empty = entry(Reply::Empty(Empty {}));
        let bytes = postcard::to_allocvec(&EntryRecordRef::new(&empty)).unwrap();
        assert_eq!(bytes, [1, b'u', 1, b'r', 5, 7]);
        let back: EntryRecord = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back.into_entry(), empty);
    }
}
