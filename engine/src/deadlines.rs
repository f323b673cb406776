//! What happens when a deadline passes (contract §5): the bidding window closes (award, go on
//! call, or start a new window), the coach is reminded, or an overdue task is reassigned.

use std::cmp::Reverse;

use gavel_protocol::{Award, Cents, Millis, TaskId, TaskStatus, UserId};

use crate::decide::award;
use crate::engine::Engine;
use crate::event::EventKind;
use crate::timers::{Deadline, DeadlineKind};

/// `round(suggested_price × 1.2)`: what an on-call coach is paid for an unbid task.
pub fn on_call_price(suggested: Cents) -> Cents {
    (suggested * 12 + 5) / 10
}

impl Engine {
    /// The events of `deadline` passing for `task_id` at `at`. Never empty: each outcome
    /// moves or clears the deadline, so it fires once.
    pub(crate) fn decide_deadline(
        &self,
        task_id: &TaskId,
        deadline: Deadline,
        at: Millis,
    ) -> Vec<EventKind> {
        let task = &self.state.tasks[task_id];
        let tier = self.config.tiers.get(task.spec.urgency);
        match deadline.kind {
            DeadlineKind::BiddingCloses => {
                debug_assert_eq!(task.status, TaskStatus::Open);
                if let Some(best) = task.ranked_bids().next() {
                    return match task.spec.award {
                        Award::Auto => award(task, best, at).0,
                        Award::Manual => vec![EventKind::BiddingClosed {
                            task_id: task_id.clone(),
                        }],
                    };
                }
                match self.pick_on_call(&[&task.spec.owner]) {
                    Some(coach_id) => {
                        let amount = on_call_price(task.spec.suggested_price);
                        vec![
                            EventKind::TaskAssigned {
                                task_id: task_id.clone(),
                                coach_id,
                                bid_id: None,
                                amount,
                                eta_hours: tier.delivery_hours,
                                deadline: at + tier.delivery_ms(),
                                on_call: true,
                            },
                            EventKind::PaymentHeld {
                                task_id: task_id.clone(),
                                amount,
                            },
                            EventKind::TaskClosed {
                                task_id: task_id.clone(),
                                status: TaskStatus::Assigned,
                            },
                        ]
                    }
                    None => vec![EventKind::TaskUnfilled {
                        task_id: task_id.clone(),
                        bidding_closes_at: at + tier.bidding_ms(),
                    }],
                }
            }
            DeadlineKind::Reminder => {
                let a = task
                    .assigned
                    .as_ref()
                    .expect("a task with a reminder is assigned");
                vec![EventKind::TaskReminder {
                    task_id: task_id.clone(),
                    coach_id: a.coach_id.clone(),
                    deadline: a.deadline,
                }]
            }
            DeadlineKind::Overdue => {
                let a = task.assigned.as_ref().expect("an overdue task is assigned");
                let late = a.coach_id.clone();
                match self.pick_on_call(&[&task.spec.owner, &late]) {
                    Some(to) => vec![
                        EventKind::TaskReassigned {
                            task_id: task_id.clone(),
                            from_coach_id: late,
                            to_coach_id: Some(to.clone()),
                        },
                        EventKind::TaskAssigned {
                            task_id: task_id.clone(),
                            coach_id: to,
                            bid_id: None,
                            amount: a.amount,
                            eta_hours: tier.delivery_hours,
                            deadline: at + tier.delivery_ms(),
                            on_call: true,
                        },
                    ],
                    None => vec![
                        EventKind::TaskReassigned {
                            task_id: task_id.clone(),
                            from_coach_id: late,
                            to_coach_id: None,
                        },
                        EventKind::PaymentRefunded {
                            task_id: task_id.clone(),
                            amount: task.held_now(),
                        },
                        self.reopen(task, at),
                    ],
                }
            }
        }
    }

    /// The on-call coach to assign: on call, verified, not suspended, below capacity, not
    /// excluded; the fewest active tasks, then the highest rating, then the smallest id.
    pub fn pick_on_call(&self, exclude: &[&UserId]) -> Option<UserId> {
        self.state
            .coaches
            .values()
            .filter(|c| {
                c.profile.on_call
                    && c.in_good_standing()
                    && (c.assignments.len() as u32) < c.profile.capacity
                    && !exclude.contains(&&c.profile.coach_id)
            })
            .min_by_key(|c| {
                (
                    c.assignments.len(),
                    Reverse(c.profile.rating_centi),
                    c.profile.coach_id.clone(),
                )
            })
            .map(|c| c.profile.coach_id.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::on_call_price;

    #[test]
    fn on_call_price_is_suggested_times_1_2_rounded() {
        assert_eq!(on_call_price(3750), 4500);
        assert_eq!(on_call_price(2500), 3000);
        assert_eq!(on_call_price(2003), 2404); // 2403.6 → 2404
        assert_eq!(on_call_price(2002), 2402); // 2402.4 → 2402
    }
}
