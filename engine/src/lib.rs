//! gavel's marketplace engine: the deterministic state machine behind every task, bid, timer
//! and escrow movement. It does no I/O, owns no clock and never imports tokio: time is an
//! argument, so tests drive days of deadlines in microseconds.
//!
//! # Layout
//! - [`tiers`] — the urgency tier table and the prices derived from it.
//! - [`command`] — what the engine is asked: a [`Command`] from an [`Actor`] in a [`Request`].
//! - [`event`] — what it journals: domain [`Event`]s, richer than the wire's.
//! - [`reply`] / [`rejection`] — what a command answers: a [`Reply`] or a [`Rejection`].
//! - [`state`] — the [`State`] and `evolve`, the only code that changes it; [`task`] — a task,
//!   its bids and its assignment; [`bid_tasks`] — each bid's task, by bid number;
//!   [`coach`] — a registered coach and its reputation;
//!   [`counts`] — derived counters of open tasks.
//! - [`decide`] — commands → events (validation and authorization); [`deadlines`] — the same
//!   for deadlines passing; [`award`] — the award and its undoing (pending bids rejected, the
//!   award voided, the task reopened), shared by both; [`ranking`] — the score formula and
//!   best-first order.
//! - [`timers`] — the deadline index; [`on_call`] — the on-call pool, best first;
//!   [`idempotency`] — replies remembered for retries.
//! - [`engine`] — [`Engine`]: fire due deadlines → answer retries → decide → evolve.
//! - [`views`] — who may subscribe to what, and each topic's snapshot.
//! - [`listing`] — a seeker's and a coach's tasks: indexes, cursor, `list_tasks`;
//!   [`archive`] — what a task leaves behind when it leaves memory; [`market`] — the
//!   accepted amounts behind `quote` and market pricing.
//! - [`routing`] — which topics and audiences each event reaches, in its wire form.
//! - `tag_first` — the internally tagged form of [`EventKind`] and [`Reply`], read without
//!   serde's buffering.
//! - [`invariants`] — `check_invariants`, called by tests after every step.
//!
//! One command flows: `Engine::execute(request, now)` → `fire(now)` (deadline events) →
//! idempotency lookup → `decide` → `evolve` each event (assigning `seq`) → `Outcome`. The
//! caller journals the events, then replies and publishes [`routing::deliveries`].

pub mod archive;
pub mod award;
pub mod bid_tasks;
pub mod coach;
pub mod command;
pub mod counts;
pub mod deadlines;
pub mod decide;
pub mod engine;
pub mod event;
pub mod idempotency;
pub mod ids;
pub mod invariants;
pub mod listing;
pub mod live_bids;
pub mod market;
pub mod on_call;
pub mod ranking;
pub mod rejection;
pub mod reply;
pub mod routing;
pub mod snapshot_record;
pub mod state;
mod tag_first;
pub mod task;
pub mod task_bids;
pub mod task_numbers;
pub mod tasks;
pub mod tiers;
pub mod timers;
pub mod views;

pub use archive::ArchivedTask;
pub use command::{Actor, Command, Request};
pub use engine::{Decision, Engine, EngineConfig, Outcome, SNAPSHOT_VERSION, Snapshot};
pub use event::{Event, EventKind, Origin, TaskSpec};
pub use rejection::Rejection;
pub use reply::Reply;
pub use state::State;
pub use tiers::{Tier, TierTable};
