//! gavel's server side: the `gavel` binary's commands and (as the gateway issue lands) the
//! WebSocket sessions, topics, fan-out, HTTP API and metrics.
//!
//! # Layout
//! - [`cli`] — the command line (`gavel serve`, `gavel token`); every flag also reads a
//!   `GAVEL_*` environment variable.
//! - [`config`] — the optional TOML file: tiers and limits, with the contract's defaults.
//! - [`secret`] — where the JWT secret comes from: flag, environment, or the data directory
//!   (generated at first start).
//! - [`auth`] — minting and verifying HS256 tokens.
//! - [`logging`] — `tracing` set up as text or JSON.
//! - [`server`] — the HTTP listener and its graceful shutdown.
//!
//! Start-up flows `cli` → `config` + `secret` → `auth` keys → `server::run`.

pub mod auth;
pub mod cli;
pub mod config;
pub mod logging;
pub mod secret;
pub mod server;
