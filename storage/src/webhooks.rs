//! Webhook delivery cursors (contract §14): the durable position of each webhook in the
//! journal. The journal itself is what gets delivered; a cursor only says how far.

use gavel_protocol::Seq;

use crate::error::StorageError;
use crate::store::Store;

impl Store {
    /// The cursor of the webhook at `url`, if it has one.
    pub async fn webhook_cursor(&self, url: &str) -> Result<Option<Seq>, StorageError> {
        let seq: Option<i64> = match self {
            Store::Sqlite(pool) => {
                sqlx::query_scalar("SELECT cursor_seq FROM webhook_cursors WHERE url = ?")
                    .bind(url)
                    .fetch_optional(pool)
                    .await?
            }
            Store::Postgres(pool) => {
                sqlx::query_scalar("SELECT cursor_seq FROM webhook_cursors WHERE url = $1")
                    .bind(url)
                    .fetch_optional(pool)
                    .await?
            }
        };
        Ok(seq.map(|s| s as Seq))
    }

    /// Moves the webhook's cursor to `seq` (never backwards).
    pub async fn set_webhook_cursor(&self, url: &str, seq: Seq) -> Result<(), StorageError> {
        match self {
            Store::Sqlite(pool) => {
                sqlx::query(
                    "INSERT INTO webhook_cursors (url, cursor_seq) VALUES (?, ?) \
                     ON CONFLICT (url) DO UPDATE SET cursor_seq = \
                     MAX(webhook_cursors.cursor_seq, excluded.cursor_seq)",
                )
                .bind(url)
                .bind(seq as i64)
                .execute(pool)
                .await?;
            }
            Store::Postgres(pool) => {
                sqlx::query(
                    "INSERT INTO webhook_cursors (url, cursor_seq) VALUES ($1, $2) \
                     ON CONFLICT (url) DO UPDATE SET cursor_seq = \
                     GREATEST(webhook_cursors.cursor_seq, EXCLUDED.cursor_seq)",
                )
                .bind(url)
                .bind(seq as i64)
                .execute(pool)
                .await?;
            }
        }
        Ok(())
    }
}
