//! One connection's resume, served off the publisher: a catch-up reader streams the topic's
//! events after `since` from the journal, one page at a time, at the pace the connection's
//! outbox drains — bounded memory, and nobody else waits (contract §13).
//!
//! The handover to live delivery is exact. Near the live position the reader asks the
//! publisher to *attach*: the subscription joins the router holding its live frames, and the
//! publisher answers with the position P it was added at. The reader sends the rest of the
//! replay up to P, then asks to *release*: the held frames (all after P) follow, in order. No
//! gap, no duplicate.
//!
//! A resume further behind than `[limits] max_replay_events` events of the topic is sent back
//! for a fresh snapshot with `reset: true` (counted first, without sending anything, when the
//! journal span alone exceeds the bound).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use gavel_engine::routing::{Delivery, deliveries};
use gavel_engine::{Event, EventKind};
use gavel_protocol::views::SubscribeResult;
use gavel_protocol::{FeedFilter, Seq, TaskId, Topic};
use gavel_storage::Store;
use tokio::sync::{mpsc, oneshot};

use crate::durability::replies::ok_value_frame;
use crate::fanout::frames::encode_event;
use crate::fanout::outbox::{ConnHandle, ConnId};
use crate::fanout::topic_router::{FeedMeta, FeedMetaTable, passes};
use crate::metrics::Metrics;
use crate::sequencer::messages::SubscribeRequest;

/// Journal rows read per query.
const PAGE: u32 = 1_000;
/// Within this many events of the live position, the reader attaches.
const NEAR: u64 = 1_000;
/// Catch-up messages waiting for the publisher.
pub const QUEUE: usize = 1024;

/// Which catch-up a message is about: a newer subscribe of the same topic on the same
/// connection supersedes an older one (its `generation` no longer matches).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CatchUpKey {
    pub conn: ConnId,
    pub topic: Topic,
    pub generation: u64,
}

/// What a catch-up reader asks of the publisher.
#[derive(Debug)]
pub enum CatchUpMsg {
    /// Add the subscription with its live frames held; answer the position it was added at
    /// (`None`: the catch-up was superseded or cancelled — stop).
    Attach {
        key: CatchUpKey,
        conn: ConnHandle,
        privileged: bool,
        filter: Option<FeedFilter>,
        reply: oneshot::Sender<Option<Seq>>,
    },
    /// The replay reached the attach position: release the held frames.
    Release { key: CatchUpKey },
    /// Too far behind (or the journal could not be read): a fresh snapshot instead.
    Reset {
        key: CatchUpKey,
        request: Box<SubscribeRequest>,
    },
    /// The connection went away or the catch-up was cancelled.
    Ended { key: CatchUpKey },
    /// The replica sent a large `feed` snapshot at `seq`: replay from there into live.
    Snapshotted {
        key: CatchUpKey,
        request: Box<SubscribeRequest>,
        privileged: bool,
        seq: Seq,
    },
}

/// Everything one catch-up reader needs.
#[derive(Debug)]
pub struct CatchUp {
    pub key: CatchUpKey,
    pub request: SubscribeRequest,
    pub privileged: bool,
    /// The position the subscription was decided at.
    pub decided_at: Seq,
    pub epoch: String,
    pub store: Store,
    /// The publisher's position (last published `seq`).
    pub published: Arc<AtomicU64>,
    pub meta: FeedMetaTable,
    pub publisher: mpsc::Sender<CatchUpMsg>,
    pub cancelled: Arc<AtomicBool>,
    pub max_replay_events: u64,
    pub metrics: Arc<Metrics>,
    /// The subscribe was already answered (with a snapshot at `since`, by the replica).
    pub answered: bool,
}

/// Why a replay stopped early.
enum Stop {
    /// The connection closed or the catch-up was cancelled/superseded.
    Ended,
    /// The journal could not be read: fall back to a snapshot.
    Unreadable,
}

impl CatchUp {
    /// Runs the catch-up to its end (spawned by the publisher).
    pub async fn run(self) {
        self.metrics.catch_ups.inc();
        let key = self.key.clone();
        let msg = match self.replay().await {
            Ok(()) => CatchUpMsg::Release { key },
            Err(Stop::Ended) => CatchUpMsg::Ended { key },
            Err(Stop::Unreadable) => CatchUpMsg::Reset {
                key,
                request: Box::new(self.request),
            },
        };
        self.metrics.catch_ups.dec();
        let _ = self.publisher.send(msg).await;
    }

    async fn replay(&self) -> Result<(), Stop> {
        let since = self.request.since.expect("a resume has since");
        let mut filter = Filter::new(self);
        if self.decided_at - since > self.max_replay_events {
            let count = self.count_topic_events(since, &mut filter).await?;
            if count > self.max_replay_events {
                return Err(Stop::Unreadable);
            }
        }
        if !self.answered {
            self.answer_ok(since);
        }
        let mut cursor = since;
        let mut attached: Option<Seq> = None;
        loop {
            if attached.is_none() && self.live_position().saturating_sub(cursor) <= NEAR {
                attached = Some(self.attach().await?);
            }
            let upto = attached.unwrap_or_else(|| self.live_position());
            if cursor >= upto {
                return match attached {
                    Some(_) => Ok(()),
                    None => continue,
                };
            }
            let page = self.read_page(cursor, upto).await?;
            for (seq, event) in page {
                cursor = seq;
                for delivery in filter.deliveries(&event) {
                    self.send_paced(seq, &delivery).await?;
                }
            }
        }
    }

    /// The publisher's position, never behind the decision point.
    fn live_position(&self) -> Seq {
        self.published.load(Ordering::Acquire).max(self.decided_at)
    }

    fn stopped(&self) -> bool {
        self.cancelled.load(Ordering::Acquire) || self.request.conn.is_closed()
    }

    fn answer_ok(&self, since: Seq) {
        if let Some(id) = &self.request.id {
            let result = SubscribeResult {
                topic: self.request.topic.clone(),
                epoch: self.epoch.clone(),
                seq: since,
                snapshot: None,
                reset: None,
            };
            self.request.conn.send(ok_value_frame(id.clone(), &result));
        }
    }

    async fn attach(&self) -> Result<Seq, Stop> {
        let (reply, answer) = oneshot::channel();
        let msg = CatchUpMsg::Attach {
            key: self.key.clone(),
            conn: self.request.conn.clone(),
            privileged: self.privileged,
            filter: self.request.filter.clone(),
            reply,
        };
        self.publisher.send(msg).await.map_err(|_| Stop::Ended)?;
        answer.await.ok().flatten().ok_or(Stop::Ended)
    }

    /// The journal's events in `(after, upto]`, one page; retried a few times, then given up
    /// (the subscriber gets a snapshot instead).
    async fn read_page(&self, after: Seq, upto: Seq) -> Result<Vec<(Seq, Event)>, Stop> {
        let limit = PAGE.min((upto - after).min(u64::from(u32::MAX)) as u32);
        let mut backoff = Duration::from_millis(50);
        for _ in 0..5 {
            if self.stopped() {
                return Err(Stop::Ended);
            }
            match self.store.read_after(after, limit).await {
                Ok(rows) if !rows.is_empty() => {
                    return rows
                        .into_iter()
                        .filter(|r| r.seq <= upto)
                        .map(|r| r.decode().map(|e| (r.seq, e)))
                        .collect::<Result<_, _>>()
                        .map_err(|_| Stop::Unreadable);
                }
                // Everything up to the live position is durable, so an empty page is a
                // journal that does not hold what it acknowledged: not replayable.
                Ok(_) => return Err(Stop::Unreadable),
                Err(error) => tracing::warn!(%error, "catch-up: reading the journal failed"),
            }
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
        Err(Stop::Unreadable)
    }

    /// Counts the topic's events in `(since, decided_at]`, stopping past the bound.
    async fn count_topic_events(&self, since: Seq, filter: &mut Filter) -> Result<u64, Stop> {
        let mut count = 0;
        let mut cursor = since;
        while cursor < self.decided_at && count <= self.max_replay_events {
            for (seq, event) in self.read_page(cursor, self.decided_at).await? {
                cursor = seq;
                count += filter.deliveries(&event).len() as u64;
            }
        }
        filter.reset();
        Ok(count)
    }

    /// Queues one replayed frame, first waiting while the connection's queue is half full.
    async fn send_paced(&self, seq: Seq, delivery: &Delivery) -> Result<(), Stop> {
        let conn = &self.request.conn;
        if !conn.has_room() && !conn.wait_for_room().await {
            return Err(Stop::Ended);
        }
        if self.stopped() || !conn.send(encode_event(&delivery.topic, seq, &delivery.event)) {
            return Err(Stop::Ended);
        }
        self.metrics.replayed_events.inc();
        Ok(())
    }
}

/// The subscriber's view of replayed events: its topic, its audience, its feed filter.
struct Filter {
    topic: Topic,
    privileged: bool,
    filter: Option<FeedFilter>,
    /// Feed attributes learned from replayed `task.opened` events (tasks since archived are
    /// no longer in the shared table).
    seen: HashMap<TaskId, FeedMeta>,
    shared: FeedMetaTable,
}

impl Filter {
    fn new(catch_up: &CatchUp) -> Self {
        Filter {
            topic: catch_up.request.topic.clone(),
            privileged: catch_up.privileged,
            filter: catch_up.request.filter.clone(),
            seen: HashMap::new(),
            shared: catch_up.meta.clone(),
        }
    }

    fn reset(&mut self) {
        self.seen.clear();
    }

    fn deliveries(&mut self, event: &Event) -> Vec<Delivery> {
        if self.filter.is_some()
            && let EventKind::TaskOpened { task, .. } = &event.kind
        {
            let meta = FeedMeta {
                urgency: task.urgency,
                task_type: task.task_type.clone(),
                suggested_price: task.suggested_price,
            };
            self.seen.insert(task.task_id.clone(), meta);
        }
        let mut out = deliveries(event);
        out.retain(|d| d.topic == self.topic);
        if out.is_empty() {
            return out;
        }
        let shared = self.shared.read().expect("feed meta lock");
        out.retain(|d| {
            let meta = d
                .event
                .task_id
                .as_ref()
                .and_then(|id| self.seen.get(id).or_else(|| shared.get(id)));
            passes(self.privileged, self.filter.as_ref(), d, meta)
        });
        out
    }
}
