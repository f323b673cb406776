//! Which task every live bid belongs to, by the bid's number.
//!
//! Every bid id is the engine's `b_<n>` ([`crate::ids`]), handed out in order, and bids leave
//! (with their archived task) roughly in the order they came: a ring of slots indexed by
//! `n - first` replaces a hash map keyed by the id string. Placing a bid appends a slot — no
//! hashing, and no rehash of a map of every live bid (which paused `place_bid` for 0.1–0.3 s at
//! a million bids) — and the slots of bids gone from the front are dropped. The cost is 16
//! bytes for each bid placed after the oldest live one, live or gone.

use std::collections::VecDeque;
use std::fmt;

use gavel_protocol::{BidId, TaskId};
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ids::{BidNo, bid_id, bid_no};

/// Bid → task, for every bid of a task in memory. Serialized as a map from bid id to task id
/// (the JSON snapshot's form since the first release).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BidTasks {
    /// The number of `slots[0]`. The first and the last slot are always taken (0 when empty),
    /// so two equal maps are equal field by field.
    first: BidNo,
    slots: VecDeque<Option<TaskId>>,
    len: usize,
}

impl BidTasks {
    /// Records that bid number `no` (`b_<no>`) belongs to `task`.
    pub fn insert(&mut self, no: BidNo, task: TaskId) {
        if self.slots.is_empty() {
            self.first = no;
        }
        while no < self.first {
            self.slots.push_front(None);
            self.first -= 1;
        }
        let at = (no - self.first) as usize;
        if at == self.slots.len() {
            // The common case: the bid just placed, after every other.
            self.slots.push_back(Some(task));
            self.len += 1;
            return;
        }
        if at > self.slots.len() {
            self.slots.resize(at + 1, None);
        }
        if self.slots[at].replace(task).is_none() {
            self.len += 1;
        }
    }

    /// The task of `bid`; `None` for a bid the engine does not hold (or not an engine id).
    pub fn get(&self, bid: &BidId) -> Option<&TaskId> {
        self.slot(bid_no(bid)?)?.as_ref()
    }

    pub fn contains_key(&self, bid: &BidId) -> bool {
        self.get(bid).is_some()
    }

    /// Forgets `bid` (its task left memory).
    pub fn remove(&mut self, bid: &BidId) -> Option<TaskId> {
        let at = bid_no(bid)?.checked_sub(self.first)? as usize;
        let task = self.slots.get_mut(at)?.take()?;
        self.len -= 1;
        while let Some(None) = self.slots.front() {
            self.slots.pop_front();
            self.first += 1;
        }
        while let Some(None) = self.slots.back() {
            self.slots.pop_back();
        }
        if self.slots.is_empty() {
            self.first = 0;
        }
        Some(task)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every bid with its task, in bid order.
    pub fn iter(&self) -> impl Iterator<Item = (BidId, &TaskId)> {
        (self.first..)
            .zip(&self.slots)
            .filter_map(|(no, task)| Some((bid_id(no), task.as_ref()?)))
    }

    fn slot(&self, no: BidNo) -> Option<&Option<TaskId>> {
        self.slots
            .get(usize::try_from(no.checked_sub(self.first)?).ok()?)
    }
}

impl Serialize for BidTasks {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len))?;
        for (bid, task) in self.iter() {
            map.serialize_entry(&bid, task)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for BidTasks {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BidTasksVisitor;
        impl<'de> Visitor<'de> for BidTasksVisitor {
            type Value = BidTasks;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map from bid id to task id")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<BidTasks, A::Error> {
                let mut bids = BidTasks::default();
                while let Some((bid, task)) = map.next_entry::<BidId, TaskId>()? {
                    let Some(no) = bid_no(&bid) else {
                        return Err(serde::de::Error::custom(format_args!(
                            "bid {bid} is not an engine bid id (b_<n>)"
                        )));
                    };
                    bids.insert(no, task);
                }
                Ok(bids)
            }
        }
        deserializer.deserialize_map(BidTasksVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bid(n: u64) -> BidId {
        bid_id(n)
    }

    fn task(name: &str) -> TaskId {
        TaskId::new(name).unwrap()
    }

    #[test]
    fn bids_map_to_their_task_whatever_the_order_of_insertion_and_removal() {
        let mut bids = BidTasks::default();
        bids.insert(5, task("a"));
        bids.insert(7, task("b"));
        bids.insert(3, task("c"));
        assert_eq!(bids.len(), 3);
        assert_eq!(bids.get(&bid(5)), Some(&task("a")));
        assert_eq!(bids.get(&bid(3)), Some(&task("c")));
        assert_eq!(bids.get(&bid(4)), None);
        assert_eq!(bids.get(&bid(8)), None);
        assert_eq!(bids.get(&BidId::new("mine").unwrap()), None);
        let order: Vec<u64> = bids.iter().map(|(b, _)| bid_no(&b).unwrap()).collect();
        assert_eq!(order, [3, 5, 7]);

        assert_eq!(bids.remove(&bid(5)), Some(task("a")));
        assert_eq!(bids.remove(&bid(5)), None);
        assert_eq!(bids.remove(&bid(2)), None);
        assert_eq!(bids.remove(&bid(3)), Some(task("c")));
        assert_eq!((bids.first, bids.slots.len(), bids.len()), (7, 1, 1));
        assert_eq!(bids.remove(&bid(7)), Some(task("b")));
        assert!(bids.is_empty());
        assert_eq!(bids, BidTasks::default());
    }

    #[test]
    fn equal_maps_are_equal_however_they_were_built() {
        let mut grown = BidTasks::default();
        for n in 1..=10 {
            grown.insert(n, task("t"));
        }
        for n in [1, 2, 3, 9, 10, 5] {
            grown.remove(&bid(n));
        }
        let mut direct = BidTasks::default();
        for n in [8, 4, 6, 7] {
            direct.insert(n, task("t"));
        }
        assert_eq!(grown, direct);
    }

    #[test]
    fn it_serializes_as_the_map_from_bid_id_to_task_id() {
        let mut bids = BidTasks::default();
        bids.insert(12, task("t_1"));
        bids.insert(10, task("t_2"));
        let json = serde_json::to_string(&bids).unwrap();
        assert_eq!(json, r#"{"b_10":"t_2","b_12":"t_1"}"#);
        assert_eq!(serde_json::from_str::<BidTasks>(&json).unwrap(), bids);
        let error = serde_json::from_str::<BidTasks>(r#"{"x":"t"}"#).unwrap_err();
        assert!(
            error.to_string().contains("not an engine bid id"),
            "{error}"
        );
    }
}
