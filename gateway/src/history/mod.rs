//! Each task's history (`GET /v1/tasks/{id}/events`): every event an admin subscribed to
//! `task:<id>` receives, from the journal, also long after the task left memory.
//!
//! - the index itself — `(task_id, seq)` rows written by each journal append in its own
//!   transaction (`gavel_storage::task_events`), so it keeps up with the journal without a
//!   follower;
//! - [`indexer`] — the catch-up at start-up of a journal whose index is behind (written before
//!   the index, or by an older binary), which stops at the journal's end (only the node that
//!   writes the journal runs it);
//! - [`task_history`] — a page of one task's events: the indexed ones, then the journal's tail
//!   past the index position (normally empty; a journal still being caught up), so an answer
//!   never misses a durable event.
//!
//! A journal row that cannot be decoded is reported and left out of every history (as the
//! publisher leaves it out of every stream), never a reason to stop.

pub mod indexer;

use gavel_engine::routing::deliveries;
use gavel_protocol::http::HistoryEvent;
use gavel_protocol::{Seq, TaskId, Topic};
use gavel_storage::{StorageError, Store, StoredEvent};

/// Most events one page holds.
pub const MAX_PAGE: u32 = 1000;
/// Journal rows read at a time when scanning the tail past the index.
const TAIL_PAGE: u32 = 1000;
/// History answers reading storage at once: they share the pool with the journal writer.
pub const CONCURRENT_READS: usize = 2;

/// The task-topic event of a journal row and the task it is about, if it has one.
pub fn task_event(
    row: &StoredEvent,
) -> Result<Option<(TaskId, gavel_protocol::Event)>, StorageError> {
    let event = row.decode()?;
    Ok(deliveries(&event).into_iter().find_map(|d| match d.topic {
        Topic::Task(id) => Some((id, d.event)),
        _ => None,
    }))
}

/// Journal rows one answer scans past the index at most (the tail is normally empty; while a
/// journal is first caught up it is the whole journal, read a slice per answer).
const TAIL_BUDGET: usize = 10_000;

/// A page of one task's history.
#[derive(Debug)]
pub struct HistoryPage {
    pub events: Vec<HistoryEvent>,
    /// The `after` of the next page, `None` when this one reaches `upto`.
    pub next: Option<Seq>,
    /// The journal position the answer covers: every event of the task up to it is in this
    /// page or an earlier one (`next` is `None`); a subscription resumes from here.
    pub upto: Seq,
}

/// Up to `limit` events of `task_id` after `after`, oldest first, up to the journal's end or
/// `cap` (the asking node's own position), whichever is lower.
pub async fn task_history(
    store: &Store,
    task_id: &TaskId,
    after: Seq,
    limit: u32,
    cap: Seq,
) -> Result<HistoryPage, StorageError> {
    let limit = limit.clamp(1, MAX_PAGE) as usize;
    // Read the journal's end first: everything up to it is indexed or in the tail below.
    let end = store.latest_seq().await?.min(cap);
    let indexed = store.task_index_seq().await?.min(end);
    let mut events = Vec::new();
    for row in store
        .indexed_task_events(task_id.as_str(), after, indexed, limit as u32 + 1)
        .await?
    {
        if let Some((_, event)) = decoded(&row) {
            events.push(HistoryEvent {
                seq: row.seq,
                event,
            });
        }
    }
    let mut cursor = after.max(indexed);
    let mut scanned = 0;
    while events.len() <= limit && cursor < end {
        if scanned >= TAIL_BUDGET {
            // Enough for one answer: the next page goes on from here.
            return Ok(HistoryPage {
                events,
                next: Some(cursor),
                upto: end,
            });
        }
        let page = store.read_after(cursor, TAIL_PAGE).await?;
        if page.is_empty() {
            break;
        }
        for row in page.iter().take_while(|r| r.seq <= end) {
            scanned += 1;
            if let Some((id, event)) = decoded(row)
                && id == *task_id
            {
                events.push(HistoryEvent {
                    seq: row.seq,
                    event,
                });
            }
            cursor = row.seq;
        }
        if page.last().is_some_and(|r| r.seq >= end) {
            break;
        }
    }
    if events.len() > limit {
        events.truncate(limit);
        let next = events.last().map(|e| e.seq);
        return Ok(HistoryPage {
            events,
            next,
            upto: end,
        });
    }
    Ok(HistoryPage {
        events,
        next: None,
        upto: end,
    })
}

/// [`task_event`], with a row that cannot be decoded reported and left out (as the publisher
/// does): one bad row must not take every task's history down with it.
pub(crate) fn decoded(row: &StoredEvent) -> Option<(TaskId, gavel_protocol::Event)> {
    match task_event(row) {
        Ok(found) => found,
        Err(e) => {
            tracing::error!(seq = row.seq, error = %e, "task history: a journal row cannot be decoded; left out");
            None
        }
    }
}
