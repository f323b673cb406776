//! What the server shows (contract §8): views of tasks, bids, the feed, a coach and the
//! marketplace, plus the typed `result` of every command's `ok` reply.
//!
//! Field names are part of the contract; views may carry more fields than the contract lists,
//! never fewer. `Option` fields the contract shows as `null` serialize as `null` (not omitted).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ids::{BidId, TaskId, UserId};
use crate::model::{Award, BidStatus, TaskStatus, Urgency};
use crate::topic::Topic;
use crate::{Cents, Millis, Seq};

/// A ranking score in basis points (0–10,000; contract §5).
pub type Score = u32;

/// One bid as its coach, the task's owner and admins see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BidView {
    pub bid_id: BidId,
    pub task_id: TaskId,
    pub coach_id: UserId,
    pub amount: Cents,
    pub eta_hours: u32,
    /// The ranking score; higher ranks first.
    pub score: Score,
    pub status: BidStatus,
    pub created_at: Millis,
    /// The bidding coach's reputation, in the owner's and admins' views (contract §10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coach: Option<BidCoach>,
}

/// What a seeker sees of the coach behind a bid: "★4.80, 127 verifications".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BidCoach {
    /// Shared with the coach's profile: a bid carries it without a copy.
    pub display_name: std::sync::Arc<str>,
    /// In hundredths (0–500; 0 = unrated).
    pub rating: u16,
    pub ratings_count: u32,
    /// Tasks completed as the assigned coach.
    pub completed: u32,
}

/// Who holds a task and on what terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AssignedView {
    pub coach_id: UserId,
    /// The accepted bid; `null` when the task went to an on-call coach.
    pub bid_id: Option<BidId>,
    pub amount: Cents,
    /// Delivery deadline.
    pub deadline: Millis,
    pub on_call: bool,
}

/// The escrow ledger of one task, in cents. Money is conserved: everything ever held is
/// released, refunded or still held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EscrowView {
    pub held: Cents,
    pub released: Cents,
    pub refunded: Cents,
}

/// A task as its owner and admins see it (and, with only its own bid, its assigned coach).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TaskView {
    pub task_id: TaskId,
    pub owner: UserId,
    pub resume_id: String,
    pub task_type: String,
    pub urgency: Urgency,
    pub award: Award,
    pub status: TaskStatus,
    pub suggested_price: Cents,
    /// `[min, max]` a bid's amount must fall in.
    pub price_range: [Cents; 2],
    pub created_at: Millis,
    pub bidding_closes_at: Millis,
    /// Pending bids.
    pub bid_count: u32,
    /// Pending bids, best first (the coach's view: only its own).
    pub bids: Vec<BidView>,
    /// The first three `bid_id`s of `bids` (empty in the coach's view).
    pub top3: Vec<BidId>,
    pub assigned: Option<AssignedView>,
    pub escrow: EscrowView,
    /// Change requests so far (the third disputes the task).
    pub revisions: u32,
    /// The task has left memory and is served from the archive (contract §9).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub archived: bool,
}

/// An open task as a coach sees it on `feed`: no owner, no other coaches' bids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FeedTask {
    pub task_id: TaskId,
    pub task_type: String,
    pub urgency: Urgency,
    pub suggested_price: Cents,
    pub price_range: [Cents; 2],
    pub bid_count: u32,
    pub bidding_closes_at: Millis,
    pub created_at: Millis,
    /// The subscriber's own bid (only in snapshots; live changes arrive on `coach:<id>`).
    pub my_bid: Option<BidView>,
}

/// Snapshot of `feed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FeedSnapshot {
    pub tasks: Vec<FeedTask>,
    /// With a `limit`: how many open tasks match in all (`tasks` holds the newest of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

/// Snapshot of `coach:<id>`: its live bids and the tasks it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CoachSnapshot {
    pub coach_id: UserId,
    pub bids: Vec<BidView>,
    pub assignments: Vec<TaskView>,
    /// Rating in hundredths (0–500; 0 = unrated; contract §10).
    #[serde(default)]
    pub rating: u16,
    #[serde(default)]
    pub ratings_count: u32,
    /// Tasks completed as the assigned coach.
    #[serde(default)]
    pub completed: u32,
}

/// Snapshot of `seeker:<id>`: the seeker's tasks still in memory, newest first (owner view).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SeekerSnapshot {
    pub seeker_id: UserId,
    pub tasks: Vec<TaskView>,
}

/// Open tasks counted by urgency.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct UrgencyCounts {
    pub urgent: u64,
    pub standard: u64,
    pub flexible: u64,
}

impl UrgencyCounts {
    /// The sum over all urgencies.
    pub fn total(&self) -> u64 {
        self.urgent + self.standard + self.flexible
    }
}

/// Snapshot of `admin`: marketplace counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AdminSnapshot {
    /// Tasks in `open`, all urgencies together.
    pub open_tasks: u64,
    /// Tasks in `open`, by urgency.
    pub open_tasks_by_urgency: UrgencyCounts,
    /// Every task, by status (statuses with no task are omitted).
    pub tasks_by_status: BTreeMap<TaskStatus, u64>,
    /// WebSocket connections on this node.
    pub connections: u64,
}

/// The snapshot a `subscribe` result carries; its shape follows the topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Snapshot {
    Task(Box<TaskView>),
    Coach(CoachSnapshot),
    Admin(AdminSnapshot),
    // Before `Feed`: a seeker's `{tasks: [TaskView]}` would also read as a feed snapshot.
    Seeker(SeekerSnapshot),
    Feed(FeedSnapshot),
}

/// Result of `subscribe`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SubscribeResult {
    pub topic: Topic,
    /// The journal's identity; a resume with another epoch gets a reset.
    pub epoch: String,
    /// The snapshot's position: live events follow from after it.
    pub seq: Seq,
    /// Absent when the resume replays events instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Snapshot>,
    /// `true` when `since` could not be honoured and a fresh snapshot was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset: Option<bool>,
}

/// Result of `post_task` (and `POST /v1/tasks`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PostTaskResult {
    pub task_id: TaskId,
    pub suggested_price: Cents,
    pub price_range: [Cents; 2],
    pub bidding_closes_at: Millis,
}

/// Result of `place_bid`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PlaceBidResult {
    pub bid_id: BidId,
}

/// Result of `accept_bid`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AcceptBidResult {
    pub task_id: TaskId,
    pub coach_id: UserId,
    pub amount: Cents,
    pub deadline: Millis,
}

/// Result of `accept_verification`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AcceptVerificationResult {
    pub coach_amount: Cents,
    pub platform_fee: Cents,
}

/// Result of `request_changes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RequestChangesResult {
    pub revisions: u32,
}

/// Result of `cancel_task`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CancelTaskResult {
    /// Cents returned to the owner (0 when nothing was held).
    pub refunded: Cents,
}

/// Result of commands that return nothing (`{}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Empty {}

/// A registered coach, as the HTTP API and admins see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CoachView {
    pub coach_id: UserId,
    /// Shared (not copied) by every bid's [`BidCoach`] summary.
    pub display_name: std::sync::Arc<str>,
    /// Rating in hundredths (0–500; 0 = unrated); the same as `rating`.
    pub rating_centi: u16,
    /// Rating in hundredths (0–500; 0 = unrated), as the ranking uses it (contract §10).
    #[serde(default)]
    pub rating: u16,
    /// How many ratings `rating` summarises.
    #[serde(default)]
    pub ratings_count: u32,
    /// Tasks completed as the assigned coach.
    #[serde(default)]
    pub completed: u32,
    pub verified: bool,
    pub on_call: bool,
    pub capacity: u32,
    pub suspended: bool,
    pub strikes: u32,
    /// Tasks currently assigned, in progress, submitted or disputed.
    pub active: u32,
}

/// Result of `list_tasks` (contract §9): newest first; `next` continues after the last one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ListTasksResult {
    pub tasks: Vec<TaskView>,
    /// The cursor of the next page (`before`), `null` after the last page.
    pub next: Option<String>,
}

/// Accepted amounts of recent tasks of one type and tier (contract §11), percentiles by
/// nearest rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MarketStats {
    pub samples: u32,
    pub p25: Cents,
    pub median: Cents,
    pub p75: Cents,
}

/// One tier of a quote: the price a `post_task` sent now would get, and the market around it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TierQuote {
    pub suggested_price: Cents,
    pub price_range: [Cents; 2],
    /// `null` while the tier has no sample yet.
    pub market: Option<MarketStats>,
    /// Open tasks of this type and tier.
    pub open_tasks: u64,
    /// Coaches in good standing below their capacity (the same in every tier).
    pub coaches_available: u64,
}

/// The three tiers of a quote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct QuoteTiers {
    pub urgent: TierQuote,
    pub standard: TierQuote,
    pub flexible: TierQuote,
}

/// Result of `quote` (contract §11).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct QuoteResult {
    pub task_type: String,
    pub tiers: QuoteTiers,
}
