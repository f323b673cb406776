//! One test per marketplace rule of contract §5 (and the row-level visibility rules of §3/§8),
//! each named after its rule and driven by a simulated clock. Expected numbers are the
//! contract's, computed by hand in the comments (urgent: base 2500 → suggested 3750, range
//! [3750, 7500], on call 4500; 85/15 split with integer division).
//!
//! # Modules
//! - [`common`] — the shared harness: a `Market` (engine, simulated clock, journal,
//!   invariants checked after every step) and command builders.
//! - [`helpers`] — helpers the rule modules share: priced posts, journal slices, tasks driven
//!   to assigned or disputed.
//! - [`posting`] — posting a task: tier prices, defaults, who may post.
//! - [`bidding`] — placing, updating and withdrawing bids; ranking and `top3`.
//! - [`awarding`] — accepting a bid, the escrow hold, the window closing, auto/manual award.
//! - [`deadlines`] — the on-call pool, reminders, late coaches, strikes and suspension.
//! - [`delivery`] — start, submit, accept (85/15), change requests, disputes, messages.
//! - [`cancel`] — cancelling by owner or admin, and a failed payment reopening the task.
//! - [`idempotency`] — retries get the original reply and apply nothing.
//! - [`visibility`] — who may subscribe to what, and what each view shows.
//! - [`money`] — the escrow adds up on every settlement path.
//! - [`listing`] — a coach's and a seeker's tasks (§9).
//! - [`reputation`] — ratings move the coach (§10) and the next ranking.
//! - [`pricing`] — `quote` and market pricing (§11).
//! - [`archiving`] — final tasks leave memory after the retention; their ids stay taken.
//! - [`simulated_days`] — days of deadlines for thousands of tasks, in well under a second.

#[path = "../common/mod.rs"]
mod common;
mod helpers;

mod archiving;
mod awarding;
mod bidding;
mod cancel;
mod deadlines;
mod delivery;
mod idempotency;
mod listing;
mod money;
mod posting;
mod pricing;
mod reputation;
mod simulated_days;
mod visibility;
