//! The engine task: the single writer. It owns the [`Engine`], takes whatever commands are
//! queued as one batch, executes them (deadlines first), hands the batch's events to the
//! journal writer without waiting, and passes the batch on to the publisher — then decides the
//! next batch while this one commits (pipelining). Replies and events leave only after the
//! publisher has seen the batch durable.
//!
//! When a commit fails, the engine's memory has run ahead of the journal: the publisher raises
//! [`RebuildSignal`], and the engine rebuilds itself from what is durable before taking more.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use gavel_engine::{Engine, EngineConfig, Rejection};
use gavel_protocol::views::Snapshot;
use gavel_protocol::{ErrorCode, Role, Seq, Topic};
use gavel_storage::{JournalHandle, Store, recover};
use tokio::sync::mpsc;

use crate::cluster::state::ClusterState;
use crate::durability::replies::{error_frame, reply};
use crate::fanout::archive_reads::{ArchiveRead, ArchiveReply};
use crate::fanout::outbox::ConnHandle;
use crate::metrics::Metrics;
use crate::sequencer::clock::EngineClock;
use crate::sequencer::follower::FollowerLink;
use crate::sequencer::handle::{EngineHandle, RebuildSignal, unavailable};
use crate::sequencer::messages::*;

/// Open tasks up to which a `feed` snapshot is built on the engine task; above it the snapshot
/// replica builds it (measured in docs/benchmarks.md: at 100,000 open tasks the engine would
/// hold every command for ~0.35 s in a debug build).
pub const FEED_SNAPSHOT_ON_ENGINE_MAX: usize = 1_000;

/// The engine task's state.
pub struct EngineActor {
    pub engine: Engine,
    pub config: EngineConfig,
    pub store: Store,
    /// Leader (or single node): decides and journals. Follower: applies the leader's
    /// durable batches and forwards commands.
    pub mode: Mode,
    /// The node's view of the cluster, when it is part of one.
    pub cluster: Option<Arc<ClusterState>>,
    pub clock: EngineClock,
    pub publisher: mpsc::Sender<PublisherMsg>,
    pub metrics: Arc<Metrics>,
    pub rebuild: Arc<RebuildSignal>,
    pub epoch: String,
    /// Tests only: called before each command runs (a panic here is a bug in the engine).
    #[cfg(feature = "fault-injection")]
    pub faults: Option<CommandHook>,
}

/// How the engine task runs.
#[derive(Debug)]
pub enum Mode {
    /// Executes commands and fires deadlines; the batches go to this journal writer.
    Leader(JournalHandle),
    /// Evolves the replica from the leader's durable batches; commands go to the leader.
    Follower(FollowerLink),
}

/// A hook the engine task calls before each command (fault-injection tests).
#[cfg(feature = "fault-injection")]
pub type CommandHook = Arc<dyn Fn(&gavel_engine::Request) + Send + Sync>;

impl std::fmt::Debug for EngineActor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineActor")
            .field("seq", &self.engine.seq())
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

impl EngineActor {
    /// Starts the task; it ends when every [`EngineHandle`] is dropped and the queue is drained.
    pub fn spawn(self) -> (EngineHandle, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        let handle = EngineHandle {
            tx,
            metrics: self.metrics.clone(),
        };
        (handle, tokio::spawn(self.run(rx)))
    }

    fn journal(&self) -> &JournalHandle {
        match &self.mode {
            Mode::Leader(journal) => journal,
            Mode::Follower(_) => unreachable!("only a leader's engine journals"),
        }
    }

    async fn run(self, rx: mpsc::Receiver<EngineMsg>) {
        if matches!(self.mode, Mode::Follower(_)) {
            self.run_follower(rx).await;
        } else {
            self.run_leader(rx).await;
        }
    }

    async fn run_leader(mut self, mut rx: mpsc::Receiver<EngineMsg>) {
        loop {
            if self.rebuild.is_raised() {
                self.rebuild_from_journal(&mut rx).await;
                continue;
            }
            let wake = self
                .engine
                .next_due()
                .map(|at| tokio::time::Instant::from_std(self.clock.instant_of(at)));
            let first = tokio::select! {
                biased;
                () = self.rebuild.notify.notified() => continue,
                msg = rx.recv() => match msg {
                    Some(msg) => Some(msg),
                    None => break,
                },
                () = sleep_until(wake) => None,
            };
            let batch = self.take_batch(first, &mut rx);
            if self.publish(batch).await.is_err() {
                break;
            }
        }
        tracing::info!(seq = self.engine.seq(), "engine task stopped");
    }

    /// `first` (if any) and whatever else is queued, up to [`MAX_BATCH`] (both modes).
    pub(super) fn take_batch(
        &self,
        first: Option<EngineMsg>,
        rx: &mut mpsc::Receiver<EngineMsg>,
    ) -> Vec<EngineMsg> {
        let mut batch = Vec::with_capacity(16);
        batch.extend(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(msg) => batch.push(msg),
                Err(_) => break,
            }
        }
        self.metrics.command_queue_depth.set(rx.len() as i64);
        batch
    }

    /// Executes one batch and hands it to the journal and the publisher.
    async fn publish(&mut self, batch: Vec<EngineMsg>) -> Result<(), ()> {
        // Room in the journal's queue first: a full queue makes the engine wait (commands
        // queue in front of it, then get UNAVAILABLE at the session), never fails a batch —
        // deadline events included — that was already applied in memory.
        let slot = self.journal().reserve().await.map_err(|_| ())?;
        let now = self.clock.now();
        let decided_at = Instant::now();
        let mut events = self.engine.fire(now);
        let mut steps = Vec::new();
        for msg in batch {
            match msg {
                EngineMsg::Command {
                    request,
                    reply_to,
                    received,
                } => {
                    if self.journal().is_stalled() {
                        // The database is unreachable: refuse before running it, at once,
                        // rather than queue it behind the commit that is stuck.
                        refuse_now(&self.metrics, request, reply_to, self.journal().durable());
                        continue;
                    }
                    #[cfg(feature = "fault-injection")]
                    if let Some(hook) = &self.faults {
                        hook(&request);
                    }
                    let outcome = self.engine.execute(&request, now);
                    events.extend(outcome.events);
                    let result = outcome.reply;
                    let command = request.command.name();
                    steps.push(Step::Reply {
                        after: self.engine.seq(),
                        reply_to,
                        result,
                        command,
                        received,
                    });
                }
                EngineMsg::Forwarded {
                    reply_to,
                    result,
                    command,
                    received,
                    ..
                } => steps.push(Step::Reply {
                    after: self.engine.seq(),
                    reply_to,
                    result,
                    command,
                    received,
                }),
                // A leader's engine is the source of what followers replicate.
                EngineMsg::Replicated(_) => {}
                other => self.take_local(other, &mut steps),
            }
        }
        if let Some(cluster) = &self.cluster {
            // What is durable (the lease tells followers how far the journal goes).
            cluster.note_applied(self.journal().durable());
        }
        let events = Arc::new(events);
        let commit = if events.is_empty() {
            None
        } else {
            self.metrics
                .journal_batch_events
                .observe(events.len() as f64);
            Some(slot.send(events.clone()))
        };
        self.metrics
            .journal_queue_depth
            .set(self.journal().queued() as i64);
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

    /// The messages both modes handle alike: subscriptions, disconnects and reads.
    pub(super) fn take_local(&self, msg: EngineMsg, steps: &mut Vec<Step>) {
        match msg {
            EngineMsg::Subscribe(request) => steps.push(self.subscribe(request)),
            EngineMsg::Unsubscribe { conn, topic, id } => {
                steps.push(Step::Unsubscribe {
                    after: self.engine.seq(),
                    conn,
                    topic,
                    id,
                });
            }
            EngineMsg::Disconnected { conn } => steps.push(Step::Disconnected { conn }),
            EngineMsg::ListTasks {
                actor,
                command,
                conn,
                id,
            } => steps.push(self.list_tasks(&actor, &command, conn, id)),
            EngineMsg::Query(read) => read(&self.engine),
            EngineMsg::Command { .. } | EngineMsg::Replicated(_) | EngineMsg::Forwarded { .. } => {
                unreachable!("each mode takes commands and replication itself")
            }
        }
    }

    /// Cuts the live page of a `list_tasks`; the publisher adds the archive's once durable.
    fn list_tasks(
        &self,
        actor: &gavel_engine::Actor,
        command: &gavel_protocol::command::ListTasks,
        conn: ConnHandle,
        id: Option<gavel_protocol::RequestId>,
    ) -> Step {
        let after = self.engine.seq();
        match self.engine.list_query(actor, command) {
            Ok(query) => Step::Archive {
                after,
                read: ArchiveRead::ListTasks {
                    live: self.engine.list_live(&query),
                    query,
                },
                reply: ArchiveReply { conn, id },
            },
            Err(rejection) => Step::Reply {
                after,
                reply_to: ReplyTo::Conn { conn, id },
                result: Err(rejection),
                command: "list_tasks",
                received: Instant::now(),
            },
        }
    }

    /// Decides a subscription: authorization, and the snapshot unless it is a resume.
    fn subscribe(&self, request: SubscribeRequest) -> Step {
        let after = self.engine.seq();
        // A task that has left memory is served from the archive (contract §9).
        if let Topic::Task(task_id) = &request.topic
            && !self.engine.state().tasks.contains_key(task_id)
            && self.engine.state().task_id_taken(task_id)
        {
            return Step::Archive {
                after,
                read: ArchiveRead::Task {
                    actor: request.actor,
                    task_id: task_id.clone(),
                    resumed: request.since.is_some(),
                },
                reply: ArchiveReply {
                    conn: request.conn,
                    id: request.id,
                },
            };
        }
        if let Err(rejection) = self
            .engine
            .authorize_subscribe(&request.actor, &request.topic)
        {
            return refused_subscribe(after, request, rejection);
        }
        let privileged =
            !(request.actor.role == Role::Coach && matches!(request.topic, Topic::Task(_)));
        let same_epoch = request.epoch.as_ref().is_none_or(|e| *e == self.epoch);
        let resume = request.since.is_some() && same_epoch && !request.resume_failed;
        // A large feed snapshot (a 100,000-task one is ~30 MB of JSON) would hold up every
        // command behind it: the replica builds it instead, off the engine and the publisher.
        let deferred = !resume
            && request.topic == Topic::Feed
            && self.engine.state().open_tasks.len() > FEED_SNAPSHOT_ON_ENGINE_MAX;
        let snapshot = if resume || deferred {
            None
        } else {
            let connections = self.metrics.connections.get().max(0) as u64;
            let limit = request.limit.map(|l| l as usize);
            let snapshot = match (&request.topic, limit) {
                (Topic::Feed, Some(_)) => Ok(Snapshot::Feed(self.engine.feed_snapshot(
                    &request.actor,
                    request.filter.as_ref(),
                    limit,
                ))),
                _ => self.engine.snapshot_for(
                    &request.actor,
                    &request.topic,
                    request.filter.as_ref(),
                    connections,
                ),
            };
            match snapshot {
                Ok(s) => Some(s),
                Err(rejection) => return refused_subscribe(after, request, rejection),
            }
        };
        let reset = request.since.is_some() && !resume;
        Step::Subscribe {
            after,
            subscription: Box::new(Subscription {
                request,
                privileged,
                seq: after,
                snapshot,
                reset,
                deferred,
            }),
        }
    }

    /// Replaces the in-memory engine with what the journal holds, retrying until the database
    /// answers. Commands queue (and overflow to `UNAVAILABLE`) meanwhile.
    async fn rebuild_from_journal(&mut self, rx: &mut mpsc::Receiver<EngineMsg>) {
        tracing::warn!(
            seq = self.engine.seq(),
            durable = self.journal().durable(),
            "rebuilding the engine from the journal"
        );
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.recover_refusing(rx).await {
                Ok((engine, report)) => {
                    tracing::info!(
                        seq = engine.seq(),
                        replayed = report.replayed,
                        took_ms = report.took.as_millis() as u64,
                        "engine rebuilt"
                    );
                    // The journal we just read is the truth about where it ends (a commit whose
                    // reply was lost may have landed).
                    self.journal().set_durable(engine.seq());
                    self.engine = engine;
                    break;
                }
                Err(error) => tracing::warn!(%error, "rebuild failed; retrying"),
            }
            let pause = tokio::time::sleep(backoff);
            tokio::pin!(pause);
            loop {
                tokio::select! {
                    () = &mut pause => break,
                    msg = rx.recv() => match msg {
                        Some(msg) => self.refuse_while_rebuilding(msg),
                        None => break,
                    },
                }
            }
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
        self.rebuild.requested.store(false, Ordering::Release);
        let _ = self
            .publisher
            .send(PublisherMsg::Rebuilt {
                seq: self.engine.seq(),
            })
            .await;
    }

    /// One recovery attempt; commands that arrive meanwhile are refused at once.
    async fn recover_refusing(
        &self,
        rx: &mut mpsc::Receiver<EngineMsg>,
    ) -> Result<(Engine, gavel_storage::RecoveryReport), gavel_storage::StorageError> {
        let attempt = recover(&self.store, self.config.clone());
        tokio::pin!(attempt);
        loop {
            tokio::select! {
                result = &mut attempt => return result,
                Some(msg) = rx.recv() => self.refuse_while_rebuilding(msg),
            }
        }
    }

    /// While the engine rebuilds: commands are refused `UNAVAILABLE` (nothing was applied);
    /// reads and connection bookkeeping are not held up either.
    fn refuse_while_rebuilding(&self, msg: EngineMsg) {
        match msg {
            EngineMsg::Command {
                request, reply_to, ..
            } => refuse_now(&self.metrics, request, reply_to, self.journal().durable()),
            EngineMsg::Forwarded {
                reply_to, result, ..
            } => reply(reply_to, self.engine.seq(), result),
            EngineMsg::Query(read) => read(&self.engine),
            EngineMsg::Subscribe(request) => {
                let refusal =
                    unavailable("the server is rebuilding from the journal; retry shortly");
                request.conn.send(error_frame(request.id, &refusal, None));
            }
            EngineMsg::ListTasks { conn, id, .. } => {
                let refusal =
                    unavailable("the server is rebuilding from the journal; retry shortly");
                conn.send(error_frame(id, &refusal, None));
            }
            // The publisher takes these in order once publishing resumes.
            EngineMsg::Unsubscribe { conn, topic, id } => self.pass_on(Step::Unsubscribe {
                after: self.engine.seq(),
                conn,
                topic,
                id,
            }),
            EngineMsg::Disconnected { conn } => self.pass_on(Step::Disconnected { conn }),
            EngineMsg::Replicated(_) => {}
        }
    }
}

impl EngineActor {
    fn pass_on(&self, step: Step) {
        let item = PublishItem {
            commit: None,
            events: Arc::new(Vec::new()),
            steps: vec![step],
            decided_at: Instant::now(),
        };
        let _ = self.publisher.try_send(PublisherMsg::Item(item));
    }
}

/// Answers a command `UNAVAILABLE` without running it (the journal cannot take it now);
/// `durable` is what a follower relaying it waits for (never more than the journal holds).
fn refuse_now(metrics: &Metrics, request: gavel_engine::Request, reply_to: ReplyTo, durable: Seq) {
    let command = request.command.name();
    metrics
        .commands
        .with_label_values(&[command, ErrorCode::Unavailable.as_str()])
        .inc();
    reply(
        reply_to,
        durable,
        Err(unavailable(
            "the journal is unavailable; nothing was applied, retry",
        )),
    );
}

/// The step that answers a refused subscribe (after the events decided before it).
fn refused_subscribe(after: Seq, request: SubscribeRequest, rejection: Rejection) -> Step {
    Step::Reply {
        after,
        reply_to: ReplyTo::Conn {
            conn: request.conn,
            id: request.id,
        },
        result: Err(rejection),
        command: "subscribe",
        received: Instant::now(),
    }
}

pub(super) async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
