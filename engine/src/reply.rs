//! The successful reply to a command: the typed `result` of the wire's `ok` frame.

use gavel_protocol::views::{
    AcceptBidResult, AcceptVerificationResult, CancelTaskResult, CoachView, Empty, PlaceBidResult,
    PostTaskResult, RequestChangesResult,
};
use serde::{Deserialize, Serialize};

/// What a successful command answers. Journaled with the command's effect (see
/// [`crate::event::Origin`]) so a retried request gets exactly the same reply.
/// Internally tagged (`{"reply": "place_bid", …}`), read tag first ([`crate::tag_first`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "snake_case")]
pub enum Reply {
    PostTask(PostTaskResult),
    PlaceBid(PlaceBidResult),
    AcceptBid(AcceptBidResult),
    AcceptVerification(AcceptVerificationResult),
    RequestChanges(RequestChangesResult),
    CancelTask(CancelTaskResult),
    Coach(CoachView),
    Empty(Empty),
}

crate::tag_first::impl_serde!(Reply, "reply");

impl Reply {
    /// The `result` object of the `ok` frame.
    pub fn to_json(&self) -> serde_json::Value {
        let value = match self {
            Reply::PostTask(r) => serde_json::to_value(r),
            Reply::PlaceBid(r) => serde_json::to_value(r),
            Reply::AcceptBid(r) => serde_json::to_value(r),
            Reply::AcceptVerification(r) => serde_json::to_value(r),
            Reply::RequestChanges(r) => serde_json::to_value(r),
            Reply::CancelTask(r) => serde_json::to_value(r),
            Reply::Coach(r) => serde_json::to_value(r),
            Reply::Empty(r) => serde_json::to_value(r),
        };
        value.expect("reply types always serialize")
    }
}
