//! The topic router: who is subscribed to what, and fan-out. Each delivery is encoded once
//! into shared bytes and handed to every matching subscriber's bounded queue; a subscriber
//! whose queue is full is closed (4008) and forgotten, so it never slows the others.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use axum::extract::ws::Utf8Bytes;

use gavel_engine::routing::{Audience, Delivery};
use gavel_protocol::{Cents, FeedFilter, Seq, TaskId, Topic, Urgency};

use crate::fanout::catch_up::Released;
use crate::fanout::coalesce::{Coalescer, mono_us};
use crate::fanout::frames::encode_event;
use crate::fanout::outbox::{ConnHandle, ConnId};
use crate::metrics::Metrics;

/// What a `feed` filter looks at, per task (learned from `task.opened`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedMeta {
    pub urgency: Urgency,
    pub task_type: String,
    pub suggested_price: Cents,
}

/// Feed attributes of every task in memory, for filtered `feed` subscribers. Written by the
/// publisher (on `task.opened`, and when tasks are archived), read by it on every fan-out and
/// by catch-up readers filtering replayed events.
pub type FeedMetaTable = Arc<RwLock<HashMap<TaskId, FeedMeta>>>;

/// Most live frames held for a subscription whose resume is finishing (see
/// [`Router::add_buffering`]); more are dropped, and the resume goes on from the journal.
pub const HANDOVER_BUFFER_FRAMES: usize = 1024;

#[derive(Debug)]
struct Subscriber {
    conn: ConnHandle,
    privileged: bool,
    /// Boxed: most subscribers have none, and every subscriber's entry is the size of this
    /// struct (a `FeedFilter` inline is 64 bytes).
    filter: Option<Box<FeedFilter>>,
    /// `Some` while a catch-up reader finishes the replay: live frames wait here, in order,
    /// until the replay has reached the position the subscription was added at.
    held: Option<Vec<Utf8Bytes>>,
    /// Set when a held subscriber lost its view (a coach that lost the task): it takes no
    /// more frames and ends at its release.
    ending: bool,
}

/// Subscriptions by topic, and by connection (for cleanup).
#[derive(Debug, Default)]
pub struct Router {
    topics: HashMap<Topic, HashMap<ConnId, Subscriber>>,
    /// A connection's topics: a short list (most connections hold one or two; at most the
    /// per-connection subscription limit), smaller than a hash set's table.
    conns: HashMap<ConnId, Vec<Topic>>,
    pub task_meta: FeedMetaTable,
    /// Held subscriptions whose held frames overflowed: removed from the topic, their
    /// catch-up reader goes on from the journal and attaches again (see [`Router::release`]).
    overflowed: HashSet<(ConnId, Topic)>,
    /// Holds `feed` and `admin` frames for subscribers that wrote less than a window ago
    /// (`[delivery] coalesce_ms`); `None`: every frame wakes its subscriber at once.
    pub coalescer: Option<Arc<Coalescer>>,
}

/// Whether a delivery passes a subscriber's view: its audience and its feed filter.
/// `meta` is what the filter knows of the delivery's task (a task it knows nothing of
/// passes: better an extra event than a gap).
pub fn passes(
    privileged: bool,
    filter: Option<&FeedFilter>,
    delivery: &Delivery,
    meta: Option<&FeedMeta>,
) -> bool {
    if delivery.audience == Audience::Privileged && !privileged {
        return false;
    }
    match filter {
        Some(filter) => {
            meta.is_none_or(|m| filter.matches(m.urgency, &m.task_type, m.suggested_price))
        }
        None => true,
    }
}

impl Router {
    /// Adds (or replaces) a subscription.
    pub fn add(
        &mut self,
        topic: Topic,
        conn: ConnHandle,
        privileged: bool,
        filter: Option<FeedFilter>,
        metrics: &Metrics,
    ) {
        let id = conn.id();
        let kind = topic.kind();
        let fresh = self
            .topics
            .entry(topic.clone())
            .or_default()
            .insert(
                id,
                Subscriber {
                    conn,
                    privileged,
                    filter: filter.map(Box::new),
                    held: None,
                    ending: false,
                },
            )
            .is_none();
        let topics = self.conns.entry(id).or_default();
        if !topics.contains(&topic) {
            // One slot at a time: a `Vec`'s first push would reserve four.
            topics.reserve_exact(1);
            topics.push(topic);
        }
        if fresh {
            metrics.subscriptions.with_label_values(&[kind]).inc();
        }
    }

    /// Removes one subscription; returns whether it existed.
    pub fn remove(&mut self, conn: ConnId, topic: &Topic, metrics: &Metrics) -> bool {
        let removed = self
            .topics
            .get_mut(topic)
            .is_some_and(|subs| subs.remove(&conn).is_some());
        if removed {
            metrics
                .subscriptions
                .with_label_values(&[topic.kind()])
                .dec();
            if self.topics.get(topic).is_some_and(HashMap::is_empty) {
                self.topics.remove(topic);
            }
            if let Some(topics) = self.conns.get_mut(&conn) {
                topics.retain(|t| t != topic);
            }
        }
        removed
    }

    /// Removes every subscription of a connection.
    pub fn remove_conn(&mut self, conn: ConnId, metrics: &Metrics) {
        self.overflowed.retain(|(c, _)| *c != conn);
        for topic in self.conns.remove(&conn).unwrap_or_default() {
            if let Some(subs) = self.topics.get_mut(&topic) {
                if subs.remove(&conn).is_some() {
                    metrics
                        .subscriptions
                        .with_label_values(&[topic.kind()])
                        .dec();
                }
                if subs.is_empty() {
                    self.topics.remove(&topic);
                }
            }
        }
    }

    /// Removes every subscriber of `topic` that is not privileged — on `task:<id>`, the coach
    /// that held the task — when it loses the task.
    pub fn remove_unprivileged(&mut self, topic: &Topic, metrics: &Metrics) {
        let Some(subs) = self.topics.get_mut(topic) else {
            return;
        };
        let mut gone = Vec::new();
        for (id, sub) in subs.iter_mut().filter(|(_, s)| !s.privileged) {
            match sub.held {
                // Its resume is still being replayed: the frames held so far are its due and
                // go out at the release; nothing more is added, then it ends.
                Some(_) => sub.ending = true,
                None => gone.push(*id),
            }
        }
        for id in gone {
            self.remove(id, topic, metrics);
        }
    }

    /// Whether `topic` has any subscriber.
    pub fn has_subscribers(&self, topic: &Topic) -> bool {
        self.topics.contains_key(topic)
    }

    /// Live subscriptions in all.
    pub fn subscription_count(&self) -> u64 {
        self.topics.values().map(|s| s.len() as u64).sum()
    }

    /// Sends one delivery to every subscriber of its topic that may see it (or holds it for
    /// a subscription whose resume is finishing).
    pub fn fan_out(&mut self, seq: Seq, delivery: &Delivery, metrics: &Metrics) {
        let Some(subs) = self.topics.get_mut(&delivery.topic) else {
            return;
        };
        let table = self.task_meta.read().expect("feed meta lock");
        let meta = delivery.event.task_id.as_ref().and_then(|id| table.get(id));
        // Watchers of one task or user are never held back; the broadcast topics may be.
        let hold = match delivery.topic {
            Topic::Feed | Topic::Admin => self.coalescer.as_deref().map(|c| (mono_us(), c)),
            _ => None,
        };
        let mut frame = None;
        let mut gone = Vec::new();
        let mut overflowed = Vec::new();
        for (id, sub) in subs.iter_mut() {
            if sub.ending || !passes(sub.privileged, sub.filter.as_deref(), delivery, meta) {
                continue;
            }
            let bytes = frame
                .get_or_insert_with(|| encode_event(&delivery.topic, seq, &delivery.event))
                .clone();
            match &mut sub.held {
                Some(held) if held.len() < HANDOVER_BUFFER_FRAMES => held.push(bytes),
                Some(_) => overflowed.push(*id),
                None => {
                    let sent = match hold {
                        Some((now_us, coalescer)) => {
                            sub.conn.send_coalesced(bytes, now_us, coalescer)
                        }
                        None => sub.conn.send(bytes),
                    };
                    if !sent {
                        gone.push(*id);
                    }
                }
            }
        }
        drop(table);
        for id in overflowed {
            self.remove(id, &delivery.topic, metrics);
            self.overflowed.insert((id, delivery.topic.clone()));
        }
        for id in gone {
            self.remove_conn(id, metrics);
        }
    }

    /// Adds a subscription whose live frames are held until [`Router::release`]: a catch-up
    /// reader is still sending the events up to now.
    pub fn add_buffering(
        &mut self,
        topic: Topic,
        conn: ConnHandle,
        privileged: bool,
        filter: Option<FeedFilter>,
        metrics: &Metrics,
    ) {
        let id = conn.id();
        self.add(topic.clone(), conn, privileged, filter, metrics);
        if let Some(sub) = self.topics.get_mut(&topic).and_then(|s| s.get_mut(&id)) {
            sub.held = Some(Vec::new());
        }
    }

    /// The replay has caught up: the held frames go out, and the subscription is live — or
    /// the held frames had overflowed (the reader replays on and attaches again), or the
    /// subscription is gone.
    pub fn release(&mut self, conn: ConnId, topic: &Topic, metrics: &Metrics) -> Released {
        if self.overflowed.remove(&(conn, topic.clone())) {
            return Released::Overflowed;
        }
        let Some(sub) = self.topics.get_mut(topic).and_then(|s| s.get_mut(&conn)) else {
            return Released::Gone;
        };
        let held = sub.held.take().unwrap_or_default();
        let handle = sub.conn.clone();
        let ending = sub.ending;
        for frame in held {
            if !handle.send(frame) {
                self.remove_conn(conn, metrics);
                return Released::Gone;
            }
        }
        if ending {
            self.remove(conn, topic, metrics);
            return Released::Gone;
        }
        Released::Live
    }

    /// Whether `conn` holds `topic`.
    pub fn is_subscribed(&self, conn: ConnId, topic: &Topic) -> bool {
        self.conns.get(&conn).is_some_and(|t| t.contains(topic))
    }

    /// The topics `conn` holds.
    pub fn topics_of(&self, conn: ConnId) -> impl Iterator<Item = &Topic> {
        self.conns.get(&conn).into_iter().flatten()
    }
}
