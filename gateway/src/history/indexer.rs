//! The task index's catch-up at start-up. Each journal append indexes its own batch in its
//! transaction (`gavel_storage::task_events`); a journal written before that (or by an older
//! binary) has its index position behind the journal's end, and this task indexes from there
//! to the end, a page per transaction ([`Store::task_index_catch_up`]), then stops: nothing
//! polls once the index is caught up. A row that cannot be decoded is reported and passed
//! over (as every history leaves it out). Only the node that writes the journal runs it.

use std::time::Duration;

use gavel_storage::Store;
use gavel_storage::task_events::CATCH_UP_PAGE;
use tokio::sync::watch;

/// Runs until the index has reached the journal's end, or `stop` turns true.
pub async fn run(store: Store, mut stop: watch::Receiver<bool>) {
    let mut pages = 0u64;
    let mut upto = None;
    while !*stop.borrow() {
        match store.task_index_catch_up(CATCH_UP_PAGE).await {
            Ok(Some(seq)) => {
                pages += 1;
                upto = Some(seq);
            }
            Ok(None) => {
                if let Some(seq) = upto {
                    tracing::info!(seq, pages, "task index caught up with the journal");
                }
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "task index: catch-up failed; retrying");
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
