//! A task's bids ([`TaskBids`]): every bid ever placed on one task, in placement order.
//!
//! A task has a handful of bids, and the engine numbers them in placement order (`b_<n>`), so
//! they sit in a vector sorted by number and are found by a binary search on the number an id
//! spells: no hashing, and the first bid costs one small allocation instead of a hash table's
//! (the two per-task hash maps' first tables were ~600 of a `place_bid`'s ~4,000 instructions).
//! Serialized as before: the map of bid id → bid.

use std::fmt;
use std::ops::Index;

use gavel_protocol::{BidId, BidStatus};
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::coach::CoachNo;
use crate::ids::bid_no;
use crate::task::Bid;

/// A task's bids, sorted by bid number (each number once).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskBids(Vec<Bid>);

impl TaskBids {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn reserve(&mut self, additional: usize) {
        self.0.reserve(additional);
    }

    /// Where the bid with this id is. An id that is not an engine bid id (`b_<n>`) names no
    /// bid: the engine gives every bid such an id.
    fn position(&self, id: &BidId) -> Option<usize> {
        let no = bid_no(id)?;
        let i = self.0.binary_search_by_key(&no, |b| b.no).ok()?;
        (self.0[i].view.bid_id == *id).then_some(i)
    }

    pub fn get(&self, id: &BidId) -> Option<&Bid> {
        self.position(id).map(|i| &self.0[i])
    }

    pub fn get_mut(&mut self, id: &BidId) -> Option<&mut Bid> {
        self.position(id).map(|i| &mut self.0[i])
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
        if self.0.last().is_none_or(|last| last.no < bid.no) {
            self.0.push(bid);
            return;
        }
        match self.0.binary_search_by_key(&bid.no, |b| b.no) {
            Ok(i) => self.0[i] = bid,
            Err(i) => self.0.insert(i, bid),
        }
    }

    /// The coach's pending bid, if it has one (a coach has at most one per task). A scan from
    /// the newest: a task's bids are few and contiguous, cheaper to read than a map to keep.
    pub fn pending_of(&self, coach: CoachNo) -> Option<&Bid> {
        if coach == CoachNo::NONE {
            return None;
        }
        self.pending().rev().find(|b| b.coach == coach)
    }

    /// The coach's pending bid, if it has one, and how many bids it has placed here in all
    /// (withdrawn and rejected ones too): one scan.
    pub fn of_coach(&self, coach: CoachNo) -> (Option<&Bid>, usize) {
        if coach == CoachNo::NONE {
            return (None, 0);
        }
        let mut pending = None;
        let mut placed = 0;
        for b in self.0.iter().filter(|b| b.coach == coach) {
            placed += 1;
            if b.view.status == BidStatus::Pending {
                pending = Some(b);
            }
        }
        (pending, placed)
    }

    /// The pending bids, oldest first.
    pub fn pending(&self) -> impl DoubleEndedIterator<Item = &Bid> {
        self.0
            .iter()
            .filter(|b| b.view.status == BidStatus::Pending)
    }

    /// Every bid, oldest first.
    pub fn values(&self) -> std::slice::Iter<'_, Bid> {
        self.0.iter()
    }

    /// Every bid, oldest first, to change its derived data (its number and id stay: they
    /// place it).
    pub(crate) fn values_mut(&mut self) -> std::slice::IterMut<'_, Bid> {
        self.0.iter_mut()
    }

    pub fn keys(&self) -> impl Iterator<Item = &BidId> {
        self.0.iter().map(|b| &b.view.bid_id)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&BidId, &Bid)> {
        self.0.iter().map(|b| (&b.view.bid_id, b))
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
        bids.get_mut(&bid_id(9)).unwrap().view.amount = 1;
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
        bids.get_mut(&bid_id(4)).unwrap().view.status = BidStatus::Rejected;
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
