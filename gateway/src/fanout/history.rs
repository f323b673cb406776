//! The history ring: the most recent published events, kept in memory so that a `since`
//! resume from the recent past needs no journal read.

use std::collections::VecDeque;

use gavel_engine::Event;
use gavel_protocol::Seq;

/// The last `capacity` published events, in `seq` order.
#[derive(Debug)]
pub struct History {
    ring: VecDeque<(Seq, Event)>,
    capacity: usize,
}

impl History {
    pub fn new(capacity: usize) -> Self {
        History {
            ring: VecDeque::with_capacity(capacity.min(1 << 16)),
            capacity,
        }
    }

    /// Remembers a published event (dropping the oldest when full).
    pub fn push(&mut self, seq: Seq, event: &Event) {
        if self.capacity == 0 {
            return;
        }
        if self.ring.len() == self.capacity {
            self.ring.pop_front();
        }
        self.ring.push_back((seq, event.clone()));
    }

    /// Whether every event after `since` is still here.
    pub fn covers(&self, since: Seq) -> bool {
        self.ring
            .front()
            .is_some_and(|(first, _)| *first <= since + 1)
    }

    /// The events in `(since, upto]`, when [`History::covers`] `since`.
    pub fn range(&self, since: Seq, upto: Seq) -> impl Iterator<Item = &(Seq, Event)> {
        self.ring
            .iter()
            .skip_while(move |(s, _)| *s <= since)
            .take_while(move |(s, _)| *s <= upto)
    }
}
