//! Subscription topics (contract §3) and the `feed` filter (contract §4).

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Cents;
use crate::ids::{IdError, TaskId, UserId};
use crate::model::Urgency;
use crate::views::FeedTask;

/// A stream of events a client can subscribe to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    /// `feed`: open tasks, for coaches (and admins).
    Feed,
    /// `task:<id>`: everything about one task, for its owner, its coach and admins.
    Task(TaskId),
    /// `coach:<id>`: one coach's bids and assignments, for that coach and admins.
    Coach(UserId),
    /// `admin`: every event plus `stats`, for admins.
    Admin,
    /// `seeker:<id>`: every task of one seeker, for that seeker and admins (contract §9).
    Seeker(UserId),
}

/// Why a string is not a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicError {
    /// Not one of the topic shapes.
    Unknown,
    /// `task:` or `coach:` followed by an invalid id.
    BadId(IdError),
}

impl fmt::Display for TopicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopicError::Unknown => {
                f.write_str("topic must be \"feed\", \"admin\", \"task:<id>\", \"coach:<id>\" or \"seeker:<id>\"")
            }
            TopicError::BadId(e) => write!(f, "topic id {e}"),
        }
    }
}

impl std::error::Error for TopicError {}

impl Topic {
    /// The kind of topic, for metrics labels (`feed`, `task`, `coach`, `admin`, `seeker`).
    pub fn kind(&self) -> &'static str {
        match self {
            Topic::Feed => "feed",
            Topic::Task(_) => "task",
            Topic::Coach(_) => "coach",
            Topic::Admin => "admin",
            Topic::Seeker(_) => "seeker",
        }
    }
}

impl FromStr for Topic {
    type Err = TopicError;

    fn from_str(s: &str) -> Result<Self, TopicError> {
        match s {
            "feed" => Ok(Topic::Feed),
            "admin" => Ok(Topic::Admin),
            _ => {
                if let Some(id) = s.strip_prefix("task:") {
                    TaskId::new(id).map(Topic::Task).map_err(TopicError::BadId)
                } else if let Some(id) = s.strip_prefix("coach:") {
                    UserId::new(id).map(Topic::Coach).map_err(TopicError::BadId)
                } else if let Some(id) = s.strip_prefix("seeker:") {
                    UserId::new(id)
                        .map(Topic::Seeker)
                        .map_err(TopicError::BadId)
                } else {
                    Err(TopicError::Unknown)
                }
            }
        }
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Topic::Feed => f.write_str("feed"),
            Topic::Admin => f.write_str("admin"),
            Topic::Task(id) => write!(f, "task:{id}"),
            Topic::Coach(id) => write!(f, "coach:{id}"),
            Topic::Seeker(id) => write!(f, "seeker:{id}"),
        }
    }
}

impl Serialize for Topic {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Topic {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Topic {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Topic".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^(feed|admin|task:[A-Za-z0-9_.:-]{1,64}|coach:[A-Za-z0-9_.:-]{1,64}|seeker:[A-Za-z0-9_.:-]{1,64})$"
        })
    }
}

/// Narrows the `feed` topic: every given criterion must hold (all are optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FeedFilter {
    /// Only these urgencies (absent: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urgency: Option<Vec<Urgency>>,
    /// Only these task types (absent: all); at most 64 (`MAX_FILTER_TASK_TYPES`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = crate::parse::MAX_FILTER_TASK_TYPES))]
    pub task_type: Option<Vec<String>>,
    /// Only tasks whose suggested price is at least this many cents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_price: Option<Cents>,
}

impl FeedFilter {
    /// Whether a task with these attributes passes the filter.
    pub fn matches(&self, urgency: Urgency, task_type: &str, suggested_price: Cents) -> bool {
        self.urgency.as_ref().is_none_or(|u| u.contains(&urgency))
            && self
                .task_type
                .as_ref()
                .is_none_or(|t| t.iter().any(|t| t == task_type))
            && self.min_price.is_none_or(|m| suggested_price >= m)
    }

    /// Whether a feed task passes the filter.
    pub fn matches_task(&self, task: &FeedTask) -> bool {
        self.matches(task.urgency, &task.task_type, task.suggested_price)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_parse_and_print_the_same() {
        for s in ["feed", "admin", "task:t_9x2", "coach:c-1", "seeker:s.1"] {
            let t: Topic = s.parse().unwrap();
            assert_eq!(t.to_string(), s);
        }
        assert_eq!("tasks".parse::<Topic>(), Err(TopicError::Unknown));
        assert_eq!(
            "task:".parse::<Topic>(),
            Err(TopicError::BadId(IdError::Empty))
        );
        assert_eq!(
            "coach:a b".parse::<Topic>(),
            Err(TopicError::BadId(IdError::BadChar))
        );
    }

    #[test]
    fn an_empty_filter_matches_everything() {
        assert!(FeedFilter::default().matches(Urgency::Flexible, "x", 0));
    }

    #[test]
    fn every_filter_criterion_must_hold() {
        let f = FeedFilter {
            urgency: Some(vec![Urgency::Urgent]),
            task_type: Some(vec!["resume_review_full".into()]),
            min_price: Some(3000),
        };
        assert!(f.matches(Urgency::Urgent, "resume_review_full", 3750));
        assert!(!f.matches(Urgency::Standard, "resume_review_full", 3750));
        assert!(!f.matches(Urgency::Urgent, "cover_letter", 3750));
        assert!(!f.matches(Urgency::Urgent, "resume_review_full", 2999));
    }
}
