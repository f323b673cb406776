//! A coach's pending bids by number ([`LiveBids`]): derived from the tasks' bids, kept by
//! `evolve` as bids are placed and closed, read for the coach's snapshot.
//!
//! The engine numbers bids in placement order, so a new bid has the highest number yet: adding
//! it is a push onto a sorted vector (the `BTreeSet` it replaces cost ~550 instructions per
//! insert, 15 % of a `place_bid`, docs/benchmarks.md). A closed bid is found by a binary search
//! and marked; the marks are swept out once they are half the entries, so removal stays
//! `O(log n)` amortized however many pending bids a coach has.

use crate::ids::BidNo;

/// The numbers of a coach's pending bids, ascending.
#[derive(Debug, Clone, Default)]
pub struct LiveBids {
    /// Ascending by number, each number once; a closed bid's entry is marked until swept.
    entries: Vec<Entry>,
    /// How many entries are marked closed.
    closed: usize,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    no: BidNo,
    live: bool,
}

/// Below this many entries marks are left until the vector empties or grows.
const SWEEP_FROM: usize = 16;

impl LiveBids {
    /// Files a pending bid. A number above every other is a push; another is put in its place.
    pub fn insert(&mut self, no: BidNo) {
        if self.entries.last().is_none_or(|last| last.no < no) {
            self.entries.push(Entry { no, live: true });
            return;
        }
        match self.position(no) {
            Ok(i) => {
                let entry = &mut self.entries[i];
                if !entry.live {
                    entry.live = true;
                    self.closed -= 1;
                }
            }
            Err(i) => self.entries.insert(i, Entry { no, live: true }),
        }
    }

    /// Takes a bid out (it closed); `false` if it was not filed.
    pub fn remove(&mut self, no: BidNo) -> bool {
        let Ok(i) = self.position(no) else {
            return false;
        };
        let entry = &mut self.entries[i];
        if !entry.live {
            return false;
        }
        entry.live = false;
        self.closed += 1;
        if self.closed == self.entries.len() {
            self.entries.clear();
            self.closed = 0;
        } else if self.entries.len() >= SWEEP_FROM && self.closed * 2 >= self.entries.len() {
            self.entries.retain(|e| e.live);
            self.closed = 0;
        }
        true
    }

    /// The pending bids' numbers, ascending.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = BidNo> + '_ {
        self.entries.iter().filter(|e| e.live).map(|e| e.no)
    }

    /// How many bids are filed.
    pub fn len(&self) -> usize {
        self.entries.len() - self.closed
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Empties it (before a rebuild).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.closed = 0;
    }

    /// Files a pending bid in any order, for a rebuild that ends with [`LiveBids::settle`]:
    /// a load meets a coach's bids task by task, and putting each in its place would move the
    /// entries after it every time.
    pub(crate) fn push_unordered(&mut self, no: BidNo) {
        self.entries.push(Entry { no, live: true });
    }

    /// Puts the entries in order after [`LiveBids::push_unordered`] (each number once).
    pub(crate) fn settle(&mut self) {
        self.entries.retain(|e| e.live);
        self.entries.sort_unstable_by_key(|e| e.no);
        self.entries.dedup_by_key(|e| e.no);
        self.closed = 0;
    }

    /// Whether the entries are ascending, each number once, and the closed count theirs (for
    /// `check_invariants`).
    pub fn is_well_formed(&self) -> bool {
        self.entries.windows(2).all(|w| w[0].no < w[1].no)
            && self.entries.iter().filter(|e| !e.live).count() == self.closed
    }

    fn position(&self, no: BidNo) -> Result<usize, usize> {
        self.entries.binary_search_by_key(&no, |e| e.no)
    }
}

/// Derived data takes no part in comparing states (`check_invariants` checks it instead).
impl PartialEq for LiveBids {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl Eq for LiveBids {}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// A small deterministic generator (xorshift), so the model test needs no crate.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    #[test]
    fn behaves_as_a_set_of_numbers_under_any_mix_of_inserts_and_removals() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut live = LiveBids::default();
        let mut model = BTreeSet::new();
        let mut next = 1u64;
        for step in 0..20_000 {
            match rng.below(10) {
                // Mostly new bids (the highest number yet), as the engine places them.
                0..=4 => {
                    live.insert(next);
                    model.insert(next);
                    next += 1 + rng.below(3);
                }
                // Any number, in the past or not yet handed out: a load's order.
                5 => {
                    let no = rng.below(next + 10);
                    live.insert(no);
                    model.insert(no);
                }
                _ => {
                    let no = rng.below(next + 1);
                    assert_eq!(live.remove(no), model.remove(&no), "step {step}");
                }
            }
            assert!(live.is_well_formed(), "step {step}");
            assert_eq!(live.len(), model.len(), "step {step}");
            if step % 97 == 0 {
                assert!(live.iter().eq(model.iter().copied()), "step {step}");
            }
        }
        assert!(live.iter().eq(model.iter().copied()));
    }

    #[test]
    fn a_rebuild_in_any_order_settles_into_the_same_set() {
        let mut live = LiveBids::default();
        live.insert(100);
        live.remove(100);
        for no in [9, 3, 7, 3, 12, 1] {
            live.push_unordered(no);
        }
        live.settle();
        assert!(live.is_well_formed());
        assert_eq!(live.iter().collect::<Vec<_>>(), [1, 3, 7, 9, 12]);
        live.insert(13);
        assert!(live.remove(7));
        assert_eq!(live.iter().collect::<Vec<_>>(), [1, 3, 9, 12, 13]);
    }

    #[test]
    fn marks_are_swept_once_they_are_half_and_a_closed_number_can_return() {
        let mut live = LiveBids::default();
        for no in 1..=32 {
            live.insert(no);
        }
        for no in 1..=15 {
            assert!(live.remove(no));
        }
        assert_eq!(live.entries.len(), 32, "under half marked: left in place");
        assert!(live.remove(16));
        assert_eq!(live.entries.len(), 16, "half marked: swept");
        assert!(!live.remove(16), "already closed");
        live.insert(20);
        assert_eq!(live.len(), 16, "a live number inserted again is still one");
        live.insert(3);
        assert_eq!(live.iter().take(2).collect::<Vec<_>>(), [3, 17]);
        for no in 3..=32 {
            live.remove(no);
        }
        assert!(live.is_empty());
        assert!(live.entries.is_empty(), "all closed: emptied");
    }
}
