//! Each task's history (`GET /v1/tasks/{id}/events`): every event an admin subscribed to
//! `task:<id>` receives, from the journal, also long after the task left memory.
//!
//! - [`indexer`] — a follower of the journal that records `(task_id, seq)` rows (only the node
//!   that writes the journal runs it);
//! - [`task_history`] — a page of one task's events: the indexed ones, then the journal's tail
//!   the indexer has not reached yet, so an answer never misses a durable event.

pub mod indexer;

use gavel_engine::routing::deliveries;
use gavel_protocol::http::HistoryEvent;
use gavel_protocol::{Seq, TaskId, Topic};
use gavel_storage::{StorageError, Store, StoredEvent};

/// Most events one page holds.
pub const MAX_PAGE: u32 = 1000;
/// Journal rows read at a time when scanning the tail past the index.
const TAIL_PAGE: u32 = 1000;

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

/// Up to `limit` events of `task_id` after `after`, oldest first, and the `after` of the next
/// page (`None`: nothing more up to the journal's end when asked).
pub async fn task_history(
    store: &Store,
    task_id: &TaskId,
    after: Seq,
    limit: u32,
) -> Result<(Vec<HistoryEvent>, Option<Seq>), StorageError> {
    let limit = limit.clamp(1, MAX_PAGE) as usize;
    // Read the journal's end first: everything up to it is indexed or in the tail below.
    let end = store.latest_seq().await?;
    let indexed = store.task_index_seq().await?.min(end);
    let mut events = Vec::new();
    for row in store
        .indexed_task_events(task_id.as_str(), after, indexed, limit as u32 + 1)
        .await?
    {
        if let Some((_, event)) = task_event(&row)? {
            events.push(HistoryEvent {
                seq: row.seq,
                event,
            });
        }
    }
    let mut cursor = after.max(indexed);
    while events.len() <= limit && cursor < end {
        let page = store.read_after(cursor, TAIL_PAGE).await?;
        if page.is_empty() {
            break;
        }
        for row in page.iter().take_while(|r| r.seq <= end) {
            if let Some((id, event)) = task_event(row)?
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
        return Ok((events, next));
    }
    Ok((events, None))
}
