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

use crate::state::{Coach, IdMap};

/// The pool's order: active tasks, then rating (highest first), then id.
type Key = (usize, Reverse<u16>, UserId);

/// The coaches that may be assigned on call, best first (derived; never serialized).
#[derive(Debug, Clone, Default)]
pub struct OnCallPool {
    order: BTreeSet<Key>,
    /// Each pooled coach's key in `order`.
    keys: IdMap<UserId, Key>,
    /// Coaches in good standing below their capacity, on call or not (`quote`'s
    /// `coaches_available`, contract §11).
    available: IdMap<UserId, ()>,
}

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

    /// Re-files `coach` after its profile or assignments changed.
    pub fn update(&mut self, coach: &Coach) {
        let id = &coach.profile.coach_id;
        if coach.in_good_standing() && (coach.assignments.len() as u32) < coach.profile.capacity {
            self.available.insert(id.clone(), ());
        } else {
            self.available.remove(id);
        }
        if let Some(old) = self.keys.remove(id) {
            self.order.remove(&old);
        }
        if Self::eligible(coach) {
            let key = (
                coach.assignments.len(),
                Reverse(coach.profile.rating_centi),
                id.clone(),
            );
            self.order.insert(key.clone());
            self.keys.insert(id.clone(), key);
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
        self.available.len()
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}
