//! A task's bids ([`TaskBids`]): every bid ever placed on one task, in placement order.
//!
//! A task has a handful of bids, and the engine numbers them in placement order (`b_<n>`), so
//! they sit in a vector sorted by number and are found by a binary search on the number an id
//! spells: no hashing, and the first bid costs one small allocation instead of a hash table's
//! (the two per-task hash maps' first tables were ~600 of a `place_bid`'s ~4,000 instructions).
//! Serialized as before: the map of bid id → bid.
//!
//! Beside the bids, a filter of the coaches that ever bid ([`CoachFilter`]): a new bid asks
//! whether its coach already has one here, and most often it has not — the filter says so
//! without reading a bid (the scan read one cache line per bid, cold at 100,000 tasks: a fifth
//! of a `place_bid`, docs/benchmarks.md).

use std::fmt;
use std::ops::Index;

use gavel_protocol::{BidId, BidStatus};
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::coach::CoachNo;
use crate::ids::{BidNo, bid_no};
use crate::task::Bid;

/// A task's bids, sorted by bid number (each number once), with what a new bid asks of them
/// kept beside them — the filter of their coaches, how many are pending, the last number — so
/// that placing one reads no bid.
#[derive(Debug, Clone, Default)]
pub struct TaskBids {
    bids: Vec<Bid>,
    coaches: CoachFilter,
    pending: u32,
    /// The last bid's number (0 while there is none).
    last_no: BidNo,
}

/// Bids compare by what they are; the rest is derived from them.
impl PartialEq for TaskBids {
    fn eq(&self, other: &Self) -> bool {
        self.bids == other.bids
    }
}

impl Eq for TaskBids {}

/// The coach numbers of a task's bids, as a 128-bit filter: a number's bit is set for every
/// bid of its coach, so a clear bit means the coach has no bid on the task (with ten coaches
/// bidding, a coach without a bid finds its bit set 7.5 % of the time, and then scans). Bits are
/// never cleared: a task keeps every bid placed on it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct CoachFilter([u64; 2]);

impl CoachFilter {
    /// The coach's word and bit.
    fn place(coach: CoachNo) -> (usize, u64) {
        let i = coach.index() % 128;
        (i / 64, 1 << (i % 64))
    }

    fn add(&mut self, coach: CoachNo) {
        if coach != CoachNo::NONE {
            let (word, bit) = Self::place(coach);
            self.0[word] |= bit;
        }
    }

    /// Whether the coach may have a bid here (`false`: it has none).
    fn may_hold(self, coach: CoachNo) -> bool {
        let (word, bit) = Self::place(coach);
        coach != CoachNo::NONE && self.0[word] & bit != 0
    }
}

fn is_pending(bid: &Bid) -> bool {
    bid.view.status == BidStatus::Pending
}

impl TaskBids {
    pub fn len(&self) -> usize {
        self.bids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bids.is_empty()
    }

    pub fn reserve(&mut self, additional: usize) {
        self.bids.reserve(additional);
    }

    /// How many bids are pending (kept, not counted: a new bid's `bid.count` reads no bid).
    pub fn pending_count(&self) -> u32 {
        self.pending
    }

    /// Where the bid with this id is. An id that is not an engine bid id (`b_<n>`) names no
    /// bid: the engine gives every bid such an id.
    fn position(&self, id: &BidId) -> Option<usize> {
        let no = bid_no(id)?;
        let i = self.bids.binary_search_by_key(&no, |b| b.no).ok()?;
        (self.bids[i].view.bid_id == *id).then_some(i)
    }

    pub fn get(&self, id: &BidId) -> Option<&Bid> {
        self.position(id).map(|i| &self.bids[i])
    }

    /// Changes the bid with this id through `f` (not its number or id: they place it) and
    /// returns what `f` does; `None` if there is no such bid.
    pub fn update<R>(&mut self, id: &BidId, f: impl FnOnce(&mut Bid) -> R) -> Option<R> {
        let i = self.position(id)?;
        let bid = &mut self.bids[i];
        let was_pending = is_pending(bid);
        let result = f(bid);
        debug_assert_eq!(bid.view.bid_id, *id, "an update keeps the bid's id");
        self.coaches.add(bid.coach);
        self.pending = self.pending + u32::from(is_pending(bid)) - u32::from(was_pending);
        Some(result)
    }

    pub fn contains_key(&self, id: &BidId) -> bool {
        self.position(id).is_some()
    }

    /// Adds a bid under its number (replacing one with the same number). A new bid has the
    /// highest number yet, so this appends.
    pub fn insert(&mut self, bid: Bid) {
        debug_assert_eq!(
            bid_no(&bid.view.bid_id),
            Some(bid.no),
            "a bid's number is its id's"
        );
        self.coaches.add(bid.coach);
        self.pending += u32::from(is_pending(&bid));
        if self.bids.is_empty() || self.last_no < bid.no {
            self.last_no = bid.no;
            self.bids.push(bid);
            return;
        }
        match self.bids.binary_search_by_key(&bid.no, |b| b.no) {
            Ok(i) => {
                self.pending -= u32::from(is_pending(&self.bids[i]));
                self.bids[i] = bid;
            }
            Err(i) => self.bids.insert(i, bid),
        }
    }

    /// The coach's pending bid, if it has one (a coach has at most one per task). A scan from
    /// the newest: a task's bids are few and contiguous, cheaper to read than a map to keep.
    pub fn pending_of(&self, coach: CoachNo) -> Option<&Bid> {
        if !self.coaches.may_hold(coach) {
            return None;
        }
        self.pending().rev().find(|b| b.coach == coach)
    }

    /// The coach's pending bid, if it has one, and how many bids it has placed here in all
    /// (withdrawn and rejected ones too): one scan.
    pub fn of_coach(&self, coach: CoachNo) -> (Option<&Bid>, usize) {
        if !self.coaches.may_hold(coach) {
            return (None, 0);
        }
        let mut pending = None;
        let mut placed = 0;
        for b in self.bids.iter().filter(|b| b.coach == coach) {
            placed += 1;
            if b.view.status == BidStatus::Pending {
                pending = Some(b);
            }
        }
        (pending, placed)
    }

    /// The pending bids, oldest first.
    pub fn pending(&self) -> impl DoubleEndedIterator<Item = &Bid> {
        self.bids.iter().filter(|b| is_pending(b))
    }

    /// Every bid, oldest first.
    pub fn values(&self) -> std::slice::Iter<'_, Bid> {
        self.bids.iter()
    }

    /// Gives every bid, oldest first, to `f` to change its derived data (its number and id
    /// stay: they place it), then derives the filter and the count afresh.
    pub(crate) fn update_each(&mut self, mut f: impl FnMut(&mut Bid)) {
        self.coaches = CoachFilter::default();
        self.pending = 0;
        for bid in &mut self.bids {
            f(bid);
            self.coaches.add(bid.coach);
            self.pending += u32::from(is_pending(bid));
        }
    }

    /// Whether what is kept beside the bids is theirs: every bid's coach in the filter, the
    /// pending count and the last number theirs (for `check_invariants`).
    pub(crate) fn derived_data_holds(&self) -> Result<(), String> {
        if let Some(b) = self
            .bids
            .iter()
            .find(|b| b.coach != CoachNo::NONE && !self.coaches.may_hold(b.coach))
        {
            return Err(format!(
                "the filter of bidding coaches misses {}'s",
                b.view.bid_id
            ));
        }
        let pending = self.pending().count();
        if pending != self.pending as usize {
            return Err(format!("{pending} pending bids, counted {}", self.pending));
        }
        let last_no = self.bids.last().map_or(0, |b| b.no);
        if last_no != self.last_no {
            return Err(format!("the last bid is {last_no}, kept {}", self.last_no));
        }
        Ok(())
    }

    pub fn keys(&self) -> impl Iterator<Item = &BidId> {
        self.bids.iter().map(|b| &b.view.bid_id)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&BidId, &Bid)> {
        self.bids.iter().map(|b| (&b.view.bid_id, b))
    }
}

impl Index<&BidId> for TaskBids {
    type Output = Bid;

    fn index(&self, id: &BidId) -> &Bid {
        self.get(id).expect("no bid with this id on the task")
    }
}

/// The map of bid id → bid (the JSON snapshot's form).
impl Serialize for TaskBids {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for TaskBids {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(BidsVisitor)
    }
}

struct BidsVisitor;

impl<'de> Visitor<'de> for BidsVisitor {
    type Value = TaskBids;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map of bid id to bid")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TaskBids, A::Error> {
        let mut bids = TaskBids::default();
        bids.reserve(map.size_hint().unwrap_or(0));
        while let Some((id, bid)) = map.next_entry::<BidId, Bid>()? {
            if id != bid.view.bid_id || bid_no(&id) != Some(bid.no) {
                return Err(serde::de::Error::custom(format!(
                    "the bid under {id} is {} (number {})",
                    bid.view.bid_id, bid.no
                )));
            }
            bids.insert(bid);
        }
        Ok(bids)
    }
}

#[cfg(test)]
mod tests {
    use gavel_protocol::views::BidView;
    use gavel_protocol::{BidStatus, TaskId, UserId};

    use super::*;
    use crate::ids::bid_id;

    fn bid(no: u64) -> Bid {
        Bid {
            no,
            view: BidView {
                bid_id: bid_id(no),
                task_id: TaskId::new("t_1").unwrap(),
                coach_id: UserId::new(&format!("c{no}")).unwrap(),
                amount: 2500 + no,
                eta_hours: 4,
                score: Default::default(),
                status: BidStatus::Pending,
                created_at: no,
                coach: None,
            },
            coach: CoachNo::nth(no as usize),
        }
    }

    #[test]
    fn finds_bids_by_id_in_number_order_whatever_the_insertion_order() {
        let mut bids = TaskBids::default();
        for no in [5, 9, 2, 7, 12, 3] {
            bids.insert(bid(no));
        }
        let numbers: Vec<u64> = bids.values().map(|b| b.no).collect();
        assert_eq!(numbers, [2, 3, 5, 7, 9, 12]);
        for no in [2, 3, 5, 7, 9, 12] {
            assert_eq!(bids[&bid_id(no)].view.amount, 2500 + no);
        }
        for missing in [0, 4, 13] {
            assert!(!bids.contains_key(&bid_id(missing)));
        }
        assert!(
            bids.get(&BidId::new("x_5").unwrap()).is_none(),
            "not an engine id"
        );
        let mut replaced = bid(7);
        replaced.view.status = BidStatus::Withdrawn;
        bids.insert(replaced);
        assert_eq!(bids.len(), 6);
        assert_eq!(bids[&bid_id(7)].view.status, BidStatus::Withdrawn);
        bids.update(&bid_id(9), |b| b.view.amount = 1).unwrap();
        assert_eq!(bids[&bid_id(9)].view.amount, 1);
    }

    #[test]
    fn a_coach_pending_bid_is_its_newest_pending_one() {
        let mut bids = TaskBids::default();
        let coach = CoachNo::nth(1);
        let mut first = bid(1);
        first.view.status = BidStatus::Withdrawn;
        let mut second = bid(4);
        second.coach = coach;
        for b in [first, second, bid(6)] {
            bids.insert(b);
        }
        assert_eq!(bids.pending_of(coach).map(|b| b.no), Some(4));
        assert_eq!(bids.pending().count(), 2);
        bids.update(&bid_id(4), |b| b.view.status = BidStatus::Rejected)
            .unwrap();
        assert!(bids.pending_of(coach).is_none());
        assert!(bids.pending_of(CoachNo::nth(9)).is_none());
        let mut again = bid(8);
        again.coach = coach;
        bids.insert(again);
        assert_eq!(bids.of_coach(coach).0.map(|b| b.no), Some(8));
        assert_eq!(
            bids.of_coach(coach).1,
            3,
            "the withdrawn and the rejected ones count"
        );
        assert_eq!(bids.of_coach(CoachNo::nth(9)), (None, 0));
        let mut orphan = bid(10);
        orphan.coach = CoachNo::NONE;
        bids.insert(orphan);
        assert!(bids.pending_of(CoachNo::NONE).is_none(), "NONE is no coach");
        assert_eq!(bids.of_coach(CoachNo::NONE), (None, 0));
    }

    #[test]
    fn coaches_sharing_a_filter_bit_are_told_apart_and_counts_are_kept() {
        let mut bids = TaskBids::default();
        let (one, other) = (CoachNo::nth(1), CoachNo::nth(129)); // the same bit
        let mut first = bid(3);
        first.coach = one;
        bids.insert(first);
        assert_eq!(bids.of_coach(other), (None, 0), "a shared bit, no bid");
        assert_eq!(bids.of_coach(one).1, 1);
        assert_eq!(bids.of_coach(CoachNo::nth(2)), (None, 0));
        let mut second = bid(5);
        second.coach = other;
        bids.insert(second);
        assert_eq!(bids.pending_of(other).map(|b| b.no), Some(5));
        assert_eq!(bids.pending_count(), 2);
        bids.update(&bid_id(3), |b| b.view.status = BidStatus::Withdrawn)
            .unwrap();
        assert_eq!(bids.pending_count(), 1);
        assert!(bids.pending_of(one).is_none());
        let mut replaced = bid(5);
        replaced.coach = other;
        replaced.view.status = BidStatus::Rejected;
        bids.insert(replaced);
        assert_eq!(
            bids.pending_count(),
            0,
            "a replaced pending bid no longer counts"
        );
        bids.insert(bid(1)); // an older number: inserted before the others
        assert_eq!(bids.pending_count(), 1);
        assert_eq!(bids.values().map(|b| b.no).collect::<Vec<_>>(), [1, 3, 5]);
        assert!(bids.derived_data_holds().is_ok());
    }

    #[test]
    fn serializes_as_the_map_of_id_to_bid() {
        let mut bids = TaskBids::default();
        bids.insert(bid(3));
        bids.insert(bid(1));
        let json = serde_json::to_value(&bids).unwrap();
        assert_eq!(json.as_object().unwrap().len(), 2);
        assert_eq!(json["b_3"]["no"], 3);
        let back: TaskBids = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, bids);
        let mut wrong = json;
        wrong["b_3"]["no"] = 4.into();
        let err = serde_json::from_value::<TaskBids>(wrong).unwrap_err();
        assert!(err.to_string().contains("the bid under b_3"), "{err}");
    }
}
