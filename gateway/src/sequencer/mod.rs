//! The single writer.
//!
//! - [`engine_task`] — the engine task ([`engine_task::EngineActor`]) and its clonable
//!   [`engine_task::EngineHandle`]: batches commands, executes them, hands events to the
//!   journal writer and the batch to the publisher.
//! - [`messages`] — what travels on its queue and on the publisher's.
//! - [`clock`] — engine time, the one place that reads wall time.

pub mod clock;
pub mod engine_task;
pub mod follower;
pub mod messages;
