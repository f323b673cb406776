//! "My tasks" (contract §9): the in-memory indexes behind `seeker:<id>` and `list_tasks` —
//! every task by `(created_at, task_id)`, by owner and by each coach it was ever assigned —
//! the cursor that pages through them newest first, and the merge of a live page with an
//! archived one.
//!
//! The indexes are derived from the tasks (never serialized): `evolve` keeps them, and
//! [`Listing::rebuild`] recomputes them after a snapshot is loaded.

use std::collections::BTreeSet;

use gavel_protocol::command::{LIST_TASKS_DEFAULT_LIMIT, ListTasks};
use gavel_protocol::views::{ListTasksResult, TaskView};
use gavel_protocol::{Millis, Role, TaskId, TaskStatus, UserId};

use crate::command::Actor;
use crate::engine::Engine;
use crate::rejection::Rejection;
use crate::state::{IdMap, Task};
use crate::views::{Viewer, task_view};

/// A task's place in every listing: newest first is descending order.
pub type ListKey = (Millis, TaskId);

/// The listing indexes of the tasks in memory.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub all: BTreeSet<ListKey>,
    pub by_owner: IdMap<UserId, BTreeSet<ListKey>>,
    pub by_coach: IdMap<UserId, BTreeSet<ListKey>>,
}

/// Derived data takes no part in comparing states (see [`crate::timers::Timers`]).
impl PartialEq for Listing {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

/// A task's listing key.
pub fn list_key(task: &Task) -> ListKey {
    (task.spec.created_at, task.spec.task_id.clone())
}

impl Listing {
    pub fn add_task(&mut self, task: &Task) {
        let key = list_key(task);
        self.all.insert(key.clone());
        self.by_owner
            .entry(task.spec.owner.clone())
            .or_default()
            .insert(key);
    }

    pub fn add_coach(&mut self, task: &Task, coach: &UserId) {
        self.by_coach
            .entry(coach.clone())
            .or_default()
            .insert(list_key(task));
    }

    pub fn remove_task(&mut self, task: &Task) {
        let key = list_key(task);
        self.all.remove(&key);
        remove_from(&mut self.by_owner, &task.spec.owner, &key);
        for coach in &task.coaches_ever {
            remove_from(&mut self.by_coach, coach, &key);
        }
    }

    /// The indexes of `tasks`, from scratch.
    pub fn rebuild<'a>(tasks: impl Iterator<Item = &'a Task>) -> Self {
        let mut listing = Listing::default();
        for task in tasks {
            listing.add_task(task);
            for coach in &task.coaches_ever {
                listing.add_coach(task, coach);
            }
        }
        listing
    }
}

fn remove_from(index: &mut IdMap<UserId, BTreeSet<ListKey>>, who: &UserId, key: &ListKey) {
    if let Some(keys) = index.get_mut(who) {
        keys.remove(key);
        if keys.is_empty() {
            index.remove(who);
        }
    }
}

/// The `before`/`next` cursor: `<created_at>~<task_id>` (`~` is not in the id alphabet).
pub fn encode_cursor(key: &ListKey) -> String {
    format!("{}~{}", key.0, key.1)
}

/// Parses a cursor made by [`encode_cursor`]. Its time is at most `i64::MAX` (a task's
/// `created_at` is; the archive's SQL compares it as a signed integer, where a larger one
/// would wrap to a negative time and silently leave the archived tasks out).
pub fn parse_cursor(s: &str) -> Option<ListKey> {
    let (at, id) = s.split_once('~')?;
    let at: u64 = at.parse().ok()?;
    i64::try_from(at).ok()?;
    Some((at, TaskId::new(id).ok()?))
}

/// Whose tasks a listing walks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    Owner(UserId),
    /// The tasks a coach was ever assigned.
    Coach(UserId),
}

/// A decoded, authorized `list_tasks`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub scope: Scope,
    /// With an admin's `owner` and `coach_id` both: the coach, within that owner's tasks.
    pub also_owner: Option<UserId>,
    pub statuses: Option<Vec<TaskStatus>>,
    pub before: Option<ListKey>,
    pub limit: usize,
    /// Coach view (only its own bid) for this coach; `None`: the owner's/admin's view.
    pub coach_view: Option<UserId>,
}

impl ListQuery {
    pub fn wants(&self, status: TaskStatus) -> bool {
        self.statuses.as_ref().is_none_or(|s| s.contains(&status))
    }
}

impl Engine {
    /// Authorizes and decodes a `list_tasks` (contract §9).
    pub fn list_query(&self, actor: &Actor, c: &ListTasks) -> Result<ListQuery, Rejection> {
        let before = match &c.before {
            None => None,
            Some(s) => Some(parse_cursor(s).ok_or_else(|| {
                Rejection::invalid("before", "before must be a `next` cursor from list_tasks")
            })?),
        };
        let others = |field: &Option<UserId>, name: &str| match field {
            Some(id) if *id != actor.user => Err(Rejection::forbidden(format!(
                "only admins list by another user's {name}"
            ))),
            _ => Ok(()),
        };
        let (scope, also_owner, coach_view) = match actor.role {
            Role::Seeker => {
                others(&c.owner, "owner")?;
                if c.coach_id.is_some() {
                    return Err(Rejection::forbidden("seekers list only their own tasks"));
                }
                (Scope::Owner(actor.user.clone()), None, None)
            }
            Role::Coach => {
                others(&c.coach_id, "coach_id")?;
                if c.owner.is_some() {
                    return Err(Rejection::forbidden("coaches list only their own tasks"));
                }
                let me = actor.user.clone();
                (Scope::Coach(me.clone()), None, Some(me))
            }
            Role::Admin => match (&c.owner, &c.coach_id) {
                (_, Some(coach)) => (Scope::Coach(coach.clone()), c.owner.clone(), None),
                (Some(owner), None) => (Scope::Owner(owner.clone()), None, None),
                (None, None) => (Scope::All, None, None),
            },
        };
        Ok(ListQuery {
            scope,
            also_owner,
            statuses: c.statuses_deduplicated(),
            before,
            limit: c.limit.unwrap_or(LIST_TASKS_DEFAULT_LIMIT) as usize,
            coach_view,
        })
    }

    /// Up to `limit + 1` matching tasks in memory before the cursor, newest first (one more
    /// than a page, so the caller knows whether another page follows).
    pub fn list_live(&self, q: &ListQuery) -> Vec<(ListKey, TaskView)> {
        let listing = &self.state.listing;
        let empty = BTreeSet::new();
        let keys = match &q.scope {
            Scope::All => &listing.all,
            Scope::Owner(owner) => listing.by_owner.get(owner).unwrap_or(&empty),
            Scope::Coach(coach) => listing.by_coach.get(coach).unwrap_or(&empty),
        };
        let range = match &q.before {
            Some(before) => keys.range(..before.clone()),
            None => keys.range(..),
        };
        let viewer = match &q.coach_view {
            Some(coach) => Viewer::Coach(coach),
            None => Viewer::Privileged,
        };
        range
            .rev()
            .map(|key| (key, &self.state.tasks[&key.1]))
            .filter(|(_, t)| q.wants(t.status))
            .filter(|(_, t)| q.also_owner.as_ref().is_none_or(|o| t.spec.owner == *o))
            .take(q.limit + 1)
            .map(|(key, t)| {
                let mut view = task_view(t, viewer);
                if let Some(coach) = &q.coach_view {
                    hide_successor(&mut view, coach);
                }
                (key.clone(), view)
            })
            .collect()
    }
}

/// A coach listing a task it no longer holds must not learn who took it over, nor for how
/// much (contract §3, as the live `task:<id>` stream drops it): the assignment and the escrow
/// are shown only to the coach they concern.
pub fn hide_successor(view: &mut TaskView, coach: &UserId) {
    if view.assigned.as_ref().is_some_and(|a| a.coach_id != *coach) || view.assigned.is_none() {
        view.assigned = None;
        view.escrow = Default::default();
    }
}

/// One page from a live part and an archived part (each newest first, each at most
/// `limit + 1` long, disjoint): the newest `limit` of both, and the cursor after them when
/// more may follow.
pub fn merge_pages(
    live: Vec<(ListKey, TaskView)>,
    archived: Vec<(ListKey, TaskView)>,
    limit: usize,
) -> ListTasksResult {
    let mut all: Vec<(ListKey, TaskView)> = live.into_iter().chain(archived).collect();
    all.sort_by(|a, b| b.0.cmp(&a.0));
    all.dedup_by(|a, b| a.0 == b.0);
    let more = all.len() > limit;
    all.truncate(limit);
    let next = more
        .then(|| all.last().map(|(key, _)| encode_cursor(key)))
        .flatten();
    ListTasksResult {
        tasks: all.into_iter().map(|(_, view)| view).collect(),
        next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_with_any_id() {
        let key = (1_764_081_234_567, TaskId::new("t_9:x.2-y").unwrap());
        assert_eq!(parse_cursor(&encode_cursor(&key)), Some(key));
        assert_eq!(parse_cursor("nope"), None);
        assert_eq!(parse_cursor("12~"), None);
        assert_eq!(parse_cursor("x~t_1"), None);
        assert_eq!(
            parse_cursor("9223372036854775807~t_1").map(|k| k.0),
            Some(i64::MAX as u64)
        );
        assert_eq!(
            parse_cursor("9223372036854775808~t_1"),
            None,
            "over i64::MAX"
        );
    }
}
