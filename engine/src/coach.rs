//! A registered coach as the engine keeps it: its profile, the tasks it holds, its live bids —
//! and its reputation (contract §10), moved by every rated completion.

use std::collections::BTreeSet;

use gavel_protocol::views::CoachView;
use gavel_protocol::{TaskId, UserId};
use serde::{Deserialize, Serialize};

use crate::ids::BidNo;
use crate::state::{IdMap, Task};

/// Strikes after which a coach is suspended.
pub const STRIKES_TO_SUSPEND: u32 = 3;

/// A registered coach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coach {
    pub profile: CoachView,
    /// Tasks the coach holds (assigned, in progress, submitted or disputed).
    pub assignments: BTreeSet<TaskId>,
    /// The numbers of the coach's pending bids, in placement order. Derived from the tasks'
    /// pending bids (rebuilt by [`rebuild_live_bids`] after loading, never serialized):
    /// integer keys, where the bid ids' strings cost a pointer chase and a `memcmp` per
    /// comparison (18 % of a `place_bid`, docs/benchmarks.md).
    #[serde(skip)]
    pub live_bids: LiveBids,
    /// Where the on-call pool has filed the coach (derived; kept by [`crate::on_call::OnCallPool::update`]).
    #[serde(skip)]
    pub filed: crate::on_call::Filed,
}

/// A coach's pending bids by number (see [`Coach::live_bids`]).
#[derive(Debug, Clone, Default)]
pub struct LiveBids(pub BTreeSet<BidNo>);

/// Derived data takes no part in comparing states (`check_invariants` checks it instead).
impl PartialEq for LiveBids {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl Eq for LiveBids {}

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

/// Files every pending bid of `tasks` under its coach's `live_bids` (after loading).
pub fn rebuild_live_bids<'a>(
    coaches: &mut IdMap<UserId, Coach>,
    tasks: impl Iterator<Item = &'a Task>,
) {
    for coach in coaches.values_mut() {
        coach.live_bids.0.clear();
    }
    for task in tasks {
        for bid in task.bids.pending() {
            if let Some(coach) = coaches.get_mut(&bid.view.coach_id) {
                coach.live_bids.0.insert(bid.no);
            }
        }
    }
}
