//! The on-call pool: every coach that could be assigned on call right now, kept in the order
//! contract §5 picks them in, so choosing one is a walk to the first coach not excluded
//! instead of a scan of every registered coach at each bidding window that closes unbid.
//!
//! A coach is in the pool when it is on call, verified, not suspended and below its capacity;
//! the order is the fewest active tasks, then the highest rating, then the smallest id. Like
//! the deadline index it is derived data: `evolve` keeps it up to date whenever a coach's
//! profile or assignments change, `State::rebuild_index` rebuilds it after loading, and
//! `check_invariants` compares it with the coaches.

use std::cmp::Reverse;
use std::collections::BTreeSet;

use gavel_protocol::UserId;

use crate::state::Coach;

/// The pool's order: active tasks, then rating (highest first), then id.
type Key = (usize, Reverse<u16>, UserId);

/// The coaches that may be assigned on call, best first (derived; never serialized).
#[derive(Debug, Clone, Default)]
pub struct OnCallPool {
    order: BTreeSet<Key>,
    /// Coaches in good standing below their capacity, on call or not (`quote`'s
    /// `coaches_available`, contract §11).
    available: usize,
}

/// Where the pool has filed one coach (kept on the coach, so re-filing needs no lookup): its
/// key in the on-call order (when eligible), and whether it is counted available.
#[derive(Debug, Clone, Default)]
pub struct Filed {
    key: Option<Key>,
    available: bool,
}

/// Derived data takes no part in comparing states (`check_invariants` checks it instead).
impl PartialEq for Filed {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl Eq for Filed {}

/// Derived data takes no part in comparing states (see [`crate::timers::Timers`]).
impl PartialEq for OnCallPool {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl OnCallPool {
    /// Whether `coach` may be assigned on call now.
    pub fn eligible(coach: &Coach) -> bool {
        coach.profile.on_call
            && coach.in_good_standing()
            && (coach.assignments.len() as u32) < coach.profile.capacity
    }

    /// Whether `coach` counts as available: in good standing and below its capacity.
    pub fn available_now(coach: &Coach) -> bool {
        coach.in_good_standing() && (coach.assignments.len() as u32) < coach.profile.capacity
    }

    /// Re-files `coach` after its profile or assignments changed (the order is touched only
    /// when the coach's place in it changed).
    pub fn update(&mut self, coach: &mut Coach) {
        let key = Self::eligible(coach).then(|| {
            (
                coach.assignments.len(),
                Reverse(coach.profile.rating_centi),
                coach.profile.coach_id.clone(),
            )
        });
        let available = Self::available_now(coach);
        let filed = &mut coach.filed;
        // The id is the coach's own: compare the rest of the key only.
        let rank = |k: &Option<Key>| k.as_ref().map(|(active, rating, _)| (*active, *rating));
        if rank(&filed.key) != rank(&key) {
            if let Some(old) = filed.key.take() {
                self.order.remove(&old);
            }
            if let Some(new) = &key {
                self.order.insert(new.clone());
            }
            filed.key = key;
        }
        if filed.available != available {
            filed.available = available;
            if available {
                self.available += 1;
            } else {
                self.available -= 1;
            }
        }
    }

    /// The best coach not in `exclude`.
    pub fn pick(&self, exclude: &[&UserId]) -> Option<&UserId> {
        self.order
            .iter()
            .map(|(_, _, id)| id)
            .find(|id| !exclude.contains(id))
    }

    /// Pooled coaches, best first.
    pub fn iter(&self) -> impl Iterator<Item = &UserId> {
        self.order.iter().map(|(_, _, id)| id)
    }

    /// Coaches in good standing below their capacity, on call or not.
    pub fn available(&self) -> usize {
        self.available
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}
