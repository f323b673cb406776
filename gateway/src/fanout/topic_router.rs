//! The topic router: who is subscribed to what, and fan-out. Each delivery is encoded once
//! into shared bytes and handed to every matching subscriber's bounded queue; a subscriber
//! whose queue is full is closed (4008) and forgotten, so it never slows the others.

use std::collections::{HashMap, HashSet};

use gavel_engine::routing::{Audience, Delivery};
use gavel_protocol::{Cents, FeedFilter, Seq, TaskId, Topic, Urgency};

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

#[derive(Debug)]
struct Subscriber {
    conn: ConnHandle,
    privileged: bool,
    filter: Option<FeedFilter>,
}

/// Subscriptions by topic, and by connection (for cleanup).
#[derive(Debug, Default)]
pub struct Router {
    topics: HashMap<Topic, HashMap<ConnId, Subscriber>>,
    conns: HashMap<ConnId, HashSet<Topic>>,
    /// Feed attributes of every task, for filtered `feed` subscribers.
    pub task_meta: HashMap<TaskId, FeedMeta>,
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
                    filter,
                },
            )
            .is_none();
        self.conns.entry(id).or_default().insert(topic);
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
            if let Some(set) = self.conns.get_mut(&conn) {
                set.remove(topic);
            }
        }
        removed
    }

    /// Removes every subscription of a connection.
    pub fn remove_conn(&mut self, conn: ConnId, metrics: &Metrics) {
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
        let Some(subs) = self.topics.get(topic) else {
            return;
        };
        let gone: Vec<ConnId> = subs
            .iter()
            .filter(|(_, s)| !s.privileged)
            .map(|(id, _)| *id)
            .collect();
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

    /// Whether a delivery passes a subscriber's view: its audience and its feed filter.
    fn passes(&self, sub: &Subscriber, delivery: &Delivery) -> bool {
        if delivery.audience == Audience::Privileged && !sub.privileged {
            return false;
        }
        match (&sub.filter, &delivery.event.task_id) {
            (Some(filter), Some(task_id)) => self
                .task_meta
                .get(task_id)
                .is_none_or(|m| filter.matches(m.urgency, &m.task_type, m.suggested_price)),
            _ => true,
        }
    }

    /// Sends one delivery to every subscriber of its topic that may see it.
    pub fn fan_out(&mut self, seq: Seq, delivery: &Delivery, metrics: &Metrics) {
        let Some(subs) = self.topics.get(&delivery.topic) else {
            return;
        };
        let mut frame = None;
        let mut gone = Vec::new();
        for (id, sub) in subs {
            if !self.passes(sub, delivery) {
                continue;
            }
            let bytes = frame
                .get_or_insert_with(|| encode_event(&delivery.topic, seq, &delivery.event))
                .clone();
            if !sub.conn.send(bytes) {
                gone.push(*id);
            }
        }
        for id in gone {
            self.remove_conn(id, metrics);
        }
    }

    /// Sends a resume's replayed deliveries to one connection only.
    pub fn replay_to(
        &self,
        conn: &ConnHandle,
        privileged: bool,
        filter: Option<&FeedFilter>,
        seq: Seq,
        delivery: &Delivery,
    ) -> bool {
        let sub = Subscriber {
            conn: conn.clone(),
            privileged,
            filter: filter.cloned(),
        };
        if !self.passes(&sub, delivery) {
            return true;
        }
        conn.send(encode_event(&delivery.topic, seq, &delivery.event))
    }
}
