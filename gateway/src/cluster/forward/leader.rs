//! The leader's side of the forward link: runs the commands one follower forwards, and
//! charges its reads to the same per-user limiter as every command (one budget for the
//! cluster, contract §12).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket};
use futures_util::{SinkExt as _, StreamExt as _};
use gavel_engine::{Rejection, Request};
use gavel_protocol::{ErrorCode, UserId};
use tokio::sync::{mpsc, oneshot};

use super::FORWARD_QUEUE;
use super::frames::{AnswerFrame, ChargedFrame, ForwardFrame, HelloFrame};
use crate::app::AppState;
use crate::sequencer::handle::unavailable;
use crate::sequencer::messages::{EngineMsg, ReplyTo};

/// Serves one follower's link until it closes or this pipeline stops.
pub async fn serve_follower(socket: WebSocket, state: Arc<AppState>, follower: String) {
    tracing::info!(%follower, "a follower connected to forward commands");
    let (mut sink, mut stream) = socket.split();
    let (answers, mut outgoing) = mpsc::channel::<String>(FORWARD_QUEUE);
    let hello = serde_json::to_string(&HelloFrame { charges: true }).expect("hello serializes");
    answers.try_send(hello).expect("an empty queue has room");
    let writer = tokio::spawn(async move {
        while let Some(text) = outgoing.recv().await {
            if sink.send(Message::Text(text.into())).await.is_err() {
                break;
            }
        }
    });
    let mut shutting_down = state.shutting_down.clone();
    loop {
        let message = tokio::select! {
            message = stream.next() => message,
            () = crate::cluster::until_stopped(&mut shutting_down) => break,
        };
        let Some(Ok(message)) = message else {
            break;
        };
        let Message::Text(text) = message else {
            continue;
        };
        match serde_json::from_str(&text) {
            Ok(ForwardFrame::Command { id, request }) => {
                run_forwarded(&state, id, request, answers.clone());
            }
            Ok(ForwardFrame::Charge { id, charge }) => charge_read(&state, id, &charge, &answers),
            Err(error) => tracing::warn!(%error, %follower, "bad forwarded frame"),
        }
    }
    drop(answers);
    // Answers still on their way get a moment; a follower that stopped reading does not hold
    // this (stopping) pipeline up.
    if tokio::time::timeout(Duration::from_secs(2), writer)
        .await
        .is_err()
    {
        tracing::warn!(%follower, "a follower's link did not drain; dropped");
    }
}

/// Answers a charge at once: the limiter is all it needs.
fn charge_read(state: &AppState, id: u64, user: &UserId, answers: &mpsc::Sender<String>) {
    let checked = state.rate_limiter.check(user);
    if checked.is_err() {
        state.metrics.rate_limited.inc();
    }
    let frame = ChargedFrame {
        id,
        allowed: checked.is_ok(),
        retry_after_ms: checked.err(),
    };
    let text = serde_json::to_string(&frame).expect("answers serialize");
    if let Err(mpsc::error::TrySendError::Full(text)) = answers.try_send(text) {
        // The writer is behind (a slow follower): wait for it off this loop, as commands do.
        let answers = answers.clone();
        tokio::spawn(async move { answers.send(text).await });
    }
}

fn run_forwarded(state: &AppState, id: u64, request: Request, answers: mpsc::Sender<String>) {
    let answer = move |after, result, retry_after_ms| {
        let frame = AnswerFrame {
            id,
            after,
            result,
            retry_after_ms,
        };
        serde_json::to_string(&frame).expect("answers serialize")
    };
    if let Err(wait_ms) = state.rate_limiter.check(&request.actor.user) {
        state.metrics.rate_limited.inc();
        let rejection = Rejection {
            code: ErrorCode::RateLimited,
            message: "too many commands; slow down".into(),
            field: None,
        };
        let text = answer(0, Err(rejection), Some(wait_ms));
        tokio::spawn(async move { answers.send(text).await });
        return;
    }
    let (tx, rx) = oneshot::channel();
    let msg = EngineMsg::Command {
        request,
        reply_to: ReplyTo::Forward(tx),
        received: Instant::now(),
    };
    if state.engine.try_send(msg).is_err() {
        let busy = Err(unavailable("the leader is busy; retry shortly"));
        let text = answer(0, busy, None);
        tokio::spawn(async move { answers.send(text).await });
        return;
    }
    tokio::spawn(async move {
        let (after, result) = rx
            .await
            .unwrap_or_else(|_| (0, Err(unavailable("the leader is shutting down"))));
        let _ = answers.send(answer(after, result, None)).await;
    });
}
