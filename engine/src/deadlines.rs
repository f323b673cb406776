//! What happens when a deadline passes (contract §5): the bidding window closes (award, go on
//! call, or start a new window), the coach is reminded, or an overdue task is reassigned.

use gavel_protocol::{Award, Cents, Millis, TaskId, TaskStatus, UserId};

use crate::award::{award, reject_pending, void_award};
use crate::engine::Engine;
use crate::event::EventKind;
use crate::state::Task;
use crate::tasks::TaskHandle;
use crate::timers::{Deadline, DeadlineKind};

/// `round(suggested_price × 1.2)`: what an on-call coach is paid for an unbid task.
pub fn on_call_price(suggested: Cents) -> Cents {
    (suggested * 12 + 5) / 10
}

/// The events of one deadline passing: most often one (a window that closes unbid opens the
/// next, a reminder) — held without allocating — else several.
#[derive(Debug)]
pub(crate) enum DeadlineEvents {
    One(EventKind),
    Many(Vec<EventKind>),
}

impl DeadlineEvents {
    pub(crate) fn as_slice(&self) -> &[EventKind] {
        match self {
            DeadlineEvents::One(kind) => std::slice::from_ref(kind),
            DeadlineEvents::Many(kinds) => kinds,
        }
    }
}

impl From<Vec<EventKind>> for DeadlineEvents {
    fn from(kinds: Vec<EventKind>) -> Self {
        DeadlineEvents::Many(kinds)
    }
}

impl IntoIterator for DeadlineEvents {
    type Item = EventKind;
    type IntoIter =
        std::iter::Chain<std::option::IntoIter<EventKind>, std::vec::IntoIter<EventKind>>;

    fn into_iter(self) -> Self::IntoIter {
        let (one, many) = match self {
            DeadlineEvents::One(kind) => (Some(kind), Vec::new()),
            DeadlineEvents::Many(kinds) => (None, kinds),
        };
        one.into_iter().chain(many)
    }
}

impl Engine {
    /// The events of `deadline` passing for the task at `handle` at `at`, and the owner of the
    /// task they concern. Never empty: each outcome moves or clears the deadline, so it fires
    /// once.
    pub(crate) fn decide_deadline(
        &self,
        handle: TaskHandle,
        deadline: Deadline,
        at: Millis,
        now: Millis,
    ) -> (DeadlineEvents, UserId) {
        let task = self.state.tasks.at(handle);
        let events = self.deadline_events(task, &task.spec.task_id, deadline, at, now);
        (events, task.spec.owner.clone())
    }

    fn deadline_events(
        &self,
        task: &Task,
        task_id: &TaskId,
        deadline: Deadline,
        at: Millis,
        now: Millis,
    ) -> DeadlineEvents {
        use DeadlineEvents::One;
        let tier = self.config.tiers.get(task.spec.urgency);
        match deadline.kind {
            DeadlineKind::BiddingCloses => {
                debug_assert_eq!(task.status, TaskStatus::Open);
                match task.spec.award {
                    Award::Manual if task.bid_count() > 0 => {
                        return One(EventKind::BiddingClosed {
                            task_id: task_id.clone(),
                        });
                    }
                    // The best bid `accept_bid` would take: its coach must still be verified
                    // and not suspended (it may have been suspended since it bid).
                    Award::Auto => {
                        let eligible = task.ranked_bids().find(|b| {
                            self.state
                                .coaches
                                .get(&b.view.coach_id)
                                .is_some_and(|c| c.in_good_standing())
                        });
                        if let Some(best) = eligible {
                            return award(task, best, at).0.into();
                        }
                    }
                    Award::Manual => {}
                }
                // No bid (or, on an auto task, none any longer acceptable): on call.
                match self.pick_on_call(&[&task.spec.owner]) {
                    Some(coach_id) => {
                        let amount = on_call_price(task.spec.suggested_price);
                        let mut events = reject_pending(task);
                        events.extend([
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
                        ]);
                        events.into()
                    }
                    None => One(EventKind::TaskUnfilled {
                        task_id: task_id.clone(),
                        bidding_closes_at: next_window_close(at, now, tier.bidding_ms()),
                    }),
                }
            }
            DeadlineKind::Reminder => {
                let a = task
                    .assigned
                    .as_ref()
                    .expect("a task with a reminder is assigned");
                One(EventKind::TaskReminder {
                    task_id: task_id.clone(),
                    coach_id: a.coach_id.clone(),
                    deadline: a.deadline,
                })
            }
            DeadlineKind::Overdue => {
                let a = task.assigned.as_ref().expect("an overdue task is assigned");
                let late = a.coach_id.clone();
                let events: Vec<EventKind> = match self.pick_on_call(&[&task.spec.owner, &late]) {
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
                    ]
                    .into_iter()
                    // The award is void: a reopened task must be able to accept a new bid.
                    .chain(void_award(task))
                    .chain([self.reopen(task, at)])
                    .collect(),
                };
                events.into()
            }
        }
    }

    /// The on-call coach to assign: on call, verified, not suspended, below capacity, not
    /// excluded; the fewest active tasks, then the highest rating, then the smallest id. The
    /// pool keeps exactly those coaches in exactly that order ([`crate::on_call`]), so this is
    /// O(log n) rather than a scan of every coach.
    pub fn pick_on_call(&self, exclude: &[&UserId]) -> Option<UserId> {
        self.state.on_call.pick(exclude).cloned()
    }
}

/// When the bidding window after one that closed unfilled at `at` ends: the first close on the
/// task's schedule (`at` + one window, + two, …) after `now`, the moment the deadline ran. A
/// close driven late by whole windows — the server was down, say — opens one window running
/// from now instead of closing every window it missed, one `task.unfilled` each in the same
/// instant, none of which anyone could bid in.
fn next_window_close(at: Millis, now: Millis, window: u64) -> Millis {
    let missed = now.saturating_sub(at).checked_div(window).unwrap_or(0);
    at.saturating_add(window.saturating_mul(missed.saturating_add(1)))
}

#[cfg(test)]
mod tests {
    use super::{next_window_close, on_call_price};

    #[test]
    fn a_late_close_opens_the_first_window_of_the_schedule_after_now() {
        assert_eq!(next_window_close(1_000, 1_000, 600), 1_600, "on time");
        assert_eq!(
            next_window_close(1_000, 1_599, 600),
            1_600,
            "late within a window"
        );
        assert_eq!(
            next_window_close(1_000, 1_600, 600),
            2_200,
            "a whole window late"
        );
        assert_eq!(next_window_close(1_000, 3_500, 600), 4_000);
        assert_eq!(next_window_close(1_000, 900, 600), 1_600, "now before at");
        assert_eq!(next_window_close(u64::MAX - 5, u64::MAX, 600), u64::MAX);
    }

    #[test]
    fn on_call_price_is_suggested_times_1_2_rounded() {
        assert_eq!(on_call_price(3750), 4500);
        assert_eq!(on_call_price(2500), 3000);
        assert_eq!(on_call_price(2003), 2404); // 2403.6 → 2404
        assert_eq!(on_call_price(2002), 2402); // 2402.4 → 2402
    }
}
