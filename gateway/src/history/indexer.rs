//! The task index's writer: reads the journal after the index's position, records the
//! `(task_id, seq)` of every event with a `task:<id>` delivery, and moves the position, in one
//! transaction per page. It starts wherever the index stands (0 on a journal written before the
//! index existed, which it then indexes from the start); a row that cannot be decoded is
//! reported and passed over (see [`super::decoded`]).

use std::time::Duration;

use gavel_storage::Store;
use tokio::sync::watch;

use super::decoded;

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
        let rows: Vec<(String, u64)> = page
            .iter()
            .filter_map(|row| decoded(row).map(|(id, _)| (id.to_string(), row.seq)))
            .collect();
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
