//! The binary's edge: what the operator types and what the process reads at start.
//!
//! - [`args`] — clap commands and flags (also `GAVEL_*` variables).
//! - [`config`] — the TOML file: tiers, limits, retention.
//! - [`secret`] — the JWT secret: flag, env, or a generated file in the data directory.
//! - [`logging`] — the tracing subscriber; [`signals`] — SIGTERM/Ctrl-C → shutdown.
//! - [`connect`] — `gavel connect`, a line-oriented client for trying the server by hand.

pub mod args;
pub mod config;
pub mod connect;
pub mod logging;
pub mod secret;
pub mod signals;
