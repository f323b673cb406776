//! What travels on a follower's link to the leader, as JSON text frames. Both directions are
//! untagged enums whose variants differ in their required fields, so the frames a command
//! link carried before charges existed read the same.

use gavel_engine::{Rejection, Reply, Request};
use gavel_protocol::{Seq, UserId};
use serde::{Deserialize, Serialize};

/// Follower → leader.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub(super) enum ForwardFrame {
    /// A command for the leader to run.
    Command { id: u64, request: Request },
    /// One unit of `charge`'s command budget, for a read the follower serves itself.
    Charge { id: u64, charge: UserId },
}

/// Leader → follower.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub(super) enum LeaderFrame {
    Answer(AnswerFrame),
    Charged(ChargedFrame),
    Hello(HelloFrame),
}

/// The leader's first frame on a link: what it understands. A leader from before charges
/// sends none (and would never answer one), so until a follower has read this it charges
/// reads to its own limiter; a follower from before charges logs it as a frame it cannot
/// read and goes on.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct HelloFrame {
    pub charges: bool,
}

/// The outcome of a forwarded command.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct AnswerFrame {
    pub id: u64,
    /// The leader's `seq` after the command's events.
    pub after: Seq,
    pub result: Result<Reply, Rejection>,
    /// Set on `RATE_LIMITED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

/// The outcome of a charge: allowed, or over the budget until `retry_after_ms`.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct ChargedFrame {
    pub id: u64,
    pub allowed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_charge_and_its_answer_are_told_apart_from_a_command_and_its_answer() {
        let charge = ForwardFrame::Charge {
            id: 7,
            charge: UserId::new("bea").expect("a valid id"),
        };
        let text = serde_json::to_string(&charge).expect("serializes");
        let read: ForwardFrame = serde_json::from_str(&text).expect("parses");
        assert!(matches!(read, ForwardFrame::Charge { id: 7, .. }), "{text}");

        let refused = ChargedFrame {
            id: 7,
            allowed: false,
            retry_after_ms: Some(600),
        };
        let text = serde_json::to_string(&refused).expect("serializes");
        let read: LeaderFrame = serde_json::from_str(&text).expect("parses");
        assert!(
            matches!(
                read,
                LeaderFrame::Charged(ChargedFrame {
                    id: 7,
                    allowed: false,
                    retry_after_ms: Some(600)
                })
            ),
            "{text}"
        );

        // A refused command's answer has the same `id` and `retry_after_ms`: `after` and
        // `result` tell it apart.
        let answer = AnswerFrame {
            id: 8,
            after: 3,
            result: Err(Rejection {
                code: gavel_protocol::ErrorCode::RateLimited,
                message: "slow down".into(),
                field: None,
            }),
            retry_after_ms: Some(5),
        };
        let text = serde_json::to_string(&answer).expect("serializes");
        let read: LeaderFrame = serde_json::from_str(&text).expect("parses");
        assert!(
            matches!(read, LeaderFrame::Answer(AnswerFrame { id: 8, .. })),
            "{text}"
        );
    }
}
