//! A server frame as the market client reads it: the fields every event has, borrowed from
//! the text, and the payload fields the harness acts on left raw until the event's kind says
//! they are needed.
//!
//! The protocol's `ServerFrame` is tagged by `type` and its `Event` flattens a payload tagged by
//! `kind`; serde's derive reads such a frame by buffering it whole (twice: the frame, then the
//! event) before it looks at the tag. At 300,000 frames a second that buffering was ~40 % of
//! the load generator's CPU, and the market measured the generator's own backlog.

use std::borrow::Cow;

use gavel_protocol::ServerFrame;
use gavel_protocol::event::Event;
use gavel_protocol::model::TaskStatus;
use gavel_protocol::reply::{ErrorReply, OkReply};
use gavel_protocol::views::{BidView, FeedTask};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

/// One frame: an event read lazily, or a reply read whole (replies are one per command).
#[derive(Debug)]
pub(super) enum Frame<'a> {
    Ok(OkReply),
    Error(ErrorReply),
    Event(EventHead<'a>),
}

/// What a frame is, with an event's parts; a reply's parts are read by [`Frame::parse`].
/// Strings are plain `Cow`s (empty when absent): serde borrows from the text only for those,
/// not inside an `Option`.
#[derive(Debug, Deserialize)]
struct Head<'a> {
    #[serde(rename = "type", borrow)]
    ty: Cow<'a, str>,
    #[serde(default, borrow)]
    topic: Cow<'a, str>,
    #[serde(default)]
    seq: Option<u64>,
    #[serde(default, borrow)]
    event: Option<EventBody<'a>>,
}

/// An event's common fields and the raw payload fields the harness reads.
#[derive(Debug, Deserialize)]
struct EventBody<'a> {
    #[serde(borrow)]
    kind: Cow<'a, str>,
    at: u64,
    #[serde(default, borrow)]
    task_id: Cow<'a, str>,
    #[serde(default)]
    bid_count: Option<u32>,
    #[serde(default, borrow)]
    task: Option<&'a RawValue>,
    #[serde(default, borrow)]
    bid: Option<&'a RawValue>,
    #[serde(default, borrow)]
    status: Option<&'a RawValue>,
}

/// An event frame: where it was published, its place there, and the event.
#[derive(Debug)]
pub(super) struct EventHead<'a> {
    pub topic: Cow<'a, str>,
    pub seq: u64,
    pub kind: Cow<'a, str>,
    /// Engine time (ms).
    pub at: u64,
    task_id: Cow<'a, str>,
    bid_count: Option<u32>,
    task: Option<&'a RawValue>,
    bid: Option<&'a RawValue>,
    status: Option<&'a RawValue>,
    /// The whole frame, for the kinds the harness does not read field by field.
    text: &'a str,
}

impl<'a> Frame<'a> {
    /// Reads a frame; an error names what is missing or malformed.
    pub fn parse(text: &'a str) -> Result<Self, String> {
        let head: Head<'a> = serde_json::from_str(text).map_err(|e| e.to_string())?;
        match head.ty.as_ref() {
            "ok" => serde_json::from_str(text).map(Frame::Ok),
            "error" => serde_json::from_str(text).map(Frame::Error),
            "event" => {
                let (Some(seq), Some(body)) = (head.seq, head.event) else {
                    return Err("an event frame without seq or event".into());
                };
                if head.topic.is_empty() {
                    return Err("an event frame without topic".into());
                }
                return Ok(Frame::Event(EventHead {
                    topic: head.topic,
                    seq,
                    kind: body.kind,
                    at: body.at,
                    task_id: body.task_id,
                    bid_count: body.bid_count,
                    task: body.task,
                    bid: body.bid,
                    status: body.status,
                    text,
                }));
            }
            other => return Err(format!("unknown frame type {other:?}")),
        }
        .map_err(|e| e.to_string())
    }
}

impl EventHead<'_> {
    /// The task the event concerns, if any.
    pub fn task_id(&self) -> Option<&str> {
        (!self.task_id.is_empty()).then_some(self.task_id.as_ref())
    }

    /// `task.opened`'s task.
    pub fn opened_task(&self) -> Result<FeedTask, String> {
        decode(self.task, "task")
    }

    /// `bid.placed`'s (and the other bid events') bid.
    pub fn bid(&self) -> Result<BidView, String> {
        decode(self.bid, "bid")
    }

    /// `task.bid_count`'s count.
    pub fn bid_count(&self) -> Result<u32, String> {
        self.bid_count
            .ok_or_else(|| format!("{} without bid_count", self.kind))
    }

    /// `task.closed`'s final status.
    pub fn closed_status(&self) -> Result<TaskStatus, String> {
        decode(self.status, "status")
    }

    /// The whole event as the protocol reads it: for the kinds the harness does not act on,
    /// so an unknown kind or a malformed field is still caught.
    pub fn whole(&self) -> Result<Event, String> {
        match serde_json::from_str(self.text).map_err(|e| e.to_string())? {
            ServerFrame::Event(frame) => Ok(frame.event),
            _ => Err("not an event frame".into()),
        }
    }
}

fn decode<T: DeserializeOwned>(raw: Option<&RawValue>, field: &str) -> Result<T, String> {
    let raw = raw.ok_or_else(|| format!("no `{field}`"))?;
    serde_json::from_str(raw.get()).map_err(|e| format!("`{field}`: {e}"))
}

#[cfg(test)]
mod tests {
    use gavel_protocol::event::{Event, EventPayload};
    use gavel_protocol::reply::EventFrame;
    use gavel_protocol::{ServerFrame, Topic};

    use super::*;

    /// Frames as the server writes them: the protocol's own serializer.
    fn wire(frame: ServerFrame) -> String {
        serde_json::to_string(&frame).unwrap()
    }

    fn event(topic: Topic, payload: EventPayload) -> String {
        let task_id = Some(gavel_protocol::TaskId::new("r1-0-3-99").unwrap());
        wire(ServerFrame::Event(EventFrame {
            topic,
            seq: 7,
            event: Event {
                at: 12,
                task_id,
                payload,
            },
        }))
    }

    #[test]
    fn events_read_lazily_give_what_the_protocol_wrote() {
        let text = event(Topic::Feed, EventPayload::TaskBidCount { bid_count: 3 });
        let Frame::Event(e) = Frame::parse(&text).unwrap() else {
            panic!("an event: {text}");
        };
        assert_eq!((e.topic.as_ref(), e.seq, e.at), ("feed", 7, 12));
        assert_eq!(e.kind, "task.bid_count");
        assert_eq!(e.task_id(), Some("r1-0-3-99"));
        assert_eq!(e.bid_count(), Ok(3));
        assert!(e.bid().is_err(), "a bid count has no bid");
        assert!(
            matches!(e.topic, Cow::Borrowed(_)),
            "borrowed from the text"
        );
        assert!(matches!(
            e.whole().unwrap().payload,
            EventPayload::TaskBidCount { bid_count: 3 }
        ));
    }

    #[test]
    fn a_bid_and_a_task_decode_on_demand() {
        let bid: BidView = serde_json::from_value(serde_json::json!({
            "bid_id": "b_1", "task_id": "r1-0-3-99", "coach_id": "c1", "amount": 1200,
            "eta_hours": 1, "score": 10, "status": "pending", "created_at": 5
        }))
        .unwrap();
        let text = event(
            Topic::Task(gavel_protocol::TaskId::new("r1-0-3-99").unwrap()),
            EventPayload::BidPlaced { bid: bid.clone() },
        );
        let Frame::Event(e) = Frame::parse(&text).unwrap() else {
            panic!("an event: {text}");
        };
        assert_eq!(e.topic, "task:r1-0-3-99");
        assert_eq!(e.bid(), Ok(bid));
        assert!(e.opened_task().is_err());
    }

    #[test]
    fn replies_read_whole_and_bad_frames_say_why() {
        let ok = r#"{"type":"ok","id":"4","result":{"seq":9}}"#;
        let Ok(Frame::Ok(reply)) = Frame::parse(ok) else {
            panic!("an ok reply");
        };
        assert_eq!(
            (reply.id.as_str(), &reply.result["seq"]),
            ("4", &serde_json::json!(9))
        );
        let err = r#"{"type":"error","id":"5","code":"RATE_LIMITED","message":"slow down"}"#;
        assert!(
            matches!(Frame::parse(err), Ok(Frame::Error(e)) if e.code.as_str() == "RATE_LIMITED")
        );
        assert!(Frame::parse(r#"{"type":"event","topic":"feed"}"#).is_err());
        let unknown =
            r#"{"type":"event","topic":"feed","seq":1,"event":{"at":1,"kind":"task.nope"}}"#;
        let Ok(Frame::Event(e)) = Frame::parse(unknown) else {
            panic!("the common fields read");
        };
        assert_eq!(e.task_id(), None);
        assert!(
            e.whole().is_err(),
            "an unknown kind is caught by the whole read"
        );
        assert!(Frame::parse(r#"{"type":"nope"}"#).is_err());
        assert!(Frame::parse("not json").is_err());
    }
}
