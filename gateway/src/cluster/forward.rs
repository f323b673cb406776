//! Commands from a follower to the leader: one WebSocket per follower to the leader's
//! `/v1/cluster/forward`, many commands in flight on it, each tagged with a number. Chosen
//! over Redis because a reply must reach one waiting follower, not every node, and a direct
//! connection adds one hop instead of two (measured in docs/benchmarks.md).
//!
//! The leader runs each forwarded command like its own — rate-limited per user by the
//! leader's one limiter, so the limit is cluster-wide — and answers with the outcome and the
//! `seq` after the command's events. The follower relays the reply once its replica has
//! applied that `seq` (read your writes). A connection lost with commands in flight answers
//! them `UNAVAILABLE`: whether they were applied is unknown, and a retry with the same `id`
//! gets the original reply from the replicated idempotency table.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::ws::{Message, WebSocket};
use futures_util::{SinkExt as _, StreamExt as _};
use gavel_engine::{Rejection, Reply, Request};
use gavel_protocol::{ErrorCode, Seq};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite;

use crate::app::AppState;
use crate::cluster::state::{ClusterState, LeaderInfo};
use crate::durability::replies::error_frame;
use crate::ingress::auth::JwtKeys;
use crate::sequencer::engine_task::{EngineHandle, unavailable};
use crate::sequencer::messages::{EngineMsg, ReplyTo};

/// Commands waiting to be forwarded; full → `UNAVAILABLE`.
pub const FORWARD_QUEUE: usize = 4096;
/// How long a command may wait for a link to the leader (one that is still starting after a
/// failover, or a link being re-established) before it is refused `UNAVAILABLE`.
pub const FORWARD_PATIENCE: Duration = Duration::from_secs(2);
/// How long a forwarded command may wait for the leader's answer.
pub const IN_FLIGHT_LIMIT: Duration = Duration::from_secs(10);

/// A command on its way to the leader.
#[derive(Debug)]
pub struct Forward {
    pub request: Request,
    pub reply_to: ReplyTo,
    pub received: Instant,
}

/// Follower → leader.
#[derive(Debug, Serialize, Deserialize)]
struct ForwardFrame {
    id: u64,
    request: Request,
}

/// Leader → follower.
#[derive(Debug, Serialize, Deserialize)]
struct AnswerFrame {
    id: u64,
    /// The leader's `seq` after the command's events.
    after: Seq,
    result: Result<Reply, Rejection>,
    /// Set on `RATE_LIMITED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retry_after_ms: Option<u64>,
}

struct InFlight {
    reply_to: ReplyTo,
    command: &'static str,
    received: Instant,
    sent: Instant,
}

/// The follower's side: forwards queued commands to whoever leads, for as long as the
/// pipeline runs.
pub async fn forward(
    cluster: Arc<ClusterState>,
    engine: EngineHandle,
    mut queue: mpsc::Receiver<Forward>,
    keys: JwtKeys,
    mut stopped: watch::Receiver<bool>,
) {
    let mut leaders = cluster.watch_leader();
    // Commands waiting for a link to the leader (a new leader is still starting, or the link
    // broke): sent once it is up, refused once they waited FORWARD_PATIENCE.
    let mut backlog: VecDeque<Forward> = VecDeque::new();
    loop {
        cluster.set_link_up(false);
        refuse_stale(&engine, &mut backlog).await;
        if *stopped.borrow() {
            for item in backlog.drain(..) {
                refuse(&engine, item, "this node is restarting; retry").await;
            }
            return;
        }
        let leader = leaders.borrow_and_update().clone();
        let Some(leader) = leader.filter(|l| l.node_id != cluster.node_id) else {
            tokio::select! {
                _ = leaders.changed() => {}
                item = queue.recv() => match item {
                    Some(item) => keep(&engine, &mut backlog, item).await,
                    None => return,
                },
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
                () = crate::cluster::until_stopped(&mut stopped) => return,
            }
            continue;
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let token = keys.mint_node(&cluster.node_id, Duration::from_secs(3600), now);
        let url = format!("ws://{}/v1/cluster/forward?token={token}", leader.addr);
        let connect = tokio_tungstenite::connect_async(url.as_str());
        let socket = match tokio::time::timeout(Duration::from_secs(2), connect).await {
            Ok(Ok((socket, _))) => socket,
            failed => {
                if let Ok(Err(error)) = failed {
                    tracing::debug!(%error, leader = %leader.node_id, "cannot reach the leader");
                }
                gather(
                    &engine,
                    &mut queue,
                    &mut backlog,
                    Duration::from_millis(100),
                )
                .await;
                continue;
            }
        };
        tracing::info!(leader = %leader.node_id, "forwarding commands to the leader");
        cluster.set_link_up(true);
        let link = Link {
            cluster: &cluster,
            engine: &engine,
            connected_to: &leader.node_id,
        };
        let ended = link
            .run(socket, &mut queue, &mut backlog, &mut leaders, &mut stopped)
            .await;
        if ended {
            return;
        }
    }
}

/// Takes what arrives on `queue` for `pause` into the backlog.
async fn gather(
    engine: &EngineHandle,
    queue: &mut mpsc::Receiver<Forward>,
    backlog: &mut VecDeque<Forward>,
    pause: Duration,
) {
    let deadline = tokio::time::Instant::now() + pause;
    while let Ok(Some(item)) = tokio::time::timeout_at(deadline, queue.recv()).await {
        keep(engine, backlog, item).await;
    }
}

/// Keeps `item` for when the link is up; a backlog as long as the queue refuses it.
async fn keep(engine: &EngineHandle, backlog: &mut VecDeque<Forward>, item: Forward) {
    if backlog.len() >= FORWARD_QUEUE {
        refuse(
            engine,
            item,
            "too many commands waiting for the leader; retry shortly",
        )
        .await;
    } else {
        backlog.push_back(item);
    }
}

/// Refuses the commands that waited too long for a link to the leader.
async fn refuse_stale(engine: &EngineHandle, backlog: &mut VecDeque<Forward>) {
    while backlog
        .front()
        .is_some_and(|item| item.received.elapsed() >= FORWARD_PATIENCE)
    {
        let item = backlog.pop_front().expect("checked above");
        refuse(
            engine,
            item,
            "the leader cannot be reached right now; retry shortly",
        )
        .await;
    }
}

type LeaderSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One connection to the leader.
struct Link<'a> {
    cluster: &'a ClusterState,
    engine: &'a EngineHandle,
    connected_to: &'a str,
}

impl Link<'_> {
    /// Runs the connection (the backlog first); `true` when the pipeline is stopping.
    async fn run(
        &self,
        socket: LeaderSocket,
        queue: &mut mpsc::Receiver<Forward>,
        backlog: &mut VecDeque<Forward>,
        leaders: &mut watch::Receiver<Option<LeaderInfo>>,
        stopped: &mut watch::Receiver<bool>,
    ) -> bool {
        let (cluster, engine, connected_to) = (self.cluster, self.engine, self.connected_to);
        let (mut sink, mut stream) = socket.split();
        let mut in_flight: HashMap<u64, InFlight> = HashMap::new();
        let mut next_id: u64 = 0;
        let mut sweep = tokio::time::interval(Duration::from_secs(1));
        let stopping = loop {
            tokio::select! {
                _ = sweep.tick() => expire(cluster, engine, &mut in_flight).await,
                // At most FORWARD_QUEUE unanswered at once: the queue fills behind (UNAVAILABLE).
                item = next_item(queue, backlog), if in_flight.len() < FORWARD_QUEUE => {
                    let Some(item) = item else { break true };
                    next_id += 1;
                    let command = item.request.command.name();
                    let frame = ForwardFrame { id: next_id, request: item.request };
                    let text = serde_json::to_string(&frame).expect("requests serialize");
                    in_flight.insert(next_id, InFlight {
                        reply_to: item.reply_to,
                        command,
                        received: item.received,
                        sent: Instant::now(),
                    });
                    if sink.send(tungstenite::Message::text(text)).await.is_err() {
                        break false;
                    }
                }
                frame = stream.next() => match frame {
                    Some(Ok(tungstenite::Message::Text(text))) => {
                        match serde_json::from_str::<AnswerFrame>(&text) {
                            Ok(answer) => relay(cluster, engine, &mut in_flight, answer).await,
                            Err(error) => tracing::warn!(%error, "bad answer from the leader"),
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => break false,
                },
                changed = leaders.changed() => {
                    let same = leaders.borrow().as_ref().is_some_and(|l| l.node_id == connected_to);
                    if changed.is_err() || !same { break false; }
                }
                () = crate::cluster::until_stopped(stopped) => break true,
            }
        };
        for (_, lost) in in_flight.drain() {
            let why = "the connection to the leader was lost; retry with the same id";
            give_up(cluster, engine, lost, "lost", why).await;
        }
        stopping
    }
}

/// The backlog's oldest command, else the next one queued.
async fn next_item(
    queue: &mut mpsc::Receiver<Forward>,
    backlog: &mut VecDeque<Forward>,
) -> Option<Forward> {
    match backlog.pop_front() {
        Some(item) => Some(item),
        None => queue.recv().await,
    }
}

/// Answers `UNAVAILABLE` the commands the leader has not answered within [`IN_FLIGHT_LIMIT`]
/// (a leader stuck on its database, or a link that died without closing): whether they were
/// applied is unknown, and a retry with the same `id` gets the original reply.
async fn expire(
    cluster: &ClusterState,
    engine: &EngineHandle,
    in_flight: &mut HashMap<u64, InFlight>,
) {
    let overdue: Vec<u64> = in_flight
        .iter()
        .filter(|(_, f)| f.sent.elapsed() >= IN_FLIGHT_LIMIT)
        .map(|(id, _)| *id)
        .collect();
    for id in overdue {
        let lost = in_flight.remove(&id).expect("listed above");
        let why = "the leader did not answer in time; retry with the same id";
        give_up(cluster, engine, lost, "timeout", why).await;
    }
}

/// Answers a forwarded command `UNAVAILABLE` without the leader's answer (counted by `outcome`).
async fn give_up(
    cluster: &ClusterState,
    engine: &EngineHandle,
    lost: InFlight,
    outcome: &str,
    why: &str,
) {
    cluster
        .metrics
        .forwarded
        .with_label_values(&[outcome])
        .inc();
    let msg = forwarded(
        0,
        lost.reply_to,
        Err(unavailable(why)),
        lost.command,
        lost.received,
    );
    let _ = engine.send(msg).await;
}

/// Hands one answer to the engine task (which holds it until the replica reaches `after`).
async fn relay(
    cluster: &ClusterState,
    engine: &EngineHandle,
    in_flight: &mut HashMap<u64, InFlight>,
    answer: AnswerFrame,
) {
    let Some(waiting) = in_flight.remove(&answer.id) else {
        return;
    };
    let outcome = match &answer.result {
        Ok(_) => "ok",
        Err(r) => r.code.as_str(),
    };
    cluster
        .metrics
        .forwarded
        .with_label_values(&[outcome])
        .inc();
    cluster
        .metrics
        .forward_seconds
        .observe(waiting.sent.elapsed().as_secs_f64());
    if let (Err(rejection), Some(wait_ms), ReplyTo::Conn { conn, id }) =
        (&answer.result, answer.retry_after_ms, &waiting.reply_to)
    {
        // Nothing to wait for: refused before it ran.
        conn.send(error_frame(id.clone(), rejection, Some(wait_ms)));
        return;
    }
    let msg = forwarded(
        answer.after,
        waiting.reply_to,
        answer.result,
        waiting.command,
        waiting.received,
    );
    let _ = engine.send(msg).await;
}

fn forwarded(
    after: Seq,
    reply_to: ReplyTo,
    result: Result<Reply, Rejection>,
    command: &'static str,
    received: Instant,
) -> EngineMsg {
    EngineMsg::Forwarded {
        after,
        reply_to,
        result,
        command,
        received,
    }
}

async fn refuse(engine: &EngineHandle, item: Forward, why: &str) {
    let command = item.request.command.name();
    let msg = forwarded(
        0,
        item.reply_to,
        Err(unavailable(why)),
        command,
        item.received,
    );
    let _ = engine.send(msg).await;
}

/// The leader's side: runs the commands one follower forwards.
pub async fn serve_follower(socket: WebSocket, state: Arc<AppState>, follower: String) {
    tracing::info!(%follower, "a follower connected to forward commands");
    let (mut sink, mut stream) = socket.split();
    let (answers, mut outgoing) = mpsc::channel::<String>(FORWARD_QUEUE);
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
        let frame: ForwardFrame = match serde_json::from_str(&text) {
            Ok(frame) => frame,
            Err(error) => {
                tracing::warn!(%error, %follower, "bad forwarded frame");
                continue;
            }
        };
        run_forwarded(&state, frame, answers.clone());
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

fn run_forwarded(state: &AppState, frame: ForwardFrame, answers: mpsc::Sender<String>) {
    let id = frame.id;
    let answer = move |after, result, retry_after_ms| {
        let frame = AnswerFrame {
            id,
            after,
            result,
            retry_after_ms,
        };
        serde_json::to_string(&frame).expect("answers serialize")
    };
    if let Err(wait_ms) = state.rate_limiter.check(&frame.request.actor.user) {
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
        request: frame.request,
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
