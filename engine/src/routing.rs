//! How a journaled event reaches the wire (contract §3, §8): which topics it goes to, which
//! audience on each topic may see it, and its wire form. Rendering needs only the event
//! itself, so events replayed from the journal for a `since` resume look exactly like the
//! live ones did.

use gavel_protocol::event::{Event as WireEvent, EventPayload as P};
use gavel_protocol::views::FeedTask;
use gavel_protocol::{TaskId, Topic};

use crate::event::{Event, EventKind};

/// Who on a topic may receive a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Audience {
    /// Every subscriber of the topic.
    Everyone,
    /// On `task:<id>`: the owner and admins only, never the assigned coach (other coaches'
    /// bids and the escrow are not its business).
    Privileged,
}

/// One event for one topic and audience.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub topic: Topic,
    pub audience: Audience,
    pub event: WireEvent,
}

/// Every delivery of `event`, in a fixed order (topic-wise `seq` order is the caller's).
pub fn deliveries(event: &Event) -> Vec<Delivery> {
    use Audience::Everyone;
    let Some((payload, task_id)) = payload(&event.kind) else {
        return Vec::new();
    };
    let routes = routes(&event.kind, &task_id);
    // The owner's `seeker:<id>` carries what the owner's view of `task:<id>` does (§9).
    let seeker = event.owner.as_ref().and_then(|owner| {
        let (_, audience) = routes.iter().find(|(t, _)| matches!(t, Topic::Task(_)))?;
        Some((Topic::Seeker(owner.clone()), *audience))
    });
    let wire = WireEvent {
        at: event.at,
        task_id: Some(task_id),
        payload,
    };
    routes
        .into_iter()
        .chain(seeker)
        .chain(std::iter::once((Topic::Admin, Everyone)))
        .map(|(topic, audience)| Delivery {
            topic,
            audience,
            event: wire.clone(),
        })
        .collect()
}

/// The topics and audiences of a rendered event of `task_id` (before `seeker:` and `admin`).
fn routes(kind: &EventKind, task_id: &TaskId) -> Vec<(Topic, Audience)> {
    use Audience::{Everyone, Privileged};
    use EventKind as K;
    let task = || Topic::Task(task_id.clone());
    let coach = |id: &gavel_protocol::UserId| Topic::Coach(id.clone());
    match kind {
        K::TaskOpened { .. } => vec![(Topic::Feed, Everyone), (task(), Everyone)],
        K::BidCount { .. } | K::TaskClosed { .. } => vec![(Topic::Feed, Everyone)],
        K::BidPlaced { bid } | K::BidUpdated { bid } => {
            vec![(task(), Privileged), (coach(&bid.coach_id), Everyone)]
        }
        K::BidWithdrawn { coach_id, .. }
        | K::BidAccepted { coach_id, .. }
        | K::BidRejected { coach_id, .. } => {
            vec![(task(), Privileged), (coach(coach_id), Everyone)]
        }
        K::TaskAssigned { coach_id, .. }
        | K::ChangesRequested { coach_id, .. }
        | K::TaskCompleted { coach_id, .. }
        | K::TaskReminder { coach_id, .. } => vec![(task(), Everyone), (coach(coach_id), Everyone)],
        K::TaskStarted { .. }
        | K::TaskSubmitted { .. }
        | K::TaskDisputed { .. }
        | K::TaskMessage { .. }
        | K::PaymentFailed { .. } => vec![(task(), Everyone)],
        K::TaskCanceled { coach_id, .. } => {
            let mut r = vec![(task(), Everyone)];
            r.extend(coach_id.iter().map(|c| (coach(c), Everyone)));
            r
        }
        K::TaskReassigned {
            from_coach_id,
            to_coach_id,
            ..
        } => {
            let mut r = vec![(task(), Everyone), (coach(from_coach_id), Everyone)];
            r.extend(to_coach_id.iter().map(|c| (coach(c), Everyone)));
            r
        }
        K::PaymentHeld { .. } | K::PaymentRefunded { .. } => vec![(task(), Privileged)],
        K::PaymentReleased { coach_id, .. } => {
            vec![(task(), Privileged), (coach(coach_id), Everyone)]
        }
        K::TaskUnfilled { .. } => vec![],
        K::BiddingClosed { .. } | K::CoachUpserted { .. } | K::TasksArchived { .. } => {
            unreachable!("not rendered")
        }
    }
}

/// The task whose `task:<id>` topic `event` is delivered to, if any: the `Topic::Task` of
/// [`deliveries`], found without rendering the event (the journal indexes each task's history
/// by it when a batch is appended).
pub fn task_topic(event: &Event) -> Option<TaskId> {
    let task_id = rendered_task(&event.kind)?;
    routes(&event.kind, task_id)
        .into_iter()
        .find_map(|(topic, _)| match topic {
            Topic::Task(id) => Some(id),
            _ => None,
        })
}

/// The task of an event that is rendered on the wire (`None` for bookkeeping events).
fn rendered_task(kind: &EventKind) -> Option<&TaskId> {
    use EventKind as K;
    match kind {
        K::BiddingClosed { .. } | K::CoachUpserted { .. } | K::TasksArchived { .. } => None,
        _ => kind.task_id(),
    }
}

/// The wire payload and task of an event, or `None` for bookkeeping events.
fn payload(kind: &EventKind) -> Option<(P, TaskId)> {
    use EventKind as K;
    let task_id = rendered_task(kind)?.clone();
    let p = match kind {
        K::TaskOpened {
            task,
            bidding_closes_at,
            bid_count,
            ..
        } => P::TaskOpened {
            task: FeedTask {
                task_id: task.task_id.clone(),
                task_type: task.task_type.clone(),
                urgency: task.urgency,
                suggested_price: task.suggested_price,
                price_range: task.price_range,
                bid_count: *bid_count,
                bidding_closes_at: *bidding_closes_at,
                created_at: task.created_at,
                my_bid: None,
            },
        },
        K::BidCount { bid_count, .. } => P::TaskBidCount {
            bid_count: *bid_count,
        },
        K::TaskClosed { status, .. } => P::TaskClosed { status: *status },
        K::BiddingClosed { .. } | K::CoachUpserted { .. } | K::TasksArchived { .. } => return None,
        K::BidPlaced { bid } => P::BidPlaced { bid: bid.clone() },
        K::BidUpdated { bid } => P::BidUpdated { bid: bid.clone() },
        K::BidWithdrawn {
            bid_id, coach_id, ..
        } => P::BidWithdrawn {
            bid_id: bid_id.clone(),
            coach_id: coach_id.clone(),
        },
        K::BidAccepted {
            bid_id, coach_id, ..
        } => P::BidAccepted {
            bid_id: bid_id.clone(),
            coach_id: coach_id.clone(),
        },
        K::BidRejected {
            bid_id, coach_id, ..
        } => P::BidRejected {
            bid_id: bid_id.clone(),
            coach_id: coach_id.clone(),
        },
        K::TaskAssigned {
            coach_id,
            bid_id,
            amount,
            deadline,
            on_call,
            ..
        } => P::TaskAssigned {
            coach_id: coach_id.clone(),
            bid_id: bid_id.clone(),
            amount: *amount,
            deadline: *deadline,
            on_call: *on_call,
        },
        K::TaskStarted { .. } => P::TaskStarted {},
        K::TaskSubmitted { notes, .. } => P::TaskSubmitted {
            notes: notes.clone(),
        },
        K::ChangesRequested {
            reason, revisions, ..
        } => P::TaskChangesRequested {
            reason: reason.clone(),
            revisions: *revisions,
        },
        K::TaskDisputed { .. } => P::TaskDisputed {},
        K::TaskCompleted {
            coach_amount,
            platform_fee,
            rating,
            ..
        } => P::TaskCompleted {
            coach_amount: *coach_amount,
            platform_fee: *platform_fee,
            rating: *rating,
        },
        K::TaskCanceled { reason, .. } => P::TaskCanceled {
            reason: reason.clone(),
        },
        K::TaskUnfilled { .. } => P::TaskUnfilled {},
        K::TaskReminder { deadline, .. } => P::TaskReminder {
            deadline: *deadline,
        },
        K::TaskReassigned {
            from_coach_id,
            to_coach_id,
            ..
        } => P::TaskReassigned {
            from_coach_id: from_coach_id.clone(),
            to_coach_id: to_coach_id.clone(),
        },
        K::TaskMessage { from, text, .. } => P::TaskMessage {
            from: from.clone(),
            text: text.clone(),
        },
        K::PaymentHeld { amount, .. } => P::PaymentHeld { amount: *amount },
        K::PaymentReleased {
            coach_amount,
            platform_fee,
            ..
        } => P::PaymentReleased {
            coach_amount: *coach_amount,
            platform_fee: *platform_fee,
        },
        K::PaymentRefunded { amount, .. } => P::PaymentRefunded { amount: *amount },
        K::PaymentFailed { .. } => P::PaymentFailed {},
    };
    Some((p, task_id))
}
