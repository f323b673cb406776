//! The follower that keeps the journal's `seeker:`/`coach:` index (`gavel_storage::watcher_events`)
//! moments behind the journal: a step indexes the rows after its position, a page per
//! transaction ([`Store::watcher_index_step`]), then it looks again after [`FOLLOW_EVERY`]. It
//! runs off the append path — the index was too dear to write with each commit — so a resume
//! on such a topic reads the index up to its position and the journal's last moments after it.
//! An idle journal costs one read that finds nothing per look. Only the node that writes the
//! journal runs it; a journal it has never seen (an upgrade) is indexed from the start, in the
//! background, meanwhile resumes read the journal where the index has not reached.

use std::time::Duration;

use gavel_storage::Store;
use gavel_storage::watcher_events::WATCHER_PAGE;
use tokio::sync::watch;

use super::indexer::pause;

/// How long the follower waits, once it has reached the journal's end, before it looks again.
pub const FOLLOW_EVERY: Duration = Duration::from_millis(500);

/// Runs until `stop` turns true.
pub async fn run(store: Store, mut stop: watch::Receiver<bool>) {
    let mut position = loop {
        match store.watcher_index_seq().await {
            Ok(seq) => break seq,
            Err(e) => {
                tracing::warn!(error = %e, "watcher index: reading its position failed; retrying");
                if pause(&mut stop, Duration::from_secs(1)).await {
                    return;
                }
            }
        }
    };
    while !*stop.borrow() {
        match store.watcher_index_step(position, WATCHER_PAGE).await {
            Ok(Some(last)) => position = last,
            Ok(None) => {
                if pause(&mut stop, FOLLOW_EVERY).await {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "watcher index: a step failed; retrying");
                if pause(&mut stop, Duration::from_secs(1)).await {
                    return;
                }
            }
        }
    }
}
