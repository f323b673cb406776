//! The publisher: the pipeline's last stage. It takes decided batches in order, waits until
//! each is durable, and only then fans its events out, answers its commands and registers its
//! subscriptions — so nothing a client sees or is told was ever lost. It keeps a ring of
//! recent events for `since` resumes (older ones are read from the journal).
//!
//! A failed commit switches it to failing mode: every reply is `UNAVAILABLE` until the engine
//! has rebuilt itself from the journal ([`PublisherMsg::Rebuilt`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use gavel_engine::routing::deliveries;
use gavel_engine::{Event, EventKind};
use gavel_protocol::{ErrorCode, Seq, Topic};
use gavel_storage::Store;
use tokio::sync::{Semaphore, mpsc};

use crate::durability::durable_gate::DurableGate;
use crate::durability::replies::{error_frame, ok_empty_frame, reply};
use crate::fanout::archive_reads;
use crate::fanout::catch_up::{self, CancelToken, CatchUpMsg};
use crate::fanout::coalesce::Coalescer;
use crate::fanout::history::History;
use crate::fanout::outbox::ConnId;
use crate::fanout::stats::StatsTick;
use crate::fanout::topic_router::{FeedMeta, Router};
use crate::metrics::Metrics;
use crate::replica::snapshotter::ReplicaMsg;
use crate::sequencer::handle::{RebuildSignal, WeakEngineHandle, unavailable};
use crate::sequencer::messages::*;

/// Where catch-up readers and the replica reach the publisher.
#[derive(Debug)]
pub struct CatchUpInbox {
    readers: mpsc::Receiver<CatchUpMsg>,
    replica: mpsc::UnboundedReceiver<CatchUpMsg>,
}

/// Limits the publisher enforces on subscriptions (contract §13).
#[derive(Debug, Clone, Copy)]
pub struct SubscriptionLimits {
    /// Topics one connection may hold.
    pub max_subscriptions: usize,
    /// Events of a topic a resume may replay before it gets a fresh snapshot.
    pub max_replay_events: u64,
}

/// The publisher task's state.
#[derive(Debug)]
pub struct Publisher {
    pub(super) router: Router,
    pub(super) history: History,
    pub(super) store: Store,
    pub(super) epoch: String,
    pub(super) engine: WeakEngineHandle,
    pub(super) metrics: Arc<Metrics>,
    pub(super) limits: SubscriptionLimits,
    /// `seq` of the last published event (also shared with catch-up readers).
    pub(super) published: Seq,
    pub(super) published_shared: Arc<AtomicU64>,
    /// Resumes being served by catch-up readers, by connection and topic: the generation of
    /// the current one (a newer subscribe of the same topic supersedes it).
    pub(super) catch_ups: HashMap<(ConnId, Topic), (u64, CancelToken)>,
    /// Journal reads catch-up readers may make at once (the writer shares the pool).
    pub(super) journal_reads: Arc<Semaphore>,
    /// The replica's answers to feed requests. Unbounded so the replica never blocks on the
    /// publisher while the publisher waits for room in the replica's queue; it holds at most
    /// one message per feed request, and those are bounded by the replica's queue.
    pub(super) replica_reply_tx: mpsc::UnboundedSender<CatchUpMsg>,
    pub(super) next_generation: u64,
    pub(super) catch_up_tx: mpsc::Sender<CatchUpMsg>,
    gate: DurableGate,
    events_this_second: u64,
    /// Where durable batches go for the snapshot replica.
    pub(super) snapshots: mpsc::Sender<ReplicaMsg>,
}

impl Publisher {
    // Each argument is a distinct collaborator wired once at start-up (app.rs).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Store,
        epoch: String,
        engine: WeakEngineHandle,
        rebuild: Arc<RebuildSignal>,
        metrics: Arc<Metrics>,
        ring_capacity: usize,
        published: Seq,
        task_meta: impl IntoIterator<Item = (gavel_protocol::TaskId, FeedMeta)>,
        snapshots: mpsc::Sender<ReplicaMsg>,
        limits: SubscriptionLimits,
    ) -> (Self, CatchUpInbox) {
        let router = Router::default();
        *router.task_meta.write().expect("feed meta lock") = task_meta.into_iter().collect();
        let (catch_up_tx, catch_up_rx) = mpsc::channel(catch_up::QUEUE);
        let (replica_reply_tx, replica_reply_rx) = mpsc::unbounded_channel();
        let publisher = Publisher {
            router,
            history: History::new(ring_capacity),
            store,
            epoch,
            engine,
            gate: DurableGate::new(rebuild, metrics.clone()),
            metrics,
            limits,
            published,
            published_shared: Arc::new(AtomicU64::new(published)),
            catch_ups: HashMap::new(),
            journal_reads: Arc::new(Semaphore::new(catch_up::CONCURRENT_READS)),
            replica_reply_tx,
            next_generation: 0,
            catch_up_tx,
            events_this_second: 0,
            snapshots,
        };
        let inbox = CatchUpInbox {
            readers: catch_up_rx,
            replica: replica_reply_rx,
        };
        (publisher, inbox)
    }

    /// Holds `feed` and `admin` frames for subscribers that wrote less than `window` ago, to
    /// write them together at the window's end (see [`Coalescer`]); a zero window holds none.
    pub fn with_coalescing(mut self, window: Duration) -> Self {
        self.router.coalescer = Coalescer::new(window);
        self
    }

    /// Runs until the engine task is gone and every item is published. `stats` brings the
    /// open-task counts for the admin `stats` event each second.
    pub async fn run(
        mut self,
        mut rx: mpsc::Receiver<PublisherMsg>,
        mut inbox: CatchUpInbox,
        mut stats: mpsc::Receiver<StatsTick>,
    ) {
        let flusher = self.router.coalescer.clone().map(|c| tokio::spawn(c.run()));
        loop {
            tokio::select! {
                Some(msg) = inbox.readers.recv() => self.on_catch_up(msg),
                Some(msg) = inbox.replica.recv() => self.on_catch_up(msg),
                msg = rx.recv() => match msg {
                    Some(PublisherMsg::Item(item)) => self.publish(item).await,
                    Some(PublisherMsg::Rebuilt { seq }) => self.rebuilt(seq).await,
                    None => break,
                },
                Some(tick) = stats.recv() => self.send_stats(tick),
            }
        }
        if let Some(flusher) = flusher {
            flusher.abort();
        }
        tracing::info!(seq = self.published, "publisher stopped");
    }

    async fn publish(&mut self, item: PublishItem) {
        let first = item.events.first().map(|e| e.0);
        if !self.gate.admit(item.commit, first).await {
            for step in item.steps {
                self.refuse(step);
            }
            return;
        }
        let mut steps = item.steps.into_iter().peekable();
        for (seq, event) in item.events.iter() {
            while let Some(step) = steps.next_if(|s| s.after() < *seq) {
                self.take(step);
            }
            self.publish_event(*seq, event);
        }
        for step in steps {
            self.take(step);
        }
        if !item.events.is_empty() {
            self.metrics
                .event_enqueued_seconds
                .observe(item.decided_at.elapsed().as_secs_f64());
            // Only durable batches reach the snapshot replica.
            let _ = self.snapshots.send(ReplicaMsg::Batch(item.events)).await;
        }
    }

    fn publish_event(&mut self, seq: Seq, event: &Event) {
        if let EventKind::TaskOpened { task, .. } = &event.kind {
            let meta = FeedMeta {
                urgency: task.urgency,
                task_type: task.task_type.clone(),
                suggested_price: task.suggested_price,
            };
            let mut table = self.router.task_meta.write().expect("feed meta lock");
            table.insert(task.task_id.clone(), meta);
        }
        // An archived task gets no more events: forget what the feed filter knew of it.
        if let EventKind::TasksArchived { task_ids, .. } = &event.kind {
            let mut table = self.router.task_meta.write().expect("feed meta lock");
            for id in task_ids {
                table.remove(id);
            }
        }
        // A coach watches `task:<id>` only while it holds the task (contract §3): once it loses
        // it, it must not see who takes over, nor for how much. `task.reassigned` names the
        // next coach, so the old one is dropped first (it hears of it on `coach:<id>`).
        if let EventKind::TaskReassigned { task_id, .. } = &event.kind {
            let topic = Topic::Task(task_id.clone());
            self.router.remove_unprivileged(&topic, &self.metrics);
        }
        for delivery in deliveries(event) {
            self.router.fan_out(seq, &delivery, &self.metrics);
        }
        if let EventKind::PaymentFailed { task_id, .. } = &event.kind {
            let topic = Topic::Task(task_id.clone());
            self.router.remove_unprivileged(&topic, &self.metrics);
        }
        self.history.push(seq, event);
        self.set_published(seq);
        self.events_this_second += 1;
        self.metrics.events_published.inc();
    }

    /// The engine rebuilt from the journal. If the journal holds events this publisher never
    /// published (a commit that landed after its failure was resolved), they are published
    /// now, from the journal, so live streams have no hole; then publishing resumes.
    async fn rebuilt(&mut self, seq: Seq) {
        let mut backoff = std::time::Duration::from_millis(50);
        while self.published < seq {
            match self.store.read_after(self.published, 1_000).await {
                Ok(rows) if rows.first().is_some_and(|r| r.seq == self.published + 1) => {
                    let mut batch = Vec::with_capacity(rows.len());
                    for row in rows.into_iter().take_while(|r| r.seq <= seq) {
                        match row.decode() {
                            Ok(event) => batch.push((row.seq, event)),
                            Err(error) => {
                                tracing::error!(%error, seq = row.seq, "undecodable journal row");
                                self.set_published(seq);
                                break;
                            }
                        }
                    }
                    tracing::warn!(
                        from = self.published + 1,
                        events = batch.len(),
                        "publishing events that landed after their commit failed"
                    );
                    for (s, event) in &batch {
                        self.publish_event(*s, event);
                    }
                    let _ = self
                        .snapshots
                        .send(ReplicaMsg::Batch(Arc::new(batch)))
                        .await;
                }
                Ok(_) => {
                    tracing::error!(
                        published = self.published,
                        seq,
                        "journal gap after a rebuild"
                    );
                    self.set_published(seq);
                }
                Err(error) => {
                    tracing::warn!(%error, "reading the journal after a rebuild; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(std::time::Duration::from_secs(2));
                }
            }
        }
        tracing::info!(seq, "publishing resumes after the rebuild");
        self.gate.reopen();
        self.set_published(seq.max(self.published));
    }

    pub(super) fn set_published(&mut self, seq: Seq) {
        self.published = seq;
        self.published_shared.store(seq, Ordering::Release);
    }

    /// Takes one step of a durable batch.
    fn take(&mut self, step: Step) {
        match step {
            Step::Reply {
                after,
                reply_to,
                result,
                command,
                received,
            } => {
                let outcome = match &result {
                    Ok(_) => "ok",
                    Err(r) => r.code.as_str(),
                };
                self.metrics
                    .commands
                    .with_label_values(&[command, outcome])
                    .inc();
                self.metrics
                    .command_durable_seconds
                    .with_label_values(&[command])
                    .observe(received.elapsed().as_secs_f64());
                reply(reply_to, after, result);
            }
            Step::Subscribe { subscription, .. } => self.subscribe(*subscription),
            Step::Archive { after, read, reply } => {
                let reader = archive_reads::ArchiveReader {
                    store: self.store.clone(),
                    epoch: self.epoch.clone(),
                    reads: self.journal_reads.clone(),
                    metrics: self.metrics.clone(),
                };
                tokio::spawn(archive_reads::serve(reader, after, read, reply));
            }
            step => self.take_unsubscribe(step),
        }
    }

    /// Unsubscribes and disconnects: the same whether or not the batch is durable.
    fn take_unsubscribe(&mut self, step: Step) {
        match step {
            Step::Unsubscribe {
                conn, topic, id, ..
            } => {
                self.cancel_catch_up(conn.id(), &topic);
                self.router.remove(conn.id(), &topic, &self.metrics);
                if let Some(id) = id {
                    conn.send(ok_empty_frame(id));
                }
            }
            Step::Disconnected { conn } => {
                self.cancel_catch_ups_of(conn);
                self.router.remove_conn(conn, &self.metrics);
            }
            Step::Reply { .. } | Step::Subscribe { .. } | Step::Archive { .. } => {
                unreachable!("replies, subscribes and reads are taken by their own paths")
            }
        }
    }

    /// Refuses one step of a batch that is not durable.
    fn refuse(&mut self, step: Step) {
        let refusal = || unavailable("the journal is unavailable; nothing was applied, retry");
        match step {
            Step::Reply {
                reply_to, command, ..
            } => {
                self.metrics
                    .commands
                    .with_label_values(&[command, ErrorCode::Unavailable.as_str()])
                    .inc();
                // Nothing of it was applied: a follower relaying it has nothing to wait for.
                reply(reply_to, self.published, Err(refusal()));
            }
            Step::Subscribe { subscription, .. } => {
                let SubscribeRequest { conn, id, .. } = subscription.request;
                conn.send(error_frame(id, &refusal(), None));
            }
            Step::Archive { reply, .. } => {
                reply.conn.send(error_frame(reply.id, &refusal(), None));
            }
            step => self.take_unsubscribe(step),
        }
    }

    /// The admin `stats` event (not journaled: it carries the last event's `seq`).
    fn send_stats(&mut self, StatsTick { open_tasks, now }: StatsTick) {
        let per_sec = std::mem::take(&mut self.events_this_second);
        if !self.router.has_subscribers(&Topic::Admin) {
            return;
        }
        let event = gavel_protocol::Event {
            // Engine time, like every other event's `at` (contract §8).
            at: now,
            task_id: None,
            payload: gavel_protocol::EventPayload::Stats {
                connections: self.metrics.connections.get().max(0) as u64,
                subscriptions: self.router.subscription_count(),
                events_per_sec: per_sec,
                open_tasks,
            },
        };
        let delivery = gavel_engine::routing::Delivery {
            topic: Topic::Admin,
            audience: gavel_engine::routing::Audience::Everyone,
            event,
        };
        self.router
            .fan_out(self.published, &delivery, &self.metrics);
    }
}
