//! Reads of the task archive (contract §9), taken by the publisher once the batch they were
//! decided in is durable — so every archive row at or before the decision's position is in
//! storage — and served off the publisher, on their own task.
//!
//! - `list_tasks`: the live page the engine cut, merged with the archive's page.
//! - `subscribe task:<id>` to a task that has left memory: its final view, `archived: true`;
//!   no live events follow (nothing is registered).

use std::sync::Arc;

use gavel_engine::listing::{ListKey, ListQuery, merge_pages};
use gavel_engine::{Actor, Rejection};
use gavel_protocol::views::{Snapshot, SubscribeResult, TaskView};
use gavel_protocol::{ErrorCode, RequestId, Role, Seq, TaskId, Topic};
use gavel_storage::Store;
use tokio::sync::Semaphore;

use crate::durability::replies::{error_frame, ok_value_frame};
use crate::fanout::outbox::ConnHandle;
use crate::metrics::Metrics;
use crate::sequencer::handle::unavailable;

/// One archive read, decided by the engine task at position `after`.
#[derive(Debug)]
pub enum ArchiveRead {
    ListTasks {
        query: ListQuery,
        /// The matching tasks in memory at `after` (at most a page and one).
        live: Vec<(ListKey, TaskView)>,
    },
    /// A `subscribe` to a task id the engine knows was archived.
    Task {
        actor: Actor,
        task_id: TaskId,
        /// The subscribe carried `since`: the snapshot comes with `reset: true`.
        resumed: bool,
    },
}

/// Where the answer goes.
#[derive(Debug)]
pub struct ArchiveReply {
    pub conn: ConnHandle,
    pub id: Option<RequestId>,
}

impl ArchiveReply {
    fn refuse(self, rejection: &Rejection) {
        self.conn.send(error_frame(self.id, rejection, None));
    }
}

/// What an archive read needs besides the read itself.
#[derive(Debug, Clone)]
pub struct ArchiveReader {
    pub store: Store,
    pub epoch: String,
    /// Bounds how many archive reads run at once (shared with the journal's catch-up reads).
    pub reads: Arc<Semaphore>,
    pub metrics: Arc<Metrics>,
}

/// Serves one read against the archive. `list_tasks` is counted in
/// `gavel_commands_total{type="list_tasks"}` like every command.
pub async fn serve(reader: ArchiveReader, after: Seq, read: ArchiveRead, to: ArchiveReply) {
    let ArchiveReader {
        store,
        epoch,
        reads,
        metrics,
    } = reader;
    let Ok(_permit) = reads.acquire().await else {
        return;
    };
    match read {
        ArchiveRead::ListTasks { query, live } => {
            let outcome = match store.list_archived(&query, after).await {
                Ok(archived) => {
                    if let Some(id) = to.id {
                        let page = merge_pages(live, archived, query.limit);
                        to.conn.send(ok_value_frame(id, &page));
                    }
                    "ok"
                }
                Err(e) => {
                    tracing::warn!(error = %e, "list_tasks: the archive could not be read");
                    to.refuse(&unavailable("the archive is unavailable; retry"));
                    ErrorCode::Unavailable.as_str()
                }
            };
            metrics
                .commands
                .with_label_values(&["list_tasks", outcome])
                .inc();
        }
        ArchiveRead::Task {
            actor,
            task_id,
            resumed,
        } => match archived_view(&store, &actor, &task_id).await {
            Ok(view) => {
                if let Some(id) = to.id {
                    let result = SubscribeResult {
                        topic: Topic::Task(task_id),
                        epoch,
                        seq: after,
                        snapshot: Some(Snapshot::Task(Box::new(view))),
                        reset: resumed.then_some(true),
                    };
                    to.conn.send(ok_value_frame(id, &result));
                }
            }
            Err(rejection) => to.refuse(&rejection),
        },
    }
}

/// An archived task as `actor` may see it, with the refusals of a live task (§3: `NOT_FOUND`
/// only to admins).
pub async fn archived_view(
    store: &Store,
    actor: &Actor,
    task_id: &TaskId,
) -> Result<TaskView, Rejection> {
    let archived = store.archived_task(task_id).await.map_err(|e| {
        tracing::warn!(error = %e, task = %task_id, "the archive could not be read");
        unavailable("the archive is unavailable; retry")
    })?;
    match archived.as_ref().and_then(|t| t.view_for(actor)) {
        Some(view) => Ok(view),
        None if archived.is_none() && actor.role == Role::Admin => Err(Rejection::not_found(
            format!("task {task_id} does not exist"),
        )),
        None => Err(Rejection::forbidden(format!("no access to task {task_id}"))),
    }
}
