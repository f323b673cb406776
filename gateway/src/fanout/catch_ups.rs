//! The publisher's registry of catch-ups: resumes replayed by their own readers, and large
//! `feed` snapshots being built by the replica. One entry per (connection, topic), with a
//! generation (a newer subscribe supersedes an older one) and a [`CancelToken`]. Every
//! message of a reader is checked against the current generation, so a superseded one can
//! neither attach, nor release, nor send a frame after its cancellation.

use std::sync::atomic::AtomicBool;

use gavel_protocol::{Seq, Topic};

use crate::durability::replies::error_frame;
use crate::fanout::catch_up::{CancelToken, CatchUp, CatchUpKey, CatchUpMsg, Released};
use crate::fanout::outbox::ConnId;
use crate::fanout::publisher::Publisher;
use crate::fanout::subscribe::answer_superseded;
use crate::replica::snapshotter::{FeedRequest, ReplicaMsg};
use crate::sequencer::handle::unavailable;
use crate::sequencer::messages::SubscribeRequest;

impl Publisher {
    /// Starts a catch-up reader for a resume decided at `seq`.
    pub(super) fn start_catch_up(&mut self, request: SubscribeRequest, privileged: bool, seq: Seq) {
        // A live subscription of the same topic would deliver events the replay also sends.
        self.router
            .remove(request.conn.id(), &request.topic, &self.metrics);
        let (key, cancel) = self.register_catch_up(&request);
        self.spawn_catch_up(key, cancel, request, privileged, seq, false);
    }

    fn spawn_catch_up(
        &self,
        key: CatchUpKey,
        cancel: CancelToken,
        request: SubscribeRequest,
        privileged: bool,
        decided_at: Seq,
        answered: bool,
    ) {
        let catch_up = CatchUp {
            key,
            request,
            privileged,
            decided_at,
            epoch: self.epoch.clone(),
            store: self.store.clone(),
            published: self.published_shared.clone(),
            meta: self.router.task_meta.clone(),
            publisher: self.catch_up_tx.clone(),
            cancel,
            reads: self.journal_reads.clone(),
            max_replay_events: self.limits.max_replay_events,
            metrics: self.metrics.clone(),
            answered: AtomicBool::new(answered),
        };
        tokio::spawn(catch_up.run());
    }

    /// Registers a catch-up for `request` (the caller has cancelled any earlier one of its
    /// topic) and returns its key and cancel token.
    fn register_catch_up(&mut self, request: &SubscribeRequest) -> (CatchUpKey, CancelToken) {
        self.next_generation += 1;
        let key = CatchUpKey {
            conn: request.conn.id(),
            topic: request.topic.clone(),
            generation: self.next_generation,
        };
        let cancel = CancelToken::default();
        self.catch_ups.insert(
            (key.conn, key.topic.clone()),
            (key.generation, cancel.clone()),
        );
        (key, cancel)
    }

    /// A `feed` snapshot too large for the engine task: the replica builds it at its own
    /// position R; the publisher sends it and a catch-up from R brings the subscription live.
    pub(super) fn defer_feed_snapshot(
        &mut self,
        request: SubscribeRequest,
        privileged: bool,
        reset: bool,
    ) {
        self.router
            .remove(request.conn.id(), &request.topic, &self.metrics);
        let (key, cancel) = self.register_catch_up(&request);
        let feed = FeedRequest {
            key: key.clone(),
            request,
            privileged,
            reset,
            epoch: self.epoch.clone(),
            cancel,
            reply: self.replica_reply_tx.clone(),
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

    /// Stops the catch-up of `topic` on `conn`, if one runs: no frame of it follows.
    pub(super) fn cancel_catch_up(&mut self, conn: ConnId, topic: &Topic) {
        if let Some((_, cancel)) = self.catch_ups.remove(&(conn, topic.clone())) {
            cancel.cancel();
        }
    }

    /// Stops every catch-up of a connection that went away.
    pub(super) fn cancel_catch_ups_of(&mut self, conn: ConnId) {
        self.catch_ups.retain(|(c, _), (_, cancel)| {
            if *c == conn {
                cancel.cancel();
            }
            *c != conn
        });
    }

    /// Whether `key` is the catch-up currently serving its connection and topic.
    fn is_current(&self, key: &CatchUpKey) -> bool {
        self.catch_ups
            .get(&(key.conn, key.topic.clone()))
            .is_some_and(|(generation, _)| *generation == key.generation)
    }

    /// A catch-up reader's (or the replica's) request.
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
            CatchUpMsg::Release { key, reply } => {
                let released = if self.is_current(&key) {
                    self.router.release(key.conn, &key.topic, &self.metrics)
                } else {
                    Released::Gone
                };
                if released != Released::Overflowed {
                    self.forget_catch_up(&key);
                }
                let _ = reply.send(released);
            }
            CatchUpMsg::Ended { key } => {
                if self.is_current(&key) {
                    self.forget_catch_up(&key);
                    self.router.remove(key.conn, &key.topic, &self.metrics);
                }
            }
            CatchUpMsg::Snapshotted {
                key,
                request,
                privileged,
                seq,
                frame,
            } => self.follow_snapshot(key, *request, privileged, seq, frame),
            CatchUpMsg::Reset { key, request } => {
                if self.is_current(&key) {
                    self.router.remove(key.conn, &key.topic, &self.metrics);
                    self.ask_for_snapshot(*request, Some(key.generation));
                } else {
                    answer_superseded(&request);
                }
            }
        }
    }

    fn forget_catch_up(&mut self, key: &CatchUpKey) {
        if self.is_current(key) {
            self.catch_ups.remove(&(key.conn, key.topic.clone()));
        }
    }

    /// The replica's snapshot is built: send it (only if still wanted), then replay from its
    /// position into live delivery.
    fn follow_snapshot(
        &mut self,
        key: CatchUpKey,
        request: SubscribeRequest,
        privileged: bool,
        seq: Seq,
        frame: Option<axum::extract::ws::Utf8Bytes>,
    ) {
        let Some((_, cancel)) = self
            .catch_ups
            .get(&(key.conn, key.topic.clone()))
            .filter(|(generation, _)| *generation == key.generation)
            .cloned()
        else {
            return answer_superseded(&request);
        };
        if let Some(frame) = frame
            && !request.conn.send_large(frame)
        {
            self.forget_catch_up(&key);
            return;
        }
        self.spawn_catch_up(key, cancel, request, privileged, seq, true);
    }
}
