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
//!
//! Reads (`quote`, `list_tasks`) are served by the follower from its replica, but count
//! against the same budget as commands (contract §1, §12): the follower sends a charge for
//! the user on the same link, and serves the read once the leader's limiter allowed it — or
//! relays `RATE_LIMITED` with the leader's `retry_after_ms`. A charge waits for a link like a
//! command ([`FORWARD_PATIENCE`], then `UNAVAILABLE`): a read nobody could charge is refused,
//! not served on a budget of its own.
//!
//! # Layout
//!
//! - this file — the follower's side: the queue, the backlog, one `Link` at a time.
//! - `frames` — what the link carries, both ways.
//! - `leader` — the leader's side: [`serve_follower`].

mod frames;
mod leader;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt as _, StreamExt as _};
use gavel_engine::{Rejection, Reply, Request};
use gavel_protocol::{ErrorCode, RequestId, Seq, UserId};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite;

use self::frames::{AnswerFrame, ChargedFrame, ForwardFrame, LeaderFrame};
use crate::cluster::state::{ClusterState, LeaderInfo};
use crate::durability::replies::error_frame;
use crate::fanout::outbox::ConnHandle;
use crate::ingress::auth::JwtKeys;
use crate::ingress::rate_limit::UserRateLimiter;
use crate::sequencer::handle::{EngineHandle, unavailable};
use crate::sequencer::messages::{EngineMsg, ReplyTo};

pub use self::leader::serve_follower;

/// Commands waiting to be forwarded; full → `UNAVAILABLE`.
pub const FORWARD_QUEUE: usize = 4096;
/// How long a command may wait for a link to the leader (one that is still starting after a
/// failover, or a link being re-established) before it is refused `UNAVAILABLE`.
pub const FORWARD_PATIENCE: Duration = Duration::from_secs(2);
/// How long a new link waits for the leader's hello before treating it as a leader from
/// before read charges (one that never sends it).
const HELLO_PATIENCE: Duration = Duration::from_secs(1);
/// How long a forwarded command may wait for the leader's answer.
pub const IN_FLIGHT_LIMIT: Duration = Duration::from_secs(10);

/// What goes to the leader.
#[derive(Debug)]
pub enum Forward {
    /// A command, run by the leader.
    Command {
        request: Request,
        reply_to: ReplyTo,
        received: Instant,
    },
    /// A read, charged to the leader's limiter and then served here.
    Charge(Charge),
}

/// A read waiting for the leader's limiter.
#[derive(Debug)]
pub struct Charge {
    pub user: UserId,
    /// Handed to this node's engine task once the leader allowed it.
    pub read: EngineMsg,
    /// This node's limiter: charged instead when the leader cannot take charges (a leader
    /// from before them, during a rolling upgrade).
    pub local: Arc<UserRateLimiter>,
    /// Where a refusal goes.
    pub conn: ConnHandle,
    pub id: Option<RequestId>,
    pub received: Instant,
}

impl Forward {
    fn received(&self) -> Instant {
        match self {
            Forward::Command { received, .. } => *received,
            Forward::Charge(charge) => charge.received,
        }
    }
}

/// What waits for the leader's answer.
enum Waiting {
    Command {
        reply_to: ReplyTo,
        command: &'static str,
        received: Instant,
    },
    Charge(Box<Charge>),
}

struct InFlight {
    waiting: Waiting,
    sent: Instant,
}

impl Charge {
    /// Refuses the read `UNAVAILABLE` (nothing was served).
    fn refuse(self, why: &str) {
        self.conn
            .send(error_frame(self.id, &unavailable(why), None));
    }

    /// Charges the read to this node's own limiter and serves or refuses it.
    fn settle_locally(self, engine: &EngineHandle) {
        let checked = self.local.check(&self.user);
        let answer = ChargedFrame {
            id: 0,
            allowed: checked.is_ok(),
            retry_after_ms: checked.err(),
        };
        self.settle(engine, &answer);
    }

    /// Serves the read, or relays the leader's `RATE_LIMITED`.
    fn settle(self, engine: &EngineHandle, answer: &ChargedFrame) {
        if !answer.allowed {
            let rejection = Rejection {
                code: ErrorCode::RateLimited,
                message: "too many commands; slow down".into(),
                field: None,
            };
            // The leader always says when (at least 1 ms).
            let wait_ms = answer.retry_after_ms.unwrap_or(1);
            self.conn
                .send(error_frame(self.id, &rejection, Some(wait_ms)));
        } else if engine.try_send(self.read).is_err() {
            let busy = unavailable("the server is busy; retry shortly");
            self.conn.send(error_frame(self.id, &busy, None));
        }
    }
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
        .is_some_and(|item| item.received().elapsed() >= FORWARD_PATIENCE)
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
        // A leader that takes charges says so first, at once; one from before them says
        // nothing unasked, so after a moment its reads are charged here instead.
        let charges = match tokio::time::timeout(HELLO_PATIENCE, stream.next()).await {
            Ok(Some(Ok(tungstenite::Message::Text(text)))) => {
                matches!(serde_json::from_str(&text), Ok(LeaderFrame::Hello(hello)) if hello.charges)
            }
            Ok(Some(Ok(_))) | Err(_) => false,
            Ok(Some(Err(_)) | None) => return false,
        };
        if !charges {
            tracing::warn!(%connected_to, "the leader takes no charges: reads are counted by this node");
        }
        let mut in_flight: HashMap<u64, InFlight> = HashMap::new();
        let mut next_id: u64 = 0;
        let mut sweep = tokio::time::interval(Duration::from_secs(1));
        let stopping = loop {
            tokio::select! {
                _ = sweep.tick() => expire(cluster, engine, &mut in_flight).await,
                // At most FORWARD_QUEUE unanswered at once: the queue fills behind (UNAVAILABLE).
                item = next_item(queue, backlog), if in_flight.len() < FORWARD_QUEUE => {
                    let Some(item) = item else { break true };
                    let item = match item {
                        Forward::Charge(charge) if !charges => {
                            charge.settle_locally(engine);
                            continue;
                        }
                        item => item,
                    };
                    next_id += 1;
                    let text = send(&mut in_flight, next_id, item);
                    if sink.send(tungstenite::Message::text(text)).await.is_err() {
                        break false;
                    }
                }
                frame = stream.next() => match frame {
                    Some(Ok(tungstenite::Message::Text(text))) => {
                        match serde_json::from_str::<LeaderFrame>(&text) {
                            Ok(LeaderFrame::Answer(answer)) => {
                                relay(cluster, engine, &mut in_flight, answer).await;
                            }
                            Ok(LeaderFrame::Charged(answer)) => {
                                settle(engine, &mut in_flight, &answer);
                            }
                            Ok(LeaderFrame::Hello(_)) => {}
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

/// Notes `item` as in flight under `id`; returns the frame that sends it.
fn send(in_flight: &mut HashMap<u64, InFlight>, id: u64, item: Forward) -> String {
    let (frame, waiting) = match item {
        Forward::Command {
            request,
            reply_to,
            received,
        } => {
            let waiting = Waiting::Command {
                reply_to,
                command: request.command.name(),
                received,
            };
            (ForwardFrame::Command { id, request }, waiting)
        }
        Forward::Charge(charge) => {
            let frame = ForwardFrame::Charge {
                id,
                charge: charge.user.clone(),
            };
            (frame, Waiting::Charge(Box::new(charge)))
        }
    };
    let sent = Instant::now();
    in_flight.insert(id, InFlight { waiting, sent });
    serde_json::to_string(&frame).expect("forward frames serialize")
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

/// Answers a forwarded command (counted by `outcome`) or a charged read `UNAVAILABLE` without
/// the leader's answer.
async fn give_up(
    cluster: &ClusterState,
    engine: &EngineHandle,
    lost: InFlight,
    outcome: &str,
    why: &str,
) {
    let (reply_to, command, received) = match lost.waiting {
        Waiting::Command {
            reply_to,
            command,
            received,
        } => (reply_to, command, received),
        Waiting::Charge(charge) => return charge.refuse(why),
    };
    cluster
        .metrics
        .forwarded
        .with_label_values(&[outcome])
        .inc();
    let msg = forwarded(0, reply_to, Err(unavailable(why)), command, received);
    let _ = engine.send(msg).await;
}

/// Serves (or refuses) the read the leader answered a charge for.
fn settle(engine: &EngineHandle, in_flight: &mut HashMap<u64, InFlight>, answer: &ChargedFrame) {
    let Some(InFlight { waiting, sent }) = in_flight.remove(&answer.id) else {
        return;
    };
    match waiting {
        Waiting::Charge(charge) => charge.settle(engine, answer),
        // Not this command's answer: it keeps waiting for its own (or IN_FLIGHT_LIMIT).
        waiting => {
            tracing::warn!(id = answer.id, "the leader answered a command as a charge");
            in_flight.insert(answer.id, InFlight { waiting, sent });
        }
    }
}

/// Hands one answer to the engine task (which holds it until the replica reaches `after`).
async fn relay(
    cluster: &ClusterState,
    engine: &EngineHandle,
    in_flight: &mut HashMap<u64, InFlight>,
    answer: AnswerFrame,
) {
    let (reply_to, command, received, sent) = match in_flight.remove(&answer.id) {
        Some(InFlight {
            waiting:
                Waiting::Command {
                    reply_to,
                    command,
                    received,
                },
            sent,
        }) => (reply_to, command, received, sent),
        Some(InFlight {
            waiting: Waiting::Charge(charge),
            ..
        }) => {
            tracing::warn!(id = answer.id, "the leader answered a charge as a command");
            return charge.refuse("the leader could not be asked; retry shortly");
        }
        None => return,
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
        .observe(sent.elapsed().as_secs_f64());
    if let (Err(rejection), Some(wait_ms), ReplyTo::Conn { conn, id }) =
        (&answer.result, answer.retry_after_ms, &reply_to)
    {
        // Nothing to wait for: refused before it ran.
        conn.send(error_frame(id.clone(), rejection, Some(wait_ms)));
        return;
    }
    let msg = forwarded(answer.after, reply_to, answer.result, command, received);
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

/// Refuses `item` `UNAVAILABLE` before it reached the leader.
async fn refuse(engine: &EngineHandle, item: Forward, why: &str) {
    match item {
        Forward::Command {
            request,
            reply_to,
            received,
        } => {
            let command = request.command.name();
            let msg = forwarded(0, reply_to, Err(unavailable(why)), command, received);
            let _ = engine.send(msg).await;
        }
        Forward::Charge(charge) => charge.refuse(why),
    }
}

#[cfg(test)]
mod tests;
