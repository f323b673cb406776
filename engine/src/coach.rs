//! A registered coach as the engine keeps it: its profile, the tasks it holds, its live bids —
//! and its reputation (contract §10), moved by every rated completion.

use std::collections::BTreeSet;

use gavel_protocol::views::CoachView;
use gavel_protocol::{BidId, TaskId};
use serde::{Deserialize, Serialize};

/// Strikes after which a coach is suspended.
pub const STRIKES_TO_SUSPEND: u32 = 3;

/// A registered coach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coach {
    pub profile: CoachView,
    /// Tasks the coach holds (assigned, in progress, submitted or disputed).
    pub assignments: BTreeSet<TaskId>,
    /// The coach's pending bids.
    pub live_bids: BTreeSet<BidId>,
    /// Where the on-call pool has filed the coach (derived; kept by [`crate::on_call::OnCallPool::update`]).
    #[serde(skip)]
    pub filed: crate::on_call::Filed,
}

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
