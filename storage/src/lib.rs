//! gavel's storage: the durable journal of engine events and snapshots of the engine's state,
//! on SQLite (embedded default) or Postgres, with one schema.
//!
//! # Layout
//! - [`store`] — [`Store`]: open/migrate, append a batch atomically (with its archive and
//!   task-index rows, one commit), read from a `seq`, snapshots (write, latest, prune), the
//!   epoch.
//! - [`writer`] — [`JournalHandle`]: the one task that appends, with group commit.
//! - `sqlite_batch` — a SQLite transaction sent to its connection in one message (small
//!   batches) or a statement at a time (large ones).
//! - [`archive`] — the archive of tasks that left memory: written with the journal rows that
//!   carry it, listed newest first, rebuilt from the journal.
//! - [`recovery`] — [`recover`]: latest snapshot + journal tail → an [`gavel_engine::Engine`].
//! - [`snapshot_codec`] — a snapshot's bytes: versioned, checksummed, compressed binary.
//! - [`webhooks`] — each webhook's durable delivery cursor.
//! - [`task_events`] — the journal indexed by task (each task's history): written with each
//!   batch, and caught up at start-up where an older journal left it behind.
//! - [`error`] — [`StorageError`].
//!
//! Flow: the engine task hands each batch of `(seq, event)` to the [`JournalHandle`]; the
//! writer commits everything queued in one transaction and answers each batch once it is
//! durable. At start, [`recover`] rebuilds the engine from the same tables.

mod append;
pub mod archive;
pub mod cluster;
pub mod error;
pub mod recovery;
pub mod snapshot_codec;
mod sqlite_batch;
pub mod store;
pub mod task_events;
pub mod webhooks;
pub mod writer;

pub use cluster::{LeaseRow, NodeRow};
pub use error::StorageError;
pub use recovery::{RecoveryReport, encode_snapshot, recover};
pub use store::{RowTask, Store, StoredEvent, StoredSnapshot};
pub use writer::{
    AppendFault, AppendFaults, AppendSlot, Batch, CommitSink, JournalHandle, WriterOptions,
    WriterStats,
};
