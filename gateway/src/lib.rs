//! gavel's server: the `gavel` binary's commands, and the WebSocket/HTTP gateway around the
//! engine — sessions, auth, topics and fan-out, resume, the HTTP API, metrics.
//!
//! # Layout
//! - [`cli`], [`config`], [`secret`], [`logging`], [`server`] — the binary's edges: flags
//!   (also `GAVEL_*` variables), the TOML file, the JWT secret, logs, signals.
//! - [`auth`] — minting and verifying HS256 tokens; [`connect`] — `gavel connect`, a
//!   line-oriented client for trying the server by hand.
//! - [`app`] — [`app::Server`]: start-up (storage, recovery, tasks) and graceful shutdown.
//! - [`routes`] — every HTTP endpoint, including the `/v1/ws` upgrade.
//! - [`session`] — one WebSocket connection's loop; [`connection`] — its bounded outbound
//!   queue ([`connection::ConnHandle`]); [`ratelimit`] — per-user command limits.
//! - [`pipeline`] — the messages between stages; [`engine_actor`] — the single writer;
//!   [`publisher`] — durable → replies, fan-out, resumes; [`router`] — topics and encoding.
//! - [`snapshotter`] — a replica of the engine on its own thread that writes snapshots of
//!   durable state, so the engine never pauses for one.
//! - [`clock`] — engine time (with `--time-scale`); [`metrics`] — Prometheus.
//!
//! A command flows: session (parse, rate limit) → engine task (batch: fire deadlines, execute,
//! hand events to the journal writer) → publisher (wait until durable, then fan events out,
//! reply, register subscriptions).

pub mod app;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod connect;
pub mod connection;
pub mod engine_actor;
pub mod logging;
pub mod metrics;
pub mod pipeline;
pub mod publisher;
pub mod ratelimit;
pub mod router;
pub mod routes;
pub mod secret;
pub mod server;
pub mod session;
pub mod snapshotter;
