//! The checks applied along a stream: replaying the journal (from empty and from snapshots
//! taken along the way), contiguous seqs and monotonic times, the snapshot round trip, and
//! every view rendering without panicking.

use gavel_engine::snapshot_record::{StateRecord, StateRecordRef};
use gavel_engine::views::{Viewer, feed_task, task_view};
use gavel_engine::{
    ArchivedTask, Engine, EngineConfig, Event, EventKind, SNAPSHOT_VERSION, Snapshot,
};
use gavel_protocol::Seq;
use proptest::prelude::*;

use crate::cast::{COACHES, user};

/// Replays the journal from empty. On the way, every archived task's row (what the archive
/// table stores) must be what the replayed task gives, and every event's `owner` (what routes
/// it to `seeker:<owner>`) the replayed task's owner.
pub(crate) fn replay(config: &EngineConfig, journal: &[(Seq, Event)]) -> Engine {
    replay_onto(Engine::new(config.clone()), journal).0
}

/// Applies `events` to `engine` with `evolve`, checking each as [`replay`] says; returns the
/// engine and the archive rows the replayed tasks give, in journal order.
fn replay_onto(mut engine: Engine, events: &[(Seq, Event)]) -> (Engine, Vec<ArchivedTask>) {
    let mut rows = Vec::new();
    for (seq, event) in events {
        if let EventKind::TasksArchived { task_ids, archived } = &event.kind {
            let again: Vec<ArchivedTask> = task_ids
                .iter()
                .map(|id| ArchivedTask::of(&engine.state().tasks[id]))
                .collect();
            assert_eq!(&again, archived, "replay gives the same archive rows");
            rows.extend(again);
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
    (engine, rows)
}

/// The archive rows journaled by `events` (what the writer stored), in journal order.
fn journaled_rows(events: &[(Seq, Event)]) -> Vec<ArchivedTask> {
    events
        .iter()
        .filter_map(|(_, event)| match &event.kind {
            EventKind::TasksArchived { archived, .. } => Some(archived.iter().cloned()),
            _ => None,
        })
        .flatten()
        .collect()
}

/// A snapshot taken once `journal[..k]` was applied, as storage keeps it: the engine's
/// snapshot record, by position (postcard, as `gavel_storage::snapshot_codec` writes it).
pub(crate) struct TakenSnapshot {
    pub k: usize,
    pub bytes: Vec<u8>,
}

impl TakenSnapshot {
    pub(crate) fn of(live: &Engine, k: usize) -> Self {
        TakenSnapshot {
            k,
            bytes: encode_record(live),
        }
    }
}

fn encode_record(live: &Engine) -> Vec<u8> {
    postcard::to_allocvec(&(SNAPSHOT_VERSION, StateRecordRef::new(live.state())))
        .expect("a snapshot record serializes")
}

fn decode_record(bytes: &[u8]) -> Result<Snapshot, TestCaseError> {
    let (version, record): (u32, StateRecord) = postcard::from_bytes(bytes)
        .map_err(|e| TestCaseError::fail(format!("snapshot record does not decode: {e}")))?;
    let state = record.into_state().map_err(TestCaseError::fail)?;
    Ok(Snapshot { version, state })
}

/// Replaying the journal from any snapshot gives what replaying it from empty gives: each
/// snapshot restored and `journal[k..]` applied with `evolve` has the same ratings, the same
/// market windows and the same whole state as the full replay, and the archive (the rows
/// stored before the snapshot, then those the resumed replay gives) is the full replay's.
pub(crate) fn check_replay_from_snapshots(
    config: &EngineConfig,
    journal: &[(Seq, Event)],
    taken: &[TakenSnapshot],
) -> Result<(), TestCaseError> {
    let (full, full_rows) = replay_onto(Engine::new(config.clone()), journal);
    let want = full.state();
    for TakenSnapshot { k, bytes } in taken {
        let k = *k;
        let snapshot = decode_record(bytes)?;
        prop_assert_eq!(
            snapshot.state.seq,
            k as Seq,
            "the snapshot is at its position"
        );
        let restored = Engine::restore(config.clone(), snapshot).map_err(TestCaseError::fail)?;
        let (resumed, later_rows) = replay_onto(restored, &journal[k..]);
        let got = resumed.state();
        prop_assert!(
            got.coaches == want.coaches,
            "from the snapshot at {}: the same ratings",
            k
        );
        prop_assert!(
            got.market == want.market,
            "from the snapshot at {}: the same market windows",
            k
        );
        prop_assert!(got == want, "from the snapshot at {}: the same state", k);
        let mut archive = journaled_rows(&journal[..k]);
        archive.extend(later_rows);
        prop_assert!(
            archive == full_rows,
            "from the snapshot at {}: the same archive rows",
            k
        );
        prop_assert!(resumed.check_invariants().is_ok());
    }
    Ok(())
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
    let record = decode_record(&encode_record(live))?;
    prop_assert!(record == snapshot, "snapshot record round trip");
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
        let c1 = engine.state().coaches.get(&user("c1")).map(|c| c.no);
        let _ = feed_task(task, c1);
    }
    for coach in COACHES {
        let _ = engine.coach_snapshot(&user(coach));
    }
    let _ = engine.admin_snapshot(0);
}
