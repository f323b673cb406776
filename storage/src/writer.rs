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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

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

pub struct Append {
    batch: Batch,
    done: oneshot::Sender<Result<(), StorageError>>,
}

/// A clonable handle to the writer task.
#[derive(Debug, Clone)]
pub struct JournalHandle {
    tx: mpsc::Sender<Append>,
    durable: Arc<AtomicU64>,
    stalled: Arc<AtomicBool>,
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
    /// Failed commits that the journal's end showed had landed after all.
    pub ambiguous_landed: AtomicU64,
}

impl JournalHandle {
    /// Starts the writer on the current tokio runtime. `durable` is the journal's end now.
    pub fn spawn(store: Store, durable: Seq, stats: Arc<WriterStats>) -> Self {
        Self::spawn_with(store, durable, stats, WriterOptions::default()).0
    }

    /// [`JournalHandle::spawn`] with [`WriterOptions`]; also returns the writer task (to
    /// supervise it).
    pub fn spawn_with(
        store: Store,
        durable: Seq,
        stats: Arc<WriterStats>,
        options: WriterOptions,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(options.capacity);
        let durable = Arc::new(AtomicU64::new(durable));
        let stalled = Arc::new(AtomicBool::new(false));
        let writer = Writer {
            store,
            rx,
            durable: durable.clone(),
            stalled: stalled.clone(),
            stats,
            faults: options.faults,
            fence: options.fence,
            on_commit: options.on_commit,
        };
        let task = tokio::spawn(writer.run());
        (
            JournalHandle {
                tx,
                durable,
                stalled,
            },
            task,
        )
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

    /// Waits for room in the queue and returns a slot that sends one batch without waiting.
    /// The engine takes a slot before deciding a batch, so a full queue makes it wait (and
    /// commands pile up in front of it) instead of failing a batch it already applied.
    pub async fn reserve(&self) -> Result<AppendSlot, StorageError> {
        let permit = self
            .tx
            .clone()
            .reserve_owned()
            .await
            .map_err(|_| StorageError::Closed)?;
        Ok(AppendSlot(permit))
    }

    /// Whether the writer is stuck on a failed commit (the database is unreachable): the
    /// engine then refuses commands before running them instead of queueing them behind it.
    pub fn is_stalled(&self) -> bool {
        self.stalled.load(Ordering::Acquire)
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
        self.tx.max_capacity() - self.tx.capacity()
    }
}

/// Whether an append failed before anything reached the database (so it did not land).
fn never_sent(error: &StorageError) -> bool {
    matches!(
        error,
        StorageError::Database(sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed)
    )
}

/// Whether an append was refused because a row of that `seq` exists (SQLSTATE 23505).
fn is_unique_violation(error: &StorageError) -> bool {
    match error {
        StorageError::Database(sqlx::Error::Database(db)) => db.code().as_deref() == Some("23505"),
        _ => false,
    }
}

/// How a writer runs beyond the defaults.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// The queue, in batches (default [`QUEUE_CAPACITY`]).
    pub capacity: usize,
    /// Faults injected into the appends (tests of the durability seam).
    pub faults: Option<Arc<AppendFaults>>,
    /// A cluster leader's lease epoch: every append checks it ([`Store::append_fenced`]).
    pub fence: Option<u64>,
    /// Receives every committed group's rows, already encoded (a cluster leader publishes
    /// them to the followers). Never waited on: a full sink drops, and followers fill the
    /// gap from the journal.
    pub on_commit: Option<CommitSink>,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            capacity: QUEUE_CAPACITY,
            faults: None,
            fence: None,
            on_commit: None,
        }
    }
}

/// Where committed rows go (see [`WriterOptions::on_commit`]).
pub type CommitSink = mpsc::Sender<Arc<Vec<StoredEvent>>>;

/// Room for one batch in the writer's queue (see [`JournalHandle::reserve`]).
#[derive(Debug)]
pub struct AppendSlot(mpsc::OwnedPermit<Append>);

impl AppendSlot {
    /// Queues `batch`; the receiver answers once it is durable (or refused).
    pub fn send(self, batch: Batch) -> oneshot::Receiver<Result<(), StorageError>> {
        let (done, wait) = oneshot::channel();
        self.0.send(Append { batch, done });
        wait
    }
}

/// A fault to inject into one append (tests of the durability seam).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendFault {
    /// The commit fails and nothing lands.
    FailBeforeCommit,
    /// The rows land, but the writer sees an error (the answer was lost).
    FailAfterCommit,
    /// The append waits this long first (a slow database: the queue fills behind it).
    Stall(std::time::Duration),
}

/// Faults for the next appends, taken in order; none left means appends run normally.
#[derive(Debug, Default)]
pub struct AppendFaults(std::sync::Mutex<std::collections::VecDeque<AppendFault>>);

impl AppendFaults {
    /// Plans `fault` for the append after those already planned.
    pub fn push(&self, fault: AppendFault) {
        self.0.lock().expect("fault plan lock").push_back(fault);
    }

    fn next(&self) -> Option<AppendFault> {
        self.0.lock().expect("fault plan lock").pop_front()
    }
}

struct Writer {
    store: Store,
    rx: mpsc::Receiver<Append>,
    durable: Arc<AtomicU64>,
    stalled: Arc<AtomicBool>,
    stats: Arc<WriterStats>,
    faults: Option<Arc<AppendFaults>>,
    fence: Option<u64>,
    on_commit: Option<CommitSink>,
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
        match self.append(&rows).await {
            Ok(()) => {
                self.durable.store(next - 1, Ordering::Release);
                self.stats.commits.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .events
                    .fetch_add(rows.len() as u64, Ordering::Relaxed);
                for append in accepted {
                    let _ = append.done.send(Ok(()));
                }
                if let Some(sink) = &self.on_commit {
                    let _ = sink.try_send(Arc::new(rows));
                }
            }
            Err(error) if self.fence.is_some() && is_unique_violation(&error) => {
                // Another leader wrote these positions first: nothing of ours landed.
                let epoch = self.fence.expect("checked in the guard");
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(%error, epoch, "journal positions taken by another leader: stepping down");
                for append in accepted {
                    let _ = append.done.send(Err(StorageError::Fenced { epoch }));
                }
            }
            Err(StorageError::Fenced { epoch }) => {
                // Another node leads now: nothing of this group was written, and nothing
                // after it may be. Every batch is refused; the node steps down.
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    epoch,
                    events = rows.len(),
                    "journal append fenced: stepping down"
                );
                for append in accepted {
                    let _ = append.done.send(Err(StorageError::Fenced { epoch }));
                }
            }
            Err(error) if never_sent(&error) => {
                // No connection was had: nothing can have landed, no need to ask.
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(%error, events = rows.len(), "journal commit failed");
                let message = error.to_string();
                for append in accepted {
                    let _ = append
                        .done
                        .send(Err(StorageError::CommitFailed(message.clone())));
                }
            }
            Err(error) => {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(%error, events = rows.len(), "journal commit failed");
                // The outcome is ambiguous: the commit may have landed with only its answer
                // lost. The journal's end says which (one transaction: all landed or none),
                // and each batch is answered by what is durable — never refused if it landed.
                self.stalled.store(true, Ordering::Release);
                let end = self.journal_end().await;
                // Ours landed only if the journal holds our own first row where we put it: in
                // a cluster, another leader may have written those positions meanwhile.
                let ours = end > durable && self.holds(&rows).await;
                self.stalled.store(false, Ordering::Release);
                self.durable.store(end, Ordering::Release);
                if ours {
                    self.stats.ambiguous_landed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(end, "the failed commit had landed: publishing it");
                }
                let message = error.to_string();
                for append in accepted {
                    let last = append.batch.last().map_or(0, |(seq, _)| *seq);
                    let outcome = match self.fence {
                        _ if ours && last <= end => Ok(()),
                        Some(epoch) if end > durable => Err(StorageError::Fenced { epoch }),
                        _ => Err(StorageError::CommitFailed(message.clone())),
                    };
                    let _ = append.done.send(outcome);
                }
            }
        }
    }

    /// Whether the journal holds exactly `rows` at their positions (retried until the
    /// database answers). Every row is compared whole: another leader may have written some
    /// of the same positions with identical rows (deadline events are deterministic) and
    /// others with its own.
    async fn holds(&self, rows: &[StoredEvent]) -> bool {
        let Some(first) = rows.first() else {
            return false;
        };
        let mut backoff = std::time::Duration::from_millis(50);
        loop {
            match self
                .store
                .read_after(first.seq - 1, rows.len() as u32)
                .await
            {
                Ok(found) => return found == rows,
                Err(error) => tracing::warn!(%error, "reading the journal back; retrying"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(std::time::Duration::from_secs(2));
        }
    }

    /// Runs one append, with the injected fault if the tests planned one.
    async fn append(&self, rows: &[StoredEvent]) -> Result<(), StorageError> {
        let fault = self.faults.as_ref().and_then(|f| f.next());
        if let Some(epoch) = self.fence {
            return match fault {
                Some(AppendFault::Stall(pause)) => {
                    tokio::time::sleep(pause).await;
                    self.store.append_fenced(rows, epoch).await
                }
                _ => self.store.append_fenced(rows, epoch).await,
            };
        }
        match fault {
            None => self.store.append(rows).await,
            Some(AppendFault::FailBeforeCommit) => Err(StorageError::CommitFailed(
                "injected: failed before the rows landed".into(),
            )),
            Some(AppendFault::FailAfterCommit) => {
                self.store.append(rows).await?;
                Err(StorageError::CommitFailed(
                    "injected: the rows landed, the answer was lost".into(),
                ))
            }
            Some(AppendFault::Stall(pause)) => {
                tokio::time::sleep(pause).await;
                self.store.append(rows).await
            }
        }
    }

    /// Where the journal ends, read from the database — retried until it answers: until
    /// then nothing after the ambiguous commit can be answered either way.
    async fn journal_end(&self) -> Seq {
        let mut backoff = std::time::Duration::from_millis(50);
        loop {
            match self.store.latest_seq().await {
                Ok(end) => return end,
                Err(error) => tracing::warn!(%error, "reading the journal's end; retrying"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(std::time::Duration::from_secs(2));
        }
    }
}
