//! Awarding a task's bids, and undoing an award: the events shared by command decisions
//! ([`crate::decide`]) and deadlines passing ([`crate::deadlines`]). The owner accepting a bid
//! and the bidding window closing on an auto-award task produce the same award; cancelling and
//! going on call reject the pending bids; a failed payment or a late coach with nobody on call
//! voids the award and reopens the task.

use gavel_protocol::views::AcceptBidResult;
use gavel_protocol::{BidStatus, Millis, TaskStatus};

use crate::engine::Engine;
use crate::event::EventKind;
use crate::state::{Bid, Task};

/// Accepting `bid` (by the owner, or automatically when the window closes): the bid wins, the
/// others lose, the coach is assigned, the escrow holds the amount, the task leaves the feed.
pub(crate) fn award(task: &Task, bid: &Bid, now: Millis) -> (Vec<EventKind>, AcceptBidResult) {
    let task_id = task.spec.task_id.clone();
    let v = &bid.view;
    let deadline = now + u64::from(v.eta_hours) * 3_600_000;
    let mut events = vec![EventKind::BidAccepted {
        task_id: task_id.clone(),
        bid_id: v.bid_id.clone(),
        coach_id: v.coach_id.clone(),
    }];
    events.extend(
        reject_pending(task)
            .into_iter()
            .filter(|e| !matches!(e, EventKind::BidRejected { bid_id, .. } if *bid_id == v.bid_id)),
    );
    events.push(EventKind::TaskAssigned {
        task_id: task_id.clone(),
        coach_id: v.coach_id.clone(),
        bid_id: Some(v.bid_id.clone()),
        amount: v.amount,
        eta_hours: v.eta_hours,
        deadline,
        on_call: false,
    });
    events.push(EventKind::PaymentHeld {
        task_id: task_id.clone(),
        amount: v.amount,
    });
    events.push(EventKind::TaskClosed {
        task_id: task_id.clone(),
        status: TaskStatus::Assigned,
    });
    let result = AcceptBidResult {
        task_id,
        coach_id: v.coach_id.clone(),
        amount: v.amount,
        deadline,
    };
    (events, result)
}

/// `bid.rejected` for every pending bid, best first.
pub(crate) fn reject_pending(task: &Task) -> Vec<EventKind> {
    task.ranked_bids()
        .map(|b| EventKind::BidRejected {
            task_id: task.spec.task_id.clone(),
            bid_id: b.view.bid_id.clone(),
            coach_id: b.view.coach_id.clone(),
        })
        .collect()
}

/// `bid.rejected` for the task's accepted bid, if any: the award is void because the task
/// reopens for bids (payment failed, or the coach was late with no on-call coach free). Without
/// it a reopened task would end up with two accepted bids once the owner accepts again.
pub(crate) fn void_award(task: &Task) -> Option<EventKind> {
    task.bids
        .values()
        .find(|b| b.view.status == BidStatus::Accepted)
        .map(|b| EventKind::BidRejected {
            task_id: task.spec.task_id.clone(),
            bid_id: b.view.bid_id.clone(),
            coach_id: b.view.coach_id.clone(),
        })
}

impl Engine {
    /// Reopens a task for a fresh bidding window starting at `at`.
    pub(crate) fn reopen(&self, task: &Task, at: Millis) -> EventKind {
        EventKind::TaskOpened {
            task: Box::new(task.spec.clone()),
            bidding_closes_at: at + self.config.tiers.get(task.spec.urgency).bidding_ms(),
            bid_count: 0,
            reopened: true,
        }
    }
}
