//! What clients send (contract §2, §4): a [`ClientFrame`] is an optional request `id` plus one
//! [`Command`], tagged on the wire by `type`.
//!
//! These types serialize with serde exactly as the contract spells them (clients such as the
//! load-test harness build frames with them). Decoding goes through [`crate::parse`] instead of
//! serde, because a refusal must name the precise error code and `field`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ids::{BidId, RequestId, TaskId, UserId};
use crate::model::{Award, DisputeOutcome, TaskStatus, Urgency};
use crate::topic::{FeedFilter, Topic};
use crate::{Cents, Seq};

/// One frame from a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ClientFrame {
    /// Echoed in the reply; for state-changing commands also the idempotency key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
    #[serde(flatten)]
    pub command: Command,
}

/// Every command of contract §4.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Command {
    Subscribe(Subscribe),
    Unsubscribe(Unsubscribe),
    PostTask(PostTask),
    PlaceBid(PlaceBid),
    WithdrawBid(WithdrawBid),
    AcceptBid(AcceptBid),
    StartWork(StartWork),
    SubmitVerification(SubmitVerification),
    AcceptVerification(AcceptVerification),
    RequestChanges(RequestChanges),
    CancelTask(CancelTask),
    ResolveDispute(ResolveDispute),
    SendMessage(SendMessage),
    ListTasks(ListTasks),
    Quote(Quote),
    Ping,
}

impl Command {
    /// Every `type` a client may send.
    pub const TYPES: &'static [&'static str] = &[
        "subscribe",
        "unsubscribe",
        "post_task",
        "place_bid",
        "withdraw_bid",
        "accept_bid",
        "start_work",
        "submit_verification",
        "accept_verification",
        "request_changes",
        "cancel_task",
        "resolve_dispute",
        "send_message",
        "list_tasks",
        "quote",
        "ping",
    ];

    /// The wire `type` of this command.
    pub fn type_name(&self) -> &'static str {
        match self {
            Command::Subscribe(_) => "subscribe",
            Command::Unsubscribe(_) => "unsubscribe",
            Command::PostTask(_) => "post_task",
            Command::PlaceBid(_) => "place_bid",
            Command::WithdrawBid(_) => "withdraw_bid",
            Command::AcceptBid(_) => "accept_bid",
            Command::StartWork(_) => "start_work",
            Command::SubmitVerification(_) => "submit_verification",
            Command::AcceptVerification(_) => "accept_verification",
            Command::RequestChanges(_) => "request_changes",
            Command::CancelTask(_) => "cancel_task",
            Command::ResolveDispute(_) => "resolve_dispute",
            Command::SendMessage(_) => "send_message",
            Command::ListTasks(_) => "list_tasks",
            Command::Quote(_) => "quote",
            Command::Ping => "ping",
        }
    }

    /// Whether the command changes marketplace state: such commands go to the engine, are
    /// rate-limited, journaled, and deduplicated by their request `id`. Subscriptions, reads
    /// (`list_tasks`, `quote`) and pings are not.
    pub fn changes_state(&self) -> bool {
        !matches!(
            self,
            Command::Subscribe(_)
                | Command::Unsubscribe(_)
                | Command::ListTasks(_)
                | Command::Quote(_)
                | Command::Ping
        )
    }
}

/// `subscribe`: start receiving a topic (with a snapshot, or resuming after `since`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Subscribe {
    pub topic: Topic,
    /// Only on `feed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<FeedFilter>,
    /// Only on `feed` (1–1000): the snapshot holds the `limit` newest matching open tasks and
    /// their `total`; live events still cover every matching task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// The last `seq` the client saw on this topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Seq>,
    /// The epoch `since` was seen in (a different epoch means reset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<String>,
}

/// `unsubscribe`: stop receiving a topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Unsubscribe {
    pub topic: Topic,
}

/// `post_task`: a seeker (or an admin on a seeker's behalf) asks for a verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PostTask {
    /// The app's id of the resume to review (1–128 characters, no control characters).
    pub resume_id: String,
    /// Default `resume_review_full`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_type: Option<String>,
    pub urgency: Urgency,
    /// Cents before the tier multiplier; default 2500.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_price: Option<Cents>,
    /// Default `manual`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub award: Option<Award>,
    /// A client-chosen task id (the server picks one when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<TaskId>,
    /// The seeker the task belongs to: required from admins, must be absent (or the sender)
    /// from seekers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<UserId>,
}

/// `place_bid`: a coach offers to do a task for `amount` within `eta_hours`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PlaceBid {
    pub task_id: TaskId,
    pub amount: Cents,
    pub eta_hours: u32,
}

/// `withdraw_bid`: a coach takes its pending bid back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WithdrawBid {
    pub bid_id: BidId,
}

/// `accept_bid`: the owner picks a bid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AcceptBid {
    pub task_id: TaskId,
    pub bid_id: BidId,
}

/// `start_work`: the assigned coach begins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StartWork {
    pub task_id: TaskId,
}

/// `submit_verification`: the assigned coach delivers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SubmitVerification {
    pub task_id: TaskId,
    /// Up to 4000 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

/// `accept_verification`: the owner accepts the delivery and rates it; the escrow is released.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AcceptVerification {
    pub task_id: TaskId,
    /// 1–5.
    pub rating: u8,
}

/// `request_changes`: the owner sends the delivery back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RequestChanges {
    pub task_id: TaskId,
    /// 1–4000 characters.
    pub reason: String,
}

/// `cancel_task`: the owner (open or assigned) or an admin (any non-final state) cancels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CancelTask {
    pub task_id: TaskId,
    /// Up to 4000 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `resolve_dispute`: an admin ends a dispute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ResolveDispute {
    pub task_id: TaskId,
    pub outcome: DisputeOutcome,
}

/// `send_message`: the owner and the assigned coach talk about a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SendMessage {
    pub task_id: TaskId,
    /// 1–4000 characters.
    pub text: String,
}

/// Default page size of `list_tasks`.
pub const LIST_TASKS_DEFAULT_LIMIT: u32 = 20;
/// Largest page size of `list_tasks`.
pub const LIST_TASKS_MAX_LIMIT: u32 = 100;

/// `list_tasks`: a page of the tasks the sender may see, newest first (contract §9).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ListTasks {
    /// Only tasks in these states (on the wire: one state or a list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<OneOrMany<TaskStatus>>")]
    pub status: Option<Vec<TaskStatus>>,
    /// The `next` cursor of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// 1–100, default 20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Admin only: one seeker's tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<UserId>,
    /// Admin only: the tasks one coach was ever assigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coach_id: Option<UserId>,
}

/// One value or a list of them (how `list_tasks` takes `status`; for the schema).
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

/// `quote`: what each tier would cost now, and what the market pays (contract §11).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Quote {
    /// Default `resume_review_full`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_type: Option<String>,
    /// Cents before the tier multiplier: prices as a `post_task` with this `base_price`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_price: Option<Cents>,
}

impl ListTasks {
    /// The `status` filter with each state once.
    pub fn statuses_deduplicated(&self) -> Option<Vec<TaskStatus>> {
        self.status.as_ref().map(|s| {
            let mut s = s.clone();
            s.sort();
            s.dedup();
            s
        })
    }
}
