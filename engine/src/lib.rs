//! gavel's marketplace engine: the deterministic state machine behind every task, bid, timer
//! and escrow movement. It does no I/O, owns no clock and never imports tokio: time is an
//! argument, so tests drive days of deadlines in microseconds.
//!
//! # Layout
//! - [`tiers`] — the urgency tier table (price multiplier, delivery and bidding windows) and
//!   the prices derived from it.

pub mod tiers;

pub use tiers::{Tier, TierTable};
