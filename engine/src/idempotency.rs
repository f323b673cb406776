//! The idempotency table: (user, request id) → the original reply, kept for ten minutes of
//! engine time. Entries are added and expired only by `evolve`, from journaled events, so the
//! table is the same after a replay as it was live — a retry across a restart is still
//! answered from it.

use std::collections::VecDeque;

use gavel_protocol::{Millis, RequestId, UserId};
use serde::{Deserialize, Serialize};

use crate::reply::Reply;
use crate::state::IdMap;

/// How long a reply is remembered (contract §2: "within 10 minutes").
pub const IDEMPOTENCY_TTL_MS: Millis = 10 * 60 * 1000;

/// One remembered reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub user: UserId,
    pub request_id: RequestId,
    pub expires_at: Millis,
    pub reply: Reply,
}

/// Replies by (user, request id), expiring in insertion order (insertion times only grow).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(from = "Vec<Entry>", into = "Vec<Entry>")]
pub struct Idempotency {
    by_key: IdMap<(UserId, RequestId), usize>,
    /// Entries in expiry order; `by_key` indexes into it with an offset of `expired`.
    queue: Blocks<Entry>,
    /// How many entries were popped from the front (so `by_key` positions stay valid).
    expired: usize,
}

impl Idempotency {
    /// The reply remembered for this user's request, if still fresh at `now`.
    pub fn get(&self, user: &UserId, request_id: &RequestId, now: Millis) -> Option<&Reply> {
        let pos = *self.by_key.get(&(user.clone(), request_id.clone()))?;
        let entry = self.queue.get(pos - self.expired)?;
        (entry.expires_at > now).then_some(&entry.reply)
    }

    /// Remembers `reply` until `at + TTL`.
    pub fn insert(&mut self, user: UserId, request_id: RequestId, at: Millis, reply: Reply) {
        let key = (user.clone(), request_id.clone());
        let entry = Entry {
            user,
            request_id,
            expires_at: at + IDEMPOTENCY_TTL_MS,
            reply,
        };
        // A re-used id after expiry replaces the old entry's index; the old entry stays queued
        // until it expires, and `expire` only unindexes it if the index still points at it.
        self.by_key.insert(key, self.expired + self.queue.len());
        self.queue.push_back(entry);
    }

    /// Forgets every entry expired at `now`.
    pub fn expire(&mut self, now: Millis) {
        while let Some(front) = self.queue.front() {
            if front.expires_at > now {
                break;
            }
            let front = self.queue.pop_front().expect("front exists");
            let key = (front.user, front.request_id);
            if self.by_key.get(&key) == Some(&self.expired) {
                self.by_key.remove(&key);
            }
            self.expired += 1;
        }
    }

    /// The entries still indexed, oldest first: [`Idempotency::len`] of them (an entry whose
    /// request id was used again after it expired is superseded and left out).
    pub fn live_entries(&self) -> impl Iterator<Item = &Entry> {
        self.queue
            .blocks
            .iter()
            .flatten()
            .enumerate()
            .filter(|(i, e)| {
                self.by_key.get(&(e.user.clone(), e.request_id.clone()))
                    == Some(&(i + self.expired))
            })
            .map(|(_, e)| e)
    }

    /// Entries currently remembered.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

/// Entries per block of the queue.
const BLOCK: usize = 4096;

/// A FIFO queue kept in blocks of [`BLOCK`] entries: a block is freed as soon as its last entry
/// is popped. A busy table holds hundreds of thousands of entries (ten minutes of replies); one
/// `VecDeque` would keep a ring of up to twice that allocated and, as its ends wrap around,
/// touch every page of it, so the process's memory kept rising for minutes after the number
/// of entries had stopped growing. In blocks, memory follows the live entries.
#[derive(Debug, Clone)]
struct Blocks<T> {
    /// Every block is full but the first (popped from the front) and the last (filling).
    blocks: VecDeque<VecDeque<T>>,
    len: usize,
}

impl<T> Default for Blocks<T> {
    fn default() -> Self {
        Blocks {
            blocks: VecDeque::new(),
            len: 0,
        }
    }
}

impl<T> Blocks<T> {
    fn push_back(&mut self, item: T) {
        match self.blocks.back_mut() {
            Some(last) if last.len() < BLOCK => last.push_back(item),
            _ => {
                let mut block = VecDeque::with_capacity(BLOCK);
                block.push_back(item);
                self.blocks.push_back(block);
            }
        }
        self.len += 1;
    }

    fn front(&self) -> Option<&T> {
        self.blocks.front()?.front()
    }

    fn pop_front(&mut self) -> Option<T> {
        let first = self.blocks.front_mut()?;
        let item = first.pop_front();
        if first.is_empty() {
            self.blocks.pop_front();
        }
        self.len -= usize::from(item.is_some());
        item
    }

    /// The `i`-th entry from the front.
    fn get(&self, i: usize) -> Option<&T> {
        let first = self.blocks.front()?;
        if i < first.len() {
            return first.get(i);
        }
        let rest = i - first.len();
        self.blocks.get(1 + rest / BLOCK)?.get(rest % BLOCK)
    }

    fn len(&self) -> usize {
        self.len
    }
}

/// Two tables are equal when they remember the same replies (however their queues are laid out).
impl PartialEq for Idempotency {
    fn eq(&self, other: &Self) -> bool {
        Vec::<Entry>::from(self.clone()) == Vec::<Entry>::from(other.clone())
    }
}

impl Eq for Idempotency {}

impl From<Vec<Entry>> for Idempotency {
    fn from(entries: Vec<Entry>) -> Self {
        let mut table = Idempotency::default();
        for e in entries {
            table
                .by_key
                .insert((e.user.clone(), e.request_id.clone()), table.queue.len());
            table.queue.push_back(e);
        }
        table
    }
}

impl From<Idempotency> for Vec<Entry> {
    fn from(table: Idempotency) -> Self {
        // Only entries still indexed matter; superseded ones would expire unused.
        table.live_entries().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gavel_protocol::views::Empty;

    fn key(user: &str, id: &str) -> (UserId, RequestId) {
        (UserId::new(user).unwrap(), RequestId::new(id).unwrap())
    }

    #[test]
    fn a_reply_is_remembered_for_ten_minutes_per_user() {
        let mut t = Idempotency::default();
        let (alice, r1) = key("alice", "r1");
        t.insert(alice.clone(), r1.clone(), 1_000, Reply::Empty(Empty {}));
        assert!(t.get(&alice, &r1, 1_000 + IDEMPOTENCY_TTL_MS - 1).is_some());
        assert!(t.get(&alice, &r1, 1_000 + IDEMPOTENCY_TTL_MS).is_none());
        let (bob, _) = key("bob", "r1");
        assert!(t.get(&bob, &r1, 1_000).is_none(), "ids are per user");
        t.expire(1_000 + IDEMPOTENCY_TTL_MS);
        assert!(t.is_empty());
    }

    #[test]
    fn the_table_round_trips_through_serde() {
        let mut t = Idempotency::default();
        for (i, id) in ["a", "b", "c"].iter().enumerate() {
            let (u, r) = key("u", id);
            t.insert(u, r, i as Millis * 1000, Reply::Empty(Empty {}));
        }
        t.expire(IDEMPOTENCY_TTL_MS); // drops "a"
        let json = serde_json::to_string(&t).unwrap();
        let back: Idempotency = serde_json::from_str(&json).unwrap();
        let (u, b) = key("u", "b");
        assert_eq!(back.len(), 2);
        assert!(back.get(&u, &b, IDEMPOTENCY_TTL_MS).is_some());
    }

    #[test]
    fn the_block_queue_indexes_across_blocks_and_frees_emptied_ones() {
        let mut q = Blocks::default();
        for i in 0..3 * BLOCK + 10 {
            q.push_back(i);
        }
        assert_eq!((q.len(), q.blocks.len()), (3 * BLOCK + 10, 4));
        for i in 0..BLOCK + 5 {
            assert_eq!(q.pop_front(), Some(i));
        }
        assert_eq!(q.blocks.len(), 3, "the emptied block is freed");
        assert_eq!(q.front(), Some(&(BLOCK + 5)));
        for i in [0, BLOCK - 6, BLOCK - 5, 2 * BLOCK + 4] {
            assert_eq!(q.get(i), Some(&(BLOCK + 5 + i)));
        }
        assert_eq!(q.get(2 * BLOCK + 5), None);
        while q.pop_front().is_some() {}
        assert_eq!((q.len(), q.blocks.len()), (0, 0));
    }
}
