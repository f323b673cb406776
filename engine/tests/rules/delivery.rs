//! Delivering the work: start, submit and accept (the escrow splits 85/15), change requests up
//! to a dispute, the admin resolving it, and the messages between owner and assigned coach.

use gavel_engine::routing::deliveries;
use gavel_engine::{EventKind, Reply};
use gavel_protocol::{Award, DisputeOutcome, ErrorCode, TaskStatus, Topic, Urgency};

use crate::common::*;
use crate::helpers::{assigned_task, disputed_task, names, since};

#[test]
fn start_submit_accept_releases_85_15() {
    let mut m = Market::new();
    m.register_coach("c1", 4.0);
    m.register_coach("c2", 4.0);
    assigned_task(&mut m, "t", Urgency::Urgent, "c1", 4999, 2);
    m.refused_with(&coach("c1"), submit("t"), ErrorCode::Conflict);
    m.refused_with(&coach("c2"), start("t"), ErrorCode::Forbidden);
    m.refused_with(&seeker("alice"), start("t"), ErrorCode::Forbidden);
    m.refused_with(
        &seeker("alice"),
        accept_verification("t", 5),
        ErrorCode::Conflict,
    );
    assert_eq!(m.ok_events(&coach("c1"), start("t")), ["task_started"]);
    assert_eq!(m.view("t").status, TaskStatus::InProgress);
    m.refused_with(&coach("c1"), start("t"), ErrorCode::Conflict);
    assert_eq!(m.ok_events(&coach("c1"), submit("t")), ["task_submitted"]);
    assert_eq!(m.view("t").status, TaskStatus::Submitted);
    m.refused_with(&coach("c1"), submit("t"), ErrorCode::Conflict);
    m.refused_with(
        &seeker("bob"),
        accept_verification("t", 5),
        ErrorCode::Forbidden,
    );
    m.refused_with(&admin(), accept_verification("t", 5), ErrorCode::Forbidden);

    let from = m.journal.len();
    let reply = m.ok(&seeker("alice"), accept_verification("t", 4));
    // 4999 × 85 / 100 = 4249 (integer division); fee 4999 - 4249 = 750.
    let Reply::AcceptVerification(r) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!((r.coach_amount, r.platform_fee), (4249, 750));
    let events = since(&m, from);
    assert_eq!(names(&events), ["payment_released", "task_completed"]);
    assert_eq!(
        events[1],
        EventKind::TaskCompleted {
            task_id: tid("t"),
            coach_id: user("c1"),
            coach_amount: 4249,
            platform_fee: 750,
            rating: Some(4),
        }
    );
    let v = m.view("t");
    assert_eq!(v.status, TaskStatus::Completed);
    assert_eq!(
        (v.escrow.held, v.escrow.released, v.escrow.refunded),
        (4999, 4999, 0)
    );
    assert_eq!(m.coach("c1").view().active, 0);
    // No deadline survives completion.
    assert!(m.fire_until(T0 + 3 * DAY).is_empty());
    m.refused_with(
        &seeker("alice"),
        accept_verification("t", 4),
        ErrorCode::Conflict,
    );
}

#[test]
fn third_change_request_disputes() {
    let mut m = Market::new();
    m.register_coach("c1", 4.0);
    assigned_task(&mut m, "t", Urgency::Standard, "c1", 3000, 10);
    m.ok(&coach("c1"), start("t"));
    m.refused_with(&seeker("alice"), request_changes("t"), ErrorCode::Conflict);
    for n in 1..=3u32 {
        m.ok(&coach("c1"), submit("t"));
        m.refused_with(&coach("c1"), request_changes("t"), ErrorCode::Forbidden);
        let from = m.journal.len();
        let reply = m.ok(&seeker("alice"), request_changes("t"));
        assert!(matches!(reply, Reply::RequestChanges(r) if r.revisions == n));
        let v = m.view("t");
        assert_eq!(v.revisions, n);
        if n < 3 {
            assert_eq!(names(&since(&m, from)), ["changes_requested"]);
            assert_eq!(v.status, TaskStatus::InProgress, "submitted → in_progress");
        } else {
            assert_eq!(
                names(&since(&m, from)),
                ["changes_requested", "task_disputed"]
            );
            assert_eq!(v.status, TaskStatus::Disputed);
        }
    }
    m.refused_with(&coach("c1"), submit("t"), ErrorCode::Conflict);
    m.refused_with(&seeker("alice"), request_changes("t"), ErrorCode::Conflict);
    m.refused_with(
        &seeker("alice"),
        accept_verification("t", 3),
        ErrorCode::Conflict,
    );
    assert_eq!(
        m.view("t").escrow.held,
        3000,
        "the escrow waits for the admin"
    );
}

#[test]
fn resolve_dispute_release_and_refund() {
    let mut m = Market::new();
    m.register_coach("c1", 4.0);
    disputed_task(&mut m, "t_rel", 3750);
    disputed_task(&mut m, "t_ref", 6001);
    m.refused_with(
        &seeker("alice"),
        resolve("t_rel", DisputeOutcome::Release),
        ErrorCode::Forbidden,
    );
    m.refused_with(
        &coach("c1"),
        resolve("t_rel", DisputeOutcome::Release),
        ErrorCode::Forbidden,
    );
    assert_eq!(m.coach("c1").view().active, 2);

    let from = m.journal.len();
    m.ok(&admin(), resolve("t_rel", DisputeOutcome::Release));
    // 3750 × 85 / 100 = 3187 (318750 / 100), fee 563; no rating after a dispute.
    assert_eq!(
        since(&m, from),
        [
            EventKind::PaymentReleased {
                task_id: tid("t_rel"),
                coach_id: user("c1"),
                coach_amount: 3187,
                platform_fee: 563,
            },
            EventKind::TaskCompleted {
                task_id: tid("t_rel"),
                coach_id: user("c1"),
                coach_amount: 3187,
                platform_fee: 563,
                rating: None,
            },
        ]
    );
    let v = m.view("t_rel");
    assert_eq!(
        (v.status, v.escrow.released, v.escrow.refunded),
        (TaskStatus::Completed, 3750, 0)
    );

    let from = m.journal.len();
    m.ok(&admin(), resolve("t_ref", DisputeOutcome::Refund));
    assert_eq!(
        since(&m, from),
        [EventKind::PaymentRefunded {
            task_id: tid("t_ref"),
            amount: 6001
        }]
    );
    let v = m.view("t_ref");
    assert_eq!(
        (
            v.status,
            v.escrow.held,
            v.escrow.released,
            v.escrow.refunded
        ),
        (TaskStatus::Refunded, 6001, 0, 6001)
    );
    assert_eq!(m.coach("c1").view().active, 0);
    for t in ["t_rel", "t_ref"] {
        m.refused_with(
            &admin(),
            resolve(t, DisputeOutcome::Refund),
            ErrorCode::Conflict,
        );
    }
    // Only a disputed task can be resolved.
    assigned_task(&mut m, "t_live", Urgency::Urgent, "c1", 4000, 2);
    m.refused_with(
        &admin(),
        resolve("t_live", DisputeOutcome::Release),
        ErrorCode::Conflict,
    );
    m.check_replay_and_snapshot();
}

#[test]
fn messages_only_between_owner_and_assigned_coach() {
    let mut m = Market::new();
    m.register_coach("c1", 4.0);
    m.register_coach("c2", 4.0);
    m.post_task("alice", "t", Urgency::Urgent, Award::Manual);
    m.bid("c1", "t", 4000, 1);
    m.bid("c2", "t", 4000, 1);
    m.refused_with(&coach("c1"), message("t", "pick me"), ErrorCode::Forbidden);
    m.accept("alice", "t", &bid("b_0"));
    assert_eq!(
        m.ok_events(&seeker("alice"), message("t", "hi")),
        ["task_message"]
    );
    assert_eq!(
        m.ok_events(&coach("c1"), message("t", "hello")),
        ["task_message"]
    );
    m.refused_with(&coach("c2"), message("t", "psst"), ErrorCode::Forbidden);
    m.refused_with(&seeker("bob"), message("t", "hey"), ErrorCode::Forbidden);
    m.refused_with(&admin(), message("t", "ops here"), ErrorCode::Forbidden);
    m.refused_with(
        &coach("c2"),
        message("t_missing", "x"),
        ErrorCode::Forbidden,
    );
    // A message reaches the task topic (owner and assigned coach only), the owner's seeker
    // topic and admins, no feed.
    let (_, last) = m.journal.last().unwrap();
    let topics: Vec<Topic> = deliveries(last).into_iter().map(|d| d.topic).collect();
    assert_eq!(
        topics,
        [
            Topic::Task(tid("t")),
            Topic::Seeker(user("alice")),
            Topic::Admin
        ]
    );
    // Not after the task is over.
    m.ok(&coach("c1"), start("t"));
    m.ok(&coach("c1"), submit("t"));
    m.ok(&seeker("alice"), accept_verification("t", 5));
    m.refused_with(
        &seeker("alice"),
        message("t", "thanks"),
        ErrorCode::Conflict,
    );
}
