//! Pieces every simulated client uses: encoding frames, the per-topic order check, a cheap
//! decoder for hot paths, and closing politely.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use gavel_protocol::{ClientFrame, Command, RequestId};
use serde::Deserialize;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use crate::net::Ws;
use crate::stats::Stats;

/// Encodes a frame with an `id` (every frame the harness sends has one).
pub fn encode(id: &str, command: Command) -> String {
    let frame = ClientFrame {
        id: Some(RequestId::new(id).expect("harness request ids are valid")),
        command,
    };
    serde_json::to_string(&frame).expect("client frames serialize")
}

/// Sends one text frame (written and flushed at once).
pub async fn send_text(ws: &mut Ws, text: String) -> Result<(), String> {
    ws.send(Message::text(text))
        .await
        .map_err(|e| format!("send: {e}"))
}

/// Per topic, the last `seq` seen: events must come in strictly increasing order (no
/// duplicates, no going back).
#[derive(Debug, Default)]
pub struct Order {
    last: HashMap<String, u64>,
}

impl Order {
    /// Records an event's `seq`; `Err(last)` when it does not increase.
    pub fn check(&mut self, topic: &str, seq: u64) -> Result<(), u64> {
        match self.last.get_mut(topic) {
            Some(last) if seq <= *last => Err(*last),
            Some(last) => {
                *last = seq;
                Ok(())
            }
            None => {
                self.last.insert(topic.to_owned(), seq);
                Ok(())
            }
        }
    }

    /// A subscription's starting point (the snapshot's `seq`): later events must exceed it.
    pub fn start(&mut self, topic: &str, seq: u64) {
        let last = self.last.entry(topic.to_owned()).or_insert(seq);
        *last = (*last).max(seq);
    }

    pub fn forget(&mut self, topic: &str) {
        self.last.remove(topic);
    }
}

/// Just enough of a server frame for the hot paths (fan-out), borrowing from the text.
#[derive(Debug, Deserialize)]
pub struct Lite<'a> {
    #[serde(rename = "type", borrow)]
    pub ty: Cow<'a, str>,
    #[serde(default, borrow)]
    pub id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub topic: Option<Cow<'a, str>>,
    #[serde(default)]
    pub seq: Option<u64>,
    #[serde(default, borrow)]
    pub event: Option<LiteEvent<'a>>,
    #[serde(default, borrow)]
    pub code: Option<Cow<'a, str>>,
}

/// The common fields of an event.
#[derive(Debug, Deserialize)]
pub struct LiteEvent<'a> {
    #[serde(borrow)]
    pub kind: Cow<'a, str>,
    /// Engine time (ms).
    #[serde(default)]
    pub at: u64,
    #[serde(default, borrow)]
    pub task_id: Option<Cow<'a, str>>,
}

/// Tallies a close the client did not ask for.
pub fn unexpected_close(stats: &Stats, frame: Option<&CloseFrame>) {
    let code = frame
        .map(|f| u16::from(f.code).to_string())
        .unwrap_or_else(|| "none".into());
    stats.close(&code);
}

/// Closes politely: sends a close frame, then reads (and drops) whatever still arrives until
/// the server's close reply, for at most 5 s.
pub async fn close(ws: &mut Ws, stats: &Stats) {
    if ws.close(None).await.is_err() {
        return;
    }
    let done = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(msg) = ws.next().await {
            match msg {
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    if done.is_err() {
        stats.transport("close timeout");
    }
}

/// The parts of a task id the harness chose: `<run>-<worker>-<n>-<sent µs>`; `None` for
/// tasks of other runs.
pub fn parse_task_id<'a>(id: &'a str, run: &str) -> Option<(&'a str, u64)> {
    let mut parts = id.split('-');
    if parts.next()? != run {
        return None;
    }
    let group = parts.next()?;
    let _n = parts.next()?;
    let sent_us = parts.next()?.parse().ok()?;
    Some((group, sent_us))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_refuses_duplicates_and_going_back() {
        let mut o = Order::default();
        assert!(o.check("feed", 5).is_ok());
        assert_eq!(o.check("feed", 5), Err(5));
        assert_eq!(o.check("feed", 4), Err(5));
        assert!(o.check("feed", 9).is_ok());
        o.start("task:t", 10);
        assert_eq!(o.check("task:t", 10), Err(10));
        assert!(o.check("task:t", 11).is_ok());
    }

    #[test]
    fn the_lite_decoder_reads_event_frames() {
        let text = r#"{"type":"event","topic":"feed","seq":7,"event":{"at":12,"task_id":"r1-0-3-99","kind":"task.opened","task":{"task_id":"x"}}}"#;
        let f: Lite = serde_json::from_str(text).unwrap();
        assert_eq!(f.ty, "event");
        assert_eq!(f.seq, Some(7));
        let e = f.event.unwrap();
        assert_eq!(e.kind, "task.opened");
        assert_eq!(
            parse_task_id(e.task_id.as_deref().unwrap(), "r1"),
            Some(("0", 99))
        );
        assert_eq!(parse_task_id("other-0-3-99", "r1"), None);
    }
}
