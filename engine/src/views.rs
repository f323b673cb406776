//! What each viewer may see (contract §3, §8): subscription authorization and the snapshot
//! of every topic, built from the state.
//!
//! Row-level rules live here so no caller can forget one: a coach never sees another coach's
//! bid or identity; a seeker sees only its own tasks; `NOT_FOUND` is said only to admins.

use gavel_protocol::views::{
    AdminSnapshot, AssignedView, BidView, CoachSnapshot, FeedSnapshot, FeedTask, SeekerSnapshot,
    Snapshot, TaskView,
};
use gavel_protocol::{FeedFilter, Role, TaskId, Topic, UserId};

use crate::coach::CoachNo;
use crate::command::Actor;
use crate::engine::Engine;
use crate::rejection::Rejection;
use crate::state::Task;

/// How much of a task a viewer sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer<'a> {
    /// The owner or an admin: every pending bid, ranked.
    Privileged,
    /// The assigned coach: only its own bid, no `top3`.
    Coach(&'a UserId),
}

/// A task as `viewer` sees it.
pub fn task_view(task: &Task, viewer: Viewer<'_>) -> TaskView {
    let (bids, top3) = match viewer {
        Viewer::Privileged => {
            let bids: Vec<BidView> = task.ranked_bids().map(|b| b.view.clone()).collect();
            let top3 = bids.iter().take(3).map(|b| b.bid_id.clone()).collect();
            (bids, top3)
        }
        Viewer::Coach(coach) => {
            let own = task
                .bids
                .values()
                .filter(|b| b.view.coach_id == *coach)
                .max_by_key(|b| b.no)
                .map(|b| b.view.clone());
            (own.into_iter().collect(), Vec::new())
        }
    };
    let s = &task.spec;
    TaskView {
        task_id: s.task_id.clone(),
        owner: s.owner.clone(),
        resume_id: s.resume_id.clone(),
        task_type: s.task_type.clone(),
        urgency: s.urgency,
        award: s.award,
        status: task.status,
        suggested_price: s.suggested_price,
        price_range: s.price_range,
        created_at: s.created_at,
        bidding_closes_at: task.bidding_closes_at,
        bid_count: task.bid_count(),
        bids,
        top3,
        assigned: task.assigned.as_ref().map(|a| AssignedView {
            coach_id: a.coach_id.clone(),
            bid_id: a.bid_id.clone(),
            amount: a.amount,
            deadline: a.deadline,
            on_call: a.on_call,
        }),
        escrow: task.escrow,
        revisions: task.revisions,
        archived: false,
    }
}

/// An open task as a coach sees it on `feed` (`me`: the subscriber, for `my_bid`).
pub fn feed_task(task: &Task, me: Option<CoachNo>) -> FeedTask {
    let s = &task.spec;
    FeedTask {
        task_id: s.task_id.clone(),
        task_type: s.task_type.clone(),
        urgency: s.urgency,
        suggested_price: s.suggested_price,
        price_range: s.price_range,
        bid_count: task.bid_count(),
        bidding_closes_at: task.bidding_closes_at,
        created_at: s.created_at,
        my_bid: me
            .and_then(|me| task.bids.pending_of(me))
            .map(|b| b.view.clone()),
    }
}

impl Engine {
    /// Whether `actor` may subscribe to `topic` (contract §3).
    pub fn authorize_subscribe(&self, actor: &Actor, topic: &Topic) -> Result<(), Rejection> {
        let allowed = match (topic, actor.role) {
            (_, Role::Admin) => {
                if let Topic::Task(id) = topic
                    && !self.state.tasks.contains_key(id)
                {
                    return Err(Rejection::not_found(format!("task {id} does not exist")));
                }
                true
            }
            (Topic::Feed, Role::Coach) => true,
            (Topic::Coach(id), Role::Coach) => *id == actor.user,
            (Topic::Seeker(id), Role::Seeker) => *id == actor.user,
            (Topic::Task(id), _) => self.may_watch_task(id, actor),
            _ => false,
        };
        if allowed {
            Ok(())
        } else {
            Err(Rejection::forbidden(format!("no access to topic {topic}")))
        }
    }

    /// The owner (a seeker) or the assigned coach of an existing task.
    pub fn may_watch_task(&self, id: &TaskId, actor: &Actor) -> bool {
        self.state.tasks.get(id).is_some_and(|t| match actor.role {
            Role::Admin => true,
            Role::Seeker => t.spec.owner == actor.user,
            Role::Coach => t.coach() == Some(&actor.user),
        })
    }

    /// The `feed` snapshot: the open tasks matching `filter` (coach view when `actor` is a
    /// coach). With `limit`, only the `limit` newest of them (by `created_at`, then id) and
    /// `total`, the count of all that match — for a UI that shows 50 of 100,000.
    pub fn feed_snapshot(
        &self,
        actor: &Actor,
        filter: Option<&FeedFilter>,
        limit: Option<usize>,
    ) -> FeedSnapshot {
        let me = (actor.role == Role::Coach)
            .then(|| self.state.coaches.get(&actor.user))
            .flatten()
            .map(|coach| coach.no);
        let matching = self
            .state
            .open_tasks
            .iter()
            .map(|id| &self.state.tasks[id])
            .filter(|t| {
                filter.is_none_or(|f| {
                    f.matches(t.spec.urgency, &t.spec.task_type, t.spec.suggested_price)
                })
            });
        let Some(limit) = limit else {
            let tasks = matching.map(|t| feed_task(t, me)).collect();
            return FeedSnapshot { tasks, total: None };
        };
        let mut newest: Vec<_> = matching.collect();
        let total = newest.len() as u64;
        let newer = |a: &&crate::state::Task, b: &&crate::state::Task| {
            (b.spec.created_at, &b.spec.task_id).cmp(&(a.spec.created_at, &a.spec.task_id))
        };
        if newest.len() > limit {
            newest.select_nth_unstable_by(limit, newer);
            newest.truncate(limit);
        }
        newest.sort_unstable_by(newer);
        let tasks = newest.into_iter().map(|t| feed_task(t, me)).collect();
        FeedSnapshot {
            tasks,
            total: Some(total),
        }
    }

    /// The snapshot of `topic` for `actor` (authorized first). `connections` is the node's
    /// connection count for the admin snapshot (the engine does not know it).
    pub fn snapshot_for(
        &self,
        actor: &Actor,
        topic: &Topic,
        filter: Option<&FeedFilter>,
        connections: u64,
    ) -> Result<Snapshot, Rejection> {
        self.authorize_subscribe(actor, topic)?;
        Ok(match topic {
            Topic::Feed => Snapshot::Feed(self.feed_snapshot(actor, filter, None)),
            Topic::Task(id) => {
                let task = &self.state.tasks[id];
                let viewer = if actor.role == Role::Coach {
                    Viewer::Coach(&actor.user)
                } else {
                    Viewer::Privileged
                };
                Snapshot::Task(Box::new(task_view(task, viewer)))
            }
            Topic::Coach(id) => Snapshot::Coach(self.coach_snapshot(id)),
            Topic::Admin => Snapshot::Admin(self.admin_snapshot(connections)),
            Topic::Seeker(id) => Snapshot::Seeker(self.seeker_snapshot(id)),
        })
    }

    /// A coach's live bids and the tasks it holds (as the coach sees them).
    pub fn coach_snapshot(&self, coach_id: &UserId) -> CoachSnapshot {
        let Some(coach) = self.state.coaches.get(coach_id) else {
            return CoachSnapshot {
                coach_id: coach_id.clone(),
                bids: Vec::new(),
                assignments: Vec::new(),
                rating: 0,
                ratings_count: 0,
                completed: 0,
            };
        };
        let bids = coach
            .live_bids
            .iter()
            .map(|no| {
                let bid_id = crate::ids::bid_id(no);
                let task_id = self
                    .state
                    .bid_tasks
                    .get(&bid_id)
                    .expect("a live bid's task");
                let task = &self.state.tasks[task_id];
                task.bids[&bid_id].view.clone()
            })
            .collect();
        let assignments = coach
            .assignments
            .iter()
            .map(|id| task_view(&self.state.tasks[id], Viewer::Coach(coach_id)))
            .collect();
        CoachSnapshot {
            coach_id: coach_id.clone(),
            bids,
            assignments,
            rating: coach.profile.rating,
            ratings_count: coach.profile.ratings_count,
            completed: coach.profile.completed,
        }
    }

    /// A seeker's tasks in memory, newest first, as their owner sees them (contract §9).
    pub fn seeker_snapshot(&self, seeker_id: &UserId) -> SeekerSnapshot {
        let tasks = self
            .state
            .listing
            .by_owner
            .get(seeker_id)
            .into_iter()
            .flat_map(|keys| keys.iter().rev())
            .map(|(_, id)| task_view(&self.state.tasks[id], Viewer::Privileged))
            .collect();
        SeekerSnapshot {
            seeker_id: seeker_id.clone(),
            tasks,
        }
    }

    /// Marketplace counts.
    pub fn admin_snapshot(&self, connections: u64) -> AdminSnapshot {
        AdminSnapshot {
            open_tasks: self.state.open_by_urgency.total(),
            open_tasks_by_urgency: self.state.open_by_urgency,
            tasks_by_status: self.state.tasks_by_status.clone(),
            connections,
        }
    }

    /// A task's admin view (`GET /v1/tasks/{id}`).
    pub fn task_view(&self, id: &TaskId, actor: &Actor) -> Result<TaskView, Rejection> {
        match self.snapshot_for(actor, &Topic::Task(id.clone()), None, 0)? {
            Snapshot::Task(view) => Ok(*view),
            _ => unreachable!("a task topic snapshots a task"),
        }
    }
}
