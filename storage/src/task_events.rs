//! The journal indexed by task (gavel's `GET /v1/tasks/{id}/events`): `(task_id, seq)` rows
//! and how far the journal is indexed. The rows are derived (a follower of the journal writes
//! them, idempotently); the journal stays the only truth.

use gavel_protocol::Seq;

use crate::error::StorageError;
use crate::store::{Store, StoredEvent};

impl Store {
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

    /// Records the `(task_id, seq)` rows of the journal up to `upto`, and that it is indexed up
    /// to there, in one transaction (repeating rows already there is harmless; the position
    /// never goes back).
    pub async fn index_task_events(
        &self,
        rows: &[(String, Seq)],
        upto: Seq,
    ) -> Result<(), StorageError> {
        match self {
            Store::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                for (task_id, seq) in rows {
                    sqlx::query("INSERT OR IGNORE INTO task_events (task_id, seq) VALUES (?, ?)")
                        .bind(task_id)
                        .bind(*seq as i64)
                        .execute(&mut *tx)
                        .await?;
                }
                sqlx::query(
                    "INSERT INTO task_index (id, indexed_seq) VALUES (1, ?) ON CONFLICT (id) \
                     DO UPDATE SET indexed_seq = MAX(task_index.indexed_seq, excluded.indexed_seq)",
                )
                .bind(upto as i64)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
            }
            Store::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query(
                    "INSERT INTO task_events (task_id, seq) \
                     SELECT * FROM UNNEST($1::text[], $2::bigint[]) ON CONFLICT DO NOTHING",
                )
                .bind(rows.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>())
                .bind(rows.iter().map(|(_, s)| *s as i64).collect::<Vec<_>>())
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
}
