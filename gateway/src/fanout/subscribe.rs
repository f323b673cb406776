//! The publisher's side of `subscribe`: answer, register, and hand resumes to their catch-up
//! readers (whose registry is [`crate::fanout::catch_ups`]). Everything here runs on the publisher task and does bounded work: a snapshot is
//! sent as it came from the engine, a short resume from the history ring is sent at once, and
//! anything longer is a [`CatchUp`] of its own.

use gavel_engine::routing::deliveries;
use gavel_protocol::views::SubscribeResult;
use gavel_protocol::{ErrorCode, Seq, Topic};

use crate::durability::replies::{error_frame, ok_value_frame};
use crate::fanout::frames::encode_event;
use crate::fanout::outbox::ConnId;
use crate::fanout::publisher::Publisher;
use crate::fanout::topic_router::passes;
use crate::sequencer::handle::unavailable;
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
        if let Some(generation) = request.reset_generation {
            // A resume sent back for a snapshot: still wanted only if nothing superseded it
            // meanwhile (an unsubscribe, or a newer subscribe of the topic).
            let key = (conn_id, request.topic.clone());
            if self
                .catch_ups
                .get(&key)
                .is_none_or(|(g, _)| *g != generation)
            {
                return answer_superseded(&request);
            }
            self.catch_ups.remove(&key);
        }
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
            return self.ask_for_snapshot(request, None);
        }
        // Within `max_replay_events` of the journal's end, the topic's share is too: a resume
        // further behind goes to a catch-up, which counts the topic's events (contract §13).
        let direct = DIRECT_REPLAY.min(self.limits.max_replay_events);
        let short = seq - since <= direct && self.history.covers(since);
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

    /// Sends a resume back to the engine for a fresh snapshot (`reset: true`). A catch-up's
    /// resume keeps its registration (`generation`) until the snapshot comes back, so an
    /// unsubscribe meanwhile wins.
    pub(super) fn ask_for_snapshot(&mut self, request: SubscribeRequest, generation: Option<u64>) {
        let retry = SubscribeRequest {
            resume_failed: true,
            reset_generation: generation,
            ..request
        };
        if let Err(refused) = self.engine.try_send(EngineMsg::Subscribe(retry))
            && let EngineMsg::Subscribe(r) = *refused
        {
            if generation.is_some() {
                self.catch_ups.remove(&(r.conn.id(), r.topic.clone()));
            }
            let busy = unavailable("the server is busy; retry");
            r.conn.send(error_frame(r.id, &busy, None));
        }
    }
}

/// The one reply of a subscribe superseded before it was answered.
pub(super) fn answer_superseded(request: &SubscribeRequest) {
    let rejection = gavel_engine::Rejection {
        code: ErrorCode::Conflict,
        message: "superseded by a later subscribe or unsubscribe of this topic".into(),
        field: Some("topic".into()),
    };
    request
        .conn
        .send(error_frame(request.id.clone(), &rejection, None));
}
