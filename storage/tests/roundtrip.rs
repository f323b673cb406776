//! Append / read / recover round trips on both backends: what is appended reads back exactly,
//! recovery rebuilds the same engine, and snapshot + tail equals a full replay.

mod common;

use std::sync::Arc;

use common::{fresh_store, market_events};
use gavel_engine::EngineConfig;
use gavel_storage::{
    JournalHandle, StorageError, StoredEvent, StoredSnapshot, WriterStats, encode_snapshot, recover,
};

const BACKENDS: [&str; 2] = ["sqlite", "postgres"];

#[tokio::test]
async fn appended_events_read_back_in_order_on_both_backends() {
    let (_, events) = market_events(20);
    for backend in BACKENDS {
        let store = fresh_store(backend, "append").await;
        assert_eq!(
            store.latest_seq().await.unwrap(),
            0,
            "{backend}: a new journal is empty"
        );
        let rows: Vec<StoredEvent> = events
            .iter()
            .map(|(seq, e)| StoredEvent::encode(*seq, e))
            .collect();
        for chunk in rows.chunks(7) {
            store.append(chunk).await.unwrap();
        }
        assert_eq!(
            store.latest_seq().await.unwrap(),
            rows.len() as u64,
            "{backend}"
        );
        let mut read = Vec::new();
        let mut after = 0;
        loop {
            let page = store.read_after(after, 11).await.unwrap();
            let Some(last) = page.last() else { break };
            after = last.seq;
            read.extend(page);
        }
        assert_eq!(read, rows, "{backend}: the journal reads back exactly");
        let decoded: Vec<_> = read.iter().map(|r| r.decode().unwrap()).collect();
        let original: Vec<_> = events.iter().map(|(_, e)| e.clone()).collect();
        assert_eq!(decoded, original, "{backend}");
        assert_eq!(
            read[0].kind, "coach_upserted",
            "{backend}: the kind column names the event"
        );
    }
}

#[tokio::test]
async fn a_position_is_written_once() {
    let (_, events) = market_events(1);
    for backend in BACKENDS {
        let store = fresh_store(backend, "once").await;
        let first = StoredEvent::encode(events[0].0, &events[0].1);
        store.append(std::slice::from_ref(&first)).await.unwrap();
        let again = store
            .append(&[first.clone(), StoredEvent::encode(2, &events[1].1)])
            .await;
        assert!(
            matches!(again, Err(StorageError::Database(_))),
            "{backend}: duplicate seq refused"
        );
        assert_eq!(
            store.latest_seq().await.unwrap(),
            1,
            "{backend}: the failed batch left nothing"
        );
    }
}

/// A batch that fails after some of its statements ran (SQLite runs a batch's statements one
/// after another in one transaction — a small batch as one message, a large one a statement
/// at a time; here its last journal `INSERT` repeats a `seq`) leaves nothing behind — no
/// journal row, no index row, no index position — holds no lock, and the next batch commits.
#[tokio::test]
async fn a_batch_failing_in_a_later_statement_leaves_nothing_and_the_next_commits() {
    let (_, events) = market_events(30);
    let rows: Vec<StoredEvent> = events
        .iter()
        .map(|(seq, e)| StoredEvent::encode(*seq, e))
        .collect();
    assert!(rows.len() > 70, "enough events for two journal statements");
    // 4 new rows then a repeated one (one message: statements of 4 rows and 1), and 64 new
    // rows then a repeated one (a statement at a time: 64 rows and 1).
    for new_rows in [4, 64] {
        for backend in BACKENDS {
            let label = format!("{backend}, {new_rows} new rows");
            let store = fresh_store(backend, "later").await;
            store.append(&rows[..3]).await.unwrap();
            let indexed = store.task_index_seq().await.unwrap();
            let mut failing = rows[3..3 + new_rows].to_vec();
            failing.push(rows[2].clone());
            let refused = store.append(&failing).await;
            assert!(
                matches!(refused, Err(StorageError::Database(_))),
                "{label}: duplicate seq refused: {refused:?}"
            );
            assert_eq!(store.latest_seq().await.unwrap(), 3, "{label}: no row");
            assert_eq!(
                store.task_index_seq().await.unwrap(),
                indexed,
                "{label}: the index position did not move"
            );
            let task = rows[3..3 + new_rows]
                .iter()
                .find_map(|r| r.task_id().unwrap());
            let task = task.expect("the batch carried task events");
            let listed = store
                .indexed_task_events(task.as_str(), 0, 1_000, 1_000)
                .await
                .unwrap();
            assert!(
                listed.iter().all(|r| r.seq <= 3),
                "{label}: no index row of the failed batch: {listed:?}"
            );
            store.append(&rows[3..]).await.unwrap();
            assert_eq!(store.latest_seq().await.unwrap(), rows.len() as u64);
            assert_eq!(
                store.task_index_seq().await.unwrap(),
                rows.len() as u64,
                "{label}: the next batch moved the index position"
            );
        }
    }
}

#[tokio::test]
async fn the_epoch_is_created_once_and_kept() {
    let dir = common::fresh_dir("epoch");
    let store = gavel_storage::Store::open_sqlite(&dir).await.unwrap();
    let epoch = store.epoch().await.unwrap();
    assert_eq!(epoch.len(), 16);
    drop(store);
    let reopened = gavel_storage::Store::open_sqlite(&dir).await.unwrap();
    assert_eq!(reopened.epoch().await.unwrap(), epoch);
    let other = fresh_store("postgres", "epoch").await;
    assert_ne!(
        other.epoch().await.unwrap(),
        epoch,
        "each store has its own epoch"
    );
    assert_eq!(other.epoch().await.unwrap(), other.epoch().await.unwrap());
}

#[tokio::test]
async fn recovery_rebuilds_the_engine_and_snapshot_plus_tail_equals_full_replay() {
    let (engine, events) = market_events(30);
    for backend in BACKENDS {
        let store = fresh_store(backend, "recover").await;
        let rows: Vec<StoredEvent> = events
            .iter()
            .map(|(seq, e)| StoredEvent::encode(*seq, e))
            .collect();
        store.append(&rows).await.unwrap();

        let (full, report) = recover(&store, EngineConfig::default()).await.unwrap();
        assert_eq!(report.snapshot_seq, 0);
        assert_eq!(report.replayed, rows.len() as u64);
        assert_eq!(
            full.state(),
            engine.state(),
            "{backend}: full replay equals the live engine"
        );

        // A snapshot in the middle, then recovery from it plus the tail.
        let (mid_engine, _) = market_events(12);
        let snapshot = mid_engine.snapshot();
        let at = snapshot.state.now;
        store
            .write_snapshot(&StoredSnapshot {
                seq: mid_engine.seq(),
                at,
                state: encode_snapshot(&snapshot),
            })
            .await
            .unwrap();
        let (from_snapshot, report) = recover(&store, EngineConfig::default()).await.unwrap();
        assert_eq!(report.snapshot_seq, mid_engine.seq());
        assert_eq!(report.replayed, rows.len() as u64 - mid_engine.seq());
        assert_eq!(
            from_snapshot.state(),
            engine.state(),
            "{backend}: snapshot + tail equals full replay"
        );
        from_snapshot.check_invariants().unwrap();

        // A damaged snapshot is refused with the reason, never loaded (the tail is read
        // meanwhile, and thrown away).
        let mut damaged = encode_snapshot(&snapshot);
        let last = damaged.len() - 1;
        damaged[last] ^= 0x5a;
        store
            .write_snapshot(&StoredSnapshot {
                seq: mid_engine.seq() + 1,
                at,
                state: damaged,
            })
            .await
            .unwrap();
        let refused = recover(&store, EngineConfig::default()).await.err();
        let message = refused.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            message.contains(&format!("snapshot at seq {}", mid_engine.seq() + 1))
                && message.contains("checksum mismatch"),
            "{backend}: {message}"
        );
    }
}

#[tokio::test]
async fn old_snapshots_are_pruned_and_the_latest_kept() {
    for backend in BACKENDS {
        let store = fresh_store(backend, "prune").await;
        for seq in [10, 20, 30, 40] {
            store
                .write_snapshot(&StoredSnapshot {
                    seq,
                    at: seq,
                    state: vec![seq as u8],
                })
                .await
                .unwrap();
        }
        assert_eq!(store.prune_snapshots(2).await.unwrap(), 2, "{backend}");
        let latest = store.latest_snapshot().await.unwrap().unwrap();
        assert_eq!((latest.seq, latest.state), (40, vec![40]), "{backend}");
    }
}

#[tokio::test]
async fn the_writer_commits_concurrent_batches_and_refuses_gaps() {
    let (_, events) = market_events(40);
    for backend in BACKENDS {
        let store = fresh_store(backend, "writer").await;
        let stats = Arc::new(WriterStats::default());
        let journal = JournalHandle::spawn(store.clone(), 0, stats.clone());
        // Queue every batch without waiting (as the pipelined engine does), then wait for all.
        let waits: Vec<_> = events
            .chunks(3)
            .map(|chunk| journal.try_append(Arc::new(chunk.to_vec())).unwrap())
            .collect();
        for wait in waits {
            wait.await.unwrap().unwrap();
        }
        let n = events.len() as u64;
        assert_eq!(journal.durable(), n, "{backend}");
        assert_eq!(store.latest_seq().await.unwrap(), n, "{backend}");
        let commits = stats.commits.load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            commits <= events.chunks(3).count() as u64,
            "{backend}: never more commits than batches"
        );

        let gap = Arc::new(vec![(n + 2, events[0].1.clone())]);
        let refused = journal.append(gap).await;
        assert!(
            matches!(refused, Err(StorageError::OutOfOrder { durable, got }) if durable == n && got == n + 2),
            "{backend}"
        );
        assert_eq!(
            store.latest_seq().await.unwrap(),
            n,
            "{backend}: nothing written"
        );
    }
}
