//! [`ConnHandle`]: how the rest of the server sends to one WebSocket connection — a bounded
//! queue of already-encoded frames, with a byte budget. When either bound is hit the client
//! has fallen too far behind: it is closed with 4008 (it resumes with `since` and loses
//! nothing), and nobody else ever waits for it.
//!
//! The queue is a `VecDeque` behind a mutex rather than a channel: an idle connection's empty
//! queue allocates nothing (a tokio channel allocated ~1.8 KB per connection up front), and it
//! gives its memory back once a burst has drained.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::ws::Utf8Bytes;
use gavel_protocol::{CloseCode, UserId};
use tokio::sync::Notify;

use crate::fanout::coalesce::{Coalescer, mono_us};
use crate::metrics::Metrics;

/// Frames a connection may have queued before it counts as a slow consumer.
pub const QUEUE_FRAMES: usize = 4096;
/// Bytes a connection may have queued before it counts as a slow consumer.
pub const QUEUE_BYTES: usize = 4 * 1024 * 1024;
/// Slots an empty queue may keep after a burst; past this it frees them.
const KEPT_SLOTS: usize = 32;

/// Identifies a connection within this process.
pub type ConnId = u64;

/// The sending side of a connection, shared by the publisher and the pipeline.
#[derive(Debug, Clone)]
pub struct ConnHandle(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    id: ConnId,
    user: UserId,
    /// Each frame with the bytes it counts toward the budget.
    queue: Mutex<VecDeque<(Utf8Bytes, usize)>>,
    /// Woken when a frame is queued.
    queued: Notify,
    /// The session's end was dropped: nothing queued will be read.
    receiver_gone: AtomicBool,
    queued_bytes: AtomicUsize,
    /// The close code the server decided on (0: none yet). Setting it also wakes `queued`,
    /// so the session needs one waiter only.
    close: AtomicU64,
    /// Whether an uncounted large frame (a snapshot) is queued: only one at a time is let
    /// past the byte budget, so a burst of snapshot subscribes cannot pile up memory.
    large_queued: AtomicBool,
    /// Woken after each batch the session writes: a catch-up reader waits on it for room.
    written: Notify,
    /// When the session last wrote ([`mono_us`]): a broadcast frame queued within the
    /// coalescing window of it waits for the window's end.
    last_write_us: AtomicU64,
    /// Whether the connection is listed with the coalescer (frames wait for its flush).
    deferred: AtomicBool,
    metrics: Arc<Metrics>,
}

/// The receiving side, owned by the connection's session.
#[derive(Debug)]
pub struct Outbox {
    handle: ConnHandle,
}

/// A new connection's two ends.
pub fn connection(id: ConnId, user: UserId, metrics: Arc<Metrics>) -> (ConnHandle, Outbox) {
    let handle = ConnHandle(Arc::new(Shared {
        id,
        user,
        queue: Mutex::new(VecDeque::new()),
        queued: Notify::new(),
        receiver_gone: AtomicBool::new(false),
        queued_bytes: AtomicUsize::new(0),
        close: AtomicU64::new(0),
        large_queued: AtomicBool::new(false),
        written: Notify::new(),
        last_write_us: AtomicU64::new(0),
        deferred: AtomicBool::new(false),
        metrics,
    }));
    (handle.clone(), Outbox { handle })
}

impl ConnHandle {
    pub fn id(&self) -> ConnId {
        self.0.id
    }

    pub fn user(&self) -> &UserId {
        &self.0.user
    }

    /// Queues a frame. Returns `false` when the connection is gone or was just closed as a
    /// slow consumer (then the caller forgets it).
    pub fn send(&self, frame: Utf8Bytes) -> bool {
        self.send_counted(frame, None)
    }

    /// Queues a broadcast frame (`feed`, `admin`) that may wait for the coalescer's flush
    /// when the session wrote less than a window before `now_us` (see [`Coalescer`]). Returns
    /// what [`ConnHandle::send`] does.
    pub fn send_coalesced(&self, frame: Utf8Bytes, now_us: u64, coalescer: &Coalescer) -> bool {
        self.send_counted(frame, Some((now_us, coalescer)))
    }

    fn send_counted(&self, frame: Utf8Bytes, hold: Option<(u64, &Coalescer)>) -> bool {
        if self.0.close.load(Ordering::Acquire) != 0 {
            return false;
        }
        let len = frame.as_str().len();
        if self.0.queued_bytes.fetch_add(len, Ordering::AcqRel) + len > QUEUE_BYTES {
            self.0.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            self.slow_consumer();
            return false;
        }
        self.enqueue(frame, len, hold)
    }

    /// Wakes the session for the frames that waited for the coalescer.
    pub(super) fn wake_deferred(&self) {
        self.0.deferred.store(false, Ordering::Release);
        self.0.queued.notify_one();
    }

    /// Queues a reply that may be larger than the whole byte budget — a snapshot of any size
    /// (contract §13). It is not counted toward the budget (the events queued behind it still
    /// are): its size is bounded by the state it shows, and the write timeout ends a client
    /// that never reads it.
    pub fn send_large(&self, frame: Utf8Bytes) -> bool {
        if self.0.close.load(Ordering::Acquire) != 0 {
            return false;
        }
        if self.0.large_queued.swap(true, Ordering::AcqRel) {
            // One is already waiting: this one counts like any frame (and a client that asked
            // for snapshot after snapshot without reading is a slow consumer).
            return self.send(frame);
        }
        if !self.enqueue(frame, 0, None) {
            self.0.large_queued.store(false, Ordering::Release);
            return false;
        }
        true
    }

    fn enqueue(&self, frame: Utf8Bytes, counted: usize, hold: Option<(u64, &Coalescer)>) -> bool {
        let mut queue = self.0.queue.lock().expect("outbox lock");
        if self.0.receiver_gone.load(Ordering::Acquire) {
            drop(queue);
            self.0.queued_bytes.fetch_sub(counted, Ordering::AcqRel);
            return false;
        }
        if queue.len() >= QUEUE_FRAMES {
            drop(queue);
            self.0.queued_bytes.fetch_sub(counted, Ordering::AcqRel);
            self.slow_consumer();
            return false;
        }
        queue.push_back((frame, counted));
        drop(queue);
        match hold {
            Some((now_us, coalescer))
                if coalescer.holds(self.0.last_write_us.load(Ordering::Relaxed), now_us) =>
            {
                coalescer.defer(self, &self.0.deferred);
            }
            _ => self.0.queued.notify_one(),
        }
        true
    }

    /// Frames queued and not yet taken by the session.
    pub fn queued_frames(&self) -> usize {
        self.0.queue.lock().expect("outbox lock").len()
    }

    /// Whether the queue is under half full (frames and bytes): a catch-up reader sends only
    /// then, so a resume never fills the queue and never counts as a slow consumer.
    pub fn has_room(&self) -> bool {
        self.queued_frames() < QUEUE_FRAMES / 2
            && self.0.queued_bytes.load(Ordering::Acquire) < QUEUE_BYTES / 2
    }

    /// Waits until the queue has drained to a quarter (frames and bytes); `false` when the
    /// connection closed. A resume is thus sent at the speed the client reads.
    pub async fn wait_for_room(&self) -> bool {
        loop {
            let written = self.0.written.notified();
            tokio::pin!(written);
            written.as_mut().enable();
            if self.is_closed() {
                return false;
            }
            if self.queued_frames() <= QUEUE_FRAMES / 4
                && self.0.queued_bytes.load(Ordering::Acquire) <= QUEUE_BYTES / 4
            {
                return true;
            }
            // The session wakes us after every write; the timeout is a backstop only.
            let _ = tokio::time::timeout(std::time::Duration::from_millis(250), written).await;
        }
    }

    fn slow_consumer(&self) {
        self.0.metrics.slow_consumer_closes.inc();
        self.close(CloseCode::SlowConsumer);
    }

    /// Asks the session to close with `code` (the first code asked for wins).
    pub fn close(&self, code: CloseCode) {
        if self
            .0
            .close
            .compare_exchange(
                0,
                u64::from(code.code()),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
        {
            self.0.queued.notify_one();
        }
    }

    /// Whether the session has gone away.
    pub fn is_closed(&self) -> bool {
        self.0.receiver_gone.load(Ordering::Acquire) || self.0.close.load(Ordering::Acquire) != 0
    }
}

impl Outbox {
    /// Waits for the next frame; `None` when the server decided to close (see
    /// [`Outbox::close_code`]).
    pub async fn recv(&mut self) -> Option<Utf8Bytes> {
        loop {
            // Closing wins over frames still queued (the session closes with its code).
            if self.handle.0.close.load(Ordering::Acquire) != 0 {
                return None;
            }
            if let Some(frame) = self.try_recv() {
                return Some(frame);
            }
            // A frame queued (or a close asked for) since the checks left a permit:
            // `notified` returns at once.
            self.handle.0.queued.notified().await;
        }
    }

    /// Takes a frame without waiting, if one is queued.
    pub fn try_recv(&mut self) -> Option<Utf8Bytes> {
        let mut queue = self.handle.0.queue.lock().expect("outbox lock");
        let frame = queue.pop_front();
        if queue.is_empty() && queue.capacity() > KEPT_SLOTS {
            // A burst has drained: give its slots back.
            queue.shrink_to(0);
        }
        drop(queue);
        frame.map(|f| self.took(f))
    }

    fn took(&self, (frame, counted): (Utf8Bytes, usize)) -> Utf8Bytes {
        let shared = &self.handle.0;
        if counted == 0 {
            shared.large_queued.store(false, Ordering::Release);
        }
        shared.queued_bytes.fetch_sub(counted, Ordering::AcqRel);
        frame
    }

    /// Called by the session after each write: wakes a catch-up reader waiting for room.
    pub fn written(&self) {
        let shared = &self.handle.0;
        shared.last_write_us.store(mono_us(), Ordering::Relaxed);
        shared.written.notify_waiters();
    }

    /// The close code the server asked for, if any.
    pub fn close_code(&self) -> Option<CloseCode> {
        let code = self.handle.0.close.load(Ordering::Acquire);
        u16::try_from(code).ok().and_then(CloseCode::from_code)
    }

    pub fn handle(&self) -> &ConnHandle {
        &self.handle
    }
}

impl Drop for Outbox {
    /// The session has ended: what is queued will never be written, and nothing more is taken.
    fn drop(&mut self) {
        let shared = &self.handle.0;
        let mut queue = shared.queue.lock().expect("outbox lock");
        shared.receiver_gone.store(true, Ordering::Release);
        queue.clear();
        queue.shrink_to(0);
    }
}

/// Hands out connection ids.
#[derive(Debug, Default)]
pub struct ConnIds(AtomicU64);

impl ConnIds {
    pub fn next(&self) -> ConnId {
        self.0.fetch_add(1, Ordering::Relaxed) + 1
    }
}
