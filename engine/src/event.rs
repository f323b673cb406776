//! What the engine journals: domain [`Event`]s. They are richer than the wire's events (a
//! posted task carries its owner and resume; a strike names its coach) so that `evolve` can
//! rebuild the whole state from them and [`crate::routing`] can render every audience's view of
//! them from the journal alone.

use gavel_protocol::views::{BidView, CoachView};
use gavel_protocol::{Award, BidId, Cents, Millis, RequestId, TaskId, TaskStatus, Urgency, UserId};
use serde::{Deserialize, Serialize};

use crate::archive::ArchivedTask;
use crate::reply::Reply;

/// One journaled fact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Engine time when it happened.
    pub at: Millis,
    /// Set on the last event of a client command that carried a request id: the reply to
    /// give again if the same user retries the same id (idempotency survives restarts because
    /// it is journaled with the effect itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
    /// The owner of the task the event concerns (routing to `seeker:<owner>` needs only the
    /// event, live and replayed alike); `None` for events about no task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<UserId>,
    pub kind: EventKind,
}

/// The request an event answered, and the reply it got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    pub user: UserId,
    pub request_id: RequestId,
    pub reply: Reply,
}

/// The fixed terms of a task, decided when it is posted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSpec {
    pub task_id: TaskId,
    pub owner: UserId,
    pub resume_id: String,
    pub task_type: String,
    pub urgency: Urgency,
    pub award: Award,
    pub base_price: Cents,
    pub suggested_price: Cents,
    pub price_range: [Cents; 2],
    pub created_at: Millis,
}

/// Every kind of domain event. Most map one-to-one onto a wire kind (named alike); the rest
/// are bookkeeping that only `evolve` needs ([`EventKind::BiddingClosed`],
/// [`EventKind::CoachUpserted`], [`EventKind::TasksArchived`]).
///
/// Journaled internally tagged (`{"kind": "bid_placed", …}`), read tag first
/// ([`crate::tag_first`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "snake_case")]
pub enum EventKind {
    /// A task was posted (`bid_count` 0), or reopened for a new bidding window.
    TaskOpened {
        task: Box<TaskSpec>,
        bidding_closes_at: Millis,
        bid_count: u32,
        reopened: bool,
    },
    BidCount {
        task_id: TaskId,
        bid_count: u32,
    },
    /// The task left the feed (assigned or canceled while open).
    TaskClosed {
        task_id: TaskId,
        status: TaskStatus,
    },
    /// The bidding window of a manually awarded task closed with bids: the owner chooses.
    BiddingClosed {
        task_id: TaskId,
    },
    BidPlaced {
        bid: BidView,
    },
    BidUpdated {
        bid: BidView,
    },
    BidWithdrawn {
        task_id: TaskId,
        bid_id: BidId,
        coach_id: UserId,
    },
    BidAccepted {
        task_id: TaskId,
        bid_id: BidId,
        coach_id: UserId,
    },
    BidRejected {
        task_id: TaskId,
        bid_id: BidId,
        coach_id: UserId,
    },
    TaskAssigned {
        task_id: TaskId,
        coach_id: UserId,
        bid_id: Option<BidId>,
        amount: Cents,
        eta_hours: u32,
        deadline: Millis,
        on_call: bool,
    },
    TaskStarted {
        task_id: TaskId,
        coach_id: UserId,
    },
    TaskSubmitted {
        task_id: TaskId,
        coach_id: UserId,
        notes: Option<String>,
    },
    ChangesRequested {
        task_id: TaskId,
        coach_id: UserId,
        reason: String,
        revisions: u32,
    },
    TaskDisputed {
        task_id: TaskId,
    },
    TaskCompleted {
        task_id: TaskId,
        coach_id: UserId,
        coach_amount: Cents,
        platform_fee: Cents,
        rating: Option<u8>,
    },
    TaskCanceled {
        task_id: TaskId,
        coach_id: Option<UserId>,
        reason: Option<String>,
    },
    /// The bidding window closed with no bids and no on-call coach free: a new window.
    TaskUnfilled {
        task_id: TaskId,
        bidding_closes_at: Millis,
    },
    TaskReminder {
        task_id: TaskId,
        coach_id: UserId,
        deadline: Millis,
    },
    /// The coach missed the deadline: it gets a strike (suspended at three).
    TaskReassigned {
        task_id: TaskId,
        from_coach_id: UserId,
        to_coach_id: Option<UserId>,
    },
    TaskMessage {
        task_id: TaskId,
        from: UserId,
        coach_id: Option<UserId>,
        text: String,
    },
    PaymentHeld {
        task_id: TaskId,
        amount: Cents,
    },
    PaymentReleased {
        task_id: TaskId,
        coach_id: UserId,
        coach_amount: Cents,
        platform_fee: Cents,
    },
    PaymentRefunded {
        task_id: TaskId,
        amount: Cents,
    },
    /// The provider declined the hold: it is reversed and the accepted bid rejected.
    PaymentFailed {
        task_id: TaskId,
        amount: Cents,
    },
    CoachUpserted {
        coach: CoachView,
    },
    /// Tasks that reached a final state at least the retention period ago leave the engine's
    /// memory, oldest first; their history stays in the journal.
    TasksArchived {
        task_ids: Vec<TaskId>,
        /// What each task leaves behind, in the order of `task_ids` (the journal writer
        /// stores them in the archive table). Empty in journals written before the archive.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        archived: Vec<ArchivedTask>,
    },
}

crate::tag_first::impl_serde!(EventKind, "kind");

impl EventKind {
    /// The task the event concerns, if any.
    pub fn task_id(&self) -> Option<&TaskId> {
        use EventKind::*;
        match self {
            TaskOpened { task, .. } => Some(&task.task_id),
            BidPlaced { bid } | BidUpdated { bid } => Some(&bid.task_id),
            BidCount { task_id, .. }
            | TaskClosed { task_id, .. }
            | BiddingClosed { task_id }
            | BidWithdrawn { task_id, .. }
            | BidAccepted { task_id, .. }
            | BidRejected { task_id, .. }
            | TaskAssigned { task_id, .. }
            | TaskStarted { task_id, .. }
            | TaskSubmitted { task_id, .. }
            | ChangesRequested { task_id, .. }
            | TaskDisputed { task_id }
            | TaskCompleted { task_id, .. }
            | TaskCanceled { task_id, .. }
            | TaskUnfilled { task_id, .. }
            | TaskReminder { task_id, .. }
            | TaskReassigned { task_id, .. }
            | TaskMessage { task_id, .. }
            | PaymentHeld { task_id, .. }
            | PaymentReleased { task_id, .. }
            | PaymentRefunded { task_id, .. }
            | PaymentFailed { task_id, .. } => Some(task_id),
            CoachUpserted { .. } | TasksArchived { .. } => None,
        }
    }
}
