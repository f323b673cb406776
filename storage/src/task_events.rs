//! The journal indexed by task (gavel's `GET /v1/tasks/{id}/events`): `(task_id, seq)` rows
//! and how far the journal is indexed (`task_index.indexed_seq`). The rows are derived; the
//! journal stays the only truth.
//!
//! - Written with the journal: [`Store::append`] (and a cluster leader's
//!   [`Store::append_fenced`]) inserts a batch's rows in its own transaction, and moves the
//!   position to the batch's last `seq` only when it stood at the batch's start — so the
//!   position never passes a row that is not indexed. No poll, no read-back, no second commit.
//! - Caught up: a journal written before this (or by an older binary) has its position behind
//!   the journal's end; [`Store::task_index_catch_up`] indexes from the position onwards, a
//!   page per transaction, until it reaches the end, after which the appends carry it on.
//!   Both writers lock the position's row (Postgres: the upsert; SQLite: one writer at a
//!   time), so a catch-up that finds nothing after the position it moved cannot have raced
//!   an append that saw an older one: the appends take over without a hole.
//!
//! Readers ([`Store::indexed_task_events`], [`Store::count_indexed_task_events`]: histories
//! and `task:<id>` resumes) read the indexed rows up to the position and the journal's tail
//! after it themselves, so an answer is complete whatever the index's state.

use gavel_protocol::{Seq, TaskId};
use sqlx::postgres::{PgArguments, Postgres};
use sqlx::query::Query;

use crate::error::StorageError;
use crate::sqlite_batch::SqliteBatch;
use crate::store::{Store, StoredEvent, sqlite_insert_chunks};

/// A batch's task-index rows and the position move it makes.
#[derive(Debug, Default)]
pub(crate) struct BatchIndex {
    task_ids: Vec<TaskId>,
    seqs: Vec<i64>,
    /// The `seq` before the batch: the position must stand there for the batch to move it.
    prev: i64,
    /// The batch's last `seq`.
    last: i64,
}

impl BatchIndex {
    /// The rows of `events` that have a `task:<id>` delivery. A row that cannot be decoded
    /// (only rows not made by [`StoredEvent::encode`] are decoded) is reported and left out,
    /// as every history and resume leaves it out.
    pub(crate) fn of(events: &[StoredEvent]) -> Self {
        let mut index = BatchIndex {
            prev: events.first().map_or(0, |e| e.seq as i64 - 1),
            last: events.last().map_or(0, |e| e.seq as i64),
            ..BatchIndex::default()
        };
        for e in events {
            match e.task_id() {
                Ok(Some(id)) => {
                    index.task_ids.push(id);
                    index.seqs.push(e.seq as i64);
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::error!(seq = e.seq, %error, "task index: a journal row cannot be decoded; left out");
                }
            }
        }
        index
    }

    /// `task_events`' keys, as Postgres binds them.
    fn task_id_strs(&self) -> Vec<&str> {
        self.task_ids.iter().map(TaskId::as_str).collect()
    }

    fn task_rows(&self) -> Vec<(&str, i64)> {
        let ids = self.task_ids.iter().map(TaskId::as_str);
        ids.zip(self.seqs.iter().copied()).collect()
    }
}

/// SQLite: the `INSERT`s of `(task_id, seq)` rows, skipping rows already there, many per
/// statement.
fn push_sqlite_rows(batch: &mut SqliteBatch, rows: &[(&str, i64)]) {
    for run in sqlite_insert_chunks(rows) {
        let statement = batch.statement();
        statement.push("INSERT OR IGNORE INTO task_events (task_id, seq) ");
        statement.push_values(run, |mut row, (key, seq)| {
            row.push_bind(*key).push_bind(*seq);
        });
    }
}

/// SQLite: a batch's index rows and the upsert that moves the position from the batch's
/// `prev` to its `last` (a position elsewhere stays where it is), for the append's
/// transaction.
pub(crate) fn push_sqlite_index(batch: &mut SqliteBatch, index: &BatchIndex) {
    push_sqlite_rows(batch, &index.task_rows());
    let advance = batch.statement();
    advance.push("INSERT INTO task_index (id, indexed_seq) VALUES (1, CASE WHEN ");
    advance.push_bind(index.prev).push(" = 0 THEN ");
    advance.push_bind(index.last).push(
        " ELSE 0 END) ON CONFLICT (id) DO UPDATE SET indexed_seq = \
         CASE WHEN task_index.indexed_seq = ",
    );
    advance.push_bind(index.prev).push(" THEN ");
    advance
        .push_bind(index.last)
        .push(" ELSE task_index.indexed_seq END");
}

/// Postgres: the index's parts of a batch's append statement ([`crate::append`]), each under
/// `guard`, reading the parameters `$base`.. `$base+3` ([`bind_index`]).
pub(crate) fn postgres_index_ctes(base: usize, guard: &str) -> String {
    let (ids, seqs, prev, last) = (base, base + 1, base + 2, base + 3);
    format!(
        "t AS (INSERT INTO task_events (task_id, seq) \
         SELECT * FROM UNNEST(${ids}::text[], ${seqs}::bigint[]) {guard} ON CONFLICT DO NOTHING), \
         p AS (INSERT INTO task_index (id, indexed_seq) \
         SELECT 1, CASE WHEN ${prev}::bigint = 0 THEN ${last}::bigint ELSE 0 END {guard} \
         ON CONFLICT (id) DO UPDATE SET indexed_seq = CASE \
         WHEN task_index.indexed_seq = ${prev}::bigint THEN ${last}::bigint \
         ELSE task_index.indexed_seq END)"
    )
}

/// Binds the parameters of [`postgres_index_ctes`].
pub(crate) fn bind_index<'q>(
    query: Query<'q, Postgres, PgArguments>,
    index: &'q BatchIndex,
) -> Query<'q, Postgres, PgArguments> {
    query
        .bind(index.task_id_strs())
        .bind(index.seqs.as_slice())
        .bind(index.prev)
        .bind(index.last)
}

/// Journal rows a catch-up step indexes in one transaction.
pub const CATCH_UP_PAGE: u32 = 1000;

impl Store {
    /// One step of catching the index up with the journal: indexes up to `page` journal rows
    /// after the position, in one transaction, and answers the new position; `None` when the
    /// position is at the journal's end (from then on the appends keep it there). Run at
    /// start-up by the node that writes the journal, until `None`.
    pub async fn task_index_catch_up(&self, page: u32) -> Result<Option<Seq>, StorageError> {
        let from = self.task_index_seq().await?;
        let rows = self.read_after(from, page).await?;
        let Some(last) = rows.last().map(|r| r.seq) else {
            return Ok(None);
        };
        self.index_rows(&rows, last).await?;
        Ok(Some(last))
    }

    /// Drops the task index (its rows and position), as a journal written before the index
    /// has it: the next start-up's catch-up rebuilds it from the journal. For benchmarks and
    /// tests of the catch-up; a server may be running (its history answers read the tail).
    pub async fn task_index_reset(&self) -> Result<(), StorageError> {
        match self {
            Store::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query("DELETE FROM task_index")
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM task_events")
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
            }
            Store::Postgres(pool) => {
                sqlx::query("TRUNCATE task_index, task_events")
                    .execute(pool)
                    .await?;
            }
        }
        Ok(())
    }

    /// How far the journal is indexed by task (0: not at all).
    pub async fn task_index_seq(&self) -> Result<Seq, StorageError> {
        let seq: Option<i64> = match self {
            Store::Sqlite(pool) => {
                sqlx::query_scalar("SELECT indexed_seq FROM task_index WHERE id = 1")
                    .fetch_optional(pool)
                    .await?
            }
            Store::Postgres(pool) => {
                sqlx::query_scalar("SELECT indexed_seq FROM task_index WHERE id = 1")
                    .fetch_optional(pool)
                    .await?
            }
        };
        Ok(seq.unwrap_or(0) as Seq)
    }

    /// Records the index rows of `rows` — the journal from the position to `upto` — and that
    /// it is indexed up to there, in one transaction (repeating rows already there is harmless;
    /// the position never goes back). The caller read the rows after a position it read from
    /// this table, so every row up to `upto` is indexed when this commits.
    pub async fn index_rows(&self, rows: &[StoredEvent], upto: Seq) -> Result<(), StorageError> {
        let index = BatchIndex::of(rows);
        match self {
            Store::Sqlite(pool) => {
                let mut batch = SqliteBatch::split();
                push_sqlite_rows(&mut batch, &index.task_rows());
                batch
                    .statement()
                    .push("INSERT INTO task_index (id, indexed_seq) VALUES (1, ")
                    .push_bind(upto as i64)
                    .push(
                        ") ON CONFLICT (id) DO UPDATE SET \
                         indexed_seq = MAX(task_index.indexed_seq, excluded.indexed_seq)",
                    );
                batch.commit(pool).await?;
            }
            Store::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query(
                    "INSERT INTO task_events (task_id, seq) \
                     SELECT * FROM UNNEST($1::text[], $2::bigint[]) ON CONFLICT DO NOTHING",
                )
                .bind(index.task_id_strs())
                .bind(index.seqs.as_slice())
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO task_index (id, indexed_seq) VALUES (1, $1) ON CONFLICT (id) \
                     DO UPDATE SET indexed_seq = GREATEST(task_index.indexed_seq, EXCLUDED.indexed_seq)",
                )
                .bind(upto as i64)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// Up to `limit` indexed journal rows of `task_id` with `after < seq <= upto`, in order.
    pub async fn indexed_task_events(
        &self,
        task_id: &str,
        after: Seq,
        upto: Seq,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StorageError> {
        let rows = match self {
            Store::Sqlite(pool) => sqlx::query(
                "SELECT j.seq, j.at, j.kind, j.payload FROM task_events t \
                     JOIN journal j ON j.seq = t.seq \
                     WHERE t.task_id = ? AND t.seq > ? AND t.seq <= ? ORDER BY t.seq LIMIT ?",
            )
            .bind(task_id)
            .bind(after as i64)
            .bind(upto as i64)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
            .iter()
            .map(crate::store::stored_event)
            .collect::<Result<Vec<_>, _>>()?,
            Store::Postgres(pool) => sqlx::query(
                "SELECT j.seq, j.at, j.kind, j.payload FROM task_events t \
                     JOIN journal j ON j.seq = t.seq \
                     WHERE t.task_id = $1 AND t.seq > $2 AND t.seq <= $3 ORDER BY t.seq LIMIT $4",
            )
            .bind(task_id)
            .bind(after as i64)
            .bind(upto as i64)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
            .iter()
            .map(crate::store::stored_event)
            .collect::<Result<Vec<_>, _>>()?,
        };
        Ok(rows)
    }

    /// How many indexed journal rows `task_id` has with `after < seq <= upto`, counting no
    /// further than `cap`: the index's range alone, no journal row read (a resume's bound).
    pub async fn count_indexed_task_events(
        &self,
        task_id: &str,
        after: Seq,
        upto: Seq,
        cap: u64,
    ) -> Result<u64, StorageError> {
        let cap = cap.min(i64::MAX as u64) as i64;
        let count: i64 = match self {
            Store::Sqlite(pool) => {
                sqlx::query_scalar(
                    "SELECT COUNT(*) FROM (SELECT 1 FROM task_events \
                     WHERE task_id = ? AND seq > ? AND seq <= ? LIMIT ?) c",
                )
                .bind(task_id)
                .bind(after as i64)
                .bind(upto as i64)
                .bind(cap)
                .fetch_one(pool)
                .await?
            }
            Store::Postgres(pool) => {
                sqlx::query_scalar(
                    "SELECT COUNT(*) FROM (SELECT 1 FROM task_events \
                     WHERE task_id = $1 AND seq > $2 AND seq <= $3 LIMIT $4) c",
                )
                .bind(task_id)
                .bind(after as i64)
                .bind(upto as i64)
                .bind(cap)
                .fetch_one(pool)
                .await?
            }
        };
        Ok(count as u64)
    }
}
