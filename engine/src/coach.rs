//! A registered coach as the engine keeps it: its profile, the tasks it holds, its live bids —
//! and its reputation (contract §10), moved by every rated completion.

use std::collections::BTreeSet;

use gavel_protocol::views::CoachView;
use gavel_protocol::{BidStatus, TaskId, UserId};
use serde::{Deserialize, Serialize};

use crate::live_bids::LiveBids;
use crate::state::{IdMap, Task};

/// Strikes after which a coach is suspended.
pub const STRIKES_TO_SUSPEND: u32 = 3;

/// A registered coach's number: dense, given in registration order (coaches are never
/// removed, so the count of coaches before it). Derived, never serialized: a loaded state
/// numbers its coaches afresh ([`rebuild_live_bids`]). Each bid carries its coach's number, so
/// finding a coach's bid on a task is an integer compare per bid, not a string compare behind
/// a pointer (13 % of a `place_bid`, docs/benchmarks.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CoachNo(u32);

impl CoachNo {
    /// No coach (a bid whose coach is not registered): no coach's number equals it.
    pub const NONE: CoachNo = CoachNo(u32::MAX);

    /// The number of the coach registered after `registered` others.
    pub fn nth(registered: usize) -> Self {
        let n = u32::try_from(registered).expect("fewer than 2^32 - 1 coaches");
        assert!(n != u32::MAX, "fewer than 2^32 - 1 coaches");
        CoachNo(n)
    }

    /// The number as an index (the count of coaches registered before it).
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl Default for CoachNo {
    fn default() -> Self {
        CoachNo::NONE
    }
}

/// A registered coach.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Coach {
    pub profile: CoachView,
    /// Tasks the coach holds (assigned, in progress, submitted or disputed).
    pub assignments: BTreeSet<TaskId>,
    /// The numbers of the coach's pending bids, in placement order. Derived from the tasks'
    /// pending bids (rebuilt by [`rebuild_live_bids`] after loading, never serialized):
    /// integer keys, where the bid ids' strings cost a pointer chase and a `memcmp` per
    /// comparison (18 % of a `place_bid`, docs/benchmarks.md), in a sorted vector that a new
    /// bid pushes onto ([`LiveBids`]).
    #[serde(skip)]
    pub live_bids: LiveBids,
    /// Where the on-call pool has filed the coach (derived; kept by [`crate::on_call::OnCallPool::update`]).
    #[serde(skip)]
    pub filed: crate::on_call::Filed,
    /// The coach's number (derived; see [`CoachNo`]).
    #[serde(skip)]
    pub no: CoachNo,
}

/// Coaches compare by what they are, not by the derived data (`check_invariants` checks it).
impl PartialEq for Coach {
    fn eq(&self, other: &Self) -> bool {
        self.profile == other.profile && self.assignments == other.assignments
    }
}

impl Eq for Coach {}

impl Coach {
    /// May bid and be assigned: verified and not suspended.
    pub fn in_good_standing(&self) -> bool {
        self.profile.verified && !self.profile.suspended
    }

    /// A completed task (contract §10): a rating `r` moves the rating, in hundredths, to
    /// `(rating × ratings_count + 100 × r) / (ratings_count + 1)`; every completion counts.
    pub fn record_completion(&mut self, rating: Option<u8>) {
        let p = &mut self.profile;
        if let Some(r) = rating {
            let count = u64::from(p.ratings_count);
            let next = (u64::from(p.rating) * count + 100 * u64::from(r)) / (count + 1);
            p.rating = next.min(500) as u16;
            p.rating_centi = p.rating;
            p.ratings_count = p.ratings_count.saturating_add(1);
        }
        p.completed = p.completed.saturating_add(1);
    }

    /// What a seeker sees of the coach next to its bid.
    pub fn summary(&self) -> gavel_protocol::views::BidCoach {
        gavel_protocol::views::BidCoach {
            display_name: self.profile.display_name.clone(),
            rating: self.profile.rating,
            ratings_count: self.profile.ratings_count,
            completed: self.profile.completed,
        }
    }

    /// The profile with the live count of active tasks.
    pub fn view(&self) -> CoachView {
        CoachView {
            active: self.assignments.len() as u32,
            ..self.profile.clone()
        }
    }
}

/// Numbers the coaches afresh, gives every bid of `tasks` its coach's number and files every
/// pending bid under its coach's `live_bids` (after loading).
pub fn rebuild_live_bids<'a>(
    coaches: &mut IdMap<UserId, Coach>,
    tasks: impl Iterator<Item = &'a mut Task>,
) {
    for (n, coach) in coaches.values_mut().enumerate() {
        coach.live_bids.clear();
        coach.no = CoachNo::nth(n);
    }
    for task in tasks {
        task.bids.update_each(|bid| {
            let coach = coaches.get_mut(&bid.view.coach_id);
            bid.coach = coach.as_ref().map_or(CoachNo::NONE, |c| c.no);
            if let Some(coach) = coach
                && bid.view.status == BidStatus::Pending
            {
                coach.live_bids.push_unordered(bid.no);
            }
        });
    }
    for coach in coaches.values_mut() {
        coach.live_bids.settle();
    }
}
