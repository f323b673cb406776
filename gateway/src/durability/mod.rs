//! The seam between decided and published.
//!
//! - [`durable_gate`] — waits for each batch's commit and says whether it landed; after a
//!   failure it refuses everything until the engine has rebuilt from the journal.
//! - [`replies`] — `ok`/`error` frames and answers to callers, sent only once durable.

pub mod durable_gate;
pub mod replies;
