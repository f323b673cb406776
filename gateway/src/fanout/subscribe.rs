//! The publisher's side of `subscribe`: answer, register, and hand resumes to their catch-up
//! readers. Everything here runs on the publisher task and does bounded work: a snapshot is
//! sent as it came from the engine, a short resume from the history ring is sent at once, and
//! anything longer is a [`CatchUp`] of its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use gavel_engine::routing::deliveries;
use gavel_protocol::views::SubscribeResult;
use gavel_protocol::{ErrorCode, Seq, Topic};

use crate::durability::replies::{error_frame, ok_value_frame};
use crate::fanout::catch_up::{CatchUp, CatchUpKey, CatchUpMsg};
use crate::fanout::frames::encode_event;
use crate::fanout::outbox::ConnId;
use crate::fanout::publisher::Publisher;
use crate::fanout::topic_router::passes;
use crate::replica::snapshotter::{FeedRequest, ReplicaMsg};
use crate::sequencer::engine_task::unavailable;
use crate::sequencer::messages::{EngineMsg, SubscribeRequest, Subscription};

/// A resume this short (in journal events), with every event still in the history ring, is
/// sent by the publisher itself; longer ones go to a catch-up reader.
const DIRECT_REPLAY: u64 = 256;

impl Publisher {
    /// Answers a subscription and registers it: a snapshot, or the events after `since`, then
    /// live events.
    pub(super) fn subscribe(&mut self, sub: Subscription) {
        let Subscription {
            request,
            privileged,
            seq,
            snapshot,
            reset,
            deferred,
        } = sub;
        let conn_id = request.conn.id();
        if self.subscription_limit_reached(conn_id, &request.topic) {
            let rejection = gavel_engine::Rejection {
                code: ErrorCode::Conflict,
                message: format!(
                    "a connection holds at most {} subscriptions; unsubscribe one first",
                    self.limits.max_subscriptions
                ),
                field: Some("topic".into()),
            };
            request.conn.send(error_frame(request.id, &rejection, None));
            return;
        }
        // A new subscribe of a topic replaces whatever this connection had of it.
        self.cancel_catch_up(conn_id, &request.topic);
        if deferred {
            return self.defer_feed_snapshot(request, privileged, reset);
        }
        let Some(snapshot) = snapshot else {
            return self.resume(request, privileged, seq);
        };
        let result = SubscribeResult {
            topic: request.topic.clone(),
            epoch: self.epoch.clone(),
            seq,
            snapshot: Some(snapshot),
            reset: reset.then_some(true),
        };
        if let Some(id) = &request.id {
            // Snapshots of any size go out (contract §13): past the byte budget if need be.
            request.conn.send_large(ok_value_frame(id.clone(), &result));
        }
        self.router.add(
            request.topic,
            request.conn,
            privileged,
            request.filter,
            &self.metrics,
        );
    }

    /// Whether one more topic would take `conn` past `[limits] max_subscriptions`.
    fn subscription_limit_reached(&self, conn: ConnId, topic: &Topic) -> bool {
        let held = self.router.topics_of(conn).count()
            + self
                .catch_ups
                .keys()
                .filter(|(c, t)| *c == conn && !self.router.is_subscribed(conn, t))
                .count();
        let renewing = self.router.is_subscribed(conn, topic)
            || self.catch_ups.contains_key(&(conn, topic.clone()));
        !renewing && held >= self.limits.max_subscriptions
    }

    /// A `since` resume decided at `seq`.
    fn resume(&mut self, request: SubscribeRequest, privileged: bool, seq: Seq) {
        let since = request.since.expect("a resume has since");
        if since > seq {
            // A position this journal never reached: a fresh snapshot.
            return self.ask_for_snapshot(request);
        }
        let short = seq - since <= DIRECT_REPLAY && self.history.covers(since);
        if short && request.conn.has_room() {
            self.replay_from_history(request, privileged, since, seq);
            return;
        }
        self.start_catch_up(request, privileged, seq);
    }

    /// Sends a short resume straight from the history ring, then goes live.
    fn replay_from_history(
        &mut self,
        request: SubscribeRequest,
        privileged: bool,
        since: Seq,
        seq: Seq,
    ) {
        if let Some(id) = &request.id {
            let result = SubscribeResult {
                topic: request.topic.clone(),
                epoch: self.epoch.clone(),
                seq: since,
                snapshot: None,
                reset: None,
            };
            request.conn.send(ok_value_frame(id.clone(), &result));
        }
        let meta = self.router.task_meta.clone();
        let table = meta.read().expect("feed meta lock");
        for (s, event) in self.history.range(since, seq) {
            for delivery in deliveries(event) {
                let task_meta = delivery.event.task_id.as_ref().and_then(|id| table.get(id));
                if delivery.topic != request.topic
                    || !passes(privileged, request.filter.as_ref(), &delivery, task_meta)
                {
                    continue;
                }
                if !request
                    .conn
                    .send(encode_event(&delivery.topic, *s, &delivery.event))
                {
                    return;
                }
                self.metrics.replayed_events.inc();
            }
        }
        drop(table);
        self.router.add(
            request.topic,
            request.conn,
            privileged,
            request.filter,
            &self.metrics,
        );
    }

    fn start_catch_up(&mut self, request: SubscribeRequest, privileged: bool, seq: Seq) {
        // A live subscription of the same topic would deliver events the replay also sends.
        self.router
            .remove(request.conn.id(), &request.topic, &self.metrics);
        let (key, cancelled) = self.register_catch_up(&request);
        let catch_up = CatchUp {
            key,
            request,
            privileged,
            decided_at: seq,
            epoch: self.epoch.clone(),
            store: self.store.clone(),
            published: self.published_shared.clone(),
            meta: self.router.task_meta.clone(),
            publisher: self.catch_up_tx.clone(),
            cancelled,
            max_replay_events: self.limits.max_replay_events,
            metrics: self.metrics.clone(),
            answered: false,
        };
        tokio::spawn(catch_up.run());
    }

    /// Registers a catch-up for `request` (cancelling any earlier one of its topic) and
    /// returns its key and cancel flag.
    fn register_catch_up(&mut self, request: &SubscribeRequest) -> (CatchUpKey, Arc<AtomicBool>) {
        self.next_generation += 1;
        let key = CatchUpKey {
            conn: request.conn.id(),
            topic: request.topic.clone(),
            generation: self.next_generation,
        };
        let cancelled = Arc::new(AtomicBool::new(false));
        self.catch_ups.insert(
            (key.conn, key.topic.clone()),
            (key.generation, cancelled.clone()),
        );
        (key, cancelled)
    }

    /// A `feed` snapshot too large for the engine task: the replica builds it at its own
    /// position R and answers; a catch-up from R then brings the subscription live.
    fn defer_feed_snapshot(&mut self, request: SubscribeRequest, privileged: bool, reset: bool) {
        self.router
            .remove(request.conn.id(), &request.topic, &self.metrics);
        let (key, _) = self.register_catch_up(&request);
        let feed = FeedRequest {
            key: key.clone(),
            request,
            privileged,
            reset,
            epoch: self.epoch.clone(),
            reply: self.catch_up_tx.clone(),
        };
        if let Err(refused) = self.snapshots.try_send(ReplicaMsg::Feed(Box::new(feed)))
            && let ReplicaMsg::Feed(feed) = refused.into_inner()
        {
            self.catch_ups.remove(&(key.conn, key.topic));
            let busy = unavailable("the server is busy; retry");
            let FeedRequest { request, .. } = *feed;
            request.conn.send(error_frame(request.id, &busy, None));
        }
    }

    /// The replica's snapshot is out: replay from its position into live delivery.
    fn follow_snapshot(
        &mut self,
        key: CatchUpKey,
        request: SubscribeRequest,
        privileged: bool,
        seq: Seq,
    ) {
        let Some((_, cancelled)) = self.catch_ups.get(&(key.conn, key.topic.clone())) else {
            return;
        };
        let catch_up = CatchUp {
            key,
            request,
            privileged,
            decided_at: seq,
            epoch: self.epoch.clone(),
            store: self.store.clone(),
            published: self.published_shared.clone(),
            meta: self.router.task_meta.clone(),
            publisher: self.catch_up_tx.clone(),
            cancelled: cancelled.clone(),
            max_replay_events: self.limits.max_replay_events,
            metrics: self.metrics.clone(),
            answered: true,
        };
        tokio::spawn(catch_up.run());
    }

    /// Stops the catch-up of `topic` on `conn`, if one runs.
    pub(super) fn cancel_catch_up(&mut self, conn: ConnId, topic: &Topic) {
        if let Some((_, cancelled)) = self.catch_ups.remove(&(conn, topic.clone())) {
            cancelled.store(true, Ordering::Release);
        }
    }

    /// Whether `key` is the catch-up currently serving its connection and topic.
    fn is_current(&self, key: &CatchUpKey) -> bool {
        self.catch_ups
            .get(&(key.conn, key.topic.clone()))
            .is_some_and(|(generation, _)| *generation == key.generation)
    }

    /// A catch-up reader's request.
    pub(super) fn on_catch_up(&mut self, msg: CatchUpMsg) {
        match msg {
            CatchUpMsg::Attach {
                key,
                conn,
                privileged,
                filter,
                reply,
            } => {
                if !self.is_current(&key) || conn.is_closed() {
                    let _ = reply.send(None);
                    return;
                }
                // From here every live frame of the topic is held for the connection; the
                // reader sends the journal's events up to this position, then releases them.
                self.router
                    .add_buffering(key.topic, conn, privileged, filter, &self.metrics);
                let _ = reply.send(Some(self.published));
            }
            CatchUpMsg::Release { key } => {
                if self.is_current(&key) {
                    self.catch_ups.remove(&(key.conn, key.topic.clone()));
                    self.router.release(key.conn, &key.topic, &self.metrics);
                }
            }
            CatchUpMsg::Ended { key } => {
                if self.is_current(&key) {
                    self.catch_ups.remove(&(key.conn, key.topic.clone()));
                    self.router.remove(key.conn, &key.topic, &self.metrics);
                }
            }
            CatchUpMsg::Snapshotted {
                key,
                request,
                privileged,
                seq,
            } => {
                if self.is_current(&key) {
                    self.follow_snapshot(key, *request, privileged, seq);
                }
            }
            CatchUpMsg::Reset { key, request } => {
                if self.is_current(&key) {
                    self.catch_ups.remove(&(key.conn, key.topic.clone()));
                    self.router.remove(key.conn, &key.topic, &self.metrics);
                    self.ask_for_snapshot(*request);
                }
            }
        }
    }

    /// Sends a resume back to the engine for a fresh snapshot (`reset: true`).
    fn ask_for_snapshot(&self, request: SubscribeRequest) {
        let retry = SubscribeRequest {
            resume_failed: true,
            ..request
        };
        if let Err(refused) = self.engine.try_send(EngineMsg::Subscribe(retry))
            && let EngineMsg::Subscribe(r) = *refused
        {
            let busy = unavailable("the server is busy; retry");
            r.conn.send(error_frame(r.id, &busy, None));
        }
    }
}
