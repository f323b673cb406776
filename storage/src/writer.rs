//! The journal writer: one task that owns all appends and commits every batch queued at the
//! moment in one transaction (group commit). Under load, batches pile up while a commit is in
//! flight and the next commit takes them all, so throughput grows with load while each caller
//! still waits for exactly its own events to be durable.
//!
//! The writer keeps the journal contiguous: a batch must start right after the last durable
//! `seq`. After a failed commit it re-reads the journal's end from the database (the commit may
//! have landed even though the reply was lost), and every batch that does not continue it is
//! refused — the engine, whose memory ran ahead, rebuilds from what is durable and carries on.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use gavel_engine::Event;
use gavel_protocol::Seq;
use tokio::sync::{mpsc, oneshot};

use crate::error::StorageError;
use crate::store::{Store, StoredEvent};

/// Most events one transaction carries; larger queues are committed in several.
pub const MAX_EVENTS_PER_COMMIT: usize = 8192;

/// Batches that may wait for the writer. The engine stops taking commands when it is full
/// (`UNAVAILABLE` to clients), so memory stays bounded when the database is slow.
pub const QUEUE_CAPACITY: usize = 1024;

/// Events to make durable, in `seq` order, shared with the publisher (no copy).
pub type Batch = Arc<Vec<(Seq, Event)>>;

struct Append {
    batch: Batch,
    done: oneshot::Sender<Result<(), StorageError>>,
}

/// A clonable handle to the writer task.
#[derive(Debug, Clone)]
pub struct JournalHandle {
    tx: mpsc::Sender<Append>,
    durable: Arc<AtomicU64>,
}

impl std::fmt::Debug for Append {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Append")
            .field("events", &self.batch.len())
            .finish()
    }
}

/// Group-commit statistics, for metrics.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub commits: AtomicU64,
    pub events: AtomicU64,
    pub failures: AtomicU64,
}

impl JournalHandle {
    /// Starts the writer on the current tokio runtime. `durable` is the journal's end now.
    pub fn spawn(store: Store, durable: Seq, stats: Arc<WriterStats>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let durable = Arc::new(AtomicU64::new(durable));
        let writer = Writer {
            store,
            rx,
            durable: durable.clone(),
            stats,
        };
        tokio::spawn(writer.run());
        JournalHandle { tx, durable }
    }

    /// Queues `batch` and waits until it is durable (or refused). Fails at once with
    /// [`StorageError::Closed`] when the writer is gone.
    pub async fn append(&self, batch: Batch) -> Result<(), StorageError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Append { batch, done })
            .await
            .map_err(|_| StorageError::Closed)?;
        wait.await.map_err(|_| StorageError::Closed)?
    }

    /// Queues `batch` and returns a receiver for the outcome, without waiting — so the caller
    /// can decide the next batch while this one commits (pipelining). Errors at once when the
    /// queue is full.
    pub fn try_append(
        &self,
        batch: Batch,
    ) -> Result<oneshot::Receiver<Result<(), StorageError>>, StorageError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .try_send(Append { batch, done })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => StorageError::Busy,
                mpsc::error::TrySendError::Closed(_) => StorageError::Closed,
            })?;
        Ok(wait)
    }

    /// The last `seq` known to be durable.
    pub fn durable(&self) -> Seq {
        self.durable.load(Ordering::Acquire)
    }

    /// Sets where the journal ends, after the engine rebuilt itself by reading it to the end.
    /// Later batches must continue from here.
    pub fn set_durable(&self, seq: Seq) {
        self.durable.store(seq, Ordering::Release);
    }

    /// Batches waiting for the writer (a metric: the group-commit queue depth).
    pub fn queued(&self) -> usize {
        QUEUE_CAPACITY - self.tx.capacity()
    }
}

struct Writer {
    store: Store,
    rx: mpsc::Receiver<Append>,
    durable: Arc<AtomicU64>,
    stats: Arc<WriterStats>,
}

impl Writer {
    async fn run(mut self) {
        let mut group: Vec<Append> = Vec::new();
        while let Some(first) = self.rx.recv().await {
            group.push(first);
            let mut events: usize = group[0].batch.len();
            // Take everything already queued, up to the per-commit cap.
            while events < MAX_EVENTS_PER_COMMIT {
                match self.rx.try_recv() {
                    Ok(next) => {
                        events += next.batch.len();
                        group.push(next);
                    }
                    Err(_) => break,
                }
            }
            self.commit(&mut group).await;
        }
    }

    /// Commits the contiguous prefix of `group` in one transaction and answers every member.
    async fn commit(&mut self, group: &mut Vec<Append>) {
        let durable = self.durable.load(Ordering::Acquire);
        let mut next = durable + 1;
        let mut rows = Vec::new();
        let mut accepted = Vec::new();
        for append in group.drain(..) {
            let first = append.batch.first().map_or(next, |(seq, _)| *seq);
            if first != next {
                let _ = append.done.send(Err(StorageError::OutOfOrder {
                    durable: next - 1,
                    got: first,
                }));
                continue;
            }
            rows.extend(
                append
                    .batch
                    .iter()
                    .map(|(seq, event)| StoredEvent::encode(*seq, event)),
            );
            next += append.batch.len() as u64;
            accepted.push(append);
        }
        if accepted.is_empty() {
            return;
        }
        match self.store.append(&rows).await {
            Ok(()) => {
                self.durable.store(next - 1, Ordering::Release);
                self.stats.commits.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .events
                    .fetch_add(rows.len() as u64, Ordering::Relaxed);
                for append in accepted {
                    let _ = append.done.send(Ok(()));
                }
            }
            Err(error) => {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(%error, events = rows.len(), "journal commit failed");
                // The commit may have landed with only the reply lost: believe the database.
                if let Ok(end) = self.store.latest_seq().await {
                    self.durable.store(end, Ordering::Release);
                }
                let message = error.to_string();
                for append in accepted {
                    let _ = append
                        .done
                        .send(Err(StorageError::CommitFailed(message.clone())));
                }
            }
        }
    }
}
