//! [`Store`]: the journal and snapshot tables on SQLite or Postgres — one schema, two dialects.
//!
//! Journal rows are `(seq, at, kind, payload)` with the engine event as JSON text, so operators
//! can read the journal with plain SQL. Snapshots are `(seq, at, state)` with the engine's
//! snapshot as a binary frame (`crate::snapshot_codec`).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use gavel_engine::Event;
use gavel_engine::routing::task_topic;
use gavel_protocol::{Seq, TaskId};
use rand::RngCore;
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::append::postgres_append;
use crate::archive::archive_rows;
use crate::error::StorageError;
use crate::sqlite_batch::SqliteBatch;
use crate::task_events::BatchIndex;

/// Postgres `statement_timeout` on every connection of the pool: a journal append (or any
/// read) that hangs — locks, a dying server — fails instead of holding the writer for ever;
/// the writer then resolves the commit by reading the journal's end. Generous, because a
/// snapshot of a large state is one statement too.
pub const POSTGRES_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// File name of the SQLite database inside the data directory.
pub const SQLITE_FILE: &str = "gavel.db";

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// One journaled event as stored.
///
/// Equality compares the stored columns only ([`StoredEvent::task`] is derived from them).
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub seq: Seq,
    pub at: u64,
    pub kind: String,
    pub payload: String,
    /// The task whose history the event belongs to (its `task:<id>` delivery), when known
    /// without decoding: set by [`StoredEvent::encode`]; a row read back or received is
    /// [`RowTask::Unknown`] and [`StoredEvent::task_id`] decodes it.
    pub task: RowTask,
}

/// Which task's history (`task_events`) a journal row belongs to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RowTask {
    /// Not worked out yet (a row read from the journal or received from the leader).
    #[default]
    Unknown,
    /// The event reaches no `task:<id>` topic.
    NoTask,
    /// The event is delivered to `task:<id>`.
    Task(TaskId),
}

impl PartialEq for StoredEvent {
    fn eq(&self, other: &Self) -> bool {
        (self.seq, self.at, &self.kind, &self.payload)
            == (other.seq, other.at, &other.kind, &other.payload)
    }
}

impl Eq for StoredEvent {}

impl StoredEvent {
    /// Encodes an engine event for the journal, with the task whose history it belongs to
    /// ([`gavel_engine::routing::task_topic`]).
    pub fn encode(seq: Seq, event: &Event) -> Self {
        let payload = serde_json::to_string(event).expect("engine events always serialize");
        let kind = event_kind_tag(&payload);
        let task = match task_topic(event) {
            Some(id) => RowTask::Task(id),
            None => RowTask::NoTask,
        };
        StoredEvent {
            seq,
            at: event.at,
            kind,
            payload,
            task,
        }
    }

    /// Decodes the engine event.
    pub fn decode(&self) -> Result<Event, StorageError> {
        serde_json::from_str(&self.payload)
            .map_err(|e| StorageError::Corrupt(format!("event at seq {}: {e}", self.seq)))
    }

    /// The task whose `task:<id>` topic the event is delivered to, if any (decoding the
    /// payload only when [`StoredEvent::task`] is unknown).
    pub fn task_id(&self) -> Result<Option<TaskId>, StorageError> {
        match &self.task {
            RowTask::Task(id) => Ok(Some(id.clone())),
            RowTask::NoTask => Ok(None),
            RowTask::Unknown => Ok(task_topic(&self.decode()?)),
        }
    }
}

/// The `kind` tag of an encoded event (`{"at":…,"kind":{"kind":"bid_placed",…}}`), kept in its
/// own column for operators' queries.
fn event_kind_tag(payload: &str) -> String {
    let marker = "\"kind\":{\"kind\":\"";
    payload
        .find(marker)
        .map(|i| &payload[i + marker.len()..])
        .and_then(|rest| rest.split('"').next())
        .unwrap_or("unknown")
        .to_owned()
}

/// A snapshot as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSnapshot {
    pub seq: Seq,
    pub at: u64,
    pub state: Vec<u8>,
}

/// The journal and snapshots on one of the two backends.
#[derive(Debug, Clone)]
pub enum Store {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Store {
    /// Opens (creating if needed) `<dir>/gavel.db`: WAL, `synchronous=FULL` — a commit is on
    /// disk before it is acknowledged.
    pub async fn open_sqlite(dir: &Path) -> Result<Self, StorageError> {
        std::fs::create_dir_all(dir).map_err(|e| StorageError::Database(sqlx::Error::Io(e)))?;
        let options = SqliteConnectOptions::new()
            .filename(dir.join(SQLITE_FILE))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5));
        // One writer at a time is SQLite's model; a few connections let readers (resumes,
        // recovery) run beside it under WAL. No ping before each use: a connection to a file
        // does not go stale, and the ping is a round trip to its worker thread.
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        SQLITE_MIGRATIONS.run(&pool).await?;
        let store = Store::Sqlite(pool);
        store.ensure_epoch().await?;
        Ok(store)
    }

    /// Connects to Postgres at `url` and brings the schema up to date.
    pub async fn open_postgres(url: &str) -> Result<Self, StorageError> {
        Self::open_postgres_with(url, POSTGRES_STATEMENT_TIMEOUT).await
    }

    /// [`Store::open_postgres`] with another `statement_timeout` (tests of a hung write).
    pub async fn open_postgres_with(
        url: &str,
        statement_timeout: Duration,
    ) -> Result<Self, StorageError> {
        let timeout = format!("{}ms", statement_timeout.as_millis().max(1));
        let options =
            PgConnectOptions::from_str(url)?.options([("statement_timeout", timeout.as_str())]);
        let pool = PgPoolOptions::new()
            .max_connections(8)
            // A database that cannot be reached fails a command in 2 s (`UNAVAILABLE`) rather
            // than holding it; under load a connection frees up far sooner than that.
            .acquire_timeout(Duration::from_secs(2))
            .connect_with(options)
            .await?;
        POSTGRES_MIGRATIONS.run(&pool).await?;
        let store = Store::Postgres(pool);
        store.ensure_epoch().await?;
        Ok(store)
    }

    /// Which backend this is (`sqlite` or `postgres`), for logs and metrics.
    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Creates the epoch at first open; later opens keep it.
    async fn ensure_epoch(&self) -> Result<(), StorageError> {
        let mut bytes = [0u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let epoch: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        match self {
            Store::Sqlite(pool) => {
                sqlx::query("INSERT OR IGNORE INTO meta (key, value) VALUES ('epoch', ?)")
                    .bind(epoch)
                    .execute(pool)
                    .await?;
            }
            Store::Postgres(pool) => {
                sqlx::query("INSERT INTO meta (key, value) VALUES ('epoch', $1) ON CONFLICT (key) DO NOTHING")
                    .bind(epoch)
                    .execute(pool)
                    .await?;
            }
        }
        Ok(())
    }

    /// The journal's identity: created with the store, never changed. A client resuming with
    /// another epoch's `seq` gets a reset.
    pub async fn epoch(&self) -> Result<String, StorageError> {
        const SQL: &str = "SELECT value FROM meta WHERE key = 'epoch'";
        Ok(match self {
            Store::Sqlite(pool) => sqlx::query_scalar(SQL).fetch_one(pool).await?,
            Store::Postgres(pool) => sqlx::query_scalar(SQL).fetch_one(pool).await?,
        })
    }

    /// The highest `seq` in the journal (0 when empty).
    pub async fn latest_seq(&self) -> Result<Seq, StorageError> {
        let seq: Option<i64> = match self {
            Store::Sqlite(pool) => {
                sqlx::query_scalar("SELECT MAX(seq) FROM journal")
                    .fetch_one(pool)
                    .await?
            }
            Store::Postgres(pool) => {
                sqlx::query_scalar("SELECT MAX(seq) FROM journal")
                    .fetch_one(pool)
                    .await?
            }
        };
        Ok(seq.unwrap_or(0) as Seq)
    }

    /// Appends events atomically: all of them or none (on Postgres within
    /// [`POSTGRES_STATEMENT_TIMEOUT`]). The caller guarantees they are in `seq`
    /// order and continue the journal; the primary key refuses any position written before.
    ///
    /// In the same transaction (one commit): the archive rows of `tasks_archived` events, and
    /// the batch's task-index rows with the index position moved to its last `seq` when the
    /// index had reached the batch's start (see [`crate::task_events`]).
    pub async fn append(&self, events: &[StoredEvent]) -> Result<(), StorageError> {
        if events.is_empty() {
            return Ok(());
        }
        let archive = archive_rows(events)?;
        let index = BatchIndex::of(events);
        match self {
            Store::Sqlite(pool) => {
                let mut batch = if events.len() <= SQLITE_ONE_MESSAGE_EVENTS {
                    SqliteBatch::one_message()
                } else {
                    SqliteBatch::split()
                };
                push_sqlite_journal_rows(&mut batch, events);
                crate::archive::push_sqlite_rows(&mut batch, &archive);
                crate::task_events::push_sqlite_index(&mut batch, &index);
                batch.commit(pool).await?;
            }
            Store::Postgres(pool) => {
                // One autocommit statement: it either landed or not, and a lost answer is
                // resolved by the writer reading the journal's end.
                let row = postgres_append(events, &archive, &index, None)
                    .fetch_one(pool)
                    .await?;
                debug_assert_eq!(row.try_get::<i64, _>(0)? as usize, events.len());
            }
        }
        Ok(())
    }

    /// Up to `limit` events with `seq > after`, in order.
    pub async fn read_after(
        &self,
        after: Seq,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StorageError> {
        let rows = match self {
            Store::Sqlite(pool) => sqlx::query(
                "SELECT seq, at, kind, payload FROM journal WHERE seq > ? ORDER BY seq LIMIT ?",
            )
            .bind(after as i64)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|r| stored_event(&r))
            .collect::<Result<Vec<_>, _>>()?,
            Store::Postgres(pool) => sqlx::query(
                "SELECT seq, at, kind, payload FROM journal WHERE seq > $1 ORDER BY seq LIMIT $2",
            )
            .bind(after as i64)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|r| stored_event(&r))
            .collect::<Result<Vec<_>, _>>()?,
        };
        Ok(rows)
    }

    /// Stores a snapshot (replacing one at the same `seq`).
    pub async fn write_snapshot(&self, snapshot: &StoredSnapshot) -> Result<(), StorageError> {
        match self {
            Store::Sqlite(pool) => {
                sqlx::query("INSERT OR REPLACE INTO snapshots (seq, at, state) VALUES (?, ?, ?)")
                    .bind(snapshot.seq as i64)
                    .bind(snapshot.at as i64)
                    .bind(&snapshot.state)
                    .execute(pool)
                    .await?;
            }
            Store::Postgres(pool) => {
                sqlx::query(
                    "INSERT INTO snapshots (seq, at, state) VALUES ($1, $2, $3) \
                     ON CONFLICT (seq) DO UPDATE SET at = EXCLUDED.at, state = EXCLUDED.state",
                )
                .bind(snapshot.seq as i64)
                .bind(snapshot.at as i64)
                .bind(&snapshot.state)
                .execute(pool)
                .await?;
            }
        }
        Ok(())
    }

    /// The most recent snapshot, if any.
    pub async fn latest_snapshot(&self) -> Result<Option<StoredSnapshot>, StorageError> {
        const SQL: &str = "SELECT seq, at, state FROM snapshots ORDER BY seq DESC LIMIT 1";
        let snapshot = match self {
            Store::Sqlite(pool) => sqlx::query(SQL)
                .fetch_optional(pool)
                .await?
                .map(|r| stored_snapshot(&r)),
            Store::Postgres(pool) => sqlx::query(SQL)
                .fetch_optional(pool)
                .await?
                .map(|r| stored_snapshot(&r)),
        };
        snapshot.transpose()
    }

    /// Deletes all but the newest `keep` snapshots; returns how many were deleted.
    pub async fn prune_snapshots(&self, keep: u32) -> Result<u64, StorageError> {
        let result = match self {
            Store::Sqlite(pool) => {
                sqlx::query("DELETE FROM snapshots WHERE seq NOT IN (SELECT seq FROM snapshots ORDER BY seq DESC LIMIT ?)")
                    .bind(i64::from(keep))
                    .execute(pool)
                    .await?
                    .rows_affected()
            }
            Store::Postgres(pool) => {
                sqlx::query("DELETE FROM snapshots WHERE seq NOT IN (SELECT seq FROM snapshots ORDER BY seq DESC LIMIT $1)")
                    .bind(i64::from(keep))
                    .execute(pool)
                    .await?
                    .rows_affected()
            }
        };
        Ok(result)
    }

    /// Whether the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<(), StorageError> {
        match self {
            Store::Sqlite(pool) => {
                sqlx::query("SELECT 1").execute(pool).await?;
            }
            Store::Postgres(pool) => {
                sqlx::query("SELECT 1").execute(pool).await?;
            }
        }
        Ok(())
    }
}

pub(crate) fn stored_event<R: Row>(row: &R) -> Result<StoredEvent, StorageError>
where
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    Ok(StoredEvent {
        seq: row.try_get::<i64, _>(0)? as Seq,
        at: row.try_get::<i64, _>(1)? as u64,
        kind: row.try_get(2)?,
        payload: row.try_get(3)?,
        task: RowTask::Unknown,
    })
}

fn stored_snapshot<R: Row>(row: &R) -> Result<StoredSnapshot, StorageError>
where
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    Ok(StoredSnapshot {
        seq: row.try_get::<i64, _>(0)? as Seq,
        at: row.try_get::<i64, _>(1)? as u64,
        state: row.try_get(2)?,
    })
}

/// Rows per multi-row `INSERT` on SQLite. One statement per row spent most of a large commit
/// in per-statement overhead (18 µs a row against 2 µs, `journal_bench`'s insert-path table).
const SQLITE_ROWS_PER_INSERT: usize = 64;

/// SQLite: the journal's `INSERT`s of `events`, [`SQLITE_ROWS_PER_INSERT`] rows at most each.
fn push_sqlite_journal_rows(batch: &mut SqliteBatch, events: &[StoredEvent]) {
    for rows in sqlite_insert_chunks(events) {
        let statement = batch.statement();
        statement.push("INSERT INTO journal (seq, at, kind, payload) ");
        statement.push_values(rows, |mut row, e| {
            row.push_bind(e.seq as i64)
                .push_bind(e.at as i64)
                .push_bind(e.kind.as_str())
                .push_bind(e.payload.as_str());
        });
    }
}

/// The largest journal batch a SQLite append sends as one message ([`SqliteBatch`]): its
/// statement lists take few shapes (at most this many journal rows and index rows), so they
/// stay prepared; a larger batch goes a statement at a time.
const SQLITE_ONE_MESSAGE_EVENTS: usize = 16;

/// Splits a batch into statement-sized runs: full runs of [`SQLITE_ROWS_PER_INSERT`] rows, then
/// the rest in power-of-two runs (32, 16, …, 1). Every run length is one of seven, so each
/// statement text is prepared once per connection and stays in sqlx's statement cache,
/// whatever the batch sizes (sent a statement at a time: [`SqliteBatch::split`]).
pub(crate) fn sqlite_insert_chunks<T>(events: &[T]) -> impl Iterator<Item = &[T]> {
    let mut rest = events;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let take = if rest.len() >= SQLITE_ROWS_PER_INSERT {
            SQLITE_ROWS_PER_INSERT
        } else {
            1 << rest.len().ilog2()
        };
        let (run, tail) = rest.split_at(take);
        rest = tail;
        Some(run)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_batches_split_into_a_few_statement_shapes() {
        let event = |seq| StoredEvent {
            seq,
            at: 0,
            kind: String::new(),
            payload: String::new(),
            task: RowTask::Unknown,
        };
        let events: Vec<StoredEvent> = (1..=200).map(event).collect();
        let runs = |n: usize| -> Vec<usize> {
            sqlite_insert_chunks(&events[..n])
                .map(<[StoredEvent]>::len)
                .collect()
        };
        assert_eq!(runs(200), [64, 64, 64, 8]);
        assert_eq!(runs(63), [32, 16, 8, 4, 2, 1]);
        assert_eq!(runs(1), [1]);
        assert!(runs(0).is_empty());
        let seqs: Vec<Seq> = sqlite_insert_chunks(&events[..77])
            .flatten()
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, (1..=77).collect::<Vec<_>>());
    }
}
