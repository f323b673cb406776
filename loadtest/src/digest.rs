//! The loss check, made cheap enough for tens of thousands of subscribers across processes.
//!
//! Each subscriber folds what it saw into a [`Digest`] (per event kind: a count and a wrapping
//! sum of 64-bit hashes); each process folds what it *did* (tasks posted and acknowledged,
//! bids acknowledged, tasks canceled) into the digest every subscriber of a given kind is
//! expected to end with. Digests add up across processes, so the parent sums the expected
//! contributions and compares each subscriber's digest with the total: a missing event, a
//! duplicate or an event that should not have passed a filter changes the count or the sum.
//! Order is checked separately, per connection and topic (`seq` strictly increasing).

use std::collections::BTreeMap;

use gavel_protocol::{FeedFilter, Urgency};
use serde::{Deserialize, Serialize};

/// FNV-1a, 64 bit: a fixed hash, the same in every process of a run.
pub fn fnv(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            h ^= 0xff;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        for &b in *part {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    // Final avalanche so that sums of hashes of similar strings stay well spread.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h
}

/// A multiset of strings as a count and a wrapping sum of hashes.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct Acc {
    pub n: u64,
    pub h: u64,
}

impl Acc {
    pub fn add(&mut self, parts: &[&[u8]]) {
        self.n += 1;
        self.h = self.h.wrapping_add(fnv(parts));
    }

    pub fn merge(&mut self, other: Acc) {
        self.n += other.n;
        self.h = self.h.wrapping_add(other.h);
    }
}

/// What one subscriber saw (or should see), by event kind.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct Digest {
    /// `task.opened`: task ids.
    pub opened: Acc,
    /// `task.bid_count`: (task id, count).
    pub bid_count: Acc,
    /// `task.closed`: task ids.
    pub closed: Acc,
    /// `bid.placed`: bid ids.
    pub bid_placed: Acc,
}

impl Digest {
    pub fn merge(&mut self, other: &Digest) {
        self.opened.merge(other.opened);
        self.bid_count.merge(other.bid_count);
        self.closed.merge(other.closed);
        self.bid_placed.merge(other.bid_placed);
    }

    pub fn opened(&mut self, task: &str) {
        self.opened.add(&[task.as_bytes()]);
    }

    pub fn bid_count(&mut self, task: &str, count: u32) {
        self.bid_count
            .add(&[task.as_bytes(), count.to_string().as_bytes()]);
    }

    pub fn closed(&mut self, task: &str) {
        self.closed.add(&[task.as_bytes()]);
    }

    pub fn bid_placed(&mut self, bid: &str) {
        self.bid_placed.add(&[bid.as_bytes()]);
    }

    /// How `seen` differs from `self` (expected), for people: e.g. `opened 41/42`.
    pub fn diff(&self, seen: &Digest) -> String {
        let mut out = Vec::new();
        for (name, want, got) in [
            ("task.opened", self.opened, seen.opened),
            ("task.bid_count", self.bid_count, seen.bid_count),
            ("task.closed", self.closed, seen.closed),
            ("bid.placed", self.bid_placed, seen.bid_placed),
        ] {
            if want != got {
                let how = if want.n == got.n {
                    " (same count, different events)"
                } else {
                    ""
                };
                out.push(format!("{name} {}/{}{how}", got.n, want.n));
            }
        }
        out.join(", ")
    }
}

/// The task types the market posts.
pub const TASK_TYPES: [&str; 2] = ["resume_review_full", "cover_letter_review"];
/// The base prices the market posts (cents).
pub const BASE_PRICES: [u64; 3] = [2000, 2500, 4000];

/// The `feed` filters watching coaches use, by class number (class 0 is no filter).
pub fn filter_class(class: usize) -> Option<FeedFilter> {
    match class {
        0 => None,
        1 => Some(FeedFilter {
            urgency: Some(vec![Urgency::Urgent]),
            ..FeedFilter::default()
        }),
        2 => Some(FeedFilter {
            task_type: Some(vec![TASK_TYPES[1].to_owned()]),
            ..FeedFilter::default()
        }),
        3 => Some(FeedFilter {
            min_price: Some(3000),
            ..FeedFilter::default()
        }),
        _ => Some(FeedFilter {
            urgency: Some(vec![Urgency::Standard, Urgency::Flexible]),
            task_type: Some(vec![TASK_TYPES[0].to_owned()]),
            min_price: Some(2500),
        }),
    }
}

/// Number of filter classes (0 = unfiltered).
pub const FILTER_CLASSES: usize = 5;

/// Digests by subscriber kind (`feed:<class>`, `admin`, `fanout`): what every subscriber of
/// that kind should have seen (summed over processes), and what each one did see (grouped:
/// identical digests counted together).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LossBook {
    pub expected: BTreeMap<String, Digest>,
    /// kind → list of (digest seen, subscribers that saw exactly it).
    pub observed: BTreeMap<String, Vec<(Digest, u64)>>,
    /// Checks a process could finish alone (a seeker's own tasks): done, and failed.
    pub local_checked: u64,
    pub local_failed: u64,
    pub local_examples: Vec<String>,
}

impl LossBook {
    pub fn expect(&mut self, kind: &str, d: &Digest) {
        self.expected.entry(kind.to_owned()).or_default().merge(d);
    }

    pub fn observe(&mut self, kind: &str, d: Digest) {
        let list = self.observed.entry(kind.to_owned()).or_default();
        match list.iter_mut().find(|(x, _)| *x == d) {
            Some((_, n)) => *n += 1,
            None => list.push((d, 1)),
        }
    }

    pub fn local(&mut self, ok: bool, what: impl FnOnce() -> String) {
        self.local_checked += 1;
        if !ok {
            self.local_failed += 1;
            if self.local_examples.len() < 10 {
                self.local_examples.push(what());
            }
        }
    }

    pub fn merge(&mut self, other: &LossBook) {
        for (k, d) in &other.expected {
            self.expect(k, d);
        }
        for (k, list) in &other.observed {
            for (d, n) in list {
                let mine = self.observed.entry(k.clone()).or_default();
                match mine.iter_mut().find(|(x, _)| x == d) {
                    Some((_, m)) => *m += n,
                    None => mine.push((*d, *n)),
                }
            }
        }
        self.local_checked += other.local_checked;
        self.local_failed += other.local_failed;
        for e in &other.local_examples {
            if self.local_examples.len() < 10 {
                self.local_examples.push(e.clone());
            }
        }
    }

    /// The verdict once every process's book is merged in.
    pub fn verdict(&self) -> LossVerdict {
        let mut v = LossVerdict {
            subscribers_checked: self.local_checked,
            ..LossVerdict::default()
        };
        for (kind, list) in &self.observed {
            let want = self.expected.get(kind).copied().unwrap_or_default();
            for (seen, n) in list {
                v.subscribers_checked += n;
                if *seen != want {
                    v.subscribers_failed += n;
                    if v.details.len() < 10 {
                        v.details
                            .push(format!("{n} `{kind}` subscriber(s): {}", want.diff(seen)));
                    }
                }
            }
        }
        v.subscribers_failed += self.local_failed;
        v.details.extend(self.local_examples.iter().cloned());
        v.ok = v.subscribers_failed == 0;
        v
    }
}

/// Whether anything was lost, duplicated or leaked past a filter.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LossVerdict {
    pub ok: bool,
    pub subscribers_checked: u64,
    pub subscribers_failed: u64,
    pub details: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_add_up_in_any_order_and_catch_loss_and_duplicates() {
        let mut a = Digest::default();
        let mut b = Digest::default();
        for t in ["t1", "t2", "t3"] {
            a.opened(t);
        }
        for t in ["t3", "t1", "t2"] {
            b.opened(t);
        }
        assert_eq!(a, b);
        let mut lost = Digest::default();
        lost.opened("t1");
        lost.opened("t2");
        assert_ne!(a, lost);
        let mut dup = lost;
        dup.opened("t1");
        assert_ne!(a, dup);
        assert_eq!(
            a.diff(&dup),
            "task.opened 3/3 (same count, different events)"
        );
    }

    #[test]
    fn the_book_compares_every_observed_digest_with_the_summed_expectation() {
        let mut w0 = LossBook::default();
        let mut w1 = LossBook::default();
        let (mut e0, mut e1) = (Digest::default(), Digest::default());
        e0.opened("a");
        e1.opened("b");
        w0.expect("feed:0", &e0);
        w1.expect("feed:0", &e1);
        let mut both = Digest::default();
        both.opened("b");
        both.opened("a");
        w0.observe("feed:0", both);
        w1.observe("feed:0", both);
        w1.observe("feed:0", e1);
        let mut all = LossBook::default();
        all.merge(&w0);
        all.merge(&w1);
        let v = all.verdict();
        assert_eq!((v.subscribers_checked, v.subscribers_failed), (3, 1));
        assert!(!v.ok);
    }

    #[test]
    fn filter_classes_match_as_the_server_filters() {
        let f = filter_class(3).unwrap();
        assert!(f.matches(Urgency::Urgent, TASK_TYPES[0], 3750));
        assert!(!f.matches(Urgency::Standard, TASK_TYPES[0], 2500));
        assert!(filter_class(0).is_none());
    }
}
