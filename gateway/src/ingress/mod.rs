//! Where frames and requests come in.
//!
//! - [`http`] — every HTTP endpoint: the `/v1/ws` upgrade, the service API, health, metrics.
//! - [`session`] — one WebSocket connection's loop: read, decode, authorise, hand over, write.
//! - [`read_wake`] — the connection's reads polled only when the socket's read side woke.
//! - [`openapi`] — `GET /v1/openapi.json`, generated from the handlers' body types.
//! - [`console`] — the admin console at `/admin`, embedded (sources in `gateway/console/`).
//! - [`auth`] — minting and verifying HS256 tokens.
//! - [`rate_limit`] — per-user command limits.

pub mod auth;
pub mod console;
pub mod http;
pub mod openapi;
pub mod rate_limit;
pub mod read_wake;
pub mod session;
