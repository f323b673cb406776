//! The checks applied along a stream: replaying the journal, contiguous seqs and monotonic
//! times, the snapshot round trip, and every view rendering without panicking.

use gavel_engine::views::{Viewer, feed_task, task_view};
use gavel_engine::{ArchivedTask, Engine, EngineConfig, Event, EventKind, Snapshot};
use gavel_protocol::Seq;
use proptest::prelude::*;

use crate::cast::{COACHES, user};

/// Replays the journal from empty. On the way, every archived task's row (what the archive
/// table stores) must be what the replayed task gives, and every event's `owner` (what routes
/// it to `seeker:<owner>`) the replayed task's owner.
pub(crate) fn replay(config: &EngineConfig, journal: &[(Seq, Event)]) -> Engine {
    let mut engine = Engine::new(config.clone());
    for (seq, event) in journal {
        if let EventKind::TasksArchived { task_ids, archived } = &event.kind {
            let again: Vec<ArchivedTask> = task_ids
                .iter()
                .map(|id| ArchivedTask::of(&engine.state().tasks[id]))
                .collect();
            assert_eq!(&again, archived, "replay gives the same archive rows");
        }
        let owner = match &event.kind {
            EventKind::TaskOpened { task, .. } => Some(task.owner.clone()),
            kind => kind
                .task_id()
                .map(|id| engine.state().tasks[id].spec.owner.clone()),
        };
        assert_eq!(event.owner, owner, "every task event names its owner");
        assert_eq!(engine.evolve(event), *seq, "replay assigns the same seq");
    }
    engine
}

pub(crate) fn check_journal(journal: &[(Seq, Event)]) -> Result<(), TestCaseError> {
    for (i, (seq, _)) in journal.iter().enumerate() {
        prop_assert_eq!(*seq, i as Seq + 1, "seqs are contiguous from 1");
    }
    for w in journal.windows(2) {
        prop_assert!(w[0].1.at <= w[1].1.at, "event times never go backwards");
    }
    Ok(())
}

pub(crate) fn check_snapshot(live: &Engine) -> Result<Engine, TestCaseError> {
    let snapshot = live.snapshot();
    let json = serde_json::to_string(&snapshot)
        .map_err(|e| TestCaseError::fail(format!("snapshot does not serialize: {e}")))?;
    let back: Snapshot = serde_json::from_str(&json)
        .map_err(|e| TestCaseError::fail(format!("snapshot does not deserialize: {e}")))?;
    prop_assert!(back == snapshot, "snapshot JSON round trip");
    let restored = Engine::restore(live.config().clone(), back).map_err(TestCaseError::fail)?;
    prop_assert!(
        restored.state() == live.state(),
        "restored state equals live"
    );
    prop_assert!(restored.check_invariants().is_ok());
    Ok(restored)
}

/// Renders every view of the state (nothing may panic).
pub(crate) fn render_views(engine: &Engine) {
    for task in engine.state().tasks.values() {
        let _ = task_view(task, Viewer::Privileged);
        if let Some(coach) = task.coach() {
            let _ = task_view(task, Viewer::Coach(coach));
        }
        let _ = feed_task(task, Some(&user("c1")));
    }
    for coach in COACHES {
        let _ = engine.coach_snapshot(&user(coach));
    }
    let _ = engine.admin_snapshot(0);
}
