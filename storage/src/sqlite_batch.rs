//! SQLite: a transaction sent to the connection in one message.
//!
//! sqlx runs every SQLite statement on the connection's own worker thread: each `execute` is a
//! message there and an answer back, two thread wake-ups. A journal append took six of them
//! (the pool's ping, `BEGIN`, the journal rows, the task index's rows, its position,
//! `COMMIT`) around one `fsync`. A [`SqliteBatch`] is the same statements as one statement
//! list, `BEGIN IMMEDIATE` … `COMMIT`, with their binds in order (sqlx binds each statement's
//! `?`s from where the previous one's ended): one message, one answer.
//!
//! A statement that fails stops the list inside its transaction, and a caller that gives up
//! waiting may leave it there too; such a connection is closed rather than returned to the
//! pool (closing rolls the transaction back), so no later reader or writer ever runs inside a
//! transaction it did not open.

use sqlx::pool::PoolConnection;
use sqlx::{QueryBuilder, Sqlite, SqlitePool};

use crate::error::StorageError;

/// Statements to run as one transaction, in one message to the connection.
pub(crate) struct SqliteBatch {
    statements: QueryBuilder<Sqlite>,
}

impl SqliteBatch {
    /// `BEGIN IMMEDIATE`: the write lock is taken up front, so no statement of the batch waits
    /// to upgrade a read lock.
    pub(crate) fn new() -> Self {
        SqliteBatch {
            statements: QueryBuilder::new("BEGIN IMMEDIATE; "),
        }
    }

    /// Where each part pushes its statements, each ended by `"; "`.
    pub(crate) fn statements(&mut self) -> &mut QueryBuilder<Sqlite> {
        &mut self.statements
    }

    /// Runs the batch and commits it. On an error nothing of it is committed — unless the
    /// error came from `COMMIT` itself after the rows reached the disk, which the journal
    /// writer resolves by reading the journal's end, as for any lost answer.
    pub(crate) async fn commit(mut self, pool: &SqlitePool) -> Result<(), StorageError> {
        self.statements.push("COMMIT");
        let mut conn = CloseUnlessFinished {
            conn: pool.acquire().await?,
            finished: false,
        };
        self.statements.build().execute(&mut *conn.conn).await?;
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
