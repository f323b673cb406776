//! Coalescing of broadcast frames: a `feed` or `admin` frame queued for a connection that
//! wrote less than a window ago does not wake it; it waits, with whatever else is queued for it
//! meanwhile, until the window ends, and they go out in one write.
//!
//! A connection that has been quiet for a window is woken at once, so an event at a time costs
//! no latency; only a subscriber that receives faster than one frame per window trades up to a
//! window of latency for fewer wake-ups and fewer `write`s — most of a delivery's cost is the
//! kernel's, one system call per write (see docs/benchmarks.md). Watchers of `task:`,
//! `seeker:` and `coach:` topics, and every reply, are never held back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::fanout::outbox::ConnHandle;

/// Connections holding frames until the window ends, and the task that wakes them.
#[derive(Debug)]
pub struct Coalescer {
    window_us: u64,
    /// Connections with frames waiting, each once (see [`ConnHandle::send_coalesced`]).
    due: Mutex<Vec<ConnHandle>>,
    /// Woken when `due` stops being empty.
    armed: Notify,
}

impl Coalescer {
    /// A coalescer with this window; `None` for a zero window (every frame wakes its
    /// connection at once).
    pub fn new(window: Duration) -> Option<Arc<Self>> {
        let window_us = u64::try_from(window.as_micros()).unwrap_or(u64::MAX);
        (window_us > 0).then(|| {
            Arc::new(Coalescer {
                window_us,
                due: Mutex::new(Vec::new()),
                armed: Notify::new(),
            })
        })
    }

    /// Whether a connection that last wrote at `last_write_us` should wait at `now_us`.
    pub fn holds(&self, last_write_us: u64, now_us: u64) -> bool {
        now_us < last_write_us.saturating_add(self.window_us)
    }

    /// Registers a connection that has frames waiting; `flag` is its "registered" mark, set
    /// here and cleared by the flush, so a connection is listed once however many frames wait.
    pub fn defer(&self, conn: &ConnHandle, flag: &AtomicBool) {
        if flag.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut due = self.due.lock().expect("coalescer lock");
        let was_empty = due.is_empty();
        due.push(conn.clone());
        drop(due);
        if was_empty {
            self.armed.notify_one();
        }
    }

    /// Wakes, a window after the first of them arrived, every connection holding frames
    /// (tokio's timers round up to the millisecond: a frame waits at most about a window and a
    /// millisecond). Runs until aborted (the publisher aborts it when it stops).
    pub async fn run(self: Arc<Self>) {
        let window = Duration::from_micros(self.window_us);
        let mut spare = Vec::new();
        loop {
            self.armed.notified().await;
            tokio::time::sleep(window).await;
            self.flush(&mut spare);
        }
    }

    /// Wakes every connection holding frames. `spare` is an empty list to swap in (the two
    /// keep their capacity: nothing is allocated per window).
    fn flush(&self, spare: &mut Vec<ConnHandle>) {
        std::mem::swap(&mut *self.due.lock().expect("coalescer lock"), spare);
        for conn in spare.drain(..) {
            conn.wake_deferred();
        }
    }
}

/// Microseconds on a monotonic clock shared by the publisher and the sessions.
pub fn mono_us() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    u64::try_from(START.get_or_init(Instant::now).elapsed().as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::extract::ws::Utf8Bytes;
    use gavel_protocol::UserId;
    use tokio::sync::mpsc;

    use super::*;
    use crate::fanout::outbox::{Outbox, connection};
    use crate::metrics::Metrics;

    /// A window no real time between two calls of a test can pass: whether a frame waits
    /// depends on the test's steps only. The tests flush by hand (`run` is a sleep and a
    /// flush), on tokio's one-thread test runtime: a woken session runs at the test's next
    /// yield.
    const WINDOW: Duration = Duration::from_secs(60);

    fn setup() -> (Arc<Coalescer>, ConnHandle, Outbox) {
        let coalescer = Coalescer::new(WINDOW).expect("a non-zero window");
        let user = UserId::new("c1").unwrap();
        let (handle, outbox) = connection(1, user, Arc::new(Metrics::new()));
        (coalescer, handle, outbox)
    }

    /// The next frame the session wrote; a test fails (not hangs) when none comes.
    async fn next(written: &mut mpsc::UnboundedReceiver<Utf8Bytes>) -> Utf8Bytes {
        tokio::time::timeout(Duration::from_secs(10), written.recv())
            .await
            .expect("a frame within 10 s")
            .expect("the session is running")
    }

    /// What the session does: waits for frames and hands each on as it takes it.
    fn session(mut outbox: Outbox) -> mpsc::UnboundedReceiver<Utf8Bytes> {
        let (tx, rx) = mpsc::unbounded_channel();
        outbox.written(); // it has just written: broadcast frames for it may wait
        tokio::spawn(async move {
            while let Some(frame) = outbox.recv().await {
                let _ = tx.send(frame);
                outbox.written();
            }
        });
        rx
    }

    async fn settle() {
        for _ in 0..8 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_busy_subscribers_broadcast_frames_wait_for_the_flush_then_go_together() {
        let (coalescer, handle, outbox) = setup();
        let mut written = session(outbox);
        settle().await;
        assert!(handle.send_coalesced("a".into(), mono_us(), &coalescer));
        assert!(handle.send_coalesced("b".into(), mono_us(), &coalescer));
        settle().await;
        assert!(written.try_recv().is_err(), "held until the window ends");
        assert_eq!(coalescer.due.lock().unwrap().len(), 1, "listed once");
        coalescer.flush(&mut Vec::new());
        assert_eq!(next(&mut written).await, "a");
        assert_eq!(next(&mut written).await, "b");
        // Listed again by the next held frame.
        assert!(handle.send_coalesced("c".into(), mono_us(), &coalescer));
        settle().await;
        assert!(written.try_recv().is_err());
        coalescer.flush(&mut Vec::new());
        assert_eq!(next(&mut written).await, "c");
    }

    #[tokio::test]
    async fn the_flusher_wakes_held_connections_a_window_later() {
        let coalescer = Coalescer::new(Duration::from_millis(5)).unwrap();
        let user = UserId::new("c1").unwrap();
        let (handle, outbox) = connection(1, user, Arc::new(Metrics::new()));
        let flusher = tokio::spawn(coalescer.clone().run());
        let mut written = session(outbox);
        settle().await;
        // Each frame comes less than a window after the session's last write (unless the
        // machine stalled): held, and woken by the flusher's run; never left behind.
        for frame in ["a", "b", "c"] {
            assert!(handle.send_coalesced(frame.into(), mono_us(), &coalescer));
            assert_eq!(next(&mut written).await, frame);
        }
        flusher.abort();
    }

    #[tokio::test]
    async fn a_quiet_subscriber_and_a_direct_frame_are_woken_at_once() {
        let (coalescer, handle, outbox) = setup();
        // Nothing flushes: a frame that waited would never arrive.
        let mut written = session(outbox);
        tokio::task::yield_now().await;
        let quiet = mono_us() + 2 * WINDOW.as_micros() as u64;
        assert!(handle.send_coalesced("a".into(), quiet, &coalescer));
        assert_eq!(next(&mut written).await, "a");
        // Written just now, but a reply or a watcher's event is never held.
        assert!(handle.send("b".into()));
        assert_eq!(next(&mut written).await, "b");
    }

    #[test]
    fn a_zero_window_coalesces_nothing() {
        assert!(Coalescer::new(Duration::ZERO).is_none());
        let c = Coalescer::new(Duration::from_millis(2)).unwrap();
        assert!(c.holds(1_000, 2_999));
        assert!(!c.holds(1_000, 3_000));
    }
}
