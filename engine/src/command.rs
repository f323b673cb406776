//! What the engine is asked to do: a [`Command`] from an [`Actor`], optionally carrying the
//! client's request id (the idempotency key).

use gavel_protocol::command as wire;
use gavel_protocol::http::CoachUpsert;
use gavel_protocol::{RequestId, Role, TaskId, UserId};
use serde::{Deserialize, Serialize};

/// Who is asking: the token's `sub` and `role`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Actor {
    pub user: UserId,
    pub role: Role,
}

impl Actor {
    pub fn new(user: UserId, role: Role) -> Self {
        Actor { user, role }
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// A state-changing command (subscriptions and pings never reach the engine's writer).
/// Serializable so a cluster follower can forward it to the leader as it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    PostTask(wire::PostTask),
    PlaceBid(wire::PlaceBid),
    WithdrawBid(wire::WithdrawBid),
    AcceptBid(wire::AcceptBid),
    StartWork(wire::StartWork),
    SubmitVerification(wire::SubmitVerification),
    AcceptVerification(wire::AcceptVerification),
    RequestChanges(wire::RequestChanges),
    CancelTask(wire::CancelTask),
    ResolveDispute(wire::ResolveDispute),
    SendMessage(wire::SendMessage),
    /// `PUT /v1/coaches/{id}` (admin).
    UpsertCoach {
        coach_id: UserId,
        profile: CoachUpsert,
    },
    /// `POST /v1/tasks/{id}/payment_failed` (admin).
    PaymentFailed {
        task_id: TaskId,
    },
}

impl Command {
    /// The engine command for a client command, or `None` for those the session serves itself
    /// (`subscribe`, `unsubscribe`, the reads `list_tasks` and `quote`, `ping`).
    pub fn from_client(command: wire::Command) -> Option<Self> {
        use wire::Command as C;
        Some(match command {
            C::PostTask(c) => Command::PostTask(c),
            C::PlaceBid(c) => Command::PlaceBid(c),
            C::WithdrawBid(c) => Command::WithdrawBid(c),
            C::AcceptBid(c) => Command::AcceptBid(c),
            C::StartWork(c) => Command::StartWork(c),
            C::SubmitVerification(c) => Command::SubmitVerification(c),
            C::AcceptVerification(c) => Command::AcceptVerification(c),
            C::RequestChanges(c) => Command::RequestChanges(c),
            C::CancelTask(c) => Command::CancelTask(c),
            C::ResolveDispute(c) => Command::ResolveDispute(c),
            C::SendMessage(c) => Command::SendMessage(c),
            C::Subscribe(_) | C::Unsubscribe(_) | C::ListTasks(_) | C::Quote(_) | C::Ping => {
                return None;
            }
        })
    }

    /// A short name for logs and metrics (the wire `type` where there is one).
    pub fn name(&self) -> &'static str {
        match self {
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
            Command::UpsertCoach { .. } => "upsert_coach",
            Command::PaymentFailed { .. } => "payment_failed",
        }
    }
}

/// A command with its sender and, when the client gave one, its request id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub actor: Actor,
    pub request_id: Option<RequestId>,
    pub command: Command,
}
