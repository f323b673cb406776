//! Events (contract §2, §8): what happened, pushed to subscribers of the topics it concerns.
//!
//! On the wire an event is `{"kind": …, "at": …, "task_id": …, …payload}`; here that is an
//! [`Event`] (the common fields) flattening an [`EventPayload`] (the kind and its fields).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ids::{BidId, TaskId, UserId};
use crate::model::TaskStatus;
use crate::views::{BidView, FeedTask, UrgencyCounts};
use crate::{Cents, Millis};

/// One event: when, about which task, and what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Event {
    /// The engine's time when it happened.
    pub at: Millis,
    /// The task it concerns (absent only for marketplace-wide events such as `stats`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<TaskId>,
    #[serde(flatten)]
    pub payload: EventPayload,
}

impl Event {
    /// The event's `kind` as spelled on the wire.
    pub fn kind(&self) -> &'static str {
        self.payload.kind()
    }
}

/// Every event kind of contract §8, with its fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind")]
pub enum EventPayload {
    #[serde(rename = "task.opened")]
    TaskOpened { task: FeedTask },
    #[serde(rename = "task.bid_count")]
    TaskBidCount { bid_count: u32 },
    #[serde(rename = "task.closed")]
    TaskClosed { status: TaskStatus },
    #[serde(rename = "bid.placed")]
    BidPlaced { bid: BidView },
    #[serde(rename = "bid.updated")]
    BidUpdated { bid: BidView },
    #[serde(rename = "bid.withdrawn")]
    BidWithdrawn { bid_id: BidId, coach_id: UserId },
    #[serde(rename = "bid.accepted")]
    BidAccepted { bid_id: BidId, coach_id: UserId },
    #[serde(rename = "bid.rejected")]
    BidRejected { bid_id: BidId, coach_id: UserId },
    #[serde(rename = "task.assigned")]
    TaskAssigned {
        coach_id: UserId,
        /// `null` when assigned on call.
        bid_id: Option<BidId>,
        amount: Cents,
        deadline: Millis,
        on_call: bool,
    },
    #[serde(rename = "task.started")]
    TaskStarted {},
    #[serde(rename = "task.submitted")]
    TaskSubmitted { notes: Option<String> },
    #[serde(rename = "task.changes_requested")]
    TaskChangesRequested { reason: String, revisions: u32 },
    #[serde(rename = "task.disputed")]
    TaskDisputed {},
    #[serde(rename = "task.completed")]
    TaskCompleted {
        coach_amount: Cents,
        platform_fee: Cents,
        /// `null` after a dispute.
        rating: Option<u8>,
    },
    #[serde(rename = "task.canceled")]
    TaskCanceled { reason: Option<String> },
    #[serde(rename = "task.unfilled")]
    TaskUnfilled {},
    #[serde(rename = "task.reminder")]
    TaskReminder { deadline: Millis },
    #[serde(rename = "task.reassigned")]
    TaskReassigned {
        from_coach_id: UserId,
        /// `null` when the task reopened for bids instead.
        to_coach_id: Option<UserId>,
    },
    #[serde(rename = "task.message")]
    TaskMessage { from: UserId, text: String },
    #[serde(rename = "payment.held")]
    PaymentHeld { amount: Cents },
    #[serde(rename = "payment.released")]
    PaymentReleased {
        coach_amount: Cents,
        platform_fee: Cents,
    },
    #[serde(rename = "payment.refunded")]
    PaymentRefunded { amount: Cents },
    #[serde(rename = "payment.failed")]
    PaymentFailed {},
    #[serde(rename = "stats")]
    Stats {
        connections: u64,
        subscriptions: u64,
        events_per_sec: u64,
        open_tasks: UrgencyCounts,
    },
}

impl EventPayload {
    /// Every kind, as spelled on the wire.
    pub const KINDS: &'static [&'static str] = &[
        "task.opened",
        "task.bid_count",
        "task.closed",
        "bid.placed",
        "bid.updated",
        "bid.withdrawn",
        "bid.accepted",
        "bid.rejected",
        "task.assigned",
        "task.started",
        "task.submitted",
        "task.changes_requested",
        "task.disputed",
        "task.completed",
        "task.canceled",
        "task.unfilled",
        "task.reminder",
        "task.reassigned",
        "task.message",
        "payment.held",
        "payment.released",
        "payment.refunded",
        "payment.failed",
        "stats",
    ];

    /// The wire `kind`.
    pub fn kind(&self) -> &'static str {
        use EventPayload::*;
        match self {
            TaskOpened { .. } => "task.opened",
            TaskBidCount { .. } => "task.bid_count",
            TaskClosed { .. } => "task.closed",
            BidPlaced { .. } => "bid.placed",
            BidUpdated { .. } => "bid.updated",
            BidWithdrawn { .. } => "bid.withdrawn",
            BidAccepted { .. } => "bid.accepted",
            BidRejected { .. } => "bid.rejected",
            TaskAssigned { .. } => "task.assigned",
            TaskStarted {} => "task.started",
            TaskSubmitted { .. } => "task.submitted",
            TaskChangesRequested { .. } => "task.changes_requested",
            TaskDisputed {} => "task.disputed",
            TaskCompleted { .. } => "task.completed",
            TaskCanceled { .. } => "task.canceled",
            TaskUnfilled {} => "task.unfilled",
            TaskReminder { .. } => "task.reminder",
            TaskReassigned { .. } => "task.reassigned",
            TaskMessage { .. } => "task.message",
            PaymentHeld { .. } => "payment.held",
            PaymentReleased { .. } => "payment.released",
            PaymentRefunded { .. } => "payment.refunded",
            PaymentFailed {} => "payment.failed",
            Stats { .. } => "stats",
        }
    }
}
