//! Per-user rate limits: a token bucket per user id. Two instances run side by side — one
//! for commands (contract §1: `commands_per_minute`, bursts of `command_burst`; subscriptions
//! and pings are not counted) and one for `subscribe` frames (§13: `subscribes_per_minute`,
//! bursts of `subscribe_burst`).

use std::num::NonZeroU32;

use gavel_protocol::UserId;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// One limit, shared by every session.
#[derive(Debug)]
pub struct UserRateLimiter {
    limiter: DefaultKeyedRateLimiter<UserId>,
    clock: DefaultClock,
}

impl UserRateLimiter {
    pub fn new(per_minute: u32, burst: u32) -> Self {
        let per_minute = NonZeroU32::new(per_minute.max(1)).expect("at least 1");
        let burst = NonZeroU32::new(burst.max(1)).expect("at least 1");
        let quota = Quota::per_minute(per_minute).allow_burst(burst);
        UserRateLimiter {
            limiter: RateLimiter::keyed(quota),
            clock: DefaultClock::default(),
        }
    }

    /// `Ok` when `user` may go ahead now; otherwise how many milliseconds until it may.
    pub fn check(&self, user: &UserId) -> Result<(), u64> {
        self.limiter.check_key(user).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            (wait.as_millis() as u64).max(1)
        })
    }

    /// Forgets users whose buckets are full again (call now and then to bound memory).
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
    }
}
