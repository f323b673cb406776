//! The publisher: the pipeline's last stage. It takes decided batches in order, waits until
//! each is durable, and only then fans its events out, answers its commands and registers its
//! subscriptions — so nothing a client sees or is told was ever lost. It keeps a ring of
//! recent events for `since` resumes (older ones are read from the journal).
//!
//! A failed commit switches it to failing mode: every reply is `UNAVAILABLE` until the engine
//! has rebuilt itself from the journal ([`PublisherMsg::Rebuilt`]).

use std::sync::Arc;

use gavel_engine::routing::deliveries;
use gavel_engine::{Event, EventKind};
use gavel_protocol::views::{SubscribeResult, UrgencyCounts};
use gavel_protocol::{ErrorCode, Seq, Topic};
use gavel_storage::Store;
use tokio::sync::mpsc;

use crate::durability::durable_gate::DurableGate;
use crate::durability::replies::{error_frame, ok_empty_frame, ok_frame, reply};
use crate::fanout::history::History;
use crate::fanout::topic_router::{FeedMeta, Router};
use crate::metrics::Metrics;
use crate::sequencer::engine_task::{RebuildSignal, WeakEngineHandle, unavailable};
use crate::sequencer::messages::*;

/// Journal rows read per query when a resume is older than the ring.
const JOURNAL_PAGE: u32 = 5_000;

/// The publisher task's state.
#[derive(Debug)]
pub struct Publisher {
    pub router: Router,
    pub history: History,
    pub store: Store,
    pub epoch: String,
    pub engine: WeakEngineHandle,
    pub metrics: Arc<Metrics>,
    /// `seq` of the last published event.
    pub published: Seq,
    gate: DurableGate,
    events_this_second: u64,
    /// Where durable batches go for the snapshot replica.
    snapshots: mpsc::Sender<gavel_storage::Batch>,
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
        snapshots: mpsc::Sender<gavel_storage::Batch>,
    ) -> Self {
        let mut router = Router::default();
        router.task_meta = task_meta.into_iter().collect();
        Publisher {
            router,
            history: History::new(ring_capacity),
            store,
            epoch,
            engine,
            gate: DurableGate::new(rebuild, metrics.clone()),
            metrics,
            published,
            events_this_second: 0,
            snapshots,
        }
    }

    /// Runs until the engine task is gone and every item is published. `stats` brings the
    /// open-task counts for the admin `stats` event each second.
    pub async fn run(
        mut self,
        mut rx: mpsc::Receiver<PublisherMsg>,
        mut stats: mpsc::Receiver<UrgencyCounts>,
    ) {
        loop {
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(PublisherMsg::Item(item)) => self.publish(item).await,
                    Some(PublisherMsg::Rebuilt { seq }) => {
                        tracing::info!(seq, "publishing resumes after the rebuild");
                        self.gate.reopen();
                        self.published = seq;
                    }
                    None => break,
                },
                Some(open) = stats.recv() => self.send_stats(open),
            }
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
                self.take(step).await;
            }
            self.publish_event(*seq, event);
        }
        for step in steps {
            self.take(step).await;
        }
        if !item.events.is_empty() {
            self.metrics
                .event_delivered_seconds
                .observe(item.decided_at.elapsed().as_secs_f64());
            // Only durable batches reach the snapshot replica.
            let _ = self.snapshots.send(item.events).await;
        }
    }

    fn publish_event(&mut self, seq: Seq, event: &Event) {
        if let EventKind::TaskOpened { task, .. } = &event.kind {
            let meta = FeedMeta {
                urgency: task.urgency,
                task_type: task.task_type.clone(),
                suggested_price: task.suggested_price,
            };
            self.router.task_meta.insert(task.task_id.clone(), meta);
        }
        // An archived task gets no more events: forget what the feed filter knew of it.
        if let EventKind::TasksArchived { task_ids } = &event.kind {
            for id in task_ids {
                self.router.task_meta.remove(id);
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
        self.published = seq;
        self.events_this_second += 1;
        self.metrics.events_published.inc();
    }

    /// Takes one step of a durable batch.
    async fn take(&mut self, step: Step) {
        match step {
            Step::Reply {
                reply_to,
                result,
                command,
                received,
                ..
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
                reply(reply_to, result);
            }
            Step::Subscribe { subscription, .. } => self.subscribe(*subscription).await,
            Step::Unsubscribe {
                conn, topic, id, ..
            } => {
                self.router.remove(conn.id(), &topic, &self.metrics);
                if let Some(id) = id {
                    conn.send(ok_empty_frame(id));
                }
            }
            Step::Disconnected { conn } => self.router.remove_conn(conn, &self.metrics),
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
                reply(reply_to, Err(refusal()));
            }
            Step::Subscribe { subscription, .. } => {
                let SubscribeRequest { conn, id, .. } = subscription.request;
                conn.send(error_frame(id, &refusal(), None));
            }
            Step::Unsubscribe {
                conn, topic, id, ..
            } => {
                self.router.remove(conn.id(), &topic, &self.metrics);
                if let Some(id) = id {
                    conn.send(ok_empty_frame(id));
                }
            }
            Step::Disconnected { conn } => self.router.remove_conn(conn, &self.metrics),
        }
    }

    /// Answers a subscription and registers it: a snapshot, or the events after `since`
    /// (from the ring, or the journal when older), then live events.
    async fn subscribe(&mut self, sub: Subscription) {
        let Subscription {
            request,
            privileged,
            seq,
            snapshot,
            reset,
        } = sub;
        let conn = request.conn.clone();
        let result = match snapshot {
            Some(snapshot) => SubscribeResult {
                topic: request.topic.clone(),
                epoch: self.epoch.clone(),
                seq,
                snapshot: Some(snapshot),
                reset: reset.then_some(true),
            },
            None => {
                let since = request.since.expect("a resume has since");
                match self.replay_events(since, seq).await {
                    Some(events) => {
                        self.answer_subscribe(
                            &request,
                            SubscribeResult {
                                topic: request.topic.clone(),
                                epoch: self.epoch.clone(),
                                seq: since,
                                snapshot: None,
                                reset: None,
                            },
                        );
                        for (s, event) in &events {
                            for delivery in deliveries(event)
                                .iter()
                                .filter(|d| d.topic == request.topic)
                            {
                                if !self.router.replay_to(
                                    &conn,
                                    privileged,
                                    request.filter.as_ref(),
                                    *s,
                                    delivery,
                                ) {
                                    return;
                                }
                            }
                        }
                        self.router.add(
                            request.topic.clone(),
                            conn,
                            privileged,
                            request.filter.clone(),
                            &self.metrics,
                        );
                        return;
                    }
                    None => {
                        // Not replayable (or the journal failed): ask the engine for a snapshot.
                        let retry = SubscribeRequest {
                            resume_failed: true,
                            ..request
                        };
                        if let Err(refused) = self.engine.try_send(EngineMsg::Subscribe(retry))
                            && let EngineMsg::Subscribe(r) = *refused
                        {
                            r.conn.send(error_frame(
                                r.id,
                                &unavailable("the server is busy; retry"),
                                None,
                            ));
                        }
                        return;
                    }
                }
            }
        };
        self.answer_subscribe(&request, result);
        self.router.add(
            request.topic.clone(),
            conn,
            privileged,
            request.filter.clone(),
            &self.metrics,
        );
    }

    fn answer_subscribe(&self, request: &SubscribeRequest, result: SubscribeResult) {
        if let Some(id) = &request.id {
            let value = serde_json::to_value(&result).expect("subscribe results serialize");
            request.conn.send(ok_frame(id.clone(), value));
        }
    }

    /// Every event in `(since, upto]`, or `None` when they cannot all be had.
    async fn replay_events(&self, since: Seq, upto: Seq) -> Option<Vec<(Seq, Event)>> {
        if since > upto {
            return None;
        }
        if since == upto {
            return Some(Vec::new());
        }
        if self.history.covers(since) {
            return Some(self.history.range(since, upto).cloned().collect());
        }
        let mut events = Vec::new();
        let mut after = since;
        while after < upto {
            let page = self.store.read_after(after, JOURNAL_PAGE).await.ok()?;
            let last = page.last()?;
            after = last.seq;
            for row in page.into_iter().filter(|r| r.seq <= upto) {
                events.push((row.seq, row.decode().ok()?));
            }
        }
        (events.len() as u64 == upto - since).then_some(events)
    }

    /// The admin `stats` event (not journaled: it carries the last event's `seq`).
    fn send_stats(&mut self, open_tasks: UrgencyCounts) {
        let per_sec = std::mem::take(&mut self.events_this_second);
        if !self.router.has_subscribers(&Topic::Admin) {
            return;
        }
        let event = gavel_protocol::Event {
            at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
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
