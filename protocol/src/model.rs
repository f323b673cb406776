//! The small vocabularies of the marketplace, each a closed enum with its wire spelling.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Defines a unit-only enum spelled on the wire as the given lowercase strings, with
/// `as_str`, `ALL`, `Display` and a parser used by the strict frame decoder.
macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $wire:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $wire)] $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire,)+
                }
            }

            /// Parses the wire spelling (exact, case-sensitive).
            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($wire => Some($name::$variant),)+
                    _ => None,
                }
            }

            /// The accepted spellings joined for an error message, e.g. `"a", "b"`.
            pub fn expected() -> String {
                [$(concat!("\"", $wire, "\"")),+].join(", ")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum!(
    /// Who a token speaks for (the JWT `role` claim).
    Role {
        /// A job seeker: posts tasks and accepts bids.
        Seeker = "seeker",
        /// A coach: bids on tasks and delivers verifications.
        Coach = "coach",
        /// An operator or the app's backend: sees and may do everything.
        Admin = "admin",
    }
);

wire_enum!(
    /// How soon a task must be delivered; selects the tier (price multiplier and windows).
    Urgency {
        /// 2 h delivery, ×1.5 price (defaults).
        Urgent = "urgent",
        /// 24 h delivery, ×1.0 price (defaults).
        Standard = "standard",
        /// 72 h delivery, ×0.8 price (defaults).
        Flexible = "flexible",
    }
);

wire_enum!(
    /// Who picks the winning bid when the bidding window closes.
    Award {
        /// The owner accepts a bid (the default).
        Manual = "manual",
        /// The best-ranked pending bid is accepted when the window closes.
        Auto = "auto",
    }
);

wire_enum!(
    /// The life cycle of a task (contract §5).
    TaskStatus {
        /// Taking bids.
        Open = "open",
        /// A coach is chosen and the escrow holds the amount.
        Assigned = "assigned",
        /// The coach is working (also after changes were requested).
        InProgress = "in_progress",
        /// The coach delivered; the owner accepts or requests changes.
        Submitted = "submitted",
        /// Three change requests: an admin resolves it.
        Disputed = "disputed",
        /// Final: paid out to the coach.
        Completed = "completed",
        /// Final: canceled by the owner or an admin.
        Canceled = "canceled",
        /// Final: a dispute ended with the escrow refunded.
        Refunded = "refunded",
    }
);

impl TaskStatus {
    /// Whether no further transition is possible.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TaskStatus::Completed | TaskStatus::Canceled | TaskStatus::Refunded
        )
    }
}

wire_enum!(
    /// The state of one bid.
    BidStatus {
        /// Live: may still be accepted.
        Pending = "pending",
        /// Won the task.
        Accepted = "accepted",
        /// Another bid won, or the payment failed.
        Rejected = "rejected",
        /// Taken back by its coach.
        Withdrawn = "withdrawn",
    }
);

wire_enum!(
    /// How an admin ends a dispute.
    DisputeOutcome {
        /// Pay the coach (85 %) and the platform (15 %).
        Release = "release",
        /// Return the whole escrow to the owner.
        Refund = "refund",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_spellings_round_trip() {
        for s in TaskStatus::ALL {
            assert_eq!(TaskStatus::parse(s.as_str()), Some(*s));
            let json = serde_json::to_string(s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
        }
        assert_eq!(Urgency::parse("URGENT"), None);
        assert_eq!(Role::expected(), "\"seeker\", \"coach\", \"admin\"");
    }

    #[test]
    fn only_completed_canceled_refunded_are_final() {
        let finals: Vec<_> = TaskStatus::ALL.iter().filter(|s| s.is_final()).collect();
        assert_eq!(
            finals,
            [
                &TaskStatus::Completed,
                &TaskStatus::Canceled,
                &TaskStatus::Refunded
            ]
        );
    }
}
