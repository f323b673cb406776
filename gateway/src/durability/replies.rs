//! Answers to callers: `ok`/`error` frames for WebSocket clients, the outcome for HTTP
//! requests. The publisher sends them only once the command's batch is durable.

use axum::extract::ws::Utf8Bytes;
use gavel_engine::{Rejection, Reply};
use gavel_protocol::reply::{ErrorReply, OkReply};
use gavel_protocol::views::Empty;
use gavel_protocol::{RequestId, Seq, ServerFrame};
use serde::Serialize;

use crate::sequencer::messages::ReplyTo;

/// Encodes an `ok` reply.
pub fn ok_frame(id: RequestId, result: serde_json::Value) -> Utf8Bytes {
    let frame = ServerFrame::Ok(OkReply { id, result });
    Utf8Bytes::from(serde_json::to_string(&frame).expect("replies serialize"))
}

/// Encodes an `ok` reply straight from a result's type (no intermediate JSON value: a large
/// snapshot is serialized once).
pub fn ok_value_frame<T: Serialize>(id: RequestId, result: &T) -> Utf8Bytes {
    #[derive(Serialize)]
    struct OkRef<'a, T> {
        #[serde(rename = "type")]
        kind: &'static str,
        id: &'a RequestId,
        result: &'a T,
    }
    let frame = OkRef {
        kind: "ok",
        id: &id,
        result,
    };
    Utf8Bytes::from(serde_json::to_string(&frame).expect("replies serialize"))
}

/// Encodes an `ok` reply with an empty result (`{}`).
pub fn ok_empty_frame(id: RequestId) -> Utf8Bytes {
    ok_frame(id, serde_json::to_value(Empty {}).expect("{} serializes"))
}

/// Encodes an `error` reply.
pub fn error_frame(
    id: Option<RequestId>,
    rejection: &Rejection,
    retry_after_ms: Option<u64>,
) -> Utf8Bytes {
    let frame = ServerFrame::Error(ErrorReply {
        id,
        code: rejection.code,
        message: rejection.message.clone(),
        field: rejection.field.clone(),
        retry_after_ms,
    });
    Utf8Bytes::from(serde_json::to_string(&frame).expect("replies serialize"))
}

/// Answers a command (`ok` only when the frame had an `id`; errors always).
pub fn reply(reply_to: ReplyTo, after: Seq, result: Result<Reply, Rejection>) {
    match reply_to {
        ReplyTo::Conn { conn, id } => match (result, id) {
            (Ok(reply), Some(id)) => {
                conn.send(ok_frame(id, reply.to_json()));
            }
            (Ok(_), None) => {}
            (Err(rejection), id) => {
                conn.send(error_frame(id, &rejection, None));
            }
        },
        ReplyTo::Http(tx) => {
            let _ = tx.send(result);
        }
        ReplyTo::Forward(tx) => {
            let _ = tx.send((after, result));
        }
    }
}
