//! SQLite: a transaction sent to the connection in as few messages as keep its statements
//! prepared.
//!
//! sqlx runs every SQLite statement on the connection's own worker thread: each `execute` is a
//! message there and an answer back, two thread wake-ups. A journal append took six of them
//! (the pool's ping, `BEGIN`, the journal rows, the task index's rows, its position,
//! `COMMIT`) around one `fsync`. A small [`SqliteBatch`] sends the same statements as one
//! statement list, `BEGIN IMMEDIATE` … `COMMIT`, with their binds in order (sqlx binds each
//! statement's `?`s from where the previous one's ended): one message, one answer.
//!
//! sqlx keeps a statement prepared by its whole text, so a statement list is prepared once per
//! shape. Small batches take few shapes and stay prepared; a large batch's list is nearly
//! always new (its runs of rows depend on its exact size) and would be prepared again at each
//! commit — a sixth of the journal's throughput at thousands of events per commit. So a batch
//! made [`SqliteBatch::split`] sends each statement as a message of its own, as before: a
//! few more wake-ups, beside a commit of that size, for statements that stay prepared.
//!
//! A statement that fails stops the batch inside its transaction, and a caller that gives up
//! waiting may leave it there too; such a connection is closed rather than returned to the
//! pool (closing rolls the transaction back), so no later reader or writer ever runs inside a
//! transaction it did not open.

use sqlx::pool::PoolConnection;
use sqlx::{QueryBuilder, Sqlite, SqlitePool};

use crate::error::StorageError;

/// `BEGIN IMMEDIATE`: the write lock is taken up front, so no statement of a batch waits to
/// upgrade a read lock.
const BEGIN: &str = "BEGIN IMMEDIATE";

/// Statements to run as one transaction.
pub(crate) enum SqliteBatch {
    /// `BEGIN` and each statement after it, in one list: one message.
    OneMessage(QueryBuilder<Sqlite>),
    /// A message per statement, between a `BEGIN` and a `COMMIT` of their own.
    Split(Vec<QueryBuilder<Sqlite>>),
}

impl SqliteBatch {
    /// A batch sent as one message (for a few statements of a few rows).
    pub(crate) fn one_message() -> Self {
        SqliteBatch::OneMessage(QueryBuilder::new(BEGIN))
    }

    /// A batch sent a statement at a time (for many rows).
    pub(crate) fn split() -> Self {
        SqliteBatch::Split(Vec::new())
    }

    /// The builder of the next statement: pushed onto, it holds that statement alone.
    pub(crate) fn statement(&mut self) -> &mut QueryBuilder<Sqlite> {
        match self {
            SqliteBatch::OneMessage(list) => list.push("; "),
            SqliteBatch::Split(statements) => {
                statements.push(QueryBuilder::new(""));
                statements.last_mut().expect("just pushed")
            }
        }
    }

    /// Runs the batch and commits it. On an error nothing of it is committed — unless the
    /// error came from `COMMIT` itself after the rows reached the disk, which the journal
    /// writer resolves by reading the journal's end, as for any lost answer.
    pub(crate) async fn commit(self, pool: &SqlitePool) -> Result<(), StorageError> {
        let mut conn = CloseUnlessFinished {
            conn: pool.acquire().await?,
            finished: false,
        };
        match self {
            SqliteBatch::OneMessage(mut list) => {
                list.push("; COMMIT")
                    .build()
                    .execute(&mut *conn.conn)
                    .await?;
            }
            SqliteBatch::Split(mut statements) => {
                sqlx::query(BEGIN).execute(&mut *conn.conn).await?;
                for statement in &mut statements {
                    statement.build().execute(&mut *conn.conn).await?;
                }
                sqlx::query("COMMIT").execute(&mut *conn.conn).await?;
            }
        }
        conn.finished = true;
        Ok(())
    }
}

/// A pooled connection that goes back to the pool only if its batch ran to the end.
struct CloseUnlessFinished {
    conn: PoolConnection<Sqlite>,
    finished: bool,
}

impl Drop for CloseUnlessFinished {
    fn drop(&mut self) {
        if !self.finished {
            self.conn.close_on_drop();
        }
    }
}
