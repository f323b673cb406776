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
    /// Found by a binary search: a resume costs the events it takes, not a walk over the ring
    /// (100,000 events by default) on the shared publisher.
    pub fn range(&self, since: Seq, upto: Seq) -> impl Iterator<Item = &(Seq, Event)> {
        let first = self.ring.partition_point(|(s, _)| *s <= since);
        self.ring
            .range(first..)
            .take_while(move |(s, _)| *s <= upto)
    }
}

#[cfg(test)]
mod tests {
    use gavel_engine::EventKind;
    use gavel_protocol::TaskId;

    use super::*;

    fn event(at: u64) -> Event {
        Event {
            at,
            origin: None,
            owner: None,
            kind: EventKind::BiddingClosed {
                task_id: TaskId::new("t_1").unwrap(),
            },
        }
    }

    fn seqs<'a>(events: impl Iterator<Item = &'a (Seq, Event)>) -> Vec<Seq> {
        events.map(|(s, _)| *s).collect()
    }

    #[test]
    fn a_range_is_the_events_after_since_up_to_upto() {
        let mut h = History::new(5);
        for seq in 1..=10 {
            h.push(seq, &event(seq));
        }
        assert!(h.covers(5) && !h.covers(4), "6..=10 kept");
        assert_eq!(seqs(h.range(5, 10)), [6, 7, 8, 9, 10]);
        assert_eq!(seqs(h.range(7, 9)), [8, 9]);
        assert_eq!(seqs(h.range(10, 12)), Vec::<Seq>::new());
        assert_eq!(h.range(7, 7).count(), 0);
        // Gaps in seq (a follower's ring holds what it published) are fine too.
        let mut gappy = History::new(10);
        for seq in [3, 4, 9, 12, 20] {
            gappy.push(seq, &event(seq));
        }
        assert_eq!(seqs(gappy.range(4, 19)), [9, 12]);
        assert_eq!(seqs(gappy.range(0, 100)), [3, 4, 9, 12, 20]);
    }
}
