//! Ending a task early: the owner cancels while open or assigned, an admin in any non-final
//! state (the escrow is refunded), and a failed payment reopens the task.

use gavel_engine::{EventKind, Reply};
use gavel_protocol::{Award, BidStatus, DisputeOutcome, ErrorCode, TaskStatus, Urgency};

use crate::common::*;
use crate::helpers::{assigned_task, disputed_task, names, since};

#[test]
fn owner_cancels_open_or_assigned_with_refund() {
    let mut m = Market::new();
    m.register_coach("c1", 4.0);
    m.register_coach("c2", 5.0);
    // Open with two bids: both rejected (best first), nothing to refund, off the feed.
    m.post_task("alice", "t_open", Urgency::Urgent, Award::Manual);
    m.bid("c1", "t_open", 4000, 1);
    m.bid("c2", "t_open", 4000, 1);
    m.refused_with(&seeker("bob"), cancel("t_open"), ErrorCode::Forbidden);
    m.refused_with(&coach("c1"), cancel("t_open"), ErrorCode::Forbidden);
    let from = m.journal.len();
    let reply = m.ok(&seeker("alice"), cancel("t_open"));
    assert!(matches!(reply, Reply::CancelTask(r) if r.refunded == 0));
    assert_eq!(
        names(&since(&m, from)),
        [
            "bid_rejected",
            "bid_rejected",
            "task_canceled",
            "task_closed"
        ]
    );
    assert_eq!(m.view("t_open").status, TaskStatus::Canceled);
    assert!(!m.engine.state().open_tasks.contains(&tid("t_open")));

    // Assigned: the escrow comes back whole, the coach is free, the deadline gone.
    assigned_task(&mut m, "t_asg", Urgency::Urgent, "c1", 5555, 2);
    let from = m.journal.len();
    let reply = m.ok(&seeker("alice"), cancel("t_asg"));
    assert!(matches!(reply, Reply::CancelTask(r) if r.refunded == 5555));
    let events = since(&m, from);
    assert_eq!(names(&events), ["task_canceled", "payment_refunded"]);
    assert!(
        matches!(&events[0], EventKind::TaskCanceled { coach_id: Some(c), .. } if *c == user("c1"))
    );
    let v = m.view("t_asg");
    assert_eq!(
        (v.status, v.escrow.held, v.escrow.refunded),
        (TaskStatus::Canceled, 5555, 5555)
    );
    assert_eq!(m.coach("c1").view().active, 0);
    assert!(m.fire_until(T0 + DAY).is_empty());

    // In progress: no longer the owner's call; a final state can't be canceled again.
    assigned_task(&mut m, "t_wip", Urgency::Urgent, "c1", 4000, 2);
    m.ok(&coach("c1"), start("t_wip"));
    m.refused_with(&seeker("alice"), cancel("t_wip"), ErrorCode::Conflict);
    m.refused_with(&seeker("alice"), cancel("t_asg"), ErrorCode::Conflict);
}

#[test]
fn admin_cancels_any_non_final_state() {
    let mut m = Market::new();
    m.register_coach("c1", 4.0);
    m.post_task("alice", "t_open", Urgency::Urgent, Award::Manual);
    assigned_task(&mut m, "t_asg", Urgency::Urgent, "c1", 4000, 2);
    assigned_task(&mut m, "t_wip", Urgency::Urgent, "c1", 4100, 2);
    m.ok(&coach("c1"), start("t_wip"));
    assigned_task(&mut m, "t_sub", Urgency::Standard, "c1", 3000, 5);
    m.ok(&coach("c1"), start("t_sub"));
    m.ok(&coach("c1"), submit("t_sub"));
    m.register_coach("c2", 4.0);
    m.post_task("alice", "t_dis", Urgency::Urgent, Award::Manual);
    let b = m.bid("c2", "t_dis", 4200, 2);
    m.accept("alice", "t_dis", &b);
    m.ok(&coach("c2"), start("t_dis"));
    for _ in 0..3 {
        m.ok(&coach("c2"), submit("t_dis"));
        m.ok(&seeker("alice"), request_changes("t_dis"));
    }
    for (t, refunded) in [
        ("t_open", 0),
        ("t_asg", 4000),
        ("t_wip", 4100),
        ("t_sub", 3000),
        ("t_dis", 4200),
    ] {
        let reply = m.ok(&admin(), cancel(t));
        assert!(
            matches!(reply, Reply::CancelTask(r) if r.refunded == refunded),
            "{t}"
        );
        let v = m.view(t);
        assert_eq!(v.status, TaskStatus::Canceled, "{t}");
        assert_eq!(v.escrow.held, v.escrow.released + v.escrow.refunded, "{t}");
    }
    assert_eq!(m.coach("c1").view().active, 0);
    assert_eq!(m.coach("c2").view().active, 0);
    // Final states stay final.
    disputed_task(&mut m, "t_done", 4000);
    m.ok(&admin(), resolve("t_done", DisputeOutcome::Release));
    disputed_task(&mut m, "t_refunded", 4000);
    m.ok(&admin(), resolve("t_refunded", DisputeOutcome::Refund));
    for t in ["t_open", "t_done", "t_refunded"] {
        m.refused_with(&admin(), cancel(t), ErrorCode::Conflict);
    }
    m.refused_with(&admin(), cancel("t_missing"), ErrorCode::NotFound);
}

#[test]
fn payment_failed_reopens_task() {
    let mut m = Market::new();
    m.register_coach("c1", 4.0);
    m.register_coach("c2", 4.0);
    assigned_task(&mut m, "t", Urgency::Urgent, "c1", 4000, 2);
    m.advance(MIN);
    m.refused_with(&seeker("alice"), payment_failed("t"), ErrorCode::Forbidden);
    m.refused_with(&admin(), payment_failed("t_missing"), ErrorCode::NotFound);
    let from = m.journal.len();
    m.ok(&admin(), payment_failed("t"));
    assert_eq!(
        names(&since(&m, from)),
        ["payment_failed", "bid_rejected", "task_opened"]
    );
    let v = m.view("t");
    assert_eq!(v.status, TaskStatus::Open);
    assert_eq!(v.assigned, None);
    assert_eq!(v.bidding_closes_at, m.now + 10 * MIN, "a new window");
    // The hold never happened: nothing held, nothing refunded.
    assert_eq!(
        (v.escrow.held, v.escrow.released, v.escrow.refunded),
        (0, 0, 0)
    );
    assert_eq!(
        m.task("t").bids[&bid("b_0")].view.status,
        BidStatus::Rejected
    );
    assert_eq!(m.coach("c1").view().active, 0);
    assert!(m.engine.state().open_tasks.contains(&tid("t")));
    // Bids again, awarded again.
    let b = m.bid("c2", "t", 3900, 1);
    m.accept("alice", "t", &b);
    assert_eq!(m.view("t").escrow.held, 3900);
    // Only while assigned.
    m.ok(&coach("c2"), start("t"));
    m.refused_with(&admin(), payment_failed("t"), ErrorCode::Conflict);

    // After an on-call takeover the original accepted bid is voided too, so the reopened
    // task can accept a new bid (one accepted bid per task).
    m.register_on_call("oc", 3.0);
    let deadline = assigned_task(&mut m, "t2", Urgency::Urgent, "c1", 4000, 1);
    m.fire_until(deadline + 15 * MIN);
    assert_eq!(m.view("t2").assigned.unwrap().coach_id, user("oc"));
    let from = m.journal.len();
    m.ok(&admin(), payment_failed("t2"));
    assert_eq!(
        names(&since(&m, from)),
        ["payment_failed", "bid_rejected", "task_opened"]
    );
    let b = m.bid("c2", "t2", 4000, 1);
    m.accept("alice", "t2", &b);
    m.check_replay_and_snapshot();
}
