//! [`Engine`]: the state plus the configuration it decides with, and the loop every command
//! goes through — fire due deadlines, answer retries from the idempotency table, decide,
//! evolve.

use gavel_protocol::{Millis, Seq, TaskId, UserId};
use serde::{Deserialize, Serialize};

use crate::archive::ArchivedTask;
use crate::command::Request;
use crate::event::{Event, EventKind, Origin};
use crate::market::PricingConfig;
use crate::rejection::Rejection;
use crate::reply::Reply;
use crate::state::State;
use crate::tiers::TierTable;

/// What the engine is configured with (from the server's TOML file).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineConfig {
    pub tiers: TierTable,
    /// How long a task stays in memory after it reached a final state (`completed`,
    /// `canceled`, `refunded`) before it is archived (`None`: kept for ever). Without it, a
    /// busy market's memory grows with every task it ever saw.
    pub archive_after: Option<Millis>,
    /// `[pricing]`: fixed or market prices, and the market window (contract §11).
    pub pricing: PricingConfig,
}

/// Most tasks one `TasksArchived` event names (more due ones go in the next event).
pub const ARCHIVE_BATCH: usize = 1024;

/// A successful decision: the events to apply and the reply to give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub events: Vec<EventKind>,
    pub reply: Reply,
    /// The owner of the task the events concern (`None`: they concern no task).
    pub owner: Option<UserId>,
}

/// The result of [`Engine::execute`]: every event applied (deadline events first, then the
/// command's), each with its `seq`, and the reply or refusal.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub events: Vec<(Seq, Event)>,
    pub reply: Result<Reply, Rejection>,
}

/// The serialized form of the whole state, with a format version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub version: u32,
    pub state: State,
}

/// The version [`Engine::snapshot`] writes and [`Engine::restore`] accepts.
pub const SNAPSHOT_VERSION: u32 = 1;

/// The marketplace state machine.
#[derive(Debug, Clone, Default)]
pub struct Engine {
    pub(crate) config: EngineConfig,
    pub(crate) state: State,
}

impl Engine {
    /// An empty marketplace.
    pub fn new(config: EngineConfig) -> Self {
        let mut state = State::default();
        state.market.window = config.pricing.window;
        Engine { config, state }
    }

    /// An engine restored from a snapshot (then replay the journal after `snapshot.state.seq`).
    pub fn restore(config: EngineConfig, snapshot: Snapshot) -> Result<Self, String> {
        if snapshot.version != SNAPSHOT_VERSION {
            return Err(format!(
                "snapshot format {} is not supported (this build reads {SNAPSHOT_VERSION})",
                snapshot.version
            ));
        }
        let mut state = snapshot.state;
        state.market.set_window(config.pricing.window);
        state.rebuild_index();
        Ok(Engine { config, state })
    }

    /// The whole state, ready to serialize.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            version: SNAPSHOT_VERSION,
            state: self.state.clone(),
        }
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// `seq` of the last applied event.
    pub fn seq(&self) -> Seq {
        self.state.seq
    }

    /// Applies one event (live or from the journal); returns its `seq`.
    pub fn evolve(&mut self, event: &Event) -> Seq {
        let seq = self.state.evolve(event);
        if self.state.timers.needs_compaction() {
            self.state.timers.compact();
        }
        seq
    }

    /// When the next deadline may be due (possibly a cancelled one: then `fire` does nothing),
    /// or the next final task is to be archived, whichever is sooner.
    pub fn next_due(&self) -> Option<Millis> {
        let archive = self
            .config
            .archive_after
            .and_then(|after| Some(self.state.finals.front()?.0 + after));
        match (self.state.timers.next_due(), archive) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Fires every deadline due at `now`, in time order, applying the events each produces.
    pub fn fire(&mut self, now: Millis) -> Vec<(Seq, Event)> {
        let mut applied = Vec::new();
        self.fire_into(now, &mut applied);
        applied
    }

    /// [`Engine::fire`], appending the events to `applied` (a buffer the caller reuses saves
    /// an allocation per call).
    pub fn fire_into(&mut self, now: Millis, applied: &mut Vec<(Seq, Event)>) {
        while let Some((task, deadline)) = self.state.timers.pop_due(now) {
            // The event happened at the deadline (not when the timer was driven), so the
            // outcome does not depend on how promptly the caller polls — but for a close late
            // by whole bidding windows, which opens the next window from `now`
            // (`next_window_close`).
            let at = deadline.at.max(self.state.now);
            let (kinds, owner) = self.decide_deadline(task, deadline, at, now);
            debug_assert!(
                !kinds.as_slice().is_empty(),
                "every deadline produces an event that consumes it"
            );
            debug_assert_eq!(Some(&owner), self.owner_of(kinds.as_slice()).as_ref());
            let owner = Some(owner);
            for kind in kinds {
                let event = Event {
                    at,
                    origin: None,
                    owner: kind.task_id().and(owner.clone()),
                    kind,
                };
                let seq = self.evolve(&event);
                applied.push((seq, event));
            }
        }
        while let Some(task_ids) = self.archive_due(now) {
            let archived = task_ids
                .iter()
                .map(|id| ArchivedTask::of(&self.state.tasks[id]))
                .collect();
            let event = Event {
                at: now.max(self.state.now),
                origin: None,
                owner: None,
                kind: EventKind::TasksArchived { task_ids, archived },
            };
            let seq = self.evolve(&event);
            applied.push((seq, event));
        }
    }

    /// The owner of the task a decision's events concern (looked up before they are applied).
    /// Every decision — a command's, a deadline's — is about one task, so one lookup serves
    /// all its events.
    fn owner_of(&self, kinds: &[EventKind]) -> Option<UserId> {
        let kind = kinds.iter().find(|k| k.task_id().is_some())?;
        debug_assert!(
            kinds
                .iter()
                .filter_map(EventKind::task_id)
                .all(|id| Some(id) == kind.task_id()),
            "a decision's events concern one task"
        );
        match kind {
            EventKind::TaskOpened { task, .. } => Some(task.owner.clone()),
            other => Some(self.state.tasks.get(other.task_id()?)?.spec.owner.clone()),
        }
    }

    /// The oldest final tasks whose retention has passed at `now` (at most [`ARCHIVE_BATCH`]).
    fn archive_due(&self, now: Millis) -> Option<Vec<TaskId>> {
        let after = self.config.archive_after?;
        let due: Vec<TaskId> = self
            .state
            .finals
            .iter()
            .take_while(|(at, _)| at + after <= now)
            .take(ARCHIVE_BATCH)
            .map(|(_, id)| id.clone())
            .collect();
        (!due.is_empty()).then_some(due)
    }

    /// Runs one request: fire due deadlines, answer a retry from the idempotency table, or
    /// decide and apply.
    pub fn execute(&mut self, request: &Request, now: Millis) -> Outcome {
        let now = now.max(self.state.now);
        let mut events = self.fire(now);
        if let Some(id) = &request.request_id
            && let Some(reply) = self.state.idempotency.get(&request.actor.user, id, now)
        {
            return Outcome {
                events,
                reply: Ok(reply.clone()),
            };
        }
        let decision = match self.decide(request, now) {
            Ok(d) => d,
            Err(rejection) => {
                return Outcome {
                    events,
                    reply: Err(rejection),
                };
            }
        };
        let count = decision.events.len();
        // One allocation of the size needed, not a growth from nothing.
        events.reserve_exact(count);
        debug_assert_eq!(decision.owner, self.owner_of(&decision.events));
        let owner = decision.owner;
        for (i, kind) in decision.events.into_iter().enumerate() {
            let origin = request
                .request_id
                .as_ref()
                .filter(|_| i + 1 == count)
                .map(|id| Origin {
                    user: request.actor.user.clone(),
                    request_id: id.clone(),
                    reply: decision.reply.clone(),
                });
            let event = Event {
                at: now,
                origin,
                owner: kind.task_id().and(owner.clone()),
                kind,
            };
            let seq = self.evolve(&event);
            events.push((seq, event));
        }
        Outcome {
            events,
            reply: Ok(decision.reply),
        }
    }
}
