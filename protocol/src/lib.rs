//! gavel's wire contract (`docs/protocol.md`) as Rust types — no I/O, no async.
//!
//! Everything that crosses a WebSocket or the HTTP API is defined here once, so the server, the
//! load-test harness and the tests all speak exactly the same language.
//!
//! # Layout
//! - [`ids`] — validated identifiers (`UserId`, `TaskId`, `BidId`, `RequestId`) and the id rules.
//! - [`model`] — the small vocabularies: roles, urgency tiers, award modes, task and bid states.
//! - [`topic`] — the subscription topics (`feed`, `task:<id>`, `coach:<id>`, `admin`) and filters.
//! - [`codes`] — error codes (with their HTTP statuses) and WebSocket close codes.
//! - [`command`] — what a client sends: [`ClientFrame`] = optional request id + a [`Command`].
//! - [`parse`] — the strict decoder of client frames: every refusal names its code and field.
//! - [`views`] — what the server shows: task, bid, feed, coach and admin views; command results.
//! - [`event`] — the event envelope and every event kind of the contract.
//! - [`reply`] — what the server sends: [`ServerFrame`] = `ok` | `error` | `event`.
//! - [`http`] — bodies of the service-to-service HTTP API.
//! - [`auth`] — the JWT claims a token carries (signing lives in the gateway).
//! - [`schema`] — the JSON Schema of every frame, as written to `docs/protocol.schema.json`.
//!
//! Data flows one way: bytes → [`parse::parse_client_frame`] → [`ClientFrame`] (or a
//! [`parse::FrameError`] that becomes an `error` reply); the engine's decisions come back as
//! [`ServerFrame`]s, serialized with serde.
//!
//! Money is always integer cents ([`Cents`]), time always integer milliseconds since the Unix
//! epoch ([`Millis`]); no float ever carries either.

pub mod auth;
pub mod codes;
pub mod command;
pub mod event;
pub mod http;
pub mod ids;
pub mod model;
pub mod parse;
pub mod reply;
pub mod schema;
pub mod topic;
pub mod views;

pub use auth::Claims;
pub use codes::{CloseCode, ErrorCode};
pub use command::{ClientFrame, Command};
pub use event::{Event, EventPayload};
pub use ids::{BidId, IdError, RequestId, TaskId, UserId};
pub use model::{Award, BidStatus, DisputeOutcome, Role, TaskStatus, Urgency};
pub use parse::{FrameError, parse_client_frame};
pub use reply::{ErrorReply, EventFrame, ServerFrame};
pub use topic::{FeedFilter, Topic};

/// An amount of money in integer cents.
pub type Cents = u64;
/// A point in time: integer milliseconds since the Unix epoch.
pub type Millis = u64;
/// A position in the engine's global journal (strictly increasing, never reused).
pub type Seq = u64;

/// Largest WebSocket message a client may send, in bytes (contract §7: larger closes with 1009).
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// Longest free text (messages, notes, reasons), in characters.
pub const MAX_TEXT_CHARS: usize = 4000;
