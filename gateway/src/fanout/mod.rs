//! From a durable event to every socket that may see it.
//!
//! - [`publisher`] — the pipeline's last stage: takes durable batches in order, fans their
//!   events out, answers their commands, registers subscriptions, serves resumes.
//! - [`topic_router`] — topics → subscribers, audience and feed filter; encodes each event once.
//! - [`history`] — the ring of recent events for `since` resumes.
//! - [`frames`] — an event encoded once into shared bytes.
//! - [`outbox`] — one connection's bounded queue and its slow-consumer policy.
//! - [`stats`] — the admin `stats` ticker.

pub mod frames;
pub mod history;
pub mod outbox;
pub mod publisher;
pub mod stats;
pub mod topic_router;
