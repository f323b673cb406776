//! The engine's state and [`State::evolve`], the only code that changes it.
//!
//! Everything here is plain data that (de)serializes with serde (the snapshot), except the
//! deadline index ([`Timers`], and each task's slot in it), which is derived from the tasks and
//! rebuilt after loading.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use gavel_protocol::views::{CoachView, UrgencyCounts};
use gavel_protocol::{BidId, BidStatus, Millis, Seq, TaskId, TaskStatus, Urgency, UserId};
use serde::{Deserialize, Serialize};

use crate::bid_tasks::BidTasks;
use crate::coach::CoachNo;
use crate::event::{Event, EventKind};
use crate::idempotency::Idempotency;
use crate::ids::BidNo;
use crate::listing::Listing;
use crate::market::Market;
use crate::on_call::OnCallPool;
use crate::tasks::{TaskHandle, Tasks};
use crate::timers::{Deadline, DeadlineKind, TimerSlot, Timers};

pub use crate::coach::{Coach, STRIKES_TO_SUSPEND};
pub use crate::counts::OpenByType;
use crate::counts::{bump, bump_type};
pub use crate::task::{Assignment, Bid, Task};

/// The engine's hash maps, keyed by ids: std's `HashMap` with foldhash's hasher, seeded at
/// random per process like std's, but several times faster than SipHash on short ids (hashing
/// was the largest cost of `place_bid` and of firing deadlines). Build one with
/// `IdMap::default()`.
pub type IdMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// How far ahead of the counter of server-chosen task ids a task id of the same shape
/// (`t_<n>`, maybe a client's choice) may move it ([`State::note_task_no`]).
pub const TASK_NO_REACH: u64 = 1 << 20;

/// Everything the engine knows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// `seq` of the last applied event (0: none yet).
    pub seq: Seq,
    /// The latest event time applied: engine time never runs backwards.
    pub now: Millis,
    /// Every task in memory, by id and by handle (serialized as the map id → task).
    pub tasks: Tasks,
    /// Which task every bid belongs to.
    pub bid_tasks: BidTasks,
    pub coaches: IdMap<UserId, Coach>,
    /// Tasks in `open`, for the feed snapshot without scanning every task.
    pub open_tasks: BTreeSet<TaskId>,
    pub tasks_by_status: BTreeMap<TaskStatus, u64>,
    pub open_by_urgency: UrgencyCounts,
    pub next_task_no: u64,
    pub next_bid_no: BidNo,
    pub idempotency: Idempotency,
    /// Tasks in a final state, in the order they reached it, with when: archived (dropped from
    /// memory) once the configured retention has passed (`EngineConfig::archive_after`).
    #[serde(default)]
    pub finals: VecDeque<(Millis, TaskId)>,
    /// Archived tasks by their final status: `tasks_by_status` counts them with the tasks
    /// still in memory, so the admin's counts do not drop when a task is archived.
    #[serde(default)]
    pub archived_by_status: BTreeMap<TaskStatus, u64>,
    /// [`archived_id_hash`] of every archived task id, so that a client-chosen `task_id` is
    /// never given to a second task (8 bytes per archived task instead of the whole task).
    #[serde(default)]
    pub archived_ids: HashSet<u64, foldhash::fast::RandomState>,
    /// Derived from `tasks[*].deadline`; rebuilt by [`State::rebuild_index`] after loading.
    #[serde(skip)]
    pub timers: Timers,
    /// Derived from `coaches`: who may be assigned on call, best first; rebuilt by
    /// [`State::rebuild_index`] after loading.
    #[serde(skip)]
    pub on_call: OnCallPool,
    /// The accepted amounts of recent tasks, by task type and tier (contract §11).
    #[serde(default)]
    pub market: Market,
    /// Derived from `tasks`: every task by creation, by owner and by coach (contract §9);
    /// rebuilt by [`State::rebuild_index`] after loading.
    #[serde(skip)]
    pub listing: Listing,
    /// Derived from `open_tasks`: open tasks by task type and urgency (`quote`).
    #[serde(skip)]
    pub open_by_type: OpenByType,
}

/// The hash an archived task id is remembered by: FNV-1a (64 bit), fixed for ever — not
/// seeded per process nor tied to a crate version — so the state is the same wherever and
/// whenever the journal is replayed or a snapshot loaded. A collision only makes a new
/// client-chosen id look taken (`CONFLICT`); it never merges two tasks.
pub fn archived_id_hash(id: &TaskId) -> u64 {
    id.as_str().bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Sets the deadline of a task already looked up (at `handle`), and indexes it.
fn set_task_deadline(
    timers: &mut Timers,
    handle: TaskHandle,
    task: &mut Task,
    deadline: Option<Deadline>,
) {
    let old = std::mem::replace(&mut task.deadline, deadline);
    timers.replace(&mut task.timer, &task.spec.task_id, handle, old, deadline);
}

impl State {
    /// Applies one event: the only way state changes, live and on recovery alike. Returns
    /// the event's `seq`.
    pub fn evolve(&mut self, event: &Event) -> Seq {
        self.seq += 1;
        self.now = self.now.max(event.at);
        self.idempotency.expire(self.now);
        self.apply(&event.kind);
        if let Some(origin) = &event.origin {
            self.idempotency.insert(
                origin.user.clone(),
                origin.request_id.clone(),
                event.at,
                origin.reply.clone(),
            );
        }
        self.seq
    }

    fn apply(&mut self, kind: &EventKind) {
        use EventKind::*;
        match kind {
            TaskOpened {
                task,
                bidding_closes_at,
                reopened,
                ..
            } => {
                let id = task.task_id.clone();
                if *reopened {
                    let t = self.tasks.get_mut(&id).expect("reopened task exists");
                    t.assigned = None;
                    t.awaiting_owner = false;
                    t.bidding_closes_at = *bidding_closes_at;
                } else {
                    if let Some(n) = crate::ids::task_no(&id) {
                        self.note_task_no(n);
                    }
                    let entry = Task::posted((**task).clone(), *bidding_closes_at);
                    self.listing.add_task(&entry);
                    bump_type(&mut self.open_by_type, &entry, true);
                    self.tasks.insert(entry);
                    *self.tasks_by_status.entry(TaskStatus::Open).or_default() += 1;
                    self.open_tasks.insert(id.clone());
                    bump(&mut self.open_by_urgency, task.urgency, true);
                }
                self.set_status(&id, TaskStatus::Open);
                self.set_deadline(
                    &id,
                    Some(Deadline {
                        at: *bidding_closes_at,
                        kind: DeadlineKind::BiddingCloses,
                    }),
                );
            }
            BidCount { task_id, bid_count } => {
                debug_assert_eq!(
                    self.tasks[task_id].bid_count(),
                    *bid_count,
                    "bid_count event matches the pending bids"
                );
            }
            TaskClosed { .. } | TaskMessage { .. } => {}
            BiddingClosed { task_id } => {
                self.task_mut(task_id).awaiting_owner = true;
                self.set_deadline(task_id, None);
            }
            BidPlaced { bid } => {
                let no = crate::ids::bid_no(&bid.bid_id).expect("engine bid ids are b_<n>");
                self.next_bid_no = self.next_bid_no.max(no + 1);
                self.bid_tasks.insert(no, bid.task_id.clone());
                let mut coach_no = CoachNo::NONE;
                if let Some(coach) = self.coaches.get_mut(&bid.coach_id) {
                    coach.live_bids.insert(no);
                    coach_no = coach.no;
                }
                let task = self.task_mut(&bid.task_id);
                let entry = Bid {
                    no,
                    view: bid.clone(),
                    coach: coach_no,
                };
                task.bids.insert(entry);
            }
            BidUpdated { bid } => {
                let task = self.task_mut(&bid.task_id);
                task.bids
                    .update(&bid.bid_id, |entry| entry.view = bid.clone())
                    .expect("updated bid exists");
            }
            BidWithdrawn {
                task_id, bid_id, ..
            } => self.close_bid(task_id, bid_id, BidStatus::Withdrawn),
            BidAccepted {
                task_id, bid_id, ..
            } => self.close_bid(task_id, bid_id, BidStatus::Accepted),
            BidRejected {
                task_id, bid_id, ..
            } => self.close_bid(task_id, bid_id, BidStatus::Rejected),
            TaskAssigned {
                task_id,
                coach_id,
                bid_id,
                amount,
                eta_hours,
                deadline,
                on_call,
            } => {
                let assignment = Assignment {
                    coach_id: coach_id.clone(),
                    bid_id: bid_id.clone(),
                    amount: *amount,
                    eta_hours: *eta_hours,
                    deadline: *deadline,
                    on_call: *on_call,
                };
                let reminder = deadline - assignment.lead_ms();
                let task = self
                    .tasks
                    .get_mut(task_id)
                    .expect("an assigned task exists");
                task.assigned = Some(assignment);
                if bid_id.is_some() && !*on_call {
                    self.market
                        .record(&task.spec.task_type, task.spec.urgency, *amount);
                }
                // Each coach once, the latest assignee last (it may see the archived task).
                match task.coaches_ever.iter().position(|c| c == coach_id) {
                    Some(at) => {
                        let again = task.coaches_ever.remove(at);
                        task.coaches_ever.push(again);
                    }
                    None => {
                        task.coaches_ever.push(coach_id.clone());
                        self.listing.add_coach(task, coach_id);
                    }
                }
                if let Some(coach) = self.coaches.get_mut(coach_id) {
                    coach.assignments.insert(task_id.clone());
                    self.on_call.update(coach);
                }
                self.set_status(task_id, TaskStatus::Assigned);
                self.set_deadline(
                    task_id,
                    Some(Deadline {
                        at: reminder,
                        kind: DeadlineKind::Reminder,
                    }),
                );
            }
            TaskStarted { task_id, .. } => self.set_status(task_id, TaskStatus::InProgress),
            TaskSubmitted { task_id, .. } => {
                self.set_status(task_id, TaskStatus::Submitted);
                self.set_deadline(task_id, None);
            }
            ChangesRequested {
                task_id, revisions, ..
            } => {
                self.task_mut(task_id).revisions = *revisions;
                self.set_status(task_id, TaskStatus::InProgress);
            }
            TaskDisputed { task_id } => self.set_status(task_id, TaskStatus::Disputed),
            TaskCompleted {
                task_id, rating, ..
            } => {
                // The assigned coach (the event's `coach_id`) is released and credited.
                self.release_coach_with(task_id, |coach| coach.record_completion(*rating));
                self.set_status(task_id, TaskStatus::Completed);
                self.set_deadline(task_id, None);
            }
            TaskCanceled { task_id, .. } => {
                self.release_coach(task_id);
                self.set_status(task_id, TaskStatus::Canceled);
                self.set_deadline(task_id, None);
            }
            TaskUnfilled {
                task_id,
                bidding_closes_at,
            } => {
                // One lookup for both changes (the commonest deadline event).
                let (handle, task) = self
                    .tasks
                    .find_mut(task_id)
                    .expect("an unfilled task exists");
                task.bidding_closes_at = *bidding_closes_at;
                set_task_deadline(
                    &mut self.timers,
                    handle,
                    task,
                    Some(Deadline {
                        at: *bidding_closes_at,
                        kind: DeadlineKind::BiddingCloses,
                    }),
                );
            }
            TaskReminder { task_id, .. } => {
                let (handle, task) = self
                    .tasks
                    .find_mut(task_id)
                    .expect("a reminded task exists");
                let a = task.assigned.as_ref().expect("a reminded task is assigned");
                let overdue = a.deadline + a.lead_ms();
                set_task_deadline(
                    &mut self.timers,
                    handle,
                    task,
                    Some(Deadline {
                        at: overdue,
                        kind: DeadlineKind::Overdue,
                    }),
                );
            }
            TaskReassigned {
                task_id,
                from_coach_id,
                ..
            } => {
                if let Some(coach) = self.coaches.get_mut(from_coach_id) {
                    coach.profile.strikes += 1;
                    if coach.profile.strikes >= STRIKES_TO_SUSPEND {
                        coach.profile.suspended = true;
                    }
                    self.on_call.update(coach);
                }
                self.release_coach(task_id);
                self.task_mut(task_id).assigned = None;
                self.set_deadline(task_id, None);
            }
            PaymentHeld { task_id, amount } => self.task_mut(task_id).escrow.held += amount,
            PaymentReleased {
                task_id,
                coach_amount,
                platform_fee,
                ..
            } => {
                self.task_mut(task_id).escrow.released += coach_amount + platform_fee;
            }
            PaymentRefunded { task_id, amount } => {
                self.task_mut(task_id).escrow.refunded += amount;
                if self.tasks[task_id].status == TaskStatus::Disputed {
                    self.release_coach(task_id);
                    self.set_status(task_id, TaskStatus::Refunded);
                }
            }
            PaymentFailed { task_id, amount } => {
                // An award whose payment never happened is no market price either.
                let task = &self.tasks[task_id];
                if let Some(a) = task
                    .assigned
                    .as_ref()
                    .filter(|a| a.bid_id.is_some() && !a.on_call)
                {
                    self.market
                        .unrecord(&task.spec.task_type, task.spec.urgency, a.amount);
                }
                // The hold never happened: reverse it rather than count a refund.
                self.task_mut(task_id).escrow.held -= amount;
                self.release_coach(task_id);
                self.task_mut(task_id).assigned = None;
                self.set_deadline(task_id, None);
            }
            TasksArchived { task_ids, .. } => self.archive(task_ids),
            CoachUpserted { coach } => {
                let next = CoachNo::nth(self.coaches.len());
                let entry = self
                    .coaches
                    .entry(coach.coach_id.clone())
                    .or_insert_with(|| Coach {
                        profile: coach.clone(),
                        assignments: BTreeSet::new(),
                        live_bids: Default::default(),
                        filed: Default::default(),
                        no: next,
                    });
                entry.profile = CoachView {
                    active: 0,
                    // `rating` mirrors `rating_centi` (journals from before §10 lack it).
                    rating: coach.rating_centi,
                    ..coach.clone()
                };
                self.on_call.update(entry);
            }
        }
    }

    /// Moves the counter of server-chosen task ids past `n`, the number of a task id just
    /// opened, when `n` is at most [`TASK_NO_REACH`] ahead of it. A client may choose an id of
    /// that shape: one far ahead (`t_18446744073709551614`) must not move the counter there,
    /// where it would overflow (a panic with overflow checks; without them, every later
    /// server-chosen id a walk over every id ever taken). An id left behind is skipped when the
    /// server's choice reaches it (`task_id_taken`).
    fn note_task_no(&mut self, n: u64) {
        if n >= self.next_task_no && n - self.next_task_no < TASK_NO_REACH {
            self.next_task_no = n.saturating_add(1);
        }
    }

    /// Whether a task with this id exists or ever existed (archived).
    pub fn task_id_taken(&self, id: &TaskId) -> bool {
        self.tasks.contains_key(id) || self.archived_ids.contains(&archived_id_hash(id))
    }

    /// Drops final tasks from memory, oldest first (`TasksArchived`).
    fn archive(&mut self, task_ids: &[TaskId]) {
        for id in task_ids {
            let front = self.finals.pop_front();
            debug_assert_eq!(
                front.as_ref().map(|f| &f.1),
                Some(id),
                "tasks are archived in the order they became final"
            );
            let task = self.tasks.remove(id).expect("an archived task exists");
            debug_assert!(task.status.is_final() && task.deadline.is_none());
            for bid_id in task.bids.keys() {
                self.bid_tasks.remove(bid_id);
            }
            self.listing.remove_task(&task);
            self.timers.release(task.timer);
            *self.archived_by_status.entry(task.status).or_default() += 1;
            self.archived_ids.insert(archived_id_hash(id));
        }
    }

    fn task_mut(&mut self, id: &TaskId) -> &mut Task {
        self.tasks
            .get_mut(id)
            .expect("events only name tasks that exist")
    }

    /// Moves a bid out of `pending`.
    fn close_bid(&mut self, task_id: &TaskId, bid_id: &BidId, status: BidStatus) {
        let task = self.tasks.get_mut(task_id).expect("bid's task exists");
        let coaches = &mut self.coaches;
        task.bids
            .update(bid_id, |bid| {
                if bid.view.status == BidStatus::Pending
                    && let Some(coach) = coaches.get_mut(&bid.view.coach_id)
                {
                    coach.live_bids.remove(bid.no);
                }
                bid.view.status = status;
            })
            .expect("bid exists");
    }

    /// The assigned coach no longer holds the task.
    fn release_coach(&mut self, task_id: &TaskId) {
        self.release_coach_with(task_id, |_| {});
    }

    /// [`State::release_coach`], changing the coach on the way (one lookup of each).
    fn release_coach_with(&mut self, task_id: &TaskId, change: impl FnOnce(&mut Coach)) {
        if let Some(coach_id) = self.tasks[task_id].coach()
            && let Some(coach) = self.coaches.get_mut(coach_id)
        {
            change(coach);
            coach.assignments.remove(task_id);
            self.on_call.update(coach);
        }
    }

    fn set_status(&mut self, id: &TaskId, status: TaskStatus) {
        let task = self.tasks.get_mut(id).expect("task exists");
        let old = std::mem::replace(&mut task.status, status);
        if old == status {
            return;
        }
        let urgency = task.spec.urgency;
        *self.tasks_by_status.entry(old).or_default() -= 1;
        if self.tasks_by_status[&old] == 0 {
            self.tasks_by_status.remove(&old);
        }
        *self.tasks_by_status.entry(status).or_default() += 1;
        if status.is_final() {
            self.finals.push_back((self.now, id.clone()));
        }
        if old == TaskStatus::Open {
            self.open_tasks.remove(id);
            bump(&mut self.open_by_urgency, urgency, false);
            bump_type(&mut self.open_by_type, task, false);
        }
        if status == TaskStatus::Open {
            self.open_tasks.insert(id.clone());
            bump(&mut self.open_by_urgency, urgency, true);
            bump_type(&mut self.open_by_type, task, true);
        }
    }

    fn set_deadline(&mut self, id: &TaskId, deadline: Option<Deadline>) {
        let (handle, task) = self.tasks.find_mut(id).expect("task exists");
        set_task_deadline(&mut self.timers, handle, task, deadline);
    }

    /// Rebuilds the derived indexes — deadlines from the tasks, the on-call pool from the
    /// coaches (after loading a snapshot).
    pub fn rebuild_index(&mut self) {
        self.rebuild_timers();
        self.on_call = OnCallPool::default();
        for coach in self.coaches.values_mut() {
            coach.filed = Default::default();
            // Snapshots from before contract §10 lack `rating` (it mirrors `rating_centi`).
            coach.profile.rating = coach.profile.rating_centi;
            self.on_call.update(coach);
        }
        for task in self.tasks.values_mut() {
            // ...and `coaches_ever`: at least the coach holding the task.
            if task.coaches_ever.is_empty()
                && let Some(coach) = task.coach()
            {
                task.coaches_ever.push(coach.clone());
            }
        }
        crate::coach::rebuild_live_bids(&mut self.coaches, self.tasks.values_mut());
        self.listing = Listing::rebuild(self.tasks.values());
        self.open_by_type = OpenByType::default();
        for id in &self.open_tasks {
            bump_type(&mut self.open_by_type, &self.tasks[id], true);
        }
    }

    /// Rebuilds the deadline index alone from the tasks' deadlines, giving each task with a
    /// deadline a new timer slot.
    pub fn rebuild_timers(&mut self) {
        self.timers = Timers::default();
        for (handle, task) in self.tasks.iter_mut() {
            task.timer = TimerSlot::default();
            self.timers.replace(
                &mut task.timer,
                &task.spec.task_id,
                handle,
                None,
                task.deadline,
            );
        }
    }

    /// Open tasks of one task type and urgency.
    pub fn open_of_type(&self, task_type: &str, urgency: Urgency) -> u64 {
        self.open_by_type
            .0
            .get(task_type)
            .map_or(0, |counts| match urgency {
                Urgency::Urgent => counts.urgent,
                Urgency::Standard => counts.standard,
                Urgency::Flexible => counts.flexible,
            })
    }
}
