//! The task index's writer: reads the journal after the index's position, records the
//! `(task_id, seq)` of every event with a `task:<id>` delivery, and moves the position, in one
//! transaction per page. It starts wherever the index stands (0 on a journal written before the
//! index existed, which it then indexes from the start) and never skips a row.

use std::time::Duration;

use gavel_storage::Store;
use tokio::sync::watch;

use super::task_event;

/// Journal rows indexed per transaction.
const PAGE: u32 = 1000;
/// How long to wait for new rows when the index is at the journal's end.
const IDLE_POLL: Duration = Duration::from_millis(200);

/// Runs until `stop` turns true.
pub async fn run(store: Store, mut stop: watch::Receiver<bool>) {
    let mut cursor = loop {
        match store.task_index_seq().await {
            Ok(seq) => break seq,
            Err(e) => {
                tracing::warn!(error = %e, "task index: its position could not be read");
                if pause(&mut stop, Duration::from_secs(1)).await {
                    return;
                }
            }
        }
    };
    while !*stop.borrow() {
        let page = match store.read_after(cursor, PAGE).await {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(error = %e, "task index: the journal could not be read");
                if pause(&mut stop, Duration::from_secs(1)).await {
                    return;
                }
                continue;
            }
        };
        let Some(last) = page.last().map(|r| r.seq) else {
            if pause(&mut stop, IDLE_POLL).await {
                return;
            }
            continue;
        };
        let rows: Result<Vec<(String, u64)>, _> = page
            .iter()
            .filter_map(|row| match task_event(row) {
                Ok(Some((id, _))) => Some(Ok((id.to_string(), row.seq))),
                Ok(None) => None,
                Err(e) => Some(Err(e)),
            })
            .collect();
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) => {
                // Never skipped (a task would lose an event of its history): read again later.
                tracing::error!(error = %e, "task index: stuck at a journal row that cannot be decoded");
                if pause(&mut stop, Duration::from_secs(5)).await {
                    return;
                }
                continue;
            }
        };
        match store.index_task_events(&rows, last).await {
            Ok(()) => cursor = last,
            Err(e) => {
                tracing::warn!(error = %e, "task index: rows could not be written");
                if pause(&mut stop, Duration::from_secs(1)).await {
                    return;
                }
            }
        }
    }
}

/// Sleeps `d`; true when the server is stopping.
async fn pause(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}
