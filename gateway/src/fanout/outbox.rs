//! [`ConnHandle`]: how the rest of the server sends to one WebSocket connection — a bounded
//! queue of already-encoded frames, with a byte budget. When either bound is hit the client
//! has fallen too far behind: it is closed with 4008 (it resumes with `since` and loses
//! nothing), and nobody else ever waits for it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use axum::extract::ws::Utf8Bytes;
use gavel_protocol::{CloseCode, UserId};
use tokio::sync::{Notify, mpsc};

use crate::metrics::Metrics;

/// Frames a connection may have queued before it counts as a slow consumer.
pub const QUEUE_FRAMES: usize = 4096;
/// Bytes a connection may have queued before it counts as a slow consumer.
pub const QUEUE_BYTES: usize = 4 * 1024 * 1024;

/// Identifies a connection within this process.
pub type ConnId = u64;

/// The sending side of a connection, shared by the publisher and the pipeline.
#[derive(Debug, Clone)]
pub struct ConnHandle(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    id: ConnId,
    user: UserId,
    tx: mpsc::Sender<Utf8Bytes>,
    queued_bytes: AtomicUsize,
    /// The close code the server decided on (0: none yet).
    close: AtomicU64,
    closing: Notify,
    metrics: Arc<Metrics>,
}

/// The receiving side, owned by the connection's session.
#[derive(Debug)]
pub struct Outbox {
    rx: mpsc::Receiver<Utf8Bytes>,
    handle: ConnHandle,
}

/// A new connection's two ends.
pub fn connection(id: ConnId, user: UserId, metrics: Arc<Metrics>) -> (ConnHandle, Outbox) {
    let (tx, rx) = mpsc::channel(QUEUE_FRAMES);
    let handle = ConnHandle(Arc::new(Shared {
        id,
        user,
        tx,
        queued_bytes: AtomicUsize::new(0),
        close: AtomicU64::new(0),
        closing: Notify::new(),
        metrics,
    }));
    (handle.clone(), Outbox { rx, handle })
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
        if self.0.close.load(Ordering::Acquire) != 0 {
            return false;
        }
        let len = frame.as_str().len();
        if self.0.queued_bytes.fetch_add(len, Ordering::AcqRel) + len > QUEUE_BYTES {
            self.0.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            self.slow_consumer();
            return false;
        }
        match self.0.tx.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.0.queued_bytes.fetch_sub(len, Ordering::AcqRel);
                self.slow_consumer();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
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
            self.0.closing.notify_one();
        }
    }

    /// Whether the session has gone away.
    pub fn is_closed(&self) -> bool {
        self.0.tx.is_closed() || self.0.close.load(Ordering::Acquire) != 0
    }
}

impl Outbox {
    /// Waits for the next frame; `None` when the server decided to close (see
    /// [`Outbox::close_code`]).
    pub async fn recv(&mut self) -> Option<Utf8Bytes> {
        let shared = self.handle.0.clone();
        tokio::select! {
            biased;
            () = shared.closing.notified() => {
                // Keep the permit for later callers: closing is sticky.
                shared.closing.notify_one();
                None
            }
            frame = self.rx.recv() => frame.inspect(|f| self.took(f)),
        }
    }

    /// Takes a frame without waiting, if one is queued.
    pub fn try_recv(&mut self) -> Option<Utf8Bytes> {
        self.rx.try_recv().ok().inspect(|f| self.took(f))
    }

    fn took(&self, frame: &Utf8Bytes) {
        self.handle
            .0
            .queued_bytes
            .fetch_sub(frame.as_str().len(), Ordering::AcqRel);
    }

    /// The close code the server asked for, if any.
    pub fn close_code(&self) -> Option<u16> {
        match self.handle.0.close.load(Ordering::Acquire) {
            0 => None,
            code => Some(code as u16),
        }
    }

    pub fn handle(&self) -> &ConnHandle {
        &self.handle
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
