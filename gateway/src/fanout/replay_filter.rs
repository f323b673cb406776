//! The subscriber's view of replayed events: its topic, its audience, its feed filter — and,
//! for a coach on `task:<id>`, where that view ends (it loses the task).

use std::collections::HashMap;

use gavel_engine::routing::{Delivery, deliveries};
use gavel_engine::{Event, EventKind};
use gavel_protocol::{FeedFilter, Seq, TaskId, Topic};

use crate::fanout::topic_router::{FeedMeta, FeedMetaTable, passes};

/// The subscriber's view of replayed events: its topic, its audience, its feed filter.
#[derive(Debug)]
pub struct ReplayFilter {
    topic: Topic,
    privileged: bool,
    filter: Option<FeedFilter>,
    /// Feed attributes learned from replayed `task.opened` events (tasks since archived are
    /// no longer in the shared table).
    seen: HashMap<TaskId, FeedMeta>,
    shared: FeedMetaTable,
}

impl ReplayFilter {
    pub fn new(
        topic: Topic,
        privileged: bool,
        filter: Option<FeedFilter>,
        shared: FeedMetaTable,
    ) -> Self {
        ReplayFilter {
            topic,
            privileged,
            filter,
            seen: HashMap::new(),
            shared,
        }
    }

    pub fn reset(&mut self) {
        self.seen.clear();
    }

    /// Whether `event` ends an unprivileged subscriber's view of `task:<id>` — the coach
    /// loses the task, as the live router drops it (`Some(true)`: after delivering the event,
    /// `Some(false)`: before it). Only past `authorized_at`, where the engine authorised the
    /// subscription; the replay before it is what the engine allowed.
    pub fn ends_view(&self, seq: Seq, authorized_at: Seq, event: &Event) -> Option<bool> {
        let Topic::Task(topic_task) = &self.topic else {
            return None;
        };
        if self.privileged || seq <= authorized_at {
            return None;
        }
        match &event.kind {
            EventKind::TaskReassigned { task_id, .. } if task_id == topic_task => Some(false),
            EventKind::PaymentFailed { task_id, .. } if task_id == topic_task => Some(true),
            _ => None,
        }
    }

    /// The deliveries of `event` this subscriber sees.
    pub fn deliveries(&mut self, event: &Event) -> Vec<Delivery> {
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
