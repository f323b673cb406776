//! The cast: the users a stream acts as, each with the role its token would carry.

use gavel_engine::Actor;
use gavel_protocol::{Role, UserId};

/// Users, each with the role its token would carry. `dual` is both a seeker and a coach (the
/// same `sub` with either role), to exercise "a coach cannot bid on its own task" and the
/// on-call exclusion of the owner. `c_unreg` is never registered.
pub(crate) const SEEKERS: &[&str] = &["s1", "s2", "s3", "dual"];
pub(crate) const COACHES: &[&str] = &["c1", "c2", "c3", "c4", "c5", "dual", "c_unreg"];
/// The coaches an admin may register (`c_unreg` stays unregistered).
pub(crate) const REGISTRABLE: &[&str] = &["c1", "c2", "c3", "c4", "c5", "dual"];

pub(crate) fn user(s: &str) -> UserId {
    UserId::new(s).expect("valid user id")
}

pub(crate) fn actor(s: &str, role: Role) -> Actor {
    Actor::new(user(s), role)
}

pub(crate) fn admin() -> Actor {
    actor("admin", Role::Admin)
}

/// Every actor, for "someone at random".
pub(crate) fn anyone(i: u8) -> Actor {
    let n = SEEKERS.len() + COACHES.len() + 1;
    let i = usize::from(i) % n;
    if i < SEEKERS.len() {
        actor(SEEKERS[i], Role::Seeker)
    } else if i < SEEKERS.len() + COACHES.len() {
        actor(COACHES[i - SEEKERS.len()], Role::Coach)
    } else {
        admin()
    }
}
