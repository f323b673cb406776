//! `decide`: validates, authorizes and turns one command into events, or refuses it. Reads
//! the state, never changes it.
//!
//! Who may act on a task follows contract §3/§4; a task that does not exist is `NOT_FOUND`
//! to an admin and `FORBIDDEN` to everyone else, so task ids cannot be probed.
//!
//! Posting, bidding and awarding are here; the commands about a task's work after its award
//! (verification, changes, cancel, dispute, messages, payment refusal) are in `decide/work.rs`.

use gavel_protocol::command as wire;
use gavel_protocol::http::CoachUpsert;
use gavel_protocol::views::{BidView, CoachView, Empty, PlaceBidResult, PostTaskResult};
use gavel_protocol::{Award, BidStatus, Cents, Millis, Role, TaskId, TaskStatus, UserId};

use crate::award::award;
use crate::command::{Actor, Command, Request};
use crate::engine::{Decision, Engine};
use crate::event::{EventKind, TaskSpec};
use crate::ids;
use crate::ranking::score;
use crate::rejection::Rejection;
use crate::reply::Reply;
use crate::state::Task;
use crate::tiers::DEFAULT_BASE_PRICE;

mod work;

/// The task type of a task posted without one.
pub const DEFAULT_TASK_TYPE: &str = "resume_review_full";
/// Change requests after which a task is disputed.
pub const REVISIONS_TO_DISPUTE: u32 = 3;
/// The coach's share of a released escrow, in percent.
pub const COACH_SHARE_PERCENT: Cents = 85;
/// The most bids one coach may place on one task, withdrawn and rejected ones included (an
/// update of its pending bid is not a new one). A task keeps every bid placed on it and each
/// bid scans them: without a bound, one coach bidding and withdrawing in a loop made every
/// bid on that task slower for everyone (quadratic; 1.7 ms per bid at 100,000).
pub const MAX_BIDS_PER_COACH_AND_TASK: usize = 10;

/// `coach_amount = amount × 85 / 100` (integer division), `platform_fee = amount - coach_amount`.
pub fn split_payment(amount: Cents) -> (Cents, Cents) {
    let coach = amount * COACH_SHARE_PERCENT / 100;
    (coach, amount - coach)
}

/// A decision about the task `owner` owns (`None`: about no task), so that executing it
/// needs no second lookup of the task's owner.
fn decided(
    owner: Option<&UserId>,
    events: Vec<EventKind>,
    reply: Reply,
) -> Result<Decision, Rejection> {
    Ok(Decision {
        events,
        reply,
        owner: owner.cloned(),
    })
}

fn empty() -> Reply {
    Reply::Empty(Empty {})
}

impl Engine {
    /// Decides `request` at `now` (deadlines due at `now` must already have fired).
    pub fn decide(&self, request: &Request, now: Millis) -> Result<Decision, Rejection> {
        let actor = &request.actor;
        match &request.command {
            Command::PostTask(c) => self.post_task(c, actor, now),
            Command::PlaceBid(c) => self.place_bid(c, actor, now),
            Command::WithdrawBid(c) => self.withdraw_bid(c, actor),
            Command::AcceptBid(c) => self.accept_bid(c, actor, now),
            Command::StartWork(c) => {
                let task = self.assigned_coach_task(&c.task_id, actor)?;
                require_status(
                    task,
                    &[TaskStatus::Assigned],
                    "start_work needs an assigned task",
                )?;
                decided(
                    Some(&task.spec.owner),
                    vec![EventKind::TaskStarted {
                        task_id: c.task_id.clone(),
                        coach_id: actor.user.clone(),
                    }],
                    empty(),
                )
            }
            Command::SubmitVerification(c) => {
                let task = self.assigned_coach_task(&c.task_id, actor)?;
                require_status(
                    task,
                    &[TaskStatus::InProgress],
                    "submit after start_work, while in progress",
                )?;
                let kind = EventKind::TaskSubmitted {
                    task_id: c.task_id.clone(),
                    coach_id: actor.user.clone(),
                    notes: c.notes.clone(),
                };
                decided(Some(&task.spec.owner), vec![kind], empty())
            }
            Command::AcceptVerification(c) => self.accept_verification(c, actor),
            Command::RequestChanges(c) => self.request_changes(c, actor),
            Command::CancelTask(c) => self.cancel_task(c, actor),
            Command::ResolveDispute(c) => self.resolve_dispute(c, actor),
            Command::SendMessage(c) => self.send_message(c, actor),
            Command::UpsertCoach { coach_id, profile } => {
                self.upsert_coach(coach_id, profile, actor)
            }
            Command::PaymentFailed { task_id } => self.payment_failed(task_id, actor, now),
        }
    }

    /// The task, if the actor may know it exists (admins always; others only as owner or
    /// assigned coach — and coaches for open tasks, which the feed shows anyway).
    fn visible_task(&self, id: &TaskId, actor: &Actor) -> Result<&Task, Rejection> {
        match self.state.tasks.get(id) {
            Some(task) => Ok(task),
            None if actor.is_admin() => {
                Err(Rejection::not_found(format!("task {id} does not exist")))
            }
            None => Err(Rejection::forbidden(format!("no access to task {id}"))),
        }
    }

    fn owned_task(&self, id: &TaskId, actor: &Actor) -> Result<&Task, Rejection> {
        let task = self.visible_task(id, actor)?;
        if task.spec.owner != actor.user || actor.role != Role::Seeker {
            return Err(Rejection::forbidden(format!(
                "only the owner of task {id} may do this"
            )));
        }
        Ok(task)
    }

    fn assigned_coach_task(&self, id: &TaskId, actor: &Actor) -> Result<&Task, Rejection> {
        let task = self.visible_task(id, actor)?;
        if actor.role != Role::Coach || task.coach() != Some(&actor.user) {
            return Err(Rejection::forbidden(format!(
                "only the coach assigned to task {id} may do this"
            )));
        }
        Ok(task)
    }

    fn post_task(
        &self,
        c: &wire::PostTask,
        actor: &Actor,
        now: Millis,
    ) -> Result<Decision, Rejection> {
        let owner = match actor.role {
            Role::Coach => return Err(Rejection::forbidden("coaches cannot post tasks")),
            Role::Seeker => match &c.owner {
                Some(owner) if *owner != actor.user => {
                    return Err(Rejection::forbidden("a seeker posts tasks only for itself"));
                }
                _ => actor.user.clone(),
            },
            Role::Admin => c.owner.clone().ok_or_else(|| {
                Rejection::invalid("owner", "owner is required when an admin posts a task")
            })?,
        };
        let task_id = match &c.task_id {
            Some(id) if self.state.task_id_taken(id) => {
                return Err(Rejection::conflict(format!("task {id} already exists")));
            }
            Some(id) => id.clone(),
            None => (self.state.next_task_no..=u64::MAX)
                .map(ids::task_id)
                .find(|id| !self.state.task_id_taken(id))
                .ok_or_else(|| Rejection::conflict("no server-chosen task id is free"))?,
        };
        let tier = self.config.tiers.get(c.urgency);
        let base_price = c.base_price.unwrap_or(DEFAULT_BASE_PRICE);
        let task_type = c.task_type.as_deref().unwrap_or(DEFAULT_TASK_TYPE);
        let suggested_price = self.suggested_price(task_type, c.urgency, c.base_price);
        let spec = TaskSpec {
            task_id: task_id.clone(),
            owner,
            resume_id: c.resume_id.clone(),
            task_type: task_type.to_owned(),
            urgency: c.urgency,
            award: c.award.unwrap_or(Award::Manual),
            base_price,
            suggested_price,
            price_range: [suggested_price, 2 * suggested_price],
            created_at: now,
        };
        let bidding_closes_at = now + tier.bidding_ms();
        let reply = Reply::PostTask(PostTaskResult {
            task_id,
            suggested_price: spec.suggested_price,
            price_range: spec.price_range,
            bidding_closes_at,
        });
        let posted_by = spec.owner.clone();
        let opened = EventKind::TaskOpened {
            task: Box::new(spec),
            bidding_closes_at,
            bid_count: 0,
            reopened: false,
        };
        decided(Some(&posted_by), vec![opened], reply)
    }

    fn place_bid(
        &self,
        c: &wire::PlaceBid,
        actor: &Actor,
        now: Millis,
    ) -> Result<Decision, Rejection> {
        if actor.role != Role::Coach {
            return Err(Rejection::forbidden("only coaches bid"));
        }
        let coach = self
            .state
            .coaches
            .get(&actor.user)
            .ok_or_else(|| Rejection::forbidden("this coach is not registered"))?;
        if !coach.profile.verified {
            return Err(Rejection::forbidden("this coach is not verified"));
        }
        if coach.profile.suspended {
            return Err(Rejection::forbidden("this coach is suspended"));
        }
        let task = self.visible_task(&c.task_id, actor)?;
        if task.spec.owner == actor.user {
            return Err(Rejection::forbidden("a coach cannot bid on its own task"));
        }
        if task.status != TaskStatus::Open {
            return Err(Rejection::conflict(format!(
                "task {} is {}, not open",
                c.task_id, task.status
            )));
        }
        if task.awaiting_owner || now >= task.bidding_closes_at {
            return Err(Rejection::conflict(format!(
                "the bidding window of task {} has closed",
                c.task_id
            )));
        }
        let [min, max] = task.spec.price_range;
        if !(min..=max).contains(&c.amount) {
            return Err(Rejection::invalid(
                "amount",
                format!("amount must be within {min}..{max}"),
            ));
        }
        let window_h = self.config.tiers.get(task.spec.urgency).delivery_hours;
        if !(1..=window_h).contains(&c.eta_hours) {
            return Err(Rejection::invalid(
                "eta_hours",
                format!("eta_hours must be within 1..{window_h}"),
            ));
        }
        let score = score(
            c.amount,
            task.spec.price_range,
            coach.profile.rating_centi,
            c.eta_hours,
            window_h,
        );
        let (pending, placed) = task.bids.of_coach(coach.no);
        if let Some(old) = pending {
            let old = &old.view;
            let bid_id = &old.bid_id;
            let bid = BidView {
                amount: c.amount,
                eta_hours: c.eta_hours,
                score,
                coach: Some(coach.summary()),
                ..old.clone()
            };
            let reply = Reply::PlaceBid(PlaceBidResult {
                bid_id: bid_id.clone(),
            });
            return decided(
                Some(&task.spec.owner),
                vec![EventKind::BidUpdated { bid }],
                reply,
            );
        }
        if placed >= MAX_BIDS_PER_COACH_AND_TASK {
            return Err(Rejection::conflict(format!(
                "a coach may place at most {MAX_BIDS_PER_COACH_AND_TASK} bids on one task \
                 (withdrawn ones count); update the pending one instead"
            )));
        }
        let bid_id = ids::bid_id(self.state.next_bid_no);
        // The ids the state already holds, not the request's copies: the stored bid keeps
        // them for as long as the task is in memory (one allocation per task and per coach,
        // not one more per bid), and `evolve` finds the task by a pointer compare.
        let bid = BidView {
            bid_id: bid_id.clone(),
            task_id: task.spec.task_id.clone(),
            coach_id: coach.profile.coach_id.clone(),
            amount: c.amount,
            eta_hours: c.eta_hours,
            score,
            status: BidStatus::Pending,
            created_at: now,
            coach: Some(coach.summary()),
        };
        let count = EventKind::BidCount {
            task_id: task.spec.task_id.clone(),
            bid_count: task.bid_count() + 1,
        };
        decided(
            Some(&task.spec.owner),
            vec![EventKind::BidPlaced { bid }, count],
            Reply::PlaceBid(PlaceBidResult { bid_id }),
        )
    }

    fn withdraw_bid(&self, c: &wire::WithdrawBid, actor: &Actor) -> Result<Decision, Rejection> {
        let not_found = || Rejection::not_found(format!("bid {} does not exist", c.bid_id));
        let task_id = self.state.bid_tasks.get(&c.bid_id).ok_or_else(not_found)?;
        let task = &self.state.tasks[task_id];
        let bid = &task.bids.get(&c.bid_id).ok_or_else(not_found)?.view;
        if bid.coach_id != actor.user || actor.role != Role::Coach {
            return Err(Rejection::forbidden("only the bid's coach may withdraw it"));
        }
        if bid.status != BidStatus::Pending {
            return Err(Rejection::conflict(format!(
                "bid {} is {}, not pending",
                c.bid_id, bid.status
            )));
        }
        let events = vec![
            EventKind::BidWithdrawn {
                task_id: task_id.clone(),
                bid_id: c.bid_id.clone(),
                coach_id: actor.user.clone(),
            },
            EventKind::BidCount {
                task_id: task_id.clone(),
                bid_count: task.bid_count() - 1,
            },
        ];
        decided(Some(&task.spec.owner), events, empty())
    }

    fn accept_bid(
        &self,
        c: &wire::AcceptBid,
        actor: &Actor,
        now: Millis,
    ) -> Result<Decision, Rejection> {
        let task = self.owned_task(&c.task_id, actor)?;
        require_status(task, &[TaskStatus::Open], "only an open task accepts a bid")?;
        let bid = task.bids.get(&c.bid_id).ok_or_else(|| {
            Rejection::not_found(format!("task {} has no bid {}", c.task_id, c.bid_id))
        })?;
        if bid.view.status != BidStatus::Pending {
            return Err(Rejection::conflict(format!(
                "bid {} is {}, not pending",
                c.bid_id, bid.view.status
            )));
        }
        let coach = self.state.coaches.get(&bid.view.coach_id);
        if !coach.is_some_and(|c| c.in_good_standing()) {
            return Err(Rejection::conflict(format!(
                "coach {} can no longer take tasks",
                bid.view.coach_id
            )));
        }
        let (events, result) = award(task, bid, now);
        decided(Some(&task.spec.owner), events, Reply::AcceptBid(result))
    }

    fn upsert_coach(
        &self,
        coach_id: &UserId,
        p: &CoachUpsert,
        actor: &Actor,
    ) -> Result<Decision, Rejection> {
        if !actor.is_admin() {
            return Err(Rejection::forbidden("only admins register coaches"));
        }
        let existing = self.state.coaches.get(coach_id);
        // Lifting a suspension forgives the strikes that caused it.
        let strikes = match existing {
            Some(c) if c.profile.suspended && !p.suspended => 0,
            Some(c) => c.profile.strikes,
            None => 0,
        };
        let coach = CoachView {
            coach_id: coach_id.clone(),
            display_name: p.display_name.as_str().into(),
            rating_centi: p.rating_centi(),
            rating: p.rating_centi(),
            ratings_count: p.ratings_count,
            completed: existing.map_or(0, |c| c.profile.completed),
            verified: p.verified,
            on_call: p.on_call,
            capacity: p.capacity,
            suspended: p.suspended,
            strikes,
            active: existing.map_or(0, |c| c.assignments.len() as u32),
        };
        decided(
            None,
            vec![EventKind::CoachUpserted {
                coach: coach.clone(),
            }],
            Reply::Coach(coach),
        )
    }
}

fn require_status(task: &Task, allowed: &[TaskStatus], why: &str) -> Result<(), Rejection> {
    if allowed.contains(&task.status) {
        Ok(())
    } else {
        Err(Rejection::conflict(format!(
            "task {} is {}: {why}",
            task.spec.task_id, task.status
        )))
    }
}
