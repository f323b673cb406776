//! A task in the engine's state: [`Task`], its [`Bid`]s and its [`Assignment`] — plain data
//! that (de)serializes with serde (the snapshot), except the task's slot in the deadline index,
//! which is derived.

use std::collections::BTreeMap;

use gavel_protocol::views::{BidView, EscrowView};
use gavel_protocol::{BidId, Cents, Millis, TaskStatus, UserId};
use serde::{Deserialize, Serialize};

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
    /// Pending bids, best first.
    #[serde(with = "ranking_as_pairs")]
    pub ranking: BTreeMap<RankKey, BidId>,
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
    /// Pending bids.
    pub fn bid_count(&self) -> u32 {
        self.ranking.len() as u32
    }

    /// Cents the escrow holds right now.
    pub fn held_now(&self) -> Cents {
        self.escrow.held - self.escrow.released - self.escrow.refunded
    }

    /// The coach holding the task, if any.
    pub fn coach(&self) -> Option<&UserId> {
        self.assigned.as_ref().map(|a| &a.coach_id)
    }

    /// Pending bids, best first.
    pub fn ranked_bids(&self) -> impl Iterator<Item = &Bid> {
        self.ranking.values().map(|id| &self.bids[id])
    }
}

/// JSON object keys must be strings, and a [`RankKey`] is a struct: the ranking is written as
/// `[[key, bid_id], …]`, best first (without this a snapshot with a pending bid would not
/// serialize to JSON at all).
mod ranking_as_pairs {
    use std::collections::BTreeMap;

    use gavel_protocol::BidId;
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::ranking::RankKey;

    pub fn serialize<S: Serializer>(
        ranking: &BTreeMap<RankKey, BidId>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(ranking)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<RankKey, BidId>, D::Error> {
        Ok(Vec::<(RankKey, BidId)>::deserialize(d)?
            .into_iter()
            .collect())
    }
}

/// A bid and its place in the ranking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bid {
    pub no: BidNo,
    pub view: BidView,
}

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
