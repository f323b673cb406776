//! How the rest of the server reaches the engine task: the clonable [`EngineHandle`] on its
//! queue (and a [`WeakEngineHandle`] that does not keep it alive), the [`RebuildSignal`] the
//! publisher raises when a commit failed, and the `UNAVAILABLE` refusal when the queue is full.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use gavel_engine::{Engine, Rejection};
use gavel_protocol::ErrorCode;
use tokio::sync::{Notify, mpsc, oneshot};

use crate::metrics::Metrics;
use crate::sequencer::messages::{COMMAND_QUEUE, EngineMsg};

/// Raised by the publisher when a commit failed; cleared by the engine once rebuilt.
#[derive(Debug, Default)]
pub struct RebuildSignal {
    pub(super) requested: AtomicBool,
    pub(super) notify: Notify,
}

impl RebuildSignal {
    pub fn raise(&self) {
        self.requested.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    pub fn is_raised(&self) -> bool {
        self.requested.load(Ordering::Acquire)
    }
}

/// A clonable way to reach the engine task.
#[derive(Debug, Clone)]
pub struct EngineHandle {
    pub(super) tx: mpsc::Sender<EngineMsg>,
    pub(super) metrics: Arc<Metrics>,
}

#[cfg(test)]
impl EngineHandle {
    /// A handle on a queue the test reads in the engine task's place.
    pub fn for_tests(capacity: usize) -> (EngineHandle, mpsc::Receiver<EngineMsg>) {
        let (tx, rx) = mpsc::channel(capacity);
        let metrics = Arc::new(Metrics::new());
        (EngineHandle { tx, metrics }, rx)
    }
}

/// The refusal when the engine cannot take more work right now.
pub fn unavailable(message: &str) -> Rejection {
    Rejection {
        code: ErrorCode::Unavailable,
        message: message.into(),
        field: None,
    }
}

impl EngineHandle {
    /// Queues a message without waiting. A full queue is an error the caller turns into
    /// `UNAVAILABLE` (and it is counted).
    pub fn try_send(&self, msg: EngineMsg) -> Result<(), Box<EngineMsg>> {
        self.tx.try_send(msg).map_err(|e| {
            self.metrics.queue_full_rejections.inc();
            match e {
                mpsc::error::TrySendError::Full(m) | mpsc::error::TrySendError::Closed(m) => {
                    Box::new(m)
                }
            }
        })
    }

    /// Runs `read` on the engine task and returns its result (`None` if the engine is gone or
    /// too busy to take it).
    pub async fn query<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Engine) -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        let msg = EngineMsg::Query(Box::new(move |engine| {
            let _ = tx.send(read(engine));
        }));
        self.try_send(msg).ok()?;
        rx.await.ok()
    }

    /// Queues a message, waiting for room (for pipeline stages that must not drop, such as
    /// a follower's replication input). Fails only when the engine is gone.
    pub async fn send(&self, msg: EngineMsg) -> Result<(), ()> {
        self.tx.send(msg).await.map_err(|_| ())
    }

    /// Commands waiting for the engine.
    pub fn queued(&self) -> usize {
        COMMAND_QUEUE - self.tx.capacity()
    }

    /// A handle that does not keep the engine task alive (for the publisher, which must not
    /// stop the engine from draining at shutdown).
    pub fn downgrade(&self) -> WeakEngineHandle {
        WeakEngineHandle {
            tx: self.tx.downgrade(),
            metrics: self.metrics.clone(),
        }
    }
}

/// An [`EngineHandle`] that does not keep the engine task alive.
#[derive(Debug, Clone)]
pub struct WeakEngineHandle {
    tx: mpsc::WeakSender<EngineMsg>,
    metrics: Arc<Metrics>,
}

impl WeakEngineHandle {
    /// Like [`EngineHandle::try_send`]; fails when the engine is gone.
    pub fn try_send(&self, msg: EngineMsg) -> Result<(), Box<EngineMsg>> {
        match self.tx.upgrade() {
            Some(tx) => EngineHandle {
                tx,
                metrics: self.metrics.clone(),
            }
            .try_send(msg),
            None => Err(Box::new(msg)),
        }
    }
}
