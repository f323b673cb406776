//! gavel's server: the `gavel` binary's commands, and the WebSocket/HTTP gateway around the
//! engine — sessions, auth, topics and fan-out, resume, the HTTP API, metrics.
//!
//! # Layout
//! The folders follow the path a command and its events take through the server:
//! - [`ingress`] — where frames and requests come in: the HTTP routes and the `/v1/ws`
//!   upgrade, one WebSocket session's loop, JWT auth, per-user rate limits.
//! - [`sequencer`] — the single writer: the engine task and its handle, the messages on its
//!   queue, the engine clock.
//! - [`durability`] — the seam between decided and published: wait for the journal, then
//!   release exactly what landed; replies go back to callers only after that.
//! - [`fanout`] — from a durable event to every socket that may see it: the publisher, the
//!   topic router, the history ring, one connection's outbox.
//! - [`replica`] — a replica of the engine on its own thread that writes snapshots of durable
//!   state, so the engine never pauses for one.
//! - [`history`] — each task's events from the journal, indexed by task by a follower of the
//!   journal (`GET /v1/tasks/{id}/events`, archived tasks too).
//! - [`cluster`] — many nodes: the Postgres lease, replication over Redis with gap filling
//!   from the journal, command forwarding to the leader, `GET /v1/cluster`.
//! - [`cli`] — the binary's edge: flags (also `GAVEL_*` variables), the TOML file, the JWT
//!   secret, logs, signals, and `gavel connect`.
//! - [`app`] — [`app::Server`]: assembly (storage, recovery, every stage) and graceful
//!   shutdown; [`metrics`] — the Prometheus registry every stage writes to; [`supervisor`] —
//!   crash-only: a pipeline task that panics ends the process.
//!
//! A command flows: ingress (parse, authorise, rate limit) → sequencer (batch: fire deadlines,
//! execute, hand events to the journal writer) → durability (wait until durable) → fanout
//! (events to subscribers, replies to callers, subscriptions registered).

pub mod app;
pub mod cli;
pub mod cluster;
pub mod durability;
pub mod fanout;
pub mod history;
pub mod ingress;
pub mod metrics;
pub mod replica;
pub mod sequencer;
pub mod supervisor;
pub mod webhooks;
