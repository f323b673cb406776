//! Bodies of the service-to-service HTTP API (contract §6).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ErrorCode;
use crate::command::{Command, PostTask};
use crate::parse::{FrameError, parse_client_value};

/// Default number of tasks a coach may hold at once.
pub const DEFAULT_CAPACITY: u32 = 3;
/// Most tasks a coach may be configured to hold at once.
pub const MAX_CAPACITY: u32 = 1000;

/// `PUT /v1/coaches/{id}`: register or update a coach (a full replacement: absent fields take
/// their defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CoachUpsert {
    /// 1–100 characters.
    pub display_name: String,
    /// 0.0–5.0 (0 = unrated); kept in hundredths, rounded.
    #[serde(default)]
    pub rating: f64,
    #[serde(default)]
    pub verified: bool,
    #[serde(default)]
    pub on_call: bool,
    /// At least 1; default 3.
    #[serde(default = "default_capacity")]
    pub capacity: u32,
    #[serde(default)]
    pub suspended: bool,
    /// How many ratings `rating` already summarises (imported reputation; contract §10).
    #[serde(default)]
    pub ratings_count: u32,
}

/// Largest `ratings_count` a coach may be registered with.
pub const MAX_RATINGS_COUNT: u32 = 1_000_000_000;

fn default_capacity() -> u32 {
    DEFAULT_CAPACITY
}

impl CoachUpsert {
    /// The rating in hundredths (0–500), as the engine ranks with it.
    pub fn rating_centi(&self) -> u16 {
        (self.rating * 100.0).round() as u16
    }
}

/// Decodes a `PUT /v1/coaches/{id}` body strictly: every refusal names its field.
pub fn parse_coach_upsert(body: &[u8]) -> Result<CoachUpsert, FrameError> {
    let map = json_object(body)?;
    let text = |name: &str| -> Result<String, FrameError> {
        match map.get(name) {
            Some(Value::String(s)) if (1..=100).contains(&s.chars().count()) => Ok(s.clone()),
            Some(Value::String(_)) => Err(FrameError::invalid(
                name,
                format!("{name} must be 1..100 characters"),
            )),
            None | Some(Value::Null) => {
                Err(FrameError::invalid(name, format!("{name} is required")))
            }
            Some(_) => Err(FrameError::invalid(
                name,
                format!("{name} must be a string"),
            )),
        }
    };
    let flag = |name: &str| -> Result<bool, FrameError> {
        match map.get(name) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(FrameError::invalid(
                name,
                format!("{name} must be true or false"),
            )),
        }
    };
    let rating = match map.get("rating") {
        None | Some(Value::Null) => 0.0,
        Some(Value::Number(n)) => match n.as_f64() {
            Some(r) if (0.0..=5.0).contains(&r) => r,
            _ => {
                return Err(FrameError::invalid(
                    "rating",
                    "rating must be within 0.0..5.0",
                ));
            }
        },
        Some(_) => {
            return Err(FrameError::invalid(
                "rating",
                "rating must be a number within 0.0..5.0",
            ));
        }
    };
    let capacity = match map.get("capacity") {
        None | Some(Value::Null) => DEFAULT_CAPACITY,
        Some(v) => match v.as_u64() {
            Some(c) if (1..=u64::from(MAX_CAPACITY)).contains(&c) => c as u32,
            _ => {
                return Err(FrameError::invalid(
                    "capacity",
                    format!("capacity must be an integer within 1..{MAX_CAPACITY}"),
                ));
            }
        },
    };
    let ratings_count = match map.get("ratings_count") {
        None | Some(Value::Null) => 0,
        Some(v) => match v.as_u64() {
            Some(c) if c <= u64::from(MAX_RATINGS_COUNT) => c as u32,
            _ => {
                return Err(FrameError::invalid(
                    "ratings_count",
                    format!("ratings_count must be an integer within 0..{MAX_RATINGS_COUNT}"),
                ));
            }
        },
    };
    Ok(CoachUpsert {
        ratings_count,
        display_name: text("display_name")?,
        rating,
        verified: flag("verified")?,
        on_call: flag("on_call")?,
        capacity,
        suspended: flag("suspended")?,
    })
}

/// Decodes a `POST /v1/tasks` body: the fields of `post_task`, with `owner` required.
pub fn parse_post_task_body(body: &[u8]) -> Result<PostTask, FrameError> {
    let mut map = json_object(body)?;
    map.insert("type".into(), Value::String("post_task".into()));
    map.remove("id");
    let Command::PostTask(task) = parse_client_value(Value::Object(map))?.command else {
        unreachable!("a frame typed post_task decodes to Command::PostTask");
    };
    if task.owner.is_none() {
        return Err(FrameError::invalid("owner", "owner is required"));
    }
    Ok(task)
}

fn json_object(body: &[u8]) -> Result<Map<String, Value>, FrameError> {
    let bad = |message: String| FrameError {
        code: ErrorCode::BadRequest,
        message,
        field: None,
        id: None,
    };
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(bad("body must be a JSON object".into())),
        Err(e) => Err(bad(format!("body is not valid JSON: {e}"))),
    }
}

/// `GET /v1/tasks/{id}/events`: a page of one task's history, oldest first — every event an
/// admin subscribed to `task:<id>` receives, archived tasks' too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TaskHistory {
    pub task_id: crate::TaskId,
    pub events: Vec<HistoryEvent>,
    /// The `after` of the next page; `null` when this page reaches `upto`.
    pub next: Option<crate::Seq>,
    /// The journal position the history covers (with `next` null: every event of the task up
    /// to it has been listed). A `subscribe` to `task:<id>` with `since: upto` goes on live.
    pub upto: crate::Seq,
}

/// One event of a [`TaskHistory`], at its journal position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HistoryEvent {
    pub seq: crate::Seq,
    pub event: crate::event::Event,
}

/// The error body of the HTTP API: `{"error": {"code", "message", "field?"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HttpError {
    pub error: HttpErrorDetail,
}

/// The inside of [`HttpError`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HttpErrorDetail {
    pub code: ErrorCode,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coach_defaults_apply_to_absent_fields() {
        let c = parse_coach_upsert(br#"{"display_name":"Ana"}"#).unwrap();
        assert_eq!(c.capacity, 3);
        assert_eq!(c.rating_centi(), 0);
        assert!(!c.verified && !c.on_call && !c.suspended);
    }

    #[test]
    fn coach_rating_is_kept_in_hundredths() {
        let c = parse_coach_upsert(br#"{"display_name":"Ana","rating":4.87}"#).unwrap();
        assert_eq!(c.rating_centi(), 487);
    }

    #[test]
    fn coach_fields_are_checked() {
        let cases: &[(&[u8], &str)] = &[
            (br#"{"display_name":"Ana","rating":5.5}"#, "rating"),
            (br#"{"display_name":"Ana","capacity":0}"#, "capacity"),
            (br#"{"display_name":"Ana","verified":"yes"}"#, "verified"),
            (br#"{"display_name":""}"#, "display_name"),
            (br#"{}"#, "display_name"),
        ];
        for (body, field) in cases {
            let e = parse_coach_upsert(body).unwrap_err();
            assert_eq!(e.code, ErrorCode::ValidationError);
            assert_eq!(
                e.field.as_deref(),
                Some(*field),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert_eq!(
            parse_coach_upsert(b"[1]").unwrap_err().code,
            ErrorCode::BadRequest
        );
    }

    #[test]
    fn posted_tasks_need_an_owner() {
        let e = parse_post_task_body(br#"{"resume_id":"r1","urgency":"urgent"}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("owner"));
        let t =
            parse_post_task_body(br#"{"resume_id":"r1","urgency":"urgent","owner":"s1"}"#).unwrap();
        assert_eq!(t.owner.unwrap().as_str(), "s1");
    }
}
