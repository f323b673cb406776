//! Reading a topic's events through the journal's index: `task_events` for `task:<id>` (kept
//! by [`crate::task_events`]). A reader reads the indexed rows up to the position
//! ([`Store::task_index_seq`]) and the journal itself after it, so an answer is complete
//! whatever the index's state.
//!
//! `feed`, `admin`, `seeker:` and `coach:` are not indexed: most events reach the first two,
//! and an index of the last two written with each append cost more than it saves (each event a
//! row per topic, scattered through the index: docs/benchmarks.md, "a resume on a sparse
//! topic"); their readers read the journal.

use gavel_protocol::{Seq, Topic};

use crate::error::StorageError;
use crate::store::{Store, StoredEvent};

/// A topic whose events are indexed, and its key in the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexedTopic {
    /// `task:<id>`: `task_events`, by task id.
    Task(String),
}

impl IndexedTopic {
    /// The index of `topic`, if it has one.
    pub fn of(topic: &Topic) -> Option<Self> {
        match topic {
            Topic::Task(id) => Some(IndexedTopic::Task(id.to_string())),
            Topic::Seeker(_) | Topic::Coach(_) | Topic::Feed | Topic::Admin => None,
        }
    }

    fn key(&self) -> &str {
        match self {
            IndexedTopic::Task(key) => key,
        }
    }

    /// The indexed rows' journal rows with `after < seq <= upto`, oldest first, `LIMIT`ed.
    fn rows_sql(&self, postgres: bool) -> &'static str {
        if postgres {
            "SELECT j.seq, j.at, j.kind, j.payload FROM task_events t JOIN journal j ON j.seq = t.seq \
             WHERE t.task_id = $1 AND t.seq > $2 AND t.seq <= $3 ORDER BY t.seq LIMIT $4"
        } else {
            "SELECT j.seq, j.at, j.kind, j.payload FROM task_events t JOIN journal j ON j.seq = t.seq \
             WHERE t.task_id = ? AND t.seq > ? AND t.seq <= ? ORDER BY t.seq LIMIT ?"
        }
    }

    /// How many indexed rows have `after < seq <= upto`, counting at most `LIMIT`.
    fn count_sql(&self, postgres: bool) -> &'static str {
        if postgres {
            "SELECT COUNT(*) FROM (SELECT 1 FROM task_events \
             WHERE task_id = $1 AND seq > $2 AND seq <= $3 LIMIT $4) c"
        } else {
            "SELECT COUNT(*) FROM (SELECT 1 FROM task_events \
             WHERE task_id = ? AND seq > ? AND seq <= ? LIMIT ?) c"
        }
    }
}

impl Store {
    /// Up to `limit` indexed journal rows of `topic` with `after < seq <= upto`, in order.
    /// Only rows up to the index's position are there: the caller reads the journal after it.
    pub async fn indexed_events(
        &self,
        topic: &IndexedTopic,
        after: Seq,
        upto: Seq,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StorageError> {
        let rows = match self {
            Store::Sqlite(pool) => sqlx::query(topic.rows_sql(false))
                .bind(topic.key())
                .bind(after as i64)
                .bind(upto as i64)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
                .iter()
                .map(crate::store::stored_event)
                .collect::<Result<Vec<_>, _>>()?,
            Store::Postgres(pool) => sqlx::query(topic.rows_sql(true))
                .bind(topic.key())
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

    /// Up to `limit` indexed journal rows of `task_id` with `after < seq <= upto`, in order.
    pub async fn indexed_task_events(
        &self,
        task_id: &str,
        after: Seq,
        upto: Seq,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StorageError> {
        let topic = IndexedTopic::Task(task_id.to_owned());
        self.indexed_events(&topic, after, upto, limit).await
    }

    /// How many indexed journal rows `topic` has with `after < seq <= upto`, counting no
    /// further than `cap`: the index's range alone, no journal row read.
    pub async fn count_indexed_events(
        &self,
        topic: &IndexedTopic,
        after: Seq,
        upto: Seq,
        cap: u64,
    ) -> Result<u64, StorageError> {
        let cap = cap.min(i64::MAX as u64) as i64;
        let count: i64 = match self {
            Store::Sqlite(pool) => {
                sqlx::query_scalar(topic.count_sql(false))
                    .bind(topic.key())
                    .bind(after as i64)
                    .bind(upto as i64)
                    .bind(cap)
                    .fetch_one(pool)
                    .await?
            }
            Store::Postgres(pool) => {
                sqlx::query_scalar(topic.count_sql(true))
                    .bind(topic.key())
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
