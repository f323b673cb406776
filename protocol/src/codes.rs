//! Error codes (contract §2) and WebSocket close codes (contract §7).

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Why a frame or a command was refused. Every refusal on the wire carries exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// Not JSON, not an object, or an unknown `type`.
    BadRequest,
    /// A field is missing, of the wrong type or out of range (`field` names it).
    ValidationError,
    /// No valid credentials.
    Unauthorized,
    /// Authenticated, but not allowed to do this (or to see whether it exists).
    Forbidden,
    /// The thing does not exist (only said to those allowed to know).
    NotFound,
    /// The current state does not allow it (e.g. a bid on a task no longer open).
    Conflict,
    /// Too many commands; the reply carries `retry_after_ms`.
    RateLimited,
    /// Retryable: nothing was applied (e.g. the journal is down, the queue is full).
    Unavailable,
    /// A bug on the server's side; nothing the client can fix.
    Internal,
}

impl ErrorCode {
    /// Every code, in declaration order.
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::BadRequest,
        ErrorCode::ValidationError,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::Conflict,
        ErrorCode::RateLimited,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
    ];

    /// The wire spelling, e.g. `"VALIDATION_ERROR"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "BAD_REQUEST",
            ErrorCode::ValidationError => "VALIDATION_ERROR",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::Unavailable => "UNAVAILABLE",
            ErrorCode::Internal => "INTERNAL",
        }
    }

    /// The HTTP status the HTTP API answers with for this code (contract §6).
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::BadRequest | ErrorCode::ValidationError => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::Conflict => 409,
            ErrorCode::RateLimited => 429,
            ErrorCode::Unavailable => 503,
            ErrorCode::Internal => 500,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// WebSocket close codes the server uses (contract §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum CloseCode {
    /// A normal closure: the server closes a connection that answered no ping for the idle
    /// timeout (contract §1).
    Idle = 1000,
    /// The server is shutting down: reconnect and resume with `since`.
    GoingAway = 1001,
    /// Policy: too many bad frames in a short time.
    Policy = 1008,
    /// A frame over the size limit (64 KiB by default).
    TooBig = 1009,
    /// The token expired while connected.
    TokenExpired = 4001,
    /// The client fell too far behind: reconnect and resume with `since`.
    SlowConsumer = 4008,
}

impl CloseCode {
    /// Every close code the server sends.
    pub const ALL: &'static [CloseCode] = &[
        CloseCode::Idle,
        CloseCode::GoingAway,
        CloseCode::Policy,
        CloseCode::TooBig,
        CloseCode::TokenExpired,
        CloseCode::SlowConsumer,
    ];

    /// The close code with this number, if the server uses it.
    pub fn from_code(code: u16) -> Option<CloseCode> {
        Self::ALL.iter().copied().find(|c| c.code() == code)
    }

    /// The numeric code sent in the close frame.
    pub fn code(self) -> u16 {
        self as u16
    }

    /// The reason text sent with the close frame.
    pub fn reason(self) -> &'static str {
        match self {
            CloseCode::Idle => "idle: no answer to pings",
            CloseCode::GoingAway => "server shutting down; resume with since",
            CloseCode::Policy => "too many bad frames",
            CloseCode::TooBig => "frame too large",
            CloseCode::TokenExpired => "token expired",
            CloseCode::SlowConsumer => "slow consumer; resume with since",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_serialize_as_documented() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }

    #[test]
    fn http_statuses_match_the_contract() {
        let statuses: Vec<u16> = ErrorCode::ALL.iter().map(|c| c.http_status()).collect();
        assert_eq!(statuses, [400, 400, 401, 403, 404, 409, 429, 503, 500]);
    }

    #[test]
    fn close_codes_are_the_documented_numbers() {
        let numbers: Vec<u16> = CloseCode::ALL.iter().map(|c| c.code()).collect();
        assert_eq!(numbers, [1000, 1001, 1008, 1009, 4001, 4008]);
        for code in CloseCode::ALL {
            assert_eq!(CloseCode::from_code(code.code()), Some(*code));
        }
        assert_eq!(CloseCode::from_code(1002), None);
    }
}
