//! The journal indexed by `seeker:<id>` and `coach:<id>` topic: `(topic, seq)` rows and how
//! far the journal is indexed (`watcher_index.indexed_seq`). Derived; the journal stays the
//! only truth.
//!
//! A resume far behind on such a topic (a seeker back after a day) read every journal row
//! since its `since` to find its few events. These rows let it read only its own. Unlike the
//! task index, they are **not** written with each append: an event reaches about three such
//! topics, each in its own part of the index, and writing them in the append's transaction
//! cost every commit ~0.4 ms and half the journal's peak (docs/benchmarks.md, "a resume on a
//! sparse topic"). A follower of the journal writes them instead
//! ([`Store::watcher_index_step`]: the journal after the position, a page per transaction),
//! off the append path, moments behind it.
//!
//! Readers ([`Store::indexed_watcher_events`], [`Store::count_indexed_watcher_events`]) read
//! the indexed rows up to the position ([`Store::watcher_index_seq`]) and the journal after it
//! themselves, so an answer is complete whatever the follower's lag.

use gavel_engine::routing::watcher_topics;
use gavel_protocol::Seq;

use crate::error::StorageError;
use crate::store::{Store, StoredEvent};
use crate::task_events::{IndexReads, sqlite_insert_keyed};

/// Journal rows one step of the follower indexes in one transaction.
pub const WATCHER_PAGE: u32 = 5000;

/// The watcher index's reads.
const WATCHER_READS: IndexReads = IndexReads {
    rows: [
        "SELECT j.seq, j.at, j.kind, j.payload FROM watcher_events w JOIN journal j ON j.seq = w.seq \
         WHERE w.topic = ? AND w.seq > ? AND w.seq <= ? ORDER BY w.seq LIMIT ?",
        "SELECT j.seq, j.at, j.kind, j.payload FROM watcher_events w JOIN journal j ON j.seq = w.seq \
         WHERE w.topic = $1 AND w.seq > $2 AND w.seq <= $3 ORDER BY w.seq LIMIT $4",
    ],
    count: [
        "SELECT COUNT(*) FROM (SELECT 1 FROM watcher_events \
         WHERE topic = ? AND seq > ? AND seq <= ? LIMIT ?) c",
        "SELECT COUNT(*) FROM (SELECT 1 FROM watcher_events \
         WHERE topic = $1 AND seq > $2 AND seq <= $3 LIMIT $4) c",
    ],
};

/// The `(topic, seq)` rows of journal rows: each row's `seeker:`/`coach:` topics. A row that
/// cannot be decoded is reported and left out, as every resume leaves it out.
fn topic_rows(rows: &[StoredEvent]) -> (Vec<String>, Vec<i64>) {
    let (mut topics, mut seqs) = (Vec::new(), Vec::new());
    for row in rows {
        match row.decode() {
            Ok(event) => {
                for topic in watcher_topics(&event) {
                    topics.push(topic.to_string());
                    seqs.push(row.seq as i64);
                }
            }
            Err(error) => {
                tracing::error!(seq = row.seq, %error, "watcher index: a journal row cannot be decoded; left out");
            }
        }
    }
    (topics, seqs)
}

impl Store {
    /// How far the journal is indexed by `seeker:`/`coach:` topic (0: not at all).
    pub async fn watcher_index_seq(&self) -> Result<Seq, StorageError> {
        let sql = "SELECT indexed_seq FROM watcher_index WHERE id = 1";
        let seq: Option<i64> = match self {
            Store::Sqlite(pool) => sqlx::query_scalar(sql).fetch_optional(pool).await?,
            Store::Postgres(pool) => sqlx::query_scalar(sql).fetch_optional(pool).await?,
        };
        Ok(seq.unwrap_or(0) as Seq)
    }

    /// One step of the follower: indexes the journal's rows after `after` (the position, as
    /// the follower last left it), at most `page` of them, and moves the position to the last,
    /// in one transaction; answers the new position, `None` when no row follows `after`.
    /// Only the unbroken run of rows from `after + 1` is taken, so the position never passes
    /// a `seq` it has not seen. Rows indexed twice (two followers for a moment, around a
    /// failover) are harmless, and the position never goes back.
    pub async fn watcher_index_step(
        &self,
        after: Seq,
        page: u32,
    ) -> Result<Option<Seq>, StorageError> {
        let mut rows = self.read_after(after, page).await?;
        let unbroken = rows
            .iter()
            .zip(after + 1..)
            .take_while(|(row, seq)| row.seq == *seq)
            .count();
        rows.truncate(unbroken);
        let Some(last) = rows.last().map(|r| r.seq) else {
            return Ok(None);
        };
        let (topics, seqs) = topic_rows(&rows);
        match self {
            Store::Sqlite(pool) => {
                let keyed: Vec<(&str, i64)> = topics
                    .iter()
                    .map(String::as_str)
                    .zip(seqs.iter().copied())
                    .collect();
                let mut tx = pool.begin().await?;
                sqlite_insert_keyed(
                    &mut tx,
                    "INSERT OR IGNORE INTO watcher_events (topic, seq) ",
                    &keyed,
                )
                .await?;
                sqlx::query(
                    "INSERT INTO watcher_index (id, indexed_seq) VALUES (1, ?) ON CONFLICT (id) \
                     DO UPDATE SET indexed_seq = MAX(watcher_index.indexed_seq, excluded.indexed_seq)",
                )
                .bind(last as i64)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
            }
            Store::Postgres(pool) => {
                sqlx::query(
                    "WITH w AS (INSERT INTO watcher_events (topic, seq) \
                     SELECT * FROM UNNEST($1::text[], $2::bigint[]) ON CONFLICT DO NOTHING) \
                     INSERT INTO watcher_index (id, indexed_seq) VALUES (1, $3) ON CONFLICT (id) \
                     DO UPDATE SET indexed_seq = GREATEST(watcher_index.indexed_seq, EXCLUDED.indexed_seq)",
                )
                .bind(&topics)
                .bind(&seqs)
                .bind(last as i64)
                .execute(pool)
                .await?;
            }
        }
        Ok(Some(last))
    }

    /// Up to `limit` indexed journal rows of `topic` (`seeker:<id>` or `coach:<id>`) with
    /// `after < seq <= upto`, in order. Only rows up to the index's position are there: the
    /// caller reads the journal after it.
    pub async fn indexed_watcher_events(
        &self,
        topic: &str,
        after: Seq,
        upto: Seq,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StorageError> {
        self.indexed_rows(&WATCHER_READS, topic, after, upto, limit)
            .await
    }

    /// How many indexed journal rows `topic` has with `after < seq <= upto`, counting no
    /// further than `cap`: the index's range alone, no journal row read.
    pub async fn count_indexed_watcher_events(
        &self,
        topic: &str,
        after: Seq,
        upto: Seq,
        cap: u64,
    ) -> Result<u64, StorageError> {
        self.count_indexed(&WATCHER_READS, topic, after, upto, cap)
            .await
    }
}
