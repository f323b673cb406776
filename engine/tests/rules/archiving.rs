//! Archiving: a task that reached a final state leaves the engine's memory once the configured
//! retention has passed (its history stays in the journal), so a busy market's memory does not
//! grow with every task it ever saw. Not a contract rule: gavel's own (docs/protocol.md).

use gavel_engine::{EngineConfig, EventKind};
use gavel_protocol::{Award, ErrorCode, TaskStatus, Urgency};

use crate::common::*;
use crate::helpers::{names, since};

fn archiving_after(retention: u64) -> Market {
    Market::with_config(EngineConfig {
        archive_after: Some(retention),
        ..EngineConfig::default()
    })
}

#[test]
fn a_final_task_is_archived_once_its_retention_passes() {
    let mut m = archiving_after(HOUR);
    m.register_coach("c1", 4.0);
    m.post_task("alice", "t1", Urgency::Standard, Award::Manual);
    let bid = m.bid("c1", "t1", 3000, 5);
    m.advance(10 * MIN);
    m.ok(&seeker("alice"), cancel("t1"));
    let canceled_at = m.now;
    // The archive time is a wake-up like any deadline (a stale bidding window may come first).
    assert!(m.engine.next_due().is_some_and(|t| t <= canceled_at + HOUR));

    // One millisecond early: still in memory.
    assert!(m.fire_until(canceled_at + HOUR - 1).is_empty());
    assert_eq!(m.view("t1").status, TaskStatus::Canceled);

    let from = m.journal.len();
    m.fire_until(canceled_at + HOUR);
    assert_eq!(names(&since(&m, from)), ["tasks_archived"]);
    assert!(matches!(
        &since(&m, from)[0],
        EventKind::TasksArchived { task_ids, .. } if *task_ids == [tid("t1")]
    ));
    let state = m.engine.state();
    assert!(!state.tasks.contains_key(&tid("t1")));
    assert!(
        !state.bid_tasks.contains_key(&bid),
        "its bids are unindexed"
    );
    assert_eq!(
        state.tasks_by_status.get(&TaskStatus::Canceled),
        Some(&1),
        "the admin's counts still include it"
    );
    // Gone from the live engine: as if it never existed (its history is in the journal).
    m.refused_with(&admin(), cancel("t1"), ErrorCode::NotFound);
    m.refused_with(&seeker("alice"), cancel("t1"), ErrorCode::Forbidden);
    m.check_replay_and_snapshot();
}

#[test]
fn live_tasks_are_never_archived() {
    let mut m = archiving_after(MIN);
    m.register_coach("c1", 4.0);
    m.post_task("alice", "open", Urgency::Flexible, Award::Manual);
    m.post_task("alice", "done", Urgency::Urgent, Award::Manual);
    m.ok(&seeker("alice"), cancel("done"));
    m.fire_until(m.now + 2 * DAY);
    let state = m.engine.state();
    assert!(state.tasks.contains_key(&tid("open")), "an open task stays");
    assert!(!state.tasks.contains_key(&tid("done")));
    m.check_replay_and_snapshot();
}

#[test]
fn tasks_are_archived_oldest_first_in_batches() {
    let mut m = archiving_after(MIN);
    for i in 0..1500 {
        m.post_task("alice", &format!("t{i}"), Urgency::Urgent, Award::Manual);
        m.ok(&seeker("alice"), cancel(&format!("t{i}")));
        m.advance(10);
    }
    let from = m.journal.len();
    m.fire_until(m.now + MIN);
    let archived: Vec<Vec<String>> = since(&m, from)
        .iter()
        .map(|e| match e {
            EventKind::TasksArchived { task_ids, .. } => {
                task_ids.iter().map(|id| id.to_string()).collect()
            }
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        archived.iter().map(Vec::len).collect::<Vec<_>>(),
        [1024, 476]
    );
    assert_eq!(archived[0][0], "t0");
    assert_eq!(archived[1][475], "t1499");
    assert!(m.engine.state().tasks.is_empty());
    m.check_replay_and_snapshot();
}

#[test]
fn an_archived_task_id_is_never_given_to_another_task() {
    let mut m = archiving_after(MIN);
    m.post_task("alice", "mine", Urgency::Urgent, Award::Manual);
    m.ok(&seeker("alice"), cancel("mine"));
    m.tick(MIN);
    assert!(!m.engine.state().tasks.contains_key(&tid("mine")));
    m.refused_with(
        &seeker("bob"),
        post("mine", Urgency::Urgent, Award::Manual),
        ErrorCode::Conflict,
    );
    // After a replay, too: the archived ids are part of the state.
    let replayed = m.check_replay_and_snapshot();
    assert!(replayed.state().task_id_taken(&tid("mine")));
}

#[test]
fn without_a_retention_nothing_is_archived() {
    let mut m = Market::new();
    m.post_task("alice", "t1", Urgency::Urgent, Award::Manual);
    m.ok(&seeker("alice"), cancel("t1"));
    m.fire_until(m.now + 30 * DAY);
    assert_eq!(m.engine.next_due(), None);
    assert!(m.engine.state().tasks.contains_key(&tid("t1")));
}
