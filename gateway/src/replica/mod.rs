//! A second copy of the engine, fed only durable batches.
//!
//! - [`snapshotter`] — the replica on its own thread; writes snapshots off the hot path.

pub mod snapshotter;
