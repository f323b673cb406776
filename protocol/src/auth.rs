//! The claims of a gavel JWT (contract §1). Signing and verifying live in the gateway; this
//! crate only says what a token carries.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ids::UserId;
use crate::model::Role;

/// What a token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Claims {
    /// The user id (1–64 characters of `[A-Za-z0-9_.:-]`).
    pub sub: UserId,
    pub role: Role,
    /// Expiry, in seconds since the Unix epoch.
    pub exp: u64,
}
