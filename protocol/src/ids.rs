//! Validated identifiers.
//!
//! User, task and bid ids share one rule (contract §1): 1–64 characters of `[A-Za-z0-9_.:-]`.
//! Request ids (`id` on a client frame) are looser — any 1–64 characters — because clients
//! generate them however they like; they are only compared, never parsed or put in a path.
//! Each id is its own type so a `BidId` can never be passed where a `TaskId` is expected.

use std::fmt;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Maximum length of any identifier, in characters.
pub const MAX_ID_CHARS: usize = 64;

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdError {
    /// Zero characters.
    Empty,
    /// More than [`MAX_ID_CHARS`] characters.
    TooLong,
    /// A character outside `[A-Za-z0-9_.:-]`.
    BadChar,
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdError::Empty => "must not be empty",
            IdError::TooLong => "must be at most 64 characters",
            IdError::BadChar => "may only contain A-Z a-z 0-9 _ . : -",
        })
    }
}

impl std::error::Error for IdError {}

/// Checks the shared id rule: 1–64 characters of `[A-Za-z0-9_.:-]`.
pub fn check_id(s: &str) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    // All allowed characters are ASCII, so the byte length is the character count.
    if s.len() > MAX_ID_CHARS {
        return Err(IdError::TooLong);
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
    {
        return Err(IdError::BadChar);
    }
    Ok(())
}

/// Checks a request id: 1–64 characters, any of them.
pub fn check_request_id(s: &str) -> Result<(), IdError> {
    match s.chars().count() {
        0 => Err(IdError::Empty),
        n if n > MAX_ID_CHARS => Err(IdError::TooLong),
        _ => Ok(()),
    }
}

/// Reads an id from the string in the input, borrowed when it can be: the id's one
/// allocation is its `Arc<str>` (no `String` on the way).
struct IdVisitor<T>(fn(&str) -> Result<T, IdError>);

impl<T> serde::de::Visitor<'_> for IdVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string") // as before: the wire's error messages are unchanged
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<T, E> {
        (self.0)(s).map_err(E::custom)
    }
}

/// Defines a validated, cheaply clonable string id type.
///
/// Ids are cloned into many events and views, so they hold an `Arc<str>`: a clone is a
/// reference-count bump, not an allocation.
macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $check:path) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Validates and wraps `s`.
            pub fn new(s: &str) -> Result<Self, IdError> {
                $check(s)?;
                Ok(Self(Arc::from(s)))
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_str(IdVisitor(Self::new))
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                if stringify!($name) == "RequestId" {
                    schemars::json_schema!({"type": "string", "minLength": 1, "maxLength": 64})
                } else {
                    schemars::json_schema!({
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 64,
                        "pattern": "^[A-Za-z0-9_.:-]+$"
                    })
                }
            }
        }
    };
}

id_type!(
    /// A user: a seeker, a coach or an admin (the token's `sub`).
    UserId, check_id
);
id_type!(
    /// A task (`t_…` when the server picks it; clients may choose their own on `post_task`).
    TaskId, check_id
);
id_type!(
    /// A bid (`b_…`, chosen by the server).
    BidId, check_id
);
id_type!(
    /// The `id` of a client frame: echoed in the reply and the idempotency key of commands.
    RequestId, check_request_id
);

/// Hands `<letter>_<n>` (decimal) to `make`, written on the stack: `format!` cost ~1,100
/// instructions per bid (the formatting machinery and a temporary `String`), a fifth of a
/// whole `place_bid` (docs/benchmarks.md, "Engine").
fn numbered<R>(letter: u8, mut n: u64, make: impl FnOnce(&str) -> R) -> R {
    // Two bytes of prefix and the 20 digits of u64::MAX.
    let mut buf = [0u8; 22];
    let mut start = buf.len();
    loop {
        start -= 1;
        buf[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    start -= 2;
    buf[start] = letter;
    buf[start + 1] = b'_';
    make(std::str::from_utf8(&buf[start..]).expect("ASCII digits and a prefix"))
}

impl TaskId {
    /// `t_<n>`, the id of the `n`th server-chosen task: valid by construction (a letter, `_`
    /// and at most 20 digits), so not checked again.
    pub fn numbered(n: u64) -> Self {
        numbered(b't', n, |id| Self(Arc::from(id)))
    }
}

impl BidId {
    /// `b_<n>`, the id of the `n`th bid: valid by construction, so not checked again (the
    /// check was ~100 of a `place_bid`'s ~3,200 instructions).
    pub fn numbered(n: u64) -> Self {
        numbered(b'b', n, |id| Self(Arc::from(id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_ids_are_valid_and_spelled_as_format_would() {
        for n in [0, 7, 10, 99, 1_000_000, 1_234_567_890, u64::MAX] {
            let (task, bid) = (TaskId::numbered(n), BidId::numbered(n));
            assert_eq!(task, TaskId::new(&format!("t_{n}")).unwrap());
            assert_eq!(bid, BidId::new(&format!("b_{n}")).unwrap());
        }
    }

    #[test]
    fn ids_accept_the_documented_alphabet() {
        assert!(UserId::new("alice_01.x:y-z").is_ok());
        assert_eq!(UserId::new(""), Err(IdError::Empty));
        assert_eq!(UserId::new(&"a".repeat(65)), Err(IdError::TooLong));
        assert!(UserId::new(&"a".repeat(64)).is_ok());
        assert_eq!(TaskId::new("t 1"), Err(IdError::BadChar));
        assert_eq!(TaskId::new("tâsk"), Err(IdError::BadChar));
    }

    #[test]
    fn request_ids_count_characters_not_bytes() {
        assert!(RequestId::new(&"é".repeat(64)).is_ok());
        assert_eq!(RequestId::new(&"é".repeat(65)), Err(IdError::TooLong));
        assert!(RequestId::new("any thing / goes").is_ok());
    }

    #[test]
    fn ids_deserialize_with_validation() {
        let ok: TaskId = serde_json::from_str("\"t_1\"").unwrap();
        assert_eq!(ok.as_str(), "t_1");
        assert!(serde_json::from_str::<TaskId>("\"bad id\"").is_err());
        // An escaped string is not borrowed from the input; read from a reader, none is.
        let escaped: TaskId = serde_json::from_str("\"t\\u005f2\"").unwrap();
        assert_eq!(escaped.as_str(), "t_2");
        let read: UserId = serde_json::from_reader(&b"\"u.3\""[..]).unwrap();
        assert_eq!(read.as_str(), "u.3");
        let wrong = serde_json::from_str::<BidId>("5").unwrap_err().to_string();
        assert!(wrong.contains("expected a string"), "{wrong}");
    }
}
