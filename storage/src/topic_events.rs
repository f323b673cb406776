//! Reading the journal by topic through its indexes: `task_events` for `task:<id>`,
//! `topic_events` for `seeker:<id>` and `coach:<id>` (both kept by [`crate::task_events`]).
//! A reader reads the indexed rows up to the position ([`Store::task_index_seq`]) and the
//! journal itself after it, so an answer is complete whatever the index's state.
//!
//! `feed` and `admin` are not indexed: most events reach them, so their readers read the
//! journal.

use gavel_protocol::{Seq, Topic};

use crate::error::StorageError;
use crate::store::{Store, StoredEvent};

/// The statement reading an index's rows (table, key column, the four placeholders).
macro_rules! rows_sql {
    ($table:literal, $column:literal, $key:literal, $after:literal, $upto:literal, $limit:literal) => {
        concat!(
            "SELECT j.seq, j.at, j.kind, j.payload FROM ",
            $table,
            " t JOIN journal j ON j.seq = t.seq ",
            "WHERE t.",
            $column,
            " = ",
            $key,
            " AND t.seq > ",
            $after,
            " AND t.seq <= ",
            $upto,
            " ORDER BY t.seq LIMIT ",
            $limit
        )
    };
}

/// The statement counting an index's rows in a range, no further than its `LIMIT`.
macro_rules! count_sql {
    ($table:literal, $column:literal, $key:literal, $after:literal, $upto:literal, $limit:literal) => {
        concat!(
            "SELECT COUNT(*) FROM (SELECT 1 FROM ",
            $table,
            " WHERE ",
            $column,
            " = ",
            $key,
            " AND seq > ",
            $after,
            " AND seq <= ",
            $upto,
            " LIMIT ",
            $limit,
            ") c"
        )
    };
}

/// A topic whose events are indexed, and its key in the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexedTopic {
    /// `task:<id>`: `task_events`, by task id.
    Task(String),
    /// `seeker:<id>` or `coach:<id>`: `topic_events`, by the topic's name.
    Watcher(String),
}

impl IndexedTopic {
    /// The index of `topic`, if it has one.
    pub fn of(topic: &Topic) -> Option<Self> {
        match topic {
            Topic::Task(id) => Some(IndexedTopic::Task(id.to_string())),
            Topic::Seeker(_) | Topic::Coach(_) => Some(IndexedTopic::Watcher(topic.to_string())),
            Topic::Feed | Topic::Admin => None,
        }
    }

    fn key(&self) -> &str {
        match self {
            IndexedTopic::Task(key) | IndexedTopic::Watcher(key) => key,
        }
    }

    /// The indexed rows' journal rows with `after < seq <= upto`, oldest first, `LIMIT`ed.
    fn rows_sql(&self, postgres: bool) -> &'static str {
        match (self, postgres) {
            (IndexedTopic::Task(_), false) => {
                rows_sql!("task_events", "task_id", "?", "?", "?", "?")
            }
            (IndexedTopic::Task(_), true) => {
                rows_sql!("task_events", "task_id", "$1", "$2", "$3", "$4")
            }
            (IndexedTopic::Watcher(_), false) => {
                rows_sql!("topic_events", "topic", "?", "?", "?", "?")
            }
            (IndexedTopic::Watcher(_), true) => {
                rows_sql!("topic_events", "topic", "$1", "$2", "$3", "$4")
            }
        }
    }

    /// How many indexed rows have `after < seq <= upto`, counting at most `LIMIT`.
    fn count_sql(&self, postgres: bool) -> &'static str {
        match (self, postgres) {
            (IndexedTopic::Task(_), false) => {
                count_sql!("task_events", "task_id", "?", "?", "?", "?")
            }
            (IndexedTopic::Task(_), true) => {
                count_sql!("task_events", "task_id", "$1", "$2", "$3", "$4")
            }
            (IndexedTopic::Watcher(_), false) => {
                count_sql!("topic_events", "topic", "?", "?", "?", "?")
            }
            (IndexedTopic::Watcher(_), true) => {
                count_sql!("topic_events", "topic", "$1", "$2", "$3", "$4")
            }
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
