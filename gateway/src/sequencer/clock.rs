//! The engine's clock: the one place that reads wall time. With `--time-scale N`, engine time
//! runs N times faster than wall time from the moment the server started (demos and tests see
//! a 10-minute bidding window close in seconds).

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use gavel_protocol::Millis;

/// Engine time in milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy)]
pub struct EngineClock {
    started: Instant,
    started_ms: Millis,
    scale: f64,
}

impl EngineClock {
    /// A clock starting at wall time now (or at `floor` if the journal is already later —
    /// engine time never runs backwards across restarts).
    pub fn new(scale: f64, floor: Millis) -> Self {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as Millis);
        EngineClock {
            started: Instant::now(),
            started_ms: wall.max(floor),
            scale,
        }
    }

    pub fn now(&self) -> Millis {
        let elapsed = self.started.elapsed().as_secs_f64() * 1000.0 * self.scale;
        self.started_ms + elapsed as Millis
    }

    /// The wall-clock instant at which engine time reaches `at` (for sleeping until a deadline).
    pub fn instant_of(&self, at: Millis) -> Instant {
        let ahead_ms = at.saturating_sub(self.started_ms) as f64 / self.scale;
        self.started + std::time::Duration::from_secs_f64(ahead_ms / 1000.0)
    }
}
