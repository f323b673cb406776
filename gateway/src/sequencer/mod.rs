//! The single writer.
//!
//! - [`engine_task`] — the engine task ([`engine_task::EngineActor`]): batches commands,
//!   executes them, hands events to the journal writer and the batch to the publisher.
//! - [`handle`] — how the rest reaches it: the clonable [`handle::EngineHandle`] on its queue,
//!   the rebuild signal, the `UNAVAILABLE` refusal.
//! - [`messages`] — what travels on its queue and on the publisher's.
//! - [`clock`] — engine time, the one place that reads wall time.

pub mod clock;
pub mod engine_task;
pub mod follower;
pub mod handle;
pub mod messages;
