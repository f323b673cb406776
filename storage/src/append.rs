//! The one Postgres statement that appends a batch: its journal rows, the archive rows its
//! `tasks_archived` events carry, and its task-index rows with the index's new position — all
//! or nothing, one commit (one fsync), so neither the archive nor the index ever runs ahead of
//! or behind the journal. A cluster leader's variant also checks its lease (0 rows: fenced).
//!
//! Parameters: `$1`–`$4` the journal's arrays, then `$5`–`$15` the archive's (only when the
//! batch carries archive rows), then the index's four ([`crate::task_events`]), then the epoch.

use std::sync::LazyLock;

use sqlx::postgres::{PgArguments, Postgres};
use sqlx::query::Query;

use crate::archive::{ArchiveRow, bind_archive, postgres_archive_ctes};
use crate::store::StoredEvent;
use crate::task_events::{BatchIndex, bind_index, postgres_index_ctes};

/// The batch's statement, answering how many journal rows it wrote; with `epoch`, only while
/// that lease is live (0 rows: fenced, nothing written).
pub(crate) fn postgres_append<'q>(
    events: &'q [StoredEvent],
    archive: &'q [ArchiveRow],
    index: &'q BatchIndex,
    epoch: Option<u64>,
) -> Query<'q, Postgres, PgArguments> {
    let sql: &'static str = match (archive.is_empty(), epoch.is_some()) {
        (true, false) => &APPEND,
        (true, true) => &FENCED_APPEND,
        (false, false) => &ARCHIVE_APPEND,
        (false, true) => &FENCED_ARCHIVE_APPEND,
    };
    let query = sqlx::query(sql)
        .bind(events.iter().map(|e| e.seq as i64).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.at as i64).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>())
        .bind(
            events
                .iter()
                .map(|e| e.payload.as_str())
                .collect::<Vec<_>>(),
        );
    let query = if archive.is_empty() {
        query
    } else {
        bind_archive(query, archive)
    };
    let query = bind_index(query, index);
    match epoch {
        Some(epoch) => query.bind(epoch as i64),
        None => query,
    }
}

static APPEND: LazyLock<String> = LazyLock::new(|| append_sql(false, false));
static FENCED_APPEND: LazyLock<String> = LazyLock::new(|| append_sql(false, true));
static ARCHIVE_APPEND: LazyLock<String> = LazyLock::new(|| append_sql(true, false));
static FENCED_ARCHIVE_APPEND: LazyLock<String> = LazyLock::new(|| append_sql(true, true));

/// The statement's text: the journal insert (fenced or not), then the archive's and the
/// index's inserts, each guarded on the journal rows having been written.
fn append_sql(archive: bool, fenced: bool) -> String {
    let index_base = if archive { 16 } else { 5 };
    let epoch = index_base + 4;
    let fence = if fenced {
        format!(
            "WHERE EXISTS (SELECT 1 FROM cluster_lease \
             WHERE id = 1 AND epoch = ${epoch} AND expires_at > now() FOR SHARE)"
        )
    } else {
        String::new()
    };
    let guard = "WHERE EXISTS (SELECT 1 FROM j)";
    let mut ctes = vec![format!(
        "j AS (INSERT INTO journal (seq, at, kind, payload) \
         SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[]) {fence} \
         RETURNING seq)"
    )];
    if archive {
        ctes.push(postgres_archive_ctes(guard));
    }
    ctes.push(postgres_index_ctes(index_base, guard));
    format!("WITH {} SELECT count(*) FROM j", ctes.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `$n` of a statement, in order of first appearance.
    fn params(sql: &str) -> Vec<usize> {
        let mut seen = Vec::new();
        for part in sql.split('$').skip(1) {
            let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
            let n: usize = digits.parse().expect("a numbered parameter");
            if !seen.contains(&n) {
                seen.push(n);
            }
        }
        seen.sort_unstable();
        seen
    }

    #[test]
    fn each_variant_numbers_its_parameters_without_a_gap() {
        for (archive, fenced, count) in [
            (false, false, 8),
            (false, true, 9),
            (true, false, 19),
            (true, true, 20),
        ] {
            let sql = append_sql(archive, fenced);
            assert_eq!(
                params(&sql),
                (1..=count).collect::<Vec<_>>(),
                "archive {archive}, fenced {fenced}: {sql}"
            );
        }
    }
}
