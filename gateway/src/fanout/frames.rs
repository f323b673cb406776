//! Event frames: an event for one topic, serialized once into shared bytes that every
//! subscriber's queue holds a reference to.

use axum::extract::ws::Utf8Bytes;
use gavel_protocol::event::Event as WireEvent;
use gavel_protocol::{Seq, Topic};
use serde::Serialize;

/// An event frame, serialized straight from borrowed parts (no copy of the event).
#[derive(Serialize)]
struct EventFrameRef<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    topic: &'a Topic,
    seq: Seq,
    event: &'a WireEvent,
}

/// Encodes one event frame.
pub fn encode_event(topic: &Topic, seq: Seq, event: &WireEvent) -> Utf8Bytes {
    let frame = EventFrameRef {
        kind: "event",
        topic,
        seq,
        event,
    };
    Utf8Bytes::from(serde_json::to_string(&frame).expect("wire events always serialize"))
}
