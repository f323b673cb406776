//! The task index (`task_events`, `task_index`) on both backends: a batch's rows and the
//! position land in the append's own transaction (or not at all), a journal whose index was
//! left behind is caught up without a hole — also while appends go on — and the position
//! never passes a row that is not indexed.

mod common;

use std::time::Duration;

use common::{fresh_store, market_events};
use gavel_engine::Event;
use gavel_engine::routing::deliveries;
use gavel_protocol::{Seq, Topic};
use gavel_storage::{RowTask, StorageError, Store, StoredEvent};

const BACKENDS: [&str; 2] = ["sqlite", "postgres"];

/// The index rows a journal of `events` must have, worked out from the deliveries themselves.
fn expected(events: &[(Seq, Event)]) -> Vec<(String, i64)> {
    events
        .iter()
        .filter_map(|(seq, e)| {
            deliveries(e).into_iter().find_map(|d| match d.topic {
                Topic::Task(id) => Some((id.to_string(), *seq as i64)),
                _ => None,
            })
        })
        .collect()
}

/// Every `(task_id, seq)` row of the index, by `seq`.
async fn index_rows(store: &Store) -> Vec<(String, i64)> {
    const SQL: &str = "SELECT task_id, seq FROM task_events ORDER BY seq, task_id";
    match store {
        Store::Sqlite(pool) => sqlx::query_as(SQL).fetch_all(pool).await.unwrap(),
        Store::Postgres(pool) => sqlx::query_as(SQL).fetch_all(pool).await.unwrap(),
    }
}

/// What a binary from before the index in the append wrote: journal rows only.
async fn old_binary_append(store: &Store, rows: &[StoredEvent]) {
    for r in rows {
        let (seq, at) = (r.seq as i64, r.at as i64);
        match store {
            Store::Sqlite(pool) => {
                sqlx::query("INSERT INTO journal (seq, at, kind, payload) VALUES (?, ?, ?, ?)")
                    .bind(seq)
                    .bind(at)
                    .bind(&r.kind)
                    .bind(&r.payload)
                    .execute(pool)
                    .await
                    .unwrap();
            }
            Store::Postgres(pool) => {
                sqlx::query("INSERT INTO journal (seq, at, kind, payload) VALUES ($1, $2, $3, $4)")
                    .bind(seq)
                    .bind(at)
                    .bind(&r.kind)
                    .bind(&r.payload)
                    .execute(pool)
                    .await
                    .unwrap();
            }
        }
    }
}

fn encoded(events: &[(Seq, Event)]) -> Vec<StoredEvent> {
    events
        .iter()
        .map(|(seq, e)| StoredEvent::encode(*seq, e))
        .collect()
}

/// Every indexed row at or below the position is there, and nothing else is.
async fn assert_no_hole(store: &Store, events: &[(Seq, Event)], what: &str) -> Seq {
    let at = store.task_index_seq().await.unwrap();
    let rows = index_rows(store).await;
    let below: Vec<_> = rows
        .iter()
        .filter(|(_, s)| *s as Seq <= at)
        .cloned()
        .collect();
    let want: Vec<_> = expected(events)
        .into_iter()
        .filter(|(_, s)| *s as Seq <= at)
        .collect();
    assert_eq!(below, want, "{what}: the index up to its position {at}");
    let all = expected(events);
    assert!(
        rows.iter().all(|r| all.contains(r)),
        "{what}: no row the journal does not call for"
    );
    at
}

#[tokio::test]
async fn appending_a_batch_indexes_its_task_events_in_the_same_transaction() {
    let (_, events) = market_events(6);
    for backend in BACKENDS {
        let store = fresh_store(backend, "index_append").await;
        let mut rows = encoded(&events);
        // Rows read back or received from a leader carry no task: the append decodes them.
        for row in rows.iter_mut().skip(10).take(5) {
            row.task = RowTask::Unknown;
        }
        for chunk in rows.chunks(4) {
            store.append(chunk).await.unwrap();
            let last = chunk.last().unwrap().seq;
            assert_eq!(
                store.task_index_seq().await.unwrap(),
                last,
                "{backend}: the position moves with each batch"
            );
        }
        assert_eq!(index_rows(&store).await, expected(&events), "{backend}");

        // A batch refused (a position written before) leaves neither rows nor position.
        let (before_rows, before_at) = (index_rows(&store).await, rows.last().unwrap().seq);
        let (_, more) = market_events(7);
        let next = StoredEvent::encode(before_at + 1, &more[more.len() - 1].1);
        let refused = store.append(&[rows[0].clone(), next]).await;
        assert!(
            matches!(refused, Err(StorageError::Database(_))),
            "{backend}"
        );
        assert_eq!(index_rows(&store).await, before_rows, "{backend}: no row");
        assert_eq!(
            store.task_index_seq().await.unwrap(),
            before_at,
            "{backend}"
        );
    }
}

#[tokio::test]
async fn a_fenced_append_indexes_with_its_journal_rows_or_not_at_all() {
    let (_, events) = market_events(4);
    let store = fresh_store("postgres", "index_fenced").await;
    let epoch = store
        .lease_acquire("n1", "127.0.0.1:1", Duration::from_secs(30))
        .await
        .unwrap()
        .expect("a free lease");
    let rows = encoded(&events);
    let (first, rest) = rows.split_at(rows.len() / 2);
    store.append_fenced(first, epoch).await.unwrap();
    let at = first.last().unwrap().seq;
    assert_eq!(store.task_index_seq().await.unwrap(), at);
    assert_eq!(index_rows(&store).await, expected(&events[..first.len()]));

    let fenced = store.append_fenced(rest, epoch + 1).await;
    assert!(
        matches!(fenced, Err(StorageError::Fenced { .. })),
        "{fenced:?}"
    );
    assert_eq!(store.task_index_seq().await.unwrap(), at, "fenced: no move");
    assert_eq!(index_rows(&store).await, expected(&events[..first.len()]));
    assert_eq!(store.latest_seq().await.unwrap(), at);

    store.append_fenced(rest, epoch).await.unwrap();
    assert_eq!(
        store.task_index_seq().await.unwrap(),
        rows.last().unwrap().seq
    );
    assert_eq!(index_rows(&store).await, expected(&events));
}

/// A journal partly written by an older binary (no index rows, the position left behind): new
/// appends index their rows but do not move the position past the gap; the start-up catch-up,
/// run while appends go on, leaves every row indexed and the position at the journal's end,
/// never past an unindexed row on the way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_left_behind_is_caught_up_at_start_without_a_hole() {
    let (_, events) = market_events(40);
    for backend in BACKENDS {
        let store = fresh_store(backend, "index_catch_up").await;
        let rows = encoded(&events);
        let (a, rest) = rows.split_at(12);
        let (b, rest) = rest.split_at(30);
        let (c, rest) = rest.split_at(9);
        store.append(a).await.unwrap();
        old_binary_append(&store, b).await;
        store.append(c).await.unwrap();
        let stuck = assert_no_hole(&store, &events, backend).await;
        assert_eq!(stuck, a.last().unwrap().seq, "{backend}: held at the gap");

        // The rest is appended while the catch-up runs, in small pages.
        let appender = {
            let (store, rest) = (store.clone(), rest.to_vec());
            tokio::spawn(async move {
                for chunk in rest.chunks(3) {
                    store.append(chunk).await.unwrap();
                    tokio::task::yield_now().await;
                }
            })
        };
        let mut steps = 0;
        while let Some(upto) = store.task_index_catch_up(7).await.unwrap() {
            steps += 1;
            let at = assert_no_hole(&store, &events, backend).await;
            assert!(at >= upto, "{backend}: the position never goes back");
        }
        assert!(steps > 0, "{backend}: the catch-up had work");
        appender.await.unwrap();
        let end = store.latest_seq().await.unwrap();
        assert_eq!(end, rows.len() as Seq);
        assert_eq!(
            assert_no_hole(&store, &events, backend).await,
            end,
            "{backend}: the appends carried the position on to the end"
        );
        assert_eq!(index_rows(&store).await, expected(&events), "{backend}");

        // A dropped index (a journal from before the index) is rebuilt from 0.
        store.task_index_reset().await.unwrap();
        while store.task_index_catch_up(1000).await.unwrap().is_some() {}
        assert_eq!(store.task_index_seq().await.unwrap(), end, "{backend}");
        assert_eq!(index_rows(&store).await, expected(&events), "{backend}");
        assert!(store.task_index_catch_up(1000).await.unwrap().is_none());
    }
}

/// A task's indexed rows and their count, read back (a `task:<id>` resume's reads): exactly the
/// journal rows delivered to `task:<id>`, in order, in pages, bounded by the range and the cap.
#[tokio::test]
async fn a_tasks_events_and_their_count_are_read_through_the_index() {
    let (_, events) = market_events(6);
    for backend in BACKENDS {
        let store = fresh_store(backend, "index_read").await;
        store.append(&encoded(&events)).await.unwrap();
        let end = store.latest_seq().await.unwrap();
        for task in ["t_1", "t_4"] {
            let topic = Topic::Task(gavel_protocol::TaskId::new(task).unwrap());
            let want: Vec<Seq> = events
                .iter()
                .filter(|(_, e)| deliveries(e).iter().any(|d| d.topic == topic))
                .map(|(seq, _)| *seq)
                .collect();
            assert!(want.len() > 2, "{backend} {topic}: the fixture reaches it");
            let mut read = Vec::new();
            let mut after = 0;
            loop {
                let page = store
                    .indexed_task_events(task, after, end, 2)
                    .await
                    .unwrap();
                assert!(page.len() <= 2);
                let Some(last) = page.last() else { break };
                after = last.seq;
                read.extend(page.iter().map(|r| r.seq));
            }
            assert_eq!(read, want, "{backend} {topic}: every row, in order");
            let upto = want[want.len() - 2];
            let counted =
                |after, upto, cap| store.count_indexed_task_events(task, after, upto, cap);
            assert_eq!(counted(0, end, 1000).await.unwrap(), want.len() as u64);
            assert_eq!(
                counted(want[0], upto, 1000).await.unwrap(),
                want.len() as u64 - 2
            );
            assert_eq!(counted(0, end, 2).await.unwrap(), 2, "{backend}: the cap");
        }
    }
}
