//! Resolving abstract steps against the live engine: which task or bid a step names, who sends
//! it, and the amounts and ETAs it carries — mostly sensible, sometimes wrong on purpose.

use gavel_engine::state::Task;
use gavel_engine::{Actor, Command, Engine};
use gavel_protocol::command as wire;
use gavel_protocol::http::CoachUpsert;
use gavel_protocol::{
    Award, BidId, BidStatus, DisputeOutcome, Millis, Role, TaskId, TaskStatus, Urgency,
};

use crate::cast::{REGISTRABLE, SEEKERS, actor, admin, anyone, user};
use crate::stream::{Op, Pick, Who};

fn missing_task() -> TaskId {
    TaskId::new("t_missing").expect("valid id")
}

fn missing_bid() -> BidId {
    BidId::new("b_missing").expect("valid id")
}

/// Another spelling of an existing bid's number (`b_07` for `b_7`): a bid that does not
/// exist, though its number does.
fn respelled(bid: &BidId) -> BidId {
    let number = bid
        .as_str()
        .strip_prefix("b_")
        .expect("engine bid ids are b_<n>");
    BidId::new(&format!("b_0{number}")).expect("valid id")
}

/// Tasks sorted by id (the map's own order is not deterministic across engines).
fn sorted_tasks(engine: &Engine) -> Vec<TaskId> {
    let mut ids: Vec<TaskId> = engine.state().tasks.keys().cloned().collect();
    ids.sort();
    ids
}

/// Picks a task: one that suits the command three times in four (when there is one), an id
/// that does not exist one time in sixteen, else any task.
fn pick_task(engine: &Engine, p: Pick, suits: impl Fn(&Task) -> bool) -> TaskId {
    let all = sorted_tasks(engine);
    let n = usize::from(p.0 / 16);
    if p.0.is_multiple_of(16) || all.is_empty() {
        return missing_task();
    }
    let fitting: Vec<&TaskId> = all
        .iter()
        .filter(|id| suits(&engine.state().tasks[*id]))
        .collect();
    if p.0 % 4 != 1 && !fitting.is_empty() {
        return fitting[n % fitting.len()].clone();
    }
    all[n % all.len()].clone()
}

/// Tasks in one of these states.
fn status_in(statuses: &[TaskStatus]) -> impl Fn(&Task) -> bool + '_ {
    move |t| statuses.contains(&t.status)
}

/// Bid ids sorted (with their task), pending ones first when `pending_first`.
fn sorted_bids(engine: &Engine) -> Vec<(BidId, TaskId)> {
    let mut bids: Vec<(BidId, TaskId)> = engine
        .state()
        .bid_tasks
        .iter()
        .map(|(b, t)| (b.clone(), t.clone()))
        .collect();
    bids.sort();
    bids
}

fn bid_status(engine: &Engine, bid: &BidId) -> Option<BidStatus> {
    let task = engine.state().bid_tasks.get(bid)?;
    Some(engine.state().tasks[task].bids[bid].view.status)
}

/// Picks a bid: a pending one three times in four (when there is one), a missing id one time
/// in sixteen (half of those another spelling of an existing bid's number), else any bid
/// ever placed.
fn pick_bid(engine: &Engine, p: Pick) -> BidId {
    let all = sorted_bids(engine);
    let n = usize::from(p.0 / 16);
    if p.0.is_multiple_of(16) || all.is_empty() {
        return match all.get(n / 2 % all.len().max(1)) {
            Some((bid, _)) if n % 2 == 1 => respelled(bid),
            _ => missing_bid(),
        };
    }
    let pending: Vec<&BidId> = all
        .iter()
        .map(|(b, _)| b)
        .filter(|b| bid_status(engine, b) == Some(BidStatus::Pending))
        .collect();
    if p.0 % 4 != 1 && !pending.is_empty() {
        return pending[n % pending.len()].clone();
    }
    all[n % all.len()].0.clone()
}

/// The natural sender most of the time (`who < 200`), else anyone.
fn sender(w: Who, natural: Option<Actor>) -> Actor {
    match natural {
        Some(a) if w.0 < 200 => a,
        _ => anyone(w.0),
    }
}

fn owner_of(engine: &Engine, task: &TaskId) -> Option<Actor> {
    let t = engine.state().tasks.get(task)?;
    Some(Actor::new(t.spec.owner.clone(), Role::Seeker))
}

fn coach_of(engine: &Engine, task: &TaskId) -> Option<Actor> {
    let t = engine.state().tasks.get(task)?;
    t.coach().map(|c| Actor::new(c.clone(), Role::Coach))
}

/// A coach to bid as: most of the time a coach that may bid (registered, verified, not
/// suspended, not the owner) if there is one; sometimes any registrable coach (maybe
/// unverified or suspended), the unregistered one, the owner itself, or someone with the
/// wrong role.
fn bidder(engine: &Engine, w: Who, task: &TaskId) -> Actor {
    let owner = engine.state().tasks.get(task).map(|t| t.spec.owner.clone());
    let not_owner = |c: &&str| owner.as_ref().is_none_or(|o| o.as_str() != *c);
    let able: Vec<&str> = REGISTRABLE
        .iter()
        .copied()
        .filter(not_owner)
        .filter(|c| {
            engine
                .state()
                .coaches
                .get(&user(c))
                .is_some_and(|c| c.in_good_standing())
        })
        .collect();
    match w.0 {
        0..=179 if !able.is_empty() => actor(able[usize::from(w.0) % able.len()], Role::Coach),
        0..=219 => {
            let candidates: Vec<&str> = REGISTRABLE.iter().copied().filter(not_owner).collect();
            actor(candidates[usize::from(w.0) % candidates.len()], Role::Coach)
        }
        220..=229 => actor("c_unreg", Role::Coach),
        230..=239 => owner_of(engine, task)
            .map(|a| Actor::new(a.user, Role::Coach))
            .unwrap_or_else(|| actor("c1", Role::Coach)),
        _ => anyone(w.0),
    }
}

/// A bid amount: in the task's range nine times in ten (spread over it), else just outside.
fn amount(engine: &Engine, task: &TaskId, a: u16) -> u64 {
    let [min, max] = engine
        .state()
        .tasks
        .get(task)
        .map_or([2500, 5000], |t| t.spec.price_range);
    match a % 20 {
        0 => min.saturating_sub(1),
        1 => max + 1,
        _ => min + u64::from(a) * (max - min) / u64::from(u16::MAX),
    }
}

/// An `eta_hours`: within the tier's window mostly, sometimes 0 or one past it.
fn eta(engine: &Engine, task: &TaskId, e: u8) -> u32 {
    let window = engine.state().tasks.get(task).map_or(24, |t| {
        engine.config().tiers.get(t.spec.urgency).delivery_hours
    });
    match e % 16 {
        0 => 0,
        1 => window + 1,
        _ => 1 + u32::from(e) % window,
    }
}

const ACTIVE: &[TaskStatus] = &[TaskStatus::Assigned, TaskStatus::InProgress];

/// The request for `op` against the engine as it is now (`None` for [`Op::Fire`]).
pub(crate) fn resolve(engine: &Engine, op: &Op, now: Millis) -> Option<(Actor, Command)> {
    use TaskStatus::*;
    let e = engine;
    Some(match op {
        Op::Fire => return None,
        Op::Post {
            who,
            urgency,
            base_price,
            award,
            explicit_id,
        } => {
            let seeker = actor(SEEKERS[usize::from(who.0) % SEEKERS.len()], Role::Seeker);
            let (sender, owner) = match who.0 {
                0..=199 => (seeker, None),
                200..=219 => (admin(), Some(seeker.user.clone())),
                220..=229 => (admin(), None), // refused: an admin must name the owner
                230..=239 => (seeker, Some(user("s1"))), // refused unless it is s1
                _ => (anyone(who.0), None),
            };
            let c = wire::PostTask {
                resume_id: format!("resume-{}", who.0),
                task_type: (who.0 % 3 == 0).then(|| "linkedin_review".to_owned()),
                urgency: Urgency::ALL[usize::from(*urgency) % 3],
                base_price: *base_price,
                award: award.map(|auto| if auto { Award::Auto } else { Award::Manual }),
                // Client-chosen ids: some collide with server-chosen `t_<n>` ones.
                task_id: explicit_id.map(|n| {
                    TaskId::new(&if n % 2 == 0 {
                        format!("t_{}", n / 2)
                    } else {
                        format!("mine-{n}")
                    })
                    .expect("valid id")
                }),
                owner,
            };
            (sender, Command::PostTask(c))
        }
        Op::Bid {
            who,
            task,
            amount: a,
            eta: h,
        } => {
            // Open tasks whose window is still open at `now`, mostly.
            let task_id = pick_task(e, *task, |t| {
                t.status == Open && !t.awaiting_owner && t.bidding_closes_at > now
            });
            let c = wire::PlaceBid {
                amount: amount(e, &task_id, *a),
                eta_hours: eta(e, &task_id, *h),
                task_id: task_id.clone(),
            };
            (bidder(e, *who, &task_id), Command::PlaceBid(c))
        }
        Op::Withdraw { who, bid } => {
            let bid_id = pick_bid(e, *bid);
            let natural = e.state().bid_tasks.get(&bid_id).and_then(|t| {
                let coach = e.state().tasks[t].bids.get(&bid_id)?.view.coach_id.clone();
                Some(Actor::new(coach, Role::Coach))
            });
            (
                sender(*who, natural),
                Command::WithdrawBid(wire::WithdrawBid { bid_id }),
            )
        }
        Op::Accept { who, task, bid } => {
            let task_id = pick_task(e, *task, |t| t.status == Open && t.bid_count() > 0);
            // Mostly one of the task's own bids (pending first), sometimes any bid at all.
            let own: Vec<BidId> = e.state().tasks.get(&task_id).map_or(Vec::new(), |t| {
                let mut ids: Vec<(bool, BidId)> = t
                    .bids
                    .values()
                    .map(|b| (b.view.status != BidStatus::Pending, b.view.bid_id.clone()))
                    .collect();
                ids.sort();
                ids.into_iter().map(|(_, id)| id).collect()
            });
            let bid_id = if bid.0 % 8 != 0 && !own.is_empty() {
                // Bias to the best-ranked or first pending bids.
                own[usize::from(bid.0 / 8) % own.len().min(3)].clone()
            } else {
                pick_bid(e, *bid)
            };
            (
                sender(*who, owner_of(e, &task_id)),
                Command::AcceptBid(wire::AcceptBid { task_id, bid_id }),
            )
        }
        Op::Start { who, task } => {
            let task_id = pick_task(e, *task, status_in(&[Assigned]));
            (
                sender(*who, coach_of(e, &task_id)),
                Command::StartWork(wire::StartWork { task_id }),
            )
        }
        Op::Submit { who, task, notes } => {
            let task_id = pick_task(e, *task, status_in(&[InProgress]));
            (
                sender(*who, coach_of(e, &task_id)),
                Command::SubmitVerification(wire::SubmitVerification {
                    task_id,
                    notes: notes.then(|| "done, see comments".to_owned()),
                }),
            )
        }
        Op::AcceptVerification { who, task, rating } => {
            let task_id = pick_task(e, *task, status_in(&[Submitted]));
            (
                sender(*who, owner_of(e, &task_id)),
                Command::AcceptVerification(wire::AcceptVerification {
                    task_id,
                    rating: *rating,
                }),
            )
        }
        Op::RequestChanges { who, task } => {
            let task_id = pick_task(e, *task, status_in(&[Submitted]));
            (
                sender(*who, owner_of(e, &task_id)),
                Command::RequestChanges(wire::RequestChanges {
                    task_id,
                    reason: "please expand the summary".to_owned(),
                }),
            )
        }
        Op::Cancel {
            who,
            task,
            by_admin,
        } => {
            let preferred: &[TaskStatus] = if *by_admin {
                &[Open, Assigned, InProgress, Submitted, Disputed]
            } else {
                &[Open, Assigned]
            };
            let task_id = pick_task(e, *task, status_in(preferred));
            let natural = if *by_admin {
                Some(admin())
            } else {
                owner_of(e, &task_id)
            };
            (
                sender(*who, natural),
                Command::CancelTask(wire::CancelTask {
                    task_id,
                    reason: (who.0 % 2 == 0).then(|| "no longer needed".to_owned()),
                }),
            )
        }
        Op::Resolve { who, task, release } => {
            let task_id = pick_task(e, *task, status_in(&[Disputed]));
            (
                sender(*who, Some(admin())),
                Command::ResolveDispute(wire::ResolveDispute {
                    task_id,
                    outcome: if *release {
                        DisputeOutcome::Release
                    } else {
                        DisputeOutcome::Refund
                    },
                }),
            )
        }
        Op::Message { who, task } => {
            let task_id = pick_task(e, *task, status_in(ACTIVE));
            let natural = if who.0 % 2 == 0 {
                owner_of(e, &task_id)
            } else {
                coach_of(e, &task_id)
            };
            (
                sender(*who, natural),
                Command::SendMessage(wire::SendMessage {
                    task_id,
                    text: "hello".to_owned(),
                }),
            )
        }
        Op::Upsert {
            who,
            coach,
            rating_tenths,
            verified,
            on_call,
            capacity,
            suspended,
        } => {
            let coach_id = user(REGISTRABLE[usize::from(*coach) % REGISTRABLE.len()]);
            let profile = CoachUpsert {
                ratings_count: 0,
                display_name: format!("Coach {coach_id}"),
                rating: f64::from(*rating_tenths) / 10.0,
                verified: *verified,
                on_call: *on_call,
                capacity: *capacity,
                suspended: *suspended,
            };
            (
                sender(*who, Some(admin())),
                Command::UpsertCoach { coach_id, profile },
            )
        }
        Op::PaymentFailed { who, task } => {
            let task_id = pick_task(e, *task, status_in(&[Assigned]));
            (
                sender(*who, Some(admin())),
                Command::PaymentFailed { task_id },
            )
        }
    })
}
