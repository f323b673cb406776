//! The strict decoder of client frames (contract §2).
//!
//! Refusals are precise, in this order:
//! 1. not JSON, not an object, no string `type`, or an unknown `type` → `BAD_REQUEST`;
//! 2. an `id` that is not a 1–64 character string → `VALIDATION_ERROR`, `field: "id"`;
//! 3. a field that is missing, of the wrong type or out of range → `VALIDATION_ERROR` naming it
//!    (nested fields by path, e.g. `filter.min_price`).
//!
//! A valid `id` is carried in every later refusal so the error reply can echo it. `null` counts
//! as absent for optional fields. Fields the contract does not define are ignored, so clients
//! written against a later version of the protocol keep working.

use std::fmt;

use serde_json::{Map, Value};

use crate::command::*;
use crate::ids::{IdError, RequestId, TaskId, check_id};
use crate::model::{Award, DisputeOutcome, TaskStatus, Urgency};
use crate::topic::{FeedFilter, Topic};
use crate::{Cents, ErrorCode, MAX_TEXT_CHARS};

/// Largest `base_price` accepted, in cents ($1,000,000): keeps every price computation far
/// from overflow.
pub const MAX_BASE_PRICE: Cents = 100_000_000;
/// Largest bid `amount` accepted by the decoder, in cents (the engine then checks the task's
/// price range, which is always far below this).
pub const MAX_AMOUNT: Cents = 2 * MAX_BASE_PRICE * 2;
/// Largest `eta_hours` accepted by the decoder (the engine then checks the tier's window).
pub const MAX_ETA_HOURS: u64 = 10_000;
/// Longest `list_tasks` cursor, in characters.
pub const MAX_CURSOR_CHARS: usize = 128;
/// Longest `resume_id`, in characters.
pub const MAX_RESUME_ID_CHARS: usize = 128;

/// A refused client frame: the error reply to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    pub code: ErrorCode,
    pub message: String,
    /// The offending field, for `VALIDATION_ERROR`.
    pub field: Option<String>,
    /// The frame's `id`, when it had a valid one (echoed in the reply).
    pub id: Option<RequestId>,
}

impl FrameError {
    fn bad_request(message: impl Into<String>) -> Self {
        FrameError {
            code: ErrorCode::BadRequest,
            message: message.into(),
            field: None,
            id: None,
        }
    }

    /// A `VALIDATION_ERROR` for `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        FrameError {
            code: ErrorCode::ValidationError,
            message: message.into(),
            field: Some(field.into()),
            id: None,
        }
    }

    fn with_id(mut self, id: Option<RequestId>) -> Self {
        self.id = id;
        self
    }
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for FrameError {}

/// Decodes one text frame into a [`ClientFrame`], or the exact refusal to send back.
pub fn parse_client_frame(text: &str) -> Result<ClientFrame, FrameError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| FrameError::bad_request(format!("frame is not valid JSON: {e}")))?;
    parse_client_value(value)
}

/// Decodes an already-parsed JSON value into a [`ClientFrame`].
pub fn parse_client_value(value: Value) -> Result<ClientFrame, FrameError> {
    let Value::Object(map) = value else {
        return Err(FrameError::bad_request("frame must be a JSON object"));
    };
    let kind = match map.get("type") {
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(FrameError::bad_request("`type` must be a string")),
        None => return Err(FrameError::bad_request("frame has no `type`")),
    };
    // The type is checked before the id so that an unknown type is always BAD_REQUEST; the id
    // is still echoed when it is valid.
    let known = Command::TYPES.contains(&kind);
    let id = match map.get("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match RequestId::new(s) {
            Ok(id) => Some(id),
            Err(e) if known => return Err(FrameError::invalid("id", format!("id {e}"))),
            Err(_) => None,
        },
        Some(_) if known => return Err(FrameError::invalid("id", "id must be a string")),
        Some(_) => None,
    };
    if !known {
        return Err(FrameError::bad_request(format!("unknown type `{kind}`")).with_id(id));
    }
    let fields = Fields {
        map: &map,
        prefix: "",
    };
    let command = parse_command(kind, &fields).map_err(|e| e.with_id(id.clone()))?;
    Ok(ClientFrame { id, command })
}

fn parse_command(kind: &str, f: &Fields<'_>) -> Result<Command, FrameError> {
    Ok(match kind {
        "subscribe" => {
            let topic = f.topic("topic")?;
            let filter = f.opt_object("filter")?.map(parse_filter).transpose()?;
            if filter.is_some() && topic != Topic::Feed {
                return Err(FrameError::invalid(
                    "filter",
                    "filter is only allowed on `feed`",
                ));
            }
            let limit = f.opt_u64("limit", 1, 1000)?.map(|l| l as u32);
            if limit.is_some() && topic != Topic::Feed {
                return Err(FrameError::invalid(
                    "limit",
                    "limit is only allowed on `feed`",
                ));
            }
            Command::Subscribe(Subscribe {
                topic,
                filter,
                limit,
                since: f.opt_u64("since", 0, u64::MAX)?,
                epoch: f.opt_text("epoch", 1, 64)?,
            })
        }
        "unsubscribe" => Command::Unsubscribe(Unsubscribe {
            topic: f.topic("topic")?,
        }),
        "post_task" => Command::PostTask(PostTask {
            resume_id: f.text("resume_id", 1, MAX_RESUME_ID_CHARS)?,
            task_type: f.opt_token("task_type")?,
            urgency: f.enumeration("urgency", Urgency::parse, Urgency::expected)?,
            base_price: f.opt_u64("base_price", 1, MAX_BASE_PRICE)?,
            award: f.opt_enumeration("award", Award::parse, Award::expected)?,
            task_id: f.opt_id("task_id")?,
            owner: f.opt_id("owner")?,
        }),
        "place_bid" => Command::PlaceBid(PlaceBid {
            task_id: f.id("task_id")?,
            amount: f.u64("amount", 1, MAX_AMOUNT)?,
            eta_hours: f.u64("eta_hours", 1, MAX_ETA_HOURS)? as u32,
        }),
        "withdraw_bid" => Command::WithdrawBid(WithdrawBid {
            bid_id: f.id("bid_id")?,
        }),
        "accept_bid" => Command::AcceptBid(AcceptBid {
            task_id: f.id("task_id")?,
            bid_id: f.id("bid_id")?,
        }),
        "start_work" => Command::StartWork(StartWork {
            task_id: f.id("task_id")?,
        }),
        "submit_verification" => Command::SubmitVerification(SubmitVerification {
            task_id: f.id("task_id")?,
            notes: f.opt_text("notes", 0, MAX_TEXT_CHARS)?,
        }),
        "accept_verification" => Command::AcceptVerification(AcceptVerification {
            task_id: f.id("task_id")?,
            rating: f.u64("rating", 1, 5)? as u8,
        }),
        "request_changes" => Command::RequestChanges(RequestChanges {
            task_id: f.id("task_id")?,
            reason: f.text("reason", 1, MAX_TEXT_CHARS)?,
        }),
        "cancel_task" => Command::CancelTask(CancelTask {
            task_id: f.id("task_id")?,
            reason: f.opt_text("reason", 0, MAX_TEXT_CHARS)?,
        }),
        "resolve_dispute" => Command::ResolveDispute(ResolveDispute {
            task_id: f.id("task_id")?,
            outcome: f.enumeration("outcome", DisputeOutcome::parse, DisputeOutcome::expected)?,
        }),
        "send_message" => Command::SendMessage(SendMessage {
            task_id: f.id("task_id")?,
            text: f.text("text", 1, MAX_TEXT_CHARS)?,
        }),
        "list_tasks" => Command::ListTasks(ListTasks {
            status: parse_statuses(f)?,
            before: f.opt_text("before", 1, MAX_CURSOR_CHARS)?,
            limit: f
                .opt_u64("limit", 1, u64::from(LIST_TASKS_MAX_LIMIT))?
                .map(|l| l as u32),
            owner: f.opt_id("owner")?,
            coach_id: f.opt_id("coach_id")?,
        }),
        "quote" => Command::Quote(Quote {
            task_type: f.opt_token("task_type")?,
            base_price: f.opt_u64("base_price", 1, MAX_BASE_PRICE)?,
        }),
        "ping" => Command::Ping,
        other => unreachable!("type `{other}` is in Command::TYPES but not decoded"),
    })
}

/// `status` of `list_tasks`: one state or a non-empty list of them.
fn parse_statuses(f: &Fields<'_>) -> Result<Option<Vec<TaskStatus>>, FrameError> {
    let bad = || {
        f.invalid(
            "status",
            format!(
                "must be one of {} or a list of them",
                TaskStatus::expected()
            ),
        )
    };
    match f.get("status") {
        None => Ok(None),
        Some(Value::String(s)) => TaskStatus::parse(s).map(|s| Some(vec![s])).ok_or_else(bad),
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|v| v.as_str().and_then(TaskStatus::parse).ok_or_else(bad))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(bad()),
    }
}

/// The most task types a `feed` filter may list: every event is matched against each, for
/// every subscriber, on the shared publisher (a 64 KiB frame could otherwise list ~16,000).
pub const MAX_FILTER_TASK_TYPES: usize = 64;

/// The list without repeats, in first-seen order (at most [`MAX_FILTER_TASK_TYPES`] items).
fn first_of_each<T: PartialEq>(items: Vec<T>) -> Vec<T> {
    let mut kept = Vec::with_capacity(items.len());
    for item in items {
        if !kept.contains(&item) {
            kept.push(item);
        }
    }
    kept
}

fn parse_filter(map: &Map<String, Value>) -> Result<FeedFilter, FrameError> {
    let f = Fields {
        map,
        prefix: "filter.",
    };
    let urgency = f
        .opt_array("urgency")?
        .map(|items| {
            items
                .iter()
                .map(|v| {
                    v.as_str().and_then(Urgency::parse).ok_or_else(|| {
                        f.invalid("urgency", format!("must list only {}", Urgency::expected()))
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let task_type = f
        .opt_array("task_type")?
        .map(|items| {
            if items.len() > MAX_FILTER_TASK_TYPES {
                return Err(f.invalid(
                    "task_type",
                    format!("must list at most {MAX_FILTER_TASK_TYPES} task types"),
                ));
            }
            items
                .iter()
                .map(|v| match v.as_str() {
                    Some(s) if check_id(s).is_ok() => Ok(s.to_owned()),
                    _ => Err(f.invalid(
                        "task_type",
                        "must list task types (1-64 of A-Z a-z 0-9 _ . : -)",
                    )),
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    Ok(FeedFilter {
        urgency: urgency.map(first_of_each),
        task_type: task_type.map(first_of_each),
        min_price: f.opt_u64("min_price", 0, u64::MAX)?,
    })
}

/// Typed access to the fields of one JSON object; every error names the field by its path.
struct Fields<'a> {
    map: &'a Map<String, Value>,
    /// Path of the object itself (`""` at the top, `"filter."` inside the filter).
    prefix: &'static str,
}

impl Fields<'_> {
    fn invalid(&self, name: &str, message: impl fmt::Display) -> FrameError {
        let path = format!("{}{name}", self.prefix);
        FrameError::invalid(path.clone(), format!("{path} {message}"))
    }

    /// The field, treating `null` as absent.
    fn get(&self, name: &str) -> Option<&Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    fn required(&self, name: &str) -> Result<&Value, FrameError> {
        self.get(name)
            .ok_or_else(|| self.invalid(name, "is required"))
    }

    fn u64(&self, name: &str, min: u64, max: u64) -> Result<u64, FrameError> {
        self.check_u64(name, self.required(name)?, min, max)
    }

    fn opt_u64(&self, name: &str, min: u64, max: u64) -> Result<Option<u64>, FrameError> {
        self.get(name)
            .map(|v| self.check_u64(name, v, min, max))
            .transpose()
    }

    fn check_u64(&self, name: &str, v: &Value, min: u64, max: u64) -> Result<u64, FrameError> {
        let range = || {
            if max == u64::MAX {
                format!("must be an integer of at least {min}")
            } else {
                format!("must be an integer within {min}..{max}")
            }
        };
        match v {
            Value::Number(n) => match n.as_u64() {
                Some(x) if (min..=max).contains(&x) => Ok(x),
                _ => Err(self.invalid(name, range())),
            },
            _ => Err(self.invalid(name, range())),
        }
    }

    fn str(&self, name: &str) -> Result<&str, FrameError> {
        self.required(name)?
            .as_str()
            .ok_or_else(|| self.invalid(name, "must be a string"))
    }

    fn opt_str(&self, name: &str) -> Result<Option<&str>, FrameError> {
        self.get(name)
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| self.invalid(name, "must be a string"))
            })
            .transpose()
    }

    /// Free text of `min..=max` characters without control characters (newlines and tabs
    /// are allowed in longer texts).
    fn check_text(
        &self,
        name: &str,
        s: &str,
        min: usize,
        max: usize,
    ) -> Result<String, FrameError> {
        let n = s.chars().count();
        if n < min || n > max {
            return Err(self.invalid(name, format!("must be {min}..{max} characters")));
        }
        if s.chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r'))
        {
            return Err(self.invalid(name, "must not contain control characters"));
        }
        Ok(s.to_owned())
    }

    fn text(&self, name: &str, min: usize, max: usize) -> Result<String, FrameError> {
        self.check_text(name, self.str(name)?, min, max)
    }

    fn opt_text(&self, name: &str, min: usize, max: usize) -> Result<Option<String>, FrameError> {
        self.opt_str(name)?
            .map(|s| self.check_text(name, s, min, max))
            .transpose()
    }

    fn check_id<T>(
        &self,
        name: &str,
        s: &str,
        make: fn(&str) -> Result<T, IdError>,
    ) -> Result<T, FrameError> {
        make(s).map_err(|e| self.invalid(name, e))
    }

    fn id<T: std::str::FromStr<Err = IdError>>(&self, name: &str) -> Result<T, FrameError> {
        self.check_id(name, self.str(name)?, str::parse)
    }

    fn opt_id<T: std::str::FromStr<Err = IdError>>(
        &self,
        name: &str,
    ) -> Result<Option<T>, FrameError> {
        self.opt_str(name)?
            .map(|s| self.check_id(name, s, str::parse))
            .transpose()
    }

    /// An optional machine token such as a task type: the id alphabet.
    fn opt_token(&self, name: &str) -> Result<Option<String>, FrameError> {
        self.opt_str(name)?
            .map(|s| self.check_id(name, s, |s| check_id(s).map(|()| s.to_owned())))
            .transpose()
    }

    fn topic(&self, name: &str) -> Result<Topic, FrameError> {
        self.str(name)?
            .parse()
            .map_err(|e| self.invalid(name, format!("is invalid: {e}")))
    }

    fn enumeration<T>(
        &self,
        name: &str,
        parse: fn(&str) -> Option<T>,
        expected: fn() -> String,
    ) -> Result<T, FrameError> {
        let s = self
            .str(name)
            .map_err(|_| self.invalid(name, format!("must be one of {}", expected())))?;
        parse(s).ok_or_else(|| self.invalid(name, format!("must be one of {}", expected())))
    }

    fn opt_enumeration<T>(
        &self,
        name: &str,
        parse: fn(&str) -> Option<T>,
        expected: fn() -> String,
    ) -> Result<Option<T>, FrameError> {
        if self.get(name).is_none() {
            return Ok(None);
        }
        self.enumeration(name, parse, expected).map(Some)
    }

    fn opt_object(&self, name: &str) -> Result<Option<&Map<String, Value>>, FrameError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(_) => Err(self.invalid(name, "must be an object")),
        }
    }

    fn opt_array(&self, name: &str) -> Result<Option<&Vec<Value>>, FrameError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(_) => Err(self.invalid(name, "must be an array")),
        }
    }
}

/// Parses a task id from a URL path segment (HTTP API), with the frame decoder's refusal.
pub fn parse_task_id(s: &str) -> Result<TaskId, FrameError> {
    TaskId::new(s).map_err(|e| FrameError::invalid("task_id", format!("task_id {e}")))
}
