//! What the server sends (contract §2): a [`ServerFrame`] is an `ok` reply, an `error` reply or
//! a pushed `event`, tagged on the wire by `type`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::ids::RequestId;
use crate::parse::FrameError;
use crate::topic::Topic;
use crate::{ErrorCode, Seq};

/// One frame from the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    Ok(OkReply),
    Error(ErrorReply),
    Event(EventFrame),
}

/// A command succeeded; `result`'s shape follows the command (see [`crate::views`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OkReply {
    pub id: RequestId,
    pub result: serde_json::Value,
}

/// A frame or command was refused; nothing was applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorReply {
    /// The frame's `id`; absent when the frame had none (or no valid one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
    pub code: ErrorCode,
    /// For people, not programs: wording may change.
    pub message: String,
    /// The offending field, for `VALIDATION_ERROR`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For `RATE_LIMITED`: when to try again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl From<FrameError> for ErrorReply {
    fn from(e: FrameError) -> Self {
        ErrorReply {
            id: e.id,
            code: e.code,
            message: e.message,
            field: e.field,
            retry_after_ms: None,
        }
    }
}

/// An event pushed to a subscriber of `topic`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EventFrame {
    pub topic: Topic,
    /// The event's position in the journal: increasing per topic, no gaps, no duplicates.
    pub seq: Seq,
    pub event: Event,
}
