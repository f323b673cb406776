//! The task archive (contract §9): the final views of tasks that have left the engine's
//! memory, in the `archive` and `archive_coaches` tables.
//!
//! Rows come from the journal only: every `tasks_archived` event carries its tasks'
//! [`ArchivedTask`]s, and [`Store::append`] writes them in the same transaction (Postgres: the
//! same statement) as the event itself, so the archive never runs ahead of or behind the
//! journal. [`Store::archive_rebuild`] recomputes every row from the journal.

use gavel_engine::archive::ArchivedCoach;
use gavel_engine::listing::{ListKey, ListQuery, Scope, hide_successor};
use gavel_engine::{ArchivedTask, Engine, EngineConfig, Event, EventKind};
use gavel_protocol::views::{BidView, TaskView};
use gavel_protocol::{Seq, TaskId, UserId};

use crate::error::StorageError;
use crate::sqlite_batch::SqliteBatch;
use crate::store::{Store, StoredEvent, sqlite_insert_chunks};

/// The `kind` column of the events that carry archive rows.
const ARCHIVED_KIND: &str = "tasks_archived";

/// One archived task, ready to insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveRow {
    pub task_id: String,
    pub owner: String,
    pub created_at: i64,
    pub status: String,
    pub archived_seq: i64,
    pub view: String,
    pub coaches: Vec<CoachRow>,
}

/// One coach of an archived task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoachRow {
    pub coach_id: String,
    pub position: i64,
    pub bid: Option<String>,
}

impl ArchiveRow {
    fn of(seq: Seq, task: &ArchivedTask) -> Self {
        ArchiveRow {
            task_id: task.view.task_id.to_string(),
            owner: task.view.owner.to_string(),
            created_at: task.view.created_at as i64,
            status: task.view.status.as_str().to_owned(),
            archived_seq: seq as i64,
            view: json(&task.view),
            coaches: task
                .coaches
                .iter()
                .enumerate()
                .map(|(i, c)| CoachRow {
                    coach_id: c.coach_id.to_string(),
                    position: i as i64,
                    bid: c.bid.as_ref().map(json),
                })
                .collect(),
        }
    }
}

/// A JSON column of the archive.
fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("views always serialize")
}

/// The archive rows a batch of journal rows carries (only `tasks_archived` rows are decoded).
pub fn archive_rows(events: &[StoredEvent]) -> Result<Vec<ArchiveRow>, StorageError> {
    let mut rows = Vec::new();
    for e in events.iter().filter(|e| e.kind == ARCHIVED_KIND) {
        if let EventKind::TasksArchived { archived, .. } = &e.decode()?.kind {
            rows.extend(archived.iter().map(|t| ArchiveRow::of(e.seq, t)));
        }
    }
    Ok(rows)
}

/// Postgres: the archive's inserts as the `a` and `c` parts of a batch's append statement
/// ([`crate::append`]), each under `guard` (the journal rows were written), reading the archive
/// arrays `$5`–`$15`.
pub(crate) fn postgres_archive_ctes(guard: &str) -> String {
    format!(
        "a AS ({}), c AS ({})",
        POSTGRES_ARCHIVE_INSERT.replace("{guard}", guard),
        POSTGRES_COACHES_INSERT.replace("{guard}", guard),
    )
}

const POSTGRES_ARCHIVE_INSERT: &str = "INSERT INTO archive \
     (task_id, owner, created_at, status, archived_seq, view) \
     SELECT * FROM UNNEST($5::text[], $6::text[], $7::bigint[], $8::text[], $9::bigint[], \
     $10::text[]) {guard} \
     ON CONFLICT (task_id) DO UPDATE SET owner = EXCLUDED.owner, \
     created_at = EXCLUDED.created_at, status = EXCLUDED.status, \
     archived_seq = EXCLUDED.archived_seq, view = EXCLUDED.view";

const POSTGRES_COACHES_INSERT: &str = "INSERT INTO archive_coaches \
     (coach_id, created_at, task_id, position, bid) \
     SELECT * FROM UNNEST($11::text[], $12::bigint[], $13::text[], $14::bigint[], $15::text[]) \
     {guard} \
     ON CONFLICT (coach_id, created_at, task_id) DO UPDATE SET position = EXCLUDED.position, \
     bid = EXCLUDED.bid";

/// Binds the archive arrays `$5`–`$15` of [`postgres_archive_ctes`].
pub(crate) fn bind_archive<'q>(
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    rows: &'q [ArchiveRow],
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    let coaches: Vec<(&ArchiveRow, &CoachRow)> = rows
        .iter()
        .flat_map(|r| r.coaches.iter().map(move |c| (r, c)))
        .collect();
    query
        .bind(rows.iter().map(|r| r.task_id.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.owner.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.created_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.status.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.archived_seq).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.view.as_str()).collect::<Vec<_>>())
        .bind(
            coaches
                .iter()
                .map(|(_, c)| c.coach_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            coaches
                .iter()
                .map(|(r, _)| r.created_at)
                .collect::<Vec<_>>(),
        )
        .bind(
            coaches
                .iter()
                .map(|(r, _)| r.task_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(coaches.iter().map(|(_, c)| c.position).collect::<Vec<_>>())
        .bind(
            coaches
                .iter()
                .map(|(_, c)| c.bid.as_deref())
                .collect::<Vec<_>>(),
        )
}

/// SQLite: the `INSERT`s of archive rows, for the append's transaction.
pub(crate) fn push_sqlite_rows(batch: &mut SqliteBatch, rows: &[ArchiveRow]) {
    for r in rows {
        let statement = batch.statement();
        statement.push(
            "INSERT OR REPLACE INTO archive \
             (task_id, owner, created_at, status, archived_seq, view) ",
        );
        statement.push_values([r], |mut row, r| {
            row.push_bind(r.task_id.as_str())
                .push_bind(r.owner.as_str())
                .push_bind(r.created_at)
                .push_bind(r.status.as_str())
                .push_bind(r.archived_seq)
                .push_bind(r.view.as_str());
        });
        for run in sqlite_insert_chunks(&r.coaches) {
            let statement = batch.statement();
            statement.push(
                "INSERT OR REPLACE INTO archive_coaches \
                 (coach_id, created_at, task_id, position, bid) ",
            );
            statement.push_values(run, |mut row, c| {
                row.push_bind(c.coach_id.as_str())
                    .push_bind(r.created_at)
                    .push_bind(r.task_id.as_str())
                    .push_bind(c.position)
                    .push_bind(c.bid.as_deref());
            });
        }
    }
}

/// A value bound into a listing query.
enum Bind {
    Int(i64),
    Text(String),
}

/// A listing query's SQL (with `?` placeholders) and its binds, in order.
fn list_sql(q: &ListQuery, max_seq: Seq) -> (String, Vec<Bind>) {
    let mut binds = Vec::new();
    let (mut sql, key) = match &q.scope {
        Scope::Coach(coach) => {
            binds.push(Bind::Text(coach.to_string()));
            (
                "SELECT a.created_at, a.task_id, a.view, c.bid FROM archive_coaches c \
                 JOIN archive a ON a.task_id = c.task_id WHERE c.coach_id = ?"
                    .to_owned(),
                "c.",
            )
        }
        Scope::Owner(owner) => {
            binds.push(Bind::Text(owner.to_string()));
            (
                "SELECT a.created_at, a.task_id, a.view, NULL FROM archive a WHERE a.owner = ?"
                    .to_owned(),
                "a.",
            )
        }
        Scope::All => (
            "SELECT a.created_at, a.task_id, a.view, NULL FROM archive a WHERE 1 = 1".to_owned(),
            "a.",
        ),
    };
    sql.push_str(" AND a.archived_seq <= ?");
    binds.push(Bind::Int(max_seq.min(i64::MAX as u64) as i64));
    if let Some(owner) = &q.also_owner {
        sql.push_str(" AND a.owner = ?");
        binds.push(Bind::Text(owner.to_string()));
    }
    if let Some((at, id)) = &q.before {
        sql.push_str(&format!(" AND ({key}created_at, {key}task_id) < (?, ?)"));
        binds.push(Bind::Int(*at as i64));
        binds.push(Bind::Text(id.to_string()));
    }
    if let Some(statuses) = &q.statuses {
        let marks = vec!["?"; statuses.len()].join(", ");
        sql.push_str(&format!(" AND a.status IN ({marks})"));
        binds.extend(statuses.iter().map(|s| Bind::Text(s.as_str().to_owned())));
    }
    sql.push_str(&format!(
        " ORDER BY {key}created_at DESC, {key}task_id DESC LIMIT ?"
    ));
    binds.push(Bind::Int(q.limit as i64 + 1));
    (sql, binds)
}

/// `?` placeholders → Postgres's `$1, $2, …` (the listing SQL has no other `?`).
fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for ch in sql.chars() {
        if ch == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(ch);
        }
    }
    out
}

macro_rules! bind_all {
    ($query:expr, $binds:expr) => {{
        let mut query = $query;
        for bind in $binds {
            query = match bind {
                Bind::Int(v) => query.bind(v),
                Bind::Text(s) => query.bind(s),
            };
        }
        query
    }};
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StorageError {
    StorageError::Corrupt(format!("archive {what}: {e}"))
}

/// One listing row → its key and the view the query asked for.
fn listed(
    q: &ListQuery,
    created_at: i64,
    task_id: &str,
    view: &str,
    bid: Option<&str>,
) -> Result<(ListKey, TaskView), StorageError> {
    let mut view: TaskView = serde_json::from_str(view).map_err(|e| corrupt(task_id, e))?;
    if let Some(coach) = &q.coach_view {
        let bid: Option<BidView> = bid
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| corrupt(task_id, e))?;
        view.bids = bid.into_iter().collect();
        view.top3.clear();
        hide_successor(&mut view, coach);
    }
    let id = TaskId::new(task_id).map_err(|e| corrupt(task_id, e))?;
    Ok(((created_at as u64, id), view))
}

impl Store {
    /// Archived tasks matching `q` that were archived at or before `max_seq`, newest first,
    /// at most `q.limit + 1` (in the view `q` asks for).
    pub async fn list_archived(
        &self,
        q: &ListQuery,
        max_seq: Seq,
    ) -> Result<Vec<(ListKey, TaskView)>, StorageError> {
        let (sql, binds) = list_sql(q, max_seq);
        // (created_at, task_id, view, the coach's own bid or NULL)
        type Row = (i64, String, String, Option<String>);
        let rows: Vec<Row> = match self {
            Store::Sqlite(pool) => {
                bind_all!(sqlx::query_as(sqlx::AssertSqlSafe(sql)), binds)
                    .fetch_all(pool)
                    .await?
            }
            Store::Postgres(pool) => {
                bind_all!(sqlx::query_as(sqlx::AssertSqlSafe(numbered(&sql))), binds)
                    .fetch_all(pool)
                    .await?
            }
        };
        let out = rows
            .iter()
            .map(|(at, id, view, bid)| listed(q, *at, id, view, bid.as_deref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(out)
    }

    /// One archived task, with every coach it was assigned.
    pub async fn archived_task(&self, id: &TaskId) -> Result<Option<ArchivedTask>, StorageError> {
        const VIEW_SQLITE: &str = "SELECT view FROM archive WHERE task_id = ?";
        const VIEW_PG: &str = "SELECT view FROM archive WHERE task_id = $1";
        const COACHES_SQLITE: &str =
            "SELECT coach_id, bid FROM archive_coaches WHERE task_id = ? ORDER BY position";
        const COACHES_PG: &str =
            "SELECT coach_id, bid FROM archive_coaches WHERE task_id = $1 ORDER BY position";
        let (view, coaches): (Option<String>, Vec<(String, Option<String>)>) = match self {
            Store::Sqlite(pool) => (
                sqlx::query_scalar(VIEW_SQLITE)
                    .bind(id.as_str())
                    .fetch_optional(pool)
                    .await?,
                sqlx::query_as(COACHES_SQLITE)
                    .bind(id.as_str())
                    .fetch_all(pool)
                    .await?,
            ),
            Store::Postgres(pool) => (
                sqlx::query_scalar(VIEW_PG)
                    .bind(id.as_str())
                    .fetch_optional(pool)
                    .await?,
                sqlx::query_as(COACHES_PG)
                    .bind(id.as_str())
                    .fetch_all(pool)
                    .await?,
            ),
        };
        let Some(view) = view else {
            return Ok(None);
        };
        let view: TaskView = serde_json::from_str(&view).map_err(|e| corrupt(id.as_str(), e))?;
        let coaches = coaches
            .into_iter()
            .map(|(coach, bid)| {
                Ok(ArchivedCoach {
                    coach_id: UserId::new(&coach).map_err(|e| corrupt(id.as_str(), e))?,
                    bid: bid
                        .map(|b| serde_json::from_str(&b))
                        .transpose()
                        .map_err(|e| corrupt(id.as_str(), e))?,
                })
            })
            .collect::<Result<_, StorageError>>()?;
        Ok(Some(ArchivedTask { view, coaches }))
    }

    /// Archived tasks stored.
    pub async fn archive_count(&self) -> Result<u64, StorageError> {
        const SQL: &str = "SELECT COUNT(*) FROM archive";
        let n: i64 = match self {
            Store::Sqlite(pool) => sqlx::query_scalar(SQL).fetch_one(pool).await?,
            Store::Postgres(pool) => sqlx::query_scalar(SQL).fetch_one(pool).await?,
        };
        Ok(n as u64)
    }

    /// Recomputes the archive from the journal (`gavel archive rebuild`): the journal is
    /// replayed from the start, and every `tasks_archived` event gives its rows — the ones it
    /// carries, or, in journals written before the archive existed, the tasks' views at that
    /// point of the replay. Returns the number of archived tasks. Run it with the servers of
    /// this database stopped.
    pub async fn archive_rebuild(&self) -> Result<u64, StorageError> {
        self.archive_clear().await?;
        let mut replay = Engine::new(EngineConfig::default());
        let mut after = 0;
        let mut total = 0;
        loop {
            let page = self.read_after(after, 5_000).await?;
            let Some(last) = page.last() else {
                break;
            };
            after = last.seq;
            let mut rows = Vec::new();
            for stored in &page {
                let event: Event = stored.decode()?;
                if let EventKind::TasksArchived { task_ids, archived } = &event.kind {
                    let tasks: Vec<ArchivedTask> = if archived.is_empty() {
                        task_ids
                            .iter()
                            .map(|id| ArchivedTask::of(&replay.state().tasks[id]))
                            .collect()
                    } else {
                        archived.clone()
                    };
                    rows.extend(tasks.iter().map(|t| ArchiveRow::of(stored.seq, t)));
                }
                replay.evolve(&event);
            }
            total += rows.len() as u64;
            self.archive_insert(&rows).await?;
        }
        Ok(total)
    }

    async fn archive_clear(&self) -> Result<(), StorageError> {
        match self {
            Store::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query("DELETE FROM archive").execute(&mut *tx).await?;
                sqlx::query("DELETE FROM archive_coaches")
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
            }
            Store::Postgres(pool) => {
                sqlx::query("TRUNCATE archive, archive_coaches")
                    .execute(pool)
                    .await?;
            }
        }
        Ok(())
    }

    async fn archive_insert(&self, rows: &[ArchiveRow]) -> Result<(), StorageError> {
        if rows.is_empty() {
            return Ok(());
        }
        match self {
            Store::Sqlite(pool) => {
                let mut batch = SqliteBatch::split();
                push_sqlite_rows(&mut batch, rows);
                batch.commit(pool).await?;
            }
            Store::Postgres(pool) => {
                // `$1`–`$4` are the journal's arrays in an append: bound empty here.
                let sql = format!(
                    "WITH j AS (SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], \
                     $4::text[])), a AS ({}) {}",
                    POSTGRES_ARCHIVE_INSERT.replace("{guard}", ""),
                    POSTGRES_COACHES_INSERT.replace("{guard}", "")
                );
                let query = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(Vec::<i64>::new())
                    .bind(Vec::<i64>::new())
                    .bind(Vec::<String>::new())
                    .bind(Vec::<String>::new());
                bind_archive(query, rows).execute(pool).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_placeholders_are_numbered_in_order() {
        assert_eq!(
            numbered("a = ? AND (b, c) < (?, ?)"),
            "a = $1 AND (b, c) < ($2, $3)"
        );
    }
}
