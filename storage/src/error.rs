//! Storage failures. To a client every one of them is `UNAVAILABLE` (retryable, nothing
//! acknowledged); operators see the detail in the logs and metrics.

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The database refused or the connection failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The schema could not be brought up to date.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A batch does not continue the journal (a gap, or a position already written: another
    /// writer got there first, or an earlier batch failed and the engine must rebuild).
    #[error("batch starts at seq {got}, but the journal is at {durable}")]
    OutOfOrder { durable: u64, got: u64 },
    /// Stored data that cannot be decoded (a bug or tampering: never silently skipped).
    #[error("corrupt journal: {0}")]
    Corrupt(String),
    /// A group commit failed; every batch in it is refused (the message is the database's).
    #[error("journal commit failed: {0}")]
    CommitFailed(String),
    /// The writer's queue is full: the database is not keeping up.
    #[error("journal writer queue is full")]
    Busy,
    /// This node's lease epoch is no longer the leader's: the append was refused and nothing
    /// was written (a stale leader must step down, never retry).
    #[error("fenced: lease epoch {epoch} is no longer the leader's")]
    Fenced { epoch: u64 },
    /// The backend cannot do this (cluster tables on SQLite).
    #[error("{0}")]
    Unsupported(&'static str),
    /// The journal writer has stopped (shutdown).
    #[error("journal writer stopped")]
    Closed,
}
