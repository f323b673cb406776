//! Business refusals: a [`Rejection`] is a value, mapped one-to-one to the wire's error codes.
//! Nothing is applied when a command is rejected.

use gavel_protocol::ErrorCode;
use serde::{Deserialize, Serialize};

/// Why the engine refused a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    pub code: ErrorCode,
    pub message: String,
    /// The offending field, for `VALIDATION_ERROR`.
    pub field: Option<String>,
}

impl Rejection {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Rejection {
            code: ErrorCode::ValidationError,
            message: message.into(),
            field: Some(field.into()),
        }
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::of(ErrorCode::Forbidden, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::of(ErrorCode::NotFound, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::of(ErrorCode::Conflict, message)
    }

    fn of(code: ErrorCode, message: impl Into<String>) -> Self {
        Rejection {
            code,
            message: message.into(),
            field: None,
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Rejection {}
