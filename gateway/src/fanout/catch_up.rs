//! One connection's resume, served off the publisher: a catch-up reader streams the topic's
//! events after `since` from the journal, one page at a time, at the pace the connection's
//! outbox drains — bounded memory, and nobody else waits (contract §13).
//!
//! The handover to live delivery is exact. Near the live position the reader asks the
//! publisher to *attach*: the subscription joins the router holding its live frames, and the
//! publisher answers with the position P it was added at. The reader sends the rest of the
//! replay up to P, then asks to *release*: the held frames (all after P) follow, in order. No
//! gap, no duplicate. If the held frames overflow meanwhile (the client reads slower than the
//! topic's events arrive), they are dropped and the reader goes on from P and attaches again.
//!
//! A `task:<id>` topic is read through the journal's task index (its own rows only, however
//! many other events lie between); the other topics, and any stretch the index has not reached
//! yet, from the journal itself.
//!
//! A resume further behind than `[limits] max_replay_events` events of the topic is sent back
//! for a fresh snapshot with `reset: true` (counted first, without sending anything, when the
//! journal span alone exceeds the bound: in the index where it reaches).
//!
//! Every subscribe gets exactly one reply: the reader's `ok`, a reset's snapshot, or — when a
//! later subscribe or unsubscribe of the topic supersedes it first — a `CONFLICT`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use gavel_engine::Event;
use gavel_engine::routing::Delivery;
use gavel_protocol::views::SubscribeResult;
use gavel_protocol::{CloseCode, ErrorCode, FeedFilter, Seq, TaskId, Topic};
use gavel_storage::{StorageError, Store, StoredEvent};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::durability::replies::{error_frame, ok_value_frame};
use crate::fanout::frames::encode_event;
use crate::fanout::outbox::{ConnHandle, ConnId};
use crate::fanout::replay_filter::ReplayFilter;
use crate::fanout::topic_router::FeedMetaTable;
use crate::metrics::Metrics;
use crate::sequencer::messages::SubscribeRequest;

/// Journal rows read per query.
const PAGE: u32 = 1_000;
/// Within this many events of the live position, the reader attaches.
const NEAR: u64 = 1_000;
/// Catch-up messages waiting for the publisher.
pub const QUEUE: usize = 1024;
/// Journal reads by catch-up readers at once: the journal writer shares the database pool,
/// and a storm of resumes must never starve it of connections.
pub const CONCURRENT_READS: usize = 2;
/// Times the held frames may overflow before the client counts as a slow consumer: it reads
/// slower than its topic's live events, so it would never catch up.
const MAX_REATTACH: u32 = 8;

/// Which catch-up a message is about: a newer subscribe of the same topic on the same
/// connection supersedes an older one (its `generation` no longer matches).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CatchUpKey {
    pub conn: ConnId,
    pub topic: Topic,
    pub generation: u64,
}

/// A cancellation a send can be made atomic with: once [`CancelToken::cancel`] returns, no
/// frame of the cancelled catch-up reaches the connection any more (a superseding
/// subscription's frames can never be followed by a stale one).
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<Mutex<bool>>);

impl CancelToken {
    pub fn cancel(&self) {
        *self.0.lock().expect("cancel lock") = true;
    }

    pub fn is_cancelled(&self) -> bool {
        *self.0.lock().expect("cancel lock")
    }

    /// Runs `send` unless cancelled; `false` when cancelled or `send` failed.
    pub fn send_unless_cancelled(&self, send: impl FnOnce() -> bool) -> bool {
        let cancelled = self.0.lock().expect("cancel lock");
        !*cancelled && send()
    }
}

/// What the publisher answers a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Released {
    /// The held frames are out: the subscription is live.
    Live,
    /// The held frames overflowed and were dropped: replay on from the attach position and
    /// attach again.
    Overflowed,
    /// The subscription is gone (unsubscribed, superseded, lost its task, disconnected).
    Gone,
}

/// What a catch-up reader (or the replica, for a feed snapshot) asks of the publisher.
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
    Release {
        key: CatchUpKey,
        reply: oneshot::Sender<Released>,
    },
    /// Too far behind (or the journal could not be read) before anything was answered: a
    /// fresh snapshot instead.
    Reset {
        key: CatchUpKey,
        request: Box<SubscribeRequest>,
    },
    /// The replay ended without going live (closed, cancelled, lost its task, or broken).
    Ended { key: CatchUpKey },
    /// The replica built a large `feed` snapshot at `seq`: send `frame` (the `ok`), then
    /// replay from `seq` into live.
    Snapshotted {
        key: CatchUpKey,
        request: Box<SubscribeRequest>,
        privileged: bool,
        seq: Seq,
        frame: Option<Utf8Bytes>,
    },
}

/// Everything one catch-up reader needs.
#[derive(Debug)]
pub struct CatchUp {
    pub key: CatchUpKey,
    pub request: SubscribeRequest,
    pub privileged: bool,
    /// The position the subscription was decided (authorised) at.
    pub decided_at: Seq,
    pub epoch: String,
    pub store: Store,
    /// The publisher's position (last published `seq`).
    pub published: Arc<AtomicU64>,
    pub meta: FeedMetaTable,
    pub publisher: mpsc::Sender<CatchUpMsg>,
    pub cancel: CancelToken,
    pub reads: Arc<Semaphore>,
    pub max_replay_events: u64,
    pub metrics: Arc<Metrics>,
    /// Whether the subscribe was answered (the replica's snapshot at `since` answers it).
    pub answered: AtomicBool,
}

/// Why a replay stopped early.
enum Stop {
    /// The connection closed or the catch-up was cancelled/superseded.
    Ended,
    /// The subscriber lost the task its topic is about (a coach on `task:<id>`).
    Lost,
    /// Too far behind, or the journal could not be read.
    Unreadable,
}

impl CatchUp {
    /// Runs the catch-up to its end (spawned by the publisher).
    pub async fn run(self) {
        self.metrics.catch_ups.inc();
        let key = self.key.clone();
        let stop = self.replay().await;
        let answered = self.answered.load(Ordering::Acquire);
        let msg = match stop {
            Ok(()) => None,
            Err(Stop::Unreadable) if !answered => Some(CatchUpMsg::Reset {
                key,
                request: Box::new(self.request),
            }),
            Err(stop) => {
                if matches!(stop, Stop::Unreadable) {
                    // Answered already: no second reply. The client resumes with `since`.
                    tracing::warn!("catch-up: the journal could not be read; closing (4008)");
                    self.request.conn.close(CloseCode::SlowConsumer);
                } else if !answered && self.cancel.is_cancelled() {
                    self.answer_superseded();
                }
                Some(CatchUpMsg::Ended { key })
            }
        };
        self.metrics.catch_ups.dec();
        if let Some(msg) = msg {
            let _ = self.publisher.send(msg).await;
        }
    }

    async fn replay(&self) -> Result<(), Stop> {
        let since = self.request.since.expect("a resume has since");
        let mut filter = ReplayFilter::new(
            self.request.topic.clone(),
            self.privileged,
            self.request.filter.clone(),
            self.meta.clone(),
        );
        // A task's topic is read through the journal's task index.
        let task = match &self.request.topic {
            Topic::Task(id) => Some(id),
            _ => None,
        };
        if self.decided_at - since > self.max_replay_events {
            let count = self.count_topic_events(task, since, &mut filter).await?;
            if count > self.max_replay_events {
                return Err(Stop::Unreadable);
            }
        }
        self.answer_ok(since)?;
        let mut cursor = since;
        let mut attached: Option<Seq> = None;
        let mut overflows = 0;
        loop {
            if attached.is_none() && self.live_position().saturating_sub(cursor) <= NEAR {
                attached = Some(self.attach().await?);
            }
            let upto = attached.unwrap_or_else(|| self.live_position());
            if cursor >= upto {
                if attached.is_none() {
                    continue;
                }
                match self.release().await? {
                    Released::Live | Released::Gone => return Ok(()),
                    Released::Overflowed => {
                        overflows += 1;
                        if overflows > MAX_REATTACH {
                            self.metrics.slow_consumer_closes.inc();
                            self.request.conn.close(CloseCode::SlowConsumer);
                            return Err(Stop::Ended);
                        }
                        attached = None;
                        continue;
                    }
                }
            }
            let (page, covered) = self.topic_page(task, cursor, upto).await?;
            for (seq, event) in page {
                let ends = filter.ends_view(seq, self.decided_at, &event);
                if ends == Some(false) {
                    return Err(Stop::Lost);
                }
                for delivery in filter.deliveries(&event) {
                    self.send_paced(seq, &delivery).await?;
                }
                if ends == Some(true) {
                    return Err(Stop::Lost);
                }
            }
            cursor = covered;
        }
    }

    /// The publisher's position, never behind the decision point.
    fn live_position(&self) -> Seq {
        self.published.load(Ordering::Acquire).max(self.decided_at)
    }

    fn stopped(&self) -> bool {
        self.cancel.is_cancelled() || self.request.conn.is_closed()
    }

    /// The resume's `ok` (`seq` = `since`, no snapshot), unless already answered.
    fn answer_ok(&self, since: Seq) -> Result<(), Stop> {
        if self.answered.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let Some(id) = &self.request.id else {
            return Ok(());
        };
        let result = SubscribeResult {
            topic: self.request.topic.clone(),
            epoch: self.epoch.clone(),
            seq: since,
            snapshot: None,
            reset: None,
        };
        let frame = ok_value_frame(id.clone(), &result);
        if self
            .cancel
            .send_unless_cancelled(|| self.request.conn.send(frame))
        {
            Ok(())
        } else {
            self.answered.store(false, Ordering::Release);
            Err(Stop::Ended)
        }
    }

    /// The one reply of a subscribe superseded before it was answered.
    fn answer_superseded(&self) {
        let rejection = gavel_engine::Rejection {
            code: ErrorCode::Conflict,
            message: "superseded by a later subscribe or unsubscribe of this topic".into(),
            field: Some("topic".into()),
        };
        self.request
            .conn
            .send(error_frame(self.request.id.clone(), &rejection, None));
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

    async fn release(&self) -> Result<Released, Stop> {
        let (reply, answer) = oneshot::channel();
        let msg = CatchUpMsg::Release {
            key: self.key.clone(),
            reply,
        };
        self.publisher.send(msg).await.map_err(|_| Stop::Ended)?;
        answer.await.map_err(|_| Stop::Ended)
    }

    /// The topic's events in `(after, upto]`, one page, and the position the page covers up
    /// to. For a task's topic (`task`) through the task index where it reaches past `after` —
    /// only the task's own rows are read — else from the journal itself.
    async fn topic_page(
        &self,
        task: Option<&TaskId>,
        after: Seq,
        upto: Seq,
    ) -> Result<(Vec<(Seq, Event)>, Seq), Stop> {
        if let Some(task) = task {
            let indexed = self.index_position().await?.min(upto);
            if indexed > after {
                let rows = self
                    .retrying(move || {
                        self.store
                            .indexed_task_events(task.as_str(), after, indexed, PAGE)
                    })
                    .await?;
                self.metrics.catch_up_rows_read.inc_by(rows.len() as u64);
                let covered = match rows.last() {
                    Some(last) if rows.len() == PAGE as usize => last.seq,
                    _ => indexed,
                };
                return Ok((decoded(rows)?, covered));
            }
        }
        let page = self.read_page(after, upto).await?;
        let covered = page.last().map_or(upto, |(seq, _)| *seq);
        Ok((page, covered))
    }

    /// How far the journal is indexed by task.
    async fn index_position(&self) -> Result<Seq, Stop> {
        self.retrying(move || self.store.task_index_seq()).await
    }

    /// The journal's events in `(after, upto]`, one page, checked contiguous.
    async fn read_page(&self, after: Seq, upto: Seq) -> Result<Vec<(Seq, Event)>, Stop> {
        let limit = PAGE.min((upto - after).min(u64::from(u32::MAX)) as u32);
        let rows = self
            .retrying(move || self.store.read_after(after, limit))
            .await?;
        self.metrics.catch_up_rows_read.inc_by(rows.len() as u64);
        // Everything up to the live position is durable: a short or broken page is a journal
        // that does not hold what it acknowledged.
        let contiguous = !rows.is_empty()
            && rows
                .iter()
                .zip(after + 1..)
                .all(|(row, seq)| row.seq == seq);
        if !contiguous {
            return Err(Stop::Unreadable);
        }
        decoded(rows.into_iter().filter(|r| r.seq <= upto).collect())
    }

    /// One journal read on a read permit, retried a few times, then given up.
    async fn retrying<T, F, R>(&self, mut read: R) -> Result<T, Stop>
    where
        R: FnMut() -> F,
        F: Future<Output = Result<T, StorageError>>,
    {
        let mut backoff = Duration::from_millis(50);
        for _ in 0..5 {
            if self.stopped() {
                return Err(Stop::Ended);
            }
            let result = {
                let _permit = self.reads.acquire().await.map_err(|_| Stop::Ended)?;
                read().await
            };
            match result {
                Ok(value) => return Ok(value),
                Err(error) => tracing::warn!(%error, "catch-up: reading the journal failed"),
            }
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
        Err(Stop::Unreadable)
    }

    /// Counts the topic's events in `(since, decided_at]`, stopping past the bound: through
    /// the task index as far as it reaches for a task's topic (its rows only, none decoded),
    /// then the journal.
    async fn count_topic_events(
        &self,
        task: Option<&TaskId>,
        since: Seq,
        filter: &mut ReplayFilter,
    ) -> Result<u64, Stop> {
        let mut count = 0;
        let mut cursor = since;
        if let Some(task) = task {
            let indexed = self.index_position().await?.min(self.decided_at);
            if indexed > since {
                let cap = self.max_replay_events + 1;
                count = self
                    .retrying(move || {
                        self.store
                            .count_indexed_task_events(task.as_str(), since, indexed, cap)
                    })
                    .await?;
                cursor = indexed;
            }
        }
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
        let frame = encode_event(&delivery.topic, seq, &delivery.event);
        if !self.cancel.send_unless_cancelled(|| conn.send(frame)) {
            return Err(Stop::Ended);
        }
        self.metrics.replayed_events.inc();
        Ok(())
    }
}

/// The engine events of journal rows.
fn decoded(rows: Vec<StoredEvent>) -> Result<Vec<(Seq, Event)>, Stop> {
    rows.into_iter()
        .map(|r| r.decode().map(|e| (r.seq, e)))
        .collect::<Result<_, _>>()
        .map_err(|_| Stop::Unreadable)
}
