//! Archived tasks (contract §9): what a task leaves behind when retention drops it from
//! memory. The engine puts an [`ArchivedTask`] for each task into the `TasksArchived` event it
//! journals; the journal writer stores them (the archive table), so the engine task never
//! touches storage, and rebuilding the archive from the journal gives the same rows.

use gavel_protocol::views::{BidView, TaskView};
use gavel_protocol::{Role, UserId};
use serde::{Deserialize, Serialize};

use crate::command::Actor;
use crate::state::Task;
use crate::views::{Viewer, task_view};

/// A final task as the archive keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchivedTask {
    /// The owner's (and admin's) final view, with `archived: true`.
    pub view: TaskView,
    /// Every coach the task was ever assigned, in order, with its own last bid (the coach's
    /// view shows only that bid).
    pub coaches: Vec<ArchivedCoach>,
}

/// One coach a task was assigned to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchivedCoach {
    pub coach_id: UserId,
    pub bid: Option<BidView>,
}

impl ArchivedTask {
    /// The archive entry of a task about to leave memory.
    pub fn of(task: &Task) -> Self {
        let view = TaskView {
            archived: true,
            ..task_view(task, Viewer::Privileged)
        };
        let coaches = task
            .coaches_ever
            .iter()
            .map(|coach| ArchivedCoach {
                coach_id: coach.clone(),
                bid: task_view(task, Viewer::Coach(coach)).bids.pop(),
            })
            .collect();
        ArchivedTask { view, coaches }
    }

    /// The coach the task was last assigned to.
    pub fn last_coach(&self) -> Option<&UserId> {
        self.coaches.last().map(|c| &c.coach_id)
    }

    /// The view `actor` may have of it (contract §9: the owner, its last assigned coach, an
    /// admin), or `None`.
    pub fn view_for(&self, actor: &Actor) -> Option<TaskView> {
        match actor.role {
            Role::Admin => Some(self.view.clone()),
            Role::Seeker if self.view.owner == actor.user => Some(self.view.clone()),
            Role::Coach if self.last_coach() == Some(&actor.user) => {
                Some(self.coach_view(&actor.user))
            }
            _ => None,
        }
    }

    /// The view of a coach it was assigned to: only that coach's bid, no `top3`.
    pub fn coach_view(&self, coach: &UserId) -> TaskView {
        let bid = self
            .coaches
            .iter()
            .find(|c| c.coach_id == *coach)
            .and_then(|c| c.bid.clone());
        TaskView {
            bids: bid.into_iter().collect(),
            top3: Vec::new(),
            ..self.view.clone()
        }
    }
}
