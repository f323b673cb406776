//! The engine task on a cluster follower. The same single writer of the same replica, fed
//! differently: it never decides and never fires a deadline — it `evolve`s the leader's
//! durable batches (from [`crate::cluster::replication`]), in `seq` order, and hands them to
//! the publisher exactly as a leader hands over its own (already durable, so nothing waits).
//! Subscriptions, snapshots and reads run here against the replica as on a leader.
//!
//! Commands go to the leader ([`crate::cluster::forward`]); the leader's answer comes back
//! with the `seq` after the command's events and is held until the replica has applied that
//! far, so a client never gets `ok` before it could see what the command did.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gavel_engine::{Rejection, Reply};
use gavel_protocol::Seq;
use tokio::sync::{mpsc, oneshot};

use crate::cluster::forward::Forward;
use crate::cluster::state::ClusterState;
use crate::fanout::outbox::ConnId;
use crate::sequencer::engine_task::{EngineActor, sleep_until};
use crate::sequencer::handle::unavailable;
use crate::sequencer::messages::*;

/// What a follower's engine task holds besides the replica.
#[derive(Debug)]
pub struct FollowerLink {
    pub forward: mpsc::Sender<Forward>,
    pub cluster: Arc<ClusterState>,
    /// Answers from the leader whose `seq` the replica has not reached yet, in arrival order.
    held: Vec<HeldReply>,
    /// Resumes from a position the replica has not reached yet (the client saw it on a node
    /// further ahead), with the moment they are given up on (then: a fresh snapshot).
    held_resumes: Vec<(SubscribeRequest, Instant)>,
}

/// How long a resume from a position past the replica waits for the replica to get there.
pub const RESUME_PATIENCE: Duration = Duration::from_secs(2);

impl FollowerLink {
    pub fn new(forward: mpsc::Sender<Forward>, cluster: Arc<ClusterState>) -> Self {
        FollowerLink {
            forward,
            cluster,
            held: Vec::new(),
            held_resumes: Vec::new(),
        }
    }
}

#[derive(Debug)]
struct HeldReply {
    after: Seq,
    /// When it stops waiting for the replica (then: `UNAVAILABLE`, retry with the same id).
    give_up: Instant,
    reply_to: ReplyTo,
    result: Result<Reply, Rejection>,
    command: &'static str,
    received: Instant,
}

impl EngineActor {
    pub(super) async fn run_follower(mut self, mut rx: mpsc::Receiver<EngineMsg>) {
        loop {
            let link = self.link();
            let resumes = link.held_resumes.iter().map(|(_, at)| *at);
            let give_up = resumes.chain(link.held.iter().map(|h| h.give_up)).min();
            let first = tokio::select! {
                msg = rx.recv() => match msg {
                    Some(msg) => Some(msg),
                    None => break,
                },
                () = sleep_until(give_up.map(tokio::time::Instant::from_std)) => None,
            };
            let batch = self.take_batch(first, &mut rx);
            if self.follow(batch).await.is_err() {
                break;
            }
        }
        tracing::info!(seq = self.engine.seq(), "follower engine task stopped");
    }

    /// Applies one batch of messages and hands the result to the publisher.
    async fn follow(&mut self, batch: Vec<EngineMsg>) -> Result<(), ()> {
        let decided_at = Instant::now();
        let mut events = Vec::new();
        let mut steps = Vec::new();
        for msg in batch {
            match msg {
                EngineMsg::Replicated(rows) => self.apply(rows, &mut events),
                EngineMsg::Command {
                    request,
                    reply_to,
                    received,
                } => self.forward(request, reply_to, received, &mut steps),
                EngineMsg::Forwarded {
                    after,
                    reply_to,
                    result,
                    command,
                    received,
                } => self.link().hold(HeldReply {
                    after,
                    give_up: Instant::now(),
                    reply_to,
                    result,
                    command,
                    received,
                }),
                EngineMsg::Subscribe(request) if self.ahead_of_replica(&request) => {
                    let give_up = Instant::now() + RESUME_PATIENCE;
                    self.link().held_resumes.push((request, give_up));
                }
                other => {
                    if let EngineMsg::Unsubscribe { conn, .. } = &other {
                        // A held resume of this connection goes first (order is kept).
                        self.release_resumes(Some(conn.id()), &mut steps);
                    }
                    if let EngineMsg::Disconnected { conn } = &other {
                        self.release_resumes(Some(*conn), &mut steps);
                    }
                    self.take_local(other, &mut steps);
                }
            }
        }
        self.release_held(&mut steps);
        self.release_resumes(None, &mut steps);
        let seq = self.engine.seq();
        self.link().cluster.note_applied(seq);
        let events = Arc::new(events);
        let commit = (!events.is_empty()).then(already_durable);
        let item = PublishItem {
            commit,
            events,
            steps,
            decided_at,
        };
        self.publisher
            .send(PublisherMsg::Item(item))
            .await
            .map_err(|_| ())
    }

    fn link(&mut self) -> &mut FollowerLink {
        match &mut self.mode {
            crate::sequencer::engine_task::Mode::Follower(link) => link,
            crate::sequencer::engine_task::Mode::Leader(_) => {
                unreachable!("only a follower's engine forwards")
            }
        }
    }

    /// Evolves the replica with the next durable events (the replication task sends them
    /// contiguous; anything already applied is skipped).
    fn apply(
        &mut self,
        rows: Vec<(Seq, gavel_engine::Event)>,
        out: &mut Vec<(Seq, gavel_engine::Event)>,
    ) {
        for (seq, event) in rows {
            let next = self.engine.seq() + 1;
            if seq < next {
                continue;
            }
            assert_eq!(seq, next, "replication must hand over events without gaps");
            self.engine.evolve(&event);
            out.push((seq, event));
        }
    }

    fn forward(
        &mut self,
        request: gavel_engine::Request,
        reply_to: ReplyTo,
        received: Instant,
        steps: &mut Vec<Step>,
    ) {
        let after = self.engine.seq();
        let command = request.command.name();
        let link = self.link();
        let refused = match link.cluster.can_serve() {
            Err(why) => Some((reply_to, why)),
            Ok(()) => {
                let item = Forward::Command {
                    request,
                    reply_to,
                    received,
                };
                link.forward.try_send(item).err().map(|e| {
                    let (mpsc::error::TrySendError::Full(item)
                    | mpsc::error::TrySendError::Closed(item)) = e;
                    let Forward::Command { reply_to, .. } = item else {
                        unreachable!("a command was sent")
                    };
                    (
                        reply_to,
                        "too many commands waiting for the leader; retry shortly",
                    )
                })
            }
        };
        if let Some((reply_to, why)) = refused {
            steps.push(Step::Reply {
                after,
                reply_to,
                result: Err(unavailable(why)),
                command,
                received,
            });
        }
    }

    /// Whether a resume asks for a position of this journal the replica has not reached.
    fn ahead_of_replica(&self, request: &SubscribeRequest) -> bool {
        request.since.is_some_and(|since| since > self.engine.seq())
            && !request.resume_failed
            && request.epoch.as_ref().is_none_or(|e| *e == self.epoch)
    }

    /// Takes the held resumes the replica has caught up with, or that waited long enough (or
    /// every one of connection `of`).
    fn release_resumes(&mut self, of: Option<ConnId>, steps: &mut Vec<Step>) {
        let seq = self.engine.seq();
        let now = Instant::now();
        let link = self.link();
        if link.held_resumes.is_empty() {
            return;
        }
        let (ready, waiting): (Vec<_>, Vec<_>) =
            link.held_resumes.drain(..).partition(|(request, give_up)| {
                request.since.is_some_and(|s| s <= seq)
                    || now >= *give_up
                    || of == Some(request.conn.id())
            });
        link.held_resumes = waiting;
        for (request, _) in ready {
            self.take_local(EngineMsg::Subscribe(request), steps);
        }
    }

    /// Replies whose `seq` the replica has reached leave with this batch; those that waited
    /// past `max_lag_ms` (the replica is stuck: its journal is unreachable) are refused — the
    /// command did run on the leader, and a retry with the same `id` returns its reply.
    fn release_held(&mut self, steps: &mut Vec<Step>) {
        let seq = self.engine.seq();
        let now = Instant::now();
        let link = self.link();
        if link.held.is_empty() {
            return;
        }
        let (ready, waiting): (Vec<_>, Vec<_>) = link
            .held
            .drain(..)
            .partition(|held| held.after <= seq || now >= held.give_up);
        link.held = waiting;
        steps.extend(ready.into_iter().map(|held| {
            let result = if held.after <= seq {
                held.result
            } else {
                Err(unavailable(
                    "done on the leader but not visible on this node yet; retry with the same id",
                ))
            };
            Step::Reply {
                after: seq,
                reply_to: held.reply_to,
                result,
                command: held.command,
                received: held.received,
            }
        }));
    }
}

impl FollowerLink {
    fn hold(&mut self, mut reply: HeldReply) {
        reply.give_up += Duration::from_millis(self.cluster.config.max_lag_ms);
        self.held.push(reply);
    }
}

/// A commit outcome that is already known: the events came from the journal's owner.
fn already_durable() -> oneshot::Receiver<Result<(), gavel_storage::StorageError>> {
    let (tx, rx) = oneshot::channel();
    let _ = tx.send(Ok(()));
    rx
}
