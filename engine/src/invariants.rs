//! `check_invariants`: what must hold after every event, whatever happened. Tests call it
//! after each step; a violation is a bug in `decide` or `evolve`.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use gavel_protocol::{BidStatus, TaskStatus, UserId};

use crate::coach::CoachNo;
use crate::engine::Engine;
use crate::listing::Listing;
use crate::on_call::OnCallPool;
use crate::state::State;
use crate::timers::DeadlineKind;

impl Engine {
    /// Checks every invariant; the error names the first one broken.
    pub fn check_invariants(&self) -> Result<(), String> {
        let s = &self.state;
        let mut by_status: BTreeMap<TaskStatus, u64> = BTreeMap::new();
        let mut deadlines = 0;
        for (id, t) in &s.tasks {
            *by_status.entry(t.status).or_default() += 1;
            let e = t.escrow;
            // Money is conserved: everything held is released, refunded or still held.
            let settled = e
                .released
                .checked_add(e.refunded)
                .ok_or("escrow overflow")?;
            let held_now = e
                .held
                .checked_sub(settled)
                .ok_or_else(|| format!("task {id}: released + refunded exceed held ({e:?})"))?;
            let expected_held = match t.status {
                TaskStatus::Assigned
                | TaskStatus::InProgress
                | TaskStatus::Submitted
                | TaskStatus::Disputed => {
                    t.assigned
                        .as_ref()
                        .ok_or_else(|| format!("task {id} is {} without a coach", t.status))?
                        .amount
                }
                _ => 0,
            };
            if held_now != expected_held {
                return Err(format!(
                    "task {id} ({}) holds {held_now}, expected {expected_held}",
                    t.status
                ));
            }
            let accepted = t
                .bids
                .values()
                .filter(|b| b.view.status == BidStatus::Accepted)
                .count();
            if accepted > 1 {
                return Err(format!("task {id} has {accepted} accepted bids"));
            }
            let pending = t
                .bids
                .values()
                .filter(|b| b.view.status == BidStatus::Pending)
                .count();
            let bidders: BTreeSet<&UserId> = t.bids.pending().map(|b| &b.view.coach_id).collect();
            if bidders.len() != pending {
                return Err(format!(
                    "task {id}: {pending} pending bids from {} coaches",
                    bidders.len()
                ));
            }
            if pending > 0 && t.status != TaskStatus::Open {
                return Err(format!(
                    "task {id} is {} with {pending} pending bids",
                    t.status
                ));
            }
            match (t.deadline, t.status) {
                (Some(d), status) => {
                    deadlines += 1;
                    let fits = match d.kind {
                        DeadlineKind::BiddingCloses => {
                            status == TaskStatus::Open && !t.awaiting_owner
                        }
                        DeadlineKind::Reminder | DeadlineKind::Overdue => {
                            matches!(status, TaskStatus::Assigned | TaskStatus::InProgress)
                        }
                    };
                    if !fits {
                        return Err(format!("task {id} ({status}) has a {:?} deadline", d.kind));
                    }
                    if !s.timers.contains(id, d.at) {
                        return Err(format!(
                            "task {id}'s deadline is missing from the timer index"
                        ));
                    }
                }
                (None, TaskStatus::Open) if !t.awaiting_owner => {
                    return Err(format!("open task {id} has no bidding deadline"));
                }
                (None, TaskStatus::Assigned) => {
                    return Err(format!("assigned task {id} has no delivery deadline"));
                }
                _ => {}
            }
            if (t.status == TaskStatus::Open) != s.open_tasks.contains(id) {
                return Err(format!(
                    "task {id}: open-task index disagrees with status {}",
                    t.status
                ));
            }
        }
        for (status, n) in &s.archived_by_status {
            *by_status.entry(*status).or_default() += n;
        }
        if by_status != s.tasks_by_status {
            return Err(format!(
                "status counts {:?} disagree with the tasks and the archived {by_status:?}",
                s.tasks_by_status
            ));
        }
        // Every final task in memory waits in `finals` exactly once, in the order it ended;
        // nothing else does.
        let finals: BTreeSet<_> = s.finals.iter().map(|(_, id)| id).collect();
        let in_memory_final = s.tasks.values().filter(|t| t.status.is_final()).count();
        if finals.len() != s.finals.len() || finals.len() != in_memory_final {
            return Err(format!(
                "{} archive queue entries ({} distinct) for {in_memory_final} final tasks",
                s.finals.len(),
                finals.len()
            ));
        }
        if let Some(id) = finals
            .iter()
            .find(|id| !s.tasks.get(id).is_some_and(|t| t.status.is_final()))
        {
            return Err(format!("task {id} waits for archiving but is not final"));
        }
        if !s
            .finals
            .iter()
            .zip(s.finals.iter().skip(1))
            .all(|(a, b)| a.0 <= b.0)
        {
            return Err("the archive queue is out of time order".into());
        }
        // Fewer distinct id hashes than archived tasks only on a hash collision; more never.
        let archived: u64 = s.archived_by_status.values().sum();
        if s.archived_ids.len() as u64 > archived {
            return Err("more archived ids than archived tasks".into());
        }
        if let Some(id) = s
            .tasks
            .keys()
            .find(|id| s.archived_ids.contains(&crate::state::archived_id_hash(id)))
        {
            return Err(format!("task {id} is both in memory and archived"));
        }
        if deadlines != s.timers.len() {
            return Err(format!(
                "{deadlines} task deadlines but the index counts {}",
                s.timers.len()
            ));
        }
        if s.open_by_urgency.total() != s.open_tasks.len() as u64 {
            return Err("open counts by urgency disagree with the open tasks".into());
        }
        check_coach_numbers(s)?;
        for (cid, coach) in &s.coaches {
            let holding: BTreeSet<_> = s
                .tasks
                .iter()
                .filter(|(_, t)| {
                    t.coach() == Some(cid)
                        && matches!(
                            t.status,
                            TaskStatus::Assigned
                                | TaskStatus::InProgress
                                | TaskStatus::Submitted
                                | TaskStatus::Disputed
                        )
                })
                .map(|(id, _)| id.clone())
                .collect();
            if holding != coach.assignments {
                return Err(format!(
                    "coach {cid} counts {:?} but holds {holding:?}",
                    coach.assignments
                ));
            }
            let live: BTreeSet<_> = s
                .tasks
                .values()
                .filter_map(|t| t.bids.pending_of(coach.no).map(|b| b.no))
                .collect();
            let filed: BTreeSet<_> = coach.live_bids.iter().collect();
            if live != filed || !coach.live_bids.is_well_formed() {
                return Err(format!(
                    "coach {cid}'s live bids {:?} disagree with the tasks {live:?}",
                    coach.live_bids
                ));
            }
        }
        for (bid, task) in s.bid_tasks.iter() {
            if !s.tasks.get(task).is_some_and(|t| t.bids.contains_key(&bid)) {
                return Err(format!("bid {bid} indexed to task {task} that lacks it"));
            }
        }
        // The on-call pool holds exactly the coaches that may be assigned on call, in the
        // order they are picked in.
        let mut eligible: Vec<_> = s
            .coaches
            .values()
            .filter(|c| OnCallPool::eligible(c))
            .map(|c| {
                (
                    c.assignments.len(),
                    Reverse(c.profile.rating_centi),
                    &c.profile.coach_id,
                )
            })
            .collect();
        eligible.sort();
        let expected: Vec<_> = eligible.into_iter().map(|(_, _, id)| id).collect();
        let pooled: Vec<_> = s.on_call.iter().collect();
        if pooled != expected {
            return Err(format!(
                "the on-call pool {pooled:?} disagrees with the coaches {expected:?}"
            ));
        }
        self.check_derived_listings()
    }

    /// The listing indexes, the open counts by type and the available coaches match the
    /// tasks and coaches they are derived from.
    fn check_derived_listings(&self) -> Result<(), String> {
        let s = &self.state;
        let fresh = Listing::rebuild(s.tasks.values());
        let listing = &s.listing;
        if fresh.all != listing.all
            || fresh.by_owner != listing.by_owner
            || fresh.by_coach != listing.by_coach
        {
            return Err("the listing indexes disagree with the tasks".into());
        }
        let mut open = 0;
        for id in &s.open_tasks {
            let t = &s.tasks[id];
            open += 1;
            if s.open_of_type(&t.spec.task_type, t.spec.urgency) == 0 {
                return Err(format!("open task {id} is not counted by its type"));
            }
        }
        let counted: u64 = s.open_by_type.0.values().map(|c| c.total()).sum();
        if counted != open {
            return Err(format!(
                "{counted} open tasks counted by type, {open} are open"
            ));
        }
        let available = s
            .coaches
            .values()
            .filter(|c| c.in_good_standing() && (c.assignments.len() as u32) < c.profile.capacity)
            .count();
        if available != s.on_call.available() {
            return Err(format!(
                "{} coaches counted available, {available} are",
                s.on_call.available()
            ));
        }
        Ok(())
    }
}

/// Coaches have distinct numbers, every bid carries its coach's (none for a coach not
/// registered), and what each task keeps beside its bids (their coaches' filter, the pending
/// count, the last number) is theirs.
fn check_coach_numbers(s: &State) -> Result<(), String> {
    let numbers: BTreeSet<CoachNo> = s.coaches.values().map(|c| c.no).collect();
    if numbers.len() != s.coaches.len() || numbers.contains(&CoachNo::NONE) {
        return Err("coaches' numbers are not distinct".into());
    }
    for task in s.tasks.values() {
        task.bids
            .derived_data_holds()
            .map_err(|e| format!("task {}: {e}", task.spec.task_id))?;
        for bid in task.bids.values() {
            let expect = s
                .coaches
                .get(&bid.view.coach_id)
                .map_or(CoachNo::NONE, |c| c.no);
            if bid.coach != expect {
                return Err(format!(
                    "bid {} carries coach number {:?}, its coach's is {expect:?}",
                    bid.view.bid_id, bid.coach
                ));
            }
        }
    }
    Ok(())
}
