//! From a durable event to every socket that may see it.
//!
//! - [`publisher`] — the pipeline's last stage: takes durable batches in order, fans their
//!   events out, answers their commands, registers subscriptions, serves resumes.
//! - [`topic_router`] — topics → subscribers, audience and feed filter; encodes each event once.
//! - [`subscribe`] — the publisher's side of `subscribe`: snapshot, short resume, or a
//!   [`catch_up`] reader that replays a long one at the client's pace and hands over exactly;
//!   [`catch_ups`] — the publisher's registry of them; [`replay_filter`] — a subscriber's view
//!   of replayed events.
//! - [`history`] — the ring of recent events for `since` resumes.
//! - [`frames`] — an event encoded once into shared bytes.
//! - [`outbox`] — one connection's bounded queue and its slow-consumer policy;
//!   [`coalesce`] — `feed` and `admin` frames for a busy subscriber written together.
//! - [`stats`] — the admin `stats` ticker.

pub mod archive_reads;
pub mod catch_up;
pub mod catch_ups;
pub mod coalesce;
pub mod frames;
pub mod history;
pub mod outbox;
pub mod publisher;
pub mod replay_filter;
pub mod stats;
pub mod subscribe;
pub mod topic_router;
