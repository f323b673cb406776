//! A task in the engine's state: [`Task`], its [`Bid`]s and its [`Assignment`] — plain data
//! that (de)serializes with serde (the snapshot), except the task's slot in the deadline index,
//! which is derived.

use gavel_protocol::views::{BidView, EscrowView};
use gavel_protocol::{BidId, Cents, Millis, TaskStatus, UserId};
use serde::{Deserialize, Serialize};

use crate::coach::CoachNo;
use crate::event::TaskSpec;
use crate::ids::BidNo;
use crate::ranking::RankKey;
use crate::task_bids::TaskBids;
use crate::timers::{Deadline, TimerSlot};

/// One task and everything that happened to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub spec: TaskSpec,
    pub status: TaskStatus,
    pub bidding_closes_at: Millis,
    /// The bidding window closed with bids on a manual task: the owner chooses.
    pub awaiting_owner: bool,
    /// Every bid ever placed on the task, in placement order, found by id.
    pub bids: TaskBids,
    pub assigned: Option<Assignment>,
    pub escrow: EscrowView,
    pub revisions: u32,
    /// The task's one live deadline, if any.
    pub deadline: Option<Deadline>,
    /// Every coach the task was ever assigned, each once, ordered by its latest assignment
    /// (the last is the task's last assigned coach).
    #[serde(default)]
    pub coaches_ever: Vec<UserId>,
    /// The task's slot in the deadline index: derived, never serialized, rebuilt by
    /// [`crate::state::State::rebuild_index`] (equal whatever it holds, so states compare as before).
    #[serde(skip)]
    pub timer: TimerSlot,
}

impl Task {
    /// A task just posted: open, no bid, nothing held, no deadline yet.
    pub fn posted(spec: TaskSpec, bidding_closes_at: Millis) -> Self {
        Task {
            spec,
            status: TaskStatus::Open,
            bidding_closes_at,
            awaiting_owner: false,
            bids: TaskBids::default(),
            assigned: None,
            escrow: EscrowView::default(),
            revisions: 0,
            deadline: None,
            coaches_ever: Vec::new(),
            timer: TimerSlot::default(),
        }
    }

    /// Pending bids.
    pub fn bid_count(&self) -> u32 {
        self.bids.pending_count()
    }

    /// Cents the escrow holds right now.
    pub fn held_now(&self) -> Cents {
        self.escrow.held - self.escrow.released - self.escrow.refunded
    }

    /// The coach holding the task, if any.
    pub fn coach(&self) -> Option<&UserId> {
        self.assigned.as_ref().map(|a| &a.coach_id)
    }

    /// Pending bids, best first: sorted when asked (a window closing, a view of the task's
    /// bids), not kept sorted on every bid.
    pub fn ranked_bids(&self) -> impl Iterator<Item = &Bid> {
        let mut ranked: Vec<&Bid> = self.bids.pending().collect();
        ranked.sort_unstable_by_key(|b| b.rank_key());
        ranked.into_iter()
    }
}

/// A bid and its place in the ranking.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Bid {
    pub no: BidNo,
    pub view: BidView,
    /// The number of the bid's coach (derived, never serialized: see [`CoachNo`]).
    #[serde(skip)]
    pub coach: CoachNo,
}

/// Bids compare by what they are, not by the derived coach number.
impl PartialEq for Bid {
    fn eq(&self, other: &Self) -> bool {
        self.no == other.no && self.view == other.view
    }
}

impl Eq for Bid {}

impl Bid {
    pub fn rank_key(&self) -> RankKey {
        RankKey::new(self.view.score, self.view.amount, self.no)
    }
}

/// Who holds a task and on what terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    pub coach_id: UserId,
    pub bid_id: Option<BidId>,
    pub amount: Cents,
    pub eta_hours: u32,
    pub deadline: Millis,
    pub on_call: bool,
}

impl Assignment {
    /// `lead = min(2 h, eta / 4)`: the reminder comes this long before the deadline and the
    /// reassignment this long after it.
    pub fn lead_ms(&self) -> Millis {
        (u64::from(self.eta_hours) * 3_600_000 / 4).min(2 * 3_600_000)
    }
}
