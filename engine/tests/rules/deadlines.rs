//! Deadlines and the on-call pool: an unbid window goes on call at 1.2× (or opens anew when
//! nobody is free), the coach is reminded before the deadline, and a late coach gets a strike
//! (three suspend) while the task is reassigned, or refunded and reopened.

use std::collections::BTreeMap;

use gavel_engine::EventKind;
use gavel_engine::routing::deliveries;
use gavel_protocol::http::CoachUpsert;
use gavel_protocol::{Award, BidStatus, ErrorCode, Millis, TaskStatus, Topic, Urgency};

use crate::common::*;
use crate::helpers::{assigned_task, post_priced};

#[test]
fn window_closing_without_bids_assigns_on_call_coach_at_1_2x() {
    let mut m = Market::new();
    let alice = "alice";
    // Two on-call coaches alone: t_1 and t_2 close unbid at +10 min. Equal load and rating:
    // the smallest id first (oc_busy), then the one with fewer active tasks (oc_full).
    m.register_on_call("oc_busy", 5.0);
    m.upsert_coach(
        "oc_full",
        CoachUpsert {
            ratings_count: 0,
            capacity: 1,
            ..on_call_profile(5.0)
        },
    );
    m.post_task(alice, "t_1", Urgency::Urgent, Award::Manual);
    m.post_task(alice, "t_2", Urgency::Urgent, Award::Manual);
    let fired = m.fire_until(T0 + 10 * MIN);
    assert_eq!(
        kinds(&fired),
        [
            "task_assigned",
            "payment_held",
            "task_closed",
            "task_assigned",
            "payment_held",
            "task_closed"
        ]
    );
    let on_call = |m: &Market, t: &str| m.view(t).assigned.expect("assigned").coach_id;
    assert_eq!(on_call(&m, "t_1"), user("oc_busy"));
    assert_eq!(on_call(&m, "t_2"), user("oc_full"));
    let a = m.view("t_1").assigned.unwrap();
    // 3750 × 1.2 = 4500; eta = the tier's window (2 h) from the window's close.
    assert_eq!(
        (a.bid_id, a.amount, a.deadline, a.on_call),
        (None, 4500, T0 + 10 * MIN + 2 * HOUR, true)
    );
    assert_eq!(m.task("t_1").assigned.as_ref().unwrap().eta_hours, 2);
    assert_eq!(m.view("t_1").escrow.held, 4500);

    // Now a crowd; only on-call, verified, unsuspended coaches below capacity qualify.
    m.register_on_call("oc_b", 4.5);
    m.register_on_call("oc_a", 4.5);
    m.register_on_call("oc_low", 3.0);
    m.register_coach("c_off_duty", 5.0);
    m.upsert_coach(
        "oc_unverified",
        CoachUpsert {
            ratings_count: 0,
            verified: false,
            ..on_call_profile(5.0)
        },
    );
    m.upsert_coach(
        "oc_suspended",
        CoachUpsert {
            ratings_count: 0,
            suspended: true,
            ..on_call_profile(5.0)
        },
    );
    for t in ["t_3", "t_4", "t_5", "t_6"] {
        m.post_task(alice, t, Urgency::Urgent, Award::Manual);
    }
    m.fire_until(T0 + 20 * MIN);
    // t_3: the fewest active (0): oc_a, oc_b (4.5), oc_low (3.0) → highest rating, smallest id.
    assert_eq!(on_call(&m, "t_3"), user("oc_a"));
    assert_eq!(on_call(&m, "t_4"), user("oc_b"));
    assert_eq!(
        on_call(&m, "t_5"),
        user("oc_low"),
        "fewest active beats rating"
    );
    // t_6: everyone holds one; oc_full is at capacity → the highest rating: oc_busy.
    assert_eq!(on_call(&m, "t_6"), user("oc_busy"));

    // Standard: 2500 × 1.2 = 3000, 24 h. Flexible from base 2504: round(2003.2) = 2003,
    // round(2003 × 1.2 = 2403.6) = 2404, 72 h.
    m.post_task(alice, "t_std", Urgency::Standard, Award::Manual);
    m.ok(
        &seeker(alice),
        post_priced("t_flex", Urgency::Flexible, 2504),
    );
    let closes = m.now + 30 * MIN;
    m.fire_until(closes);
    let s = m.view("t_std").assigned.unwrap();
    assert_eq!((s.amount, s.deadline), (3000, closes + 24 * HOUR));
    let f = m.view("t_flex").assigned.unwrap();
    assert_eq!((f.amount, f.deadline), (2404, closes + 72 * HOUR));
    m.check_replay_and_snapshot();
}

/// A bidding close driven windows late (the server was down): one `task.unfilled`, and the new
/// window ends at the first close of the task's schedule after that moment — not one unfilled
/// window after another, all in the same instant, that nobody could bid in.
#[test]
fn a_close_driven_windows_late_opens_one_window_from_now() {
    let mut m = Market::new();
    m.register_coach("c1", 4.0); // not on call
    m.post_task("alice", "t", Urgency::Urgent, Award::Manual);
    // Closes at T0 + 10 min; driven at T0 + 45 min, three and a half windows late.
    let fired = m.fire_until(T0 + 45 * MIN);
    assert_eq!(kinds(&fired), ["task_unfilled"]);
    assert_eq!(
        fired[0].1.at,
        T0 + 10 * MIN,
        "it happened when the window closed"
    );
    assert_eq!(m.view("t").bidding_closes_at, T0 + 50 * MIN);
    assert!(m.fire_until(T0 + 50 * MIN - 1).is_empty());
    m.bid("c1", "t", 4000, 1);
    assert_eq!(kinds(&m.fire_until(T0 + 50 * MIN)), ["bidding_closed"]);
    m.check_replay_and_snapshot();
}

#[test]
fn no_free_on_call_coach_leaves_task_open_with_new_window_and_unfilled() {
    let mut m = Market::new();
    m.register_coach("c1", 4.0); // not on call
    m.upsert_coach(
        "oc_unverified",
        CoachUpsert {
            ratings_count: 0,
            verified: false,
            ..on_call_profile(5.0)
        },
    );
    m.post_task("alice", "t", Urgency::Urgent, Award::Manual);
    assert!(m.fire_until(T0 + 10 * MIN - 1).is_empty());
    let fired = m.fire_until(T0 + 10 * MIN);
    assert_eq!(kinds(&fired), ["task_unfilled"]);
    // task.unfilled goes to the admin topic only.
    let topics: Vec<Topic> = deliveries(&fired[0].1)
        .into_iter()
        .map(|d| d.topic)
        .collect();
    assert_eq!(topics, [Topic::Admin]);
    let v = m.view("t");
    assert_eq!(v.status, TaskStatus::Open);
    assert_eq!(v.bidding_closes_at, T0 + 20 * MIN, "a new window");
    assert!(m.engine.state().open_tasks.contains(&tid("t")));
    // Again and again, window after window, until someone bids or comes on call.
    assert_eq!(kinds(&m.fire_until(T0 + 20 * MIN)), ["task_unfilled"]);
    m.advance(MIN);
    m.bid("c1", "t", 4000, 1);
    assert_eq!(kinds(&m.fire_until(T0 + 30 * MIN)), ["bidding_closed"]);

    // An on-call coach at capacity is not free either.
    m.upsert_coach(
        "oc_full",
        CoachUpsert {
            ratings_count: 0,
            capacity: 1,
            ..on_call_profile(5.0)
        },
    );
    m.post_task("alice", "t_a", Urgency::Urgent, Award::Manual);
    m.post_task("alice", "t_b", Urgency::Urgent, Award::Manual);
    let fired = m.fire_until(m.now + 10 * MIN);
    assert_eq!(
        kinds(&fired),
        [
            "task_assigned",
            "payment_held",
            "task_closed",
            "task_unfilled"
        ]
    );
    assert_eq!(m.view("t_b").status, TaskStatus::Open);
    m.register_on_call("oc_new", 3.0);
    let fired = m.fire_until(m.now + 10 * MIN);
    assert_eq!(
        kinds(&fired),
        ["task_assigned", "payment_held", "task_closed"]
    );
    assert_eq!(m.view("t_b").assigned.unwrap().coach_id, user("oc_new"));
}

#[test]
fn reminder_fires_lead_before_deadline() {
    let mut m = Market::new();
    m.register_coach("c1", 4.0);
    // (task, urgency, amount, eta_hours, lead = min(2 h, eta / 4))
    let cases = [
        ("t_u1", Urgency::Urgent, 4000, 1, 15 * MIN),
        ("t_u2", Urgency::Urgent, 4000, 2, 30 * MIN),
        ("t_s3", Urgency::Standard, 3000, 3, 45 * MIN),
        ("t_s5", Urgency::Standard, 3000, 5, 75 * MIN),
        ("t_s24", Urgency::Standard, 3000, 24, 2 * HOUR),
        ("t_f72", Urgency::Flexible, 3000, 72, 2 * HOUR),
    ];
    let mut expected = BTreeMap::new();
    for (t, urgency, amount, eta, lead) in cases {
        let deadline = assigned_task(&mut m, t, urgency, "c1", amount, eta);
        assert_eq!(deadline, m.now + eta as Millis * HOUR);
        expected.insert(t.to_owned(), (deadline - lead, deadline));
        m.advance(MIN);
    }
    // Step exactly onto the first reminder: not a millisecond early.
    let (first_at, _) = expected["t_u1"];
    let early = m.fire_until(first_at - 1);
    assert!(!kinds(&early).contains(&"task_reminder".to_owned()));
    let on_time = m.fire_until(first_at);
    assert_eq!(kinds(&on_time), ["task_reminder"]);
    // The rest in one late jump: each still happens at its own time, in time order.
    let later = m.fire_until(T0 + 5 * DAY);
    let mut got = BTreeMap::new();
    let mut last_at = 0;
    for (_, e) in on_time.iter().chain(&later) {
        assert!(e.at >= last_at, "fired in time order");
        last_at = e.at;
        if let EventKind::TaskReminder {
            task_id,
            deadline,
            coach_id,
        } = &e.kind
        {
            assert_eq!(coach_id, &user("c1"));
            got.entry(task_id.as_str().to_owned())
                .or_insert((e.at, *deadline));
        }
    }
    assert_eq!(got, expected);
}

#[test]
fn late_coach_gets_strike_and_task_is_reassigned() {
    let mut m = Market::new();
    // The late coach is on call too, and rated best: it is still not picked for its own task.
    m.register_on_call("c1", 5.0);
    m.register_on_call("oc", 3.0);
    let deadline = assigned_task(&mut m, "t", Urgency::Urgent, "c1", 5000, 1);
    assert_eq!(deadline, T0 + HOUR);
    // lead = min(2 h, 1 h / 4) = 15 min: reminder at deadline - 15 min, overdue at + 15 min.
    let overdue = deadline + 15 * MIN;
    assert_eq!(kinds(&m.fire_until(deadline - 15 * MIN)), ["task_reminder"]);
    assert!(m.fire_until(overdue - 1).is_empty());
    let fired = m.fire_until(overdue);
    assert_eq!(kinds(&fired), ["task_reassigned", "task_assigned"]);
    assert_eq!(
        fired[0].1.kind,
        EventKind::TaskReassigned {
            task_id: tid("t"),
            from_coach_id: user("c1"),
            to_coach_id: Some(user("oc")),
        }
    );
    assert_eq!(
        fired[1].1.kind,
        EventKind::TaskAssigned {
            task_id: tid("t"),
            coach_id: user("oc"),
            bid_id: None,
            amount: 5000, // the escrowed amount, not the on-call price
            eta_hours: 2, // the tier's window
            deadline: overdue + 2 * HOUR,
            on_call: true,
        }
    );
    let c1 = m.coach("c1").view();
    assert_eq!((c1.strikes, c1.suspended, c1.active), (1, false, 0));
    assert_eq!(m.coach("oc").view().active, 1);
    let v = m.view("t");
    assert_eq!(v.status, TaskStatus::Assigned);
    assert_eq!(
        (v.escrow.held, v.escrow.refunded),
        (5000, 0),
        "no new hold, no refund"
    );
    m.refused_with(&coach("c1"), start("t"), ErrorCode::Forbidden);
    // The new coach's own reminder: lead = min(2 h, 2 h / 4) = 30 min.
    assert_eq!(
        kinds(&m.fire_until(overdue + 2 * HOUR - 30 * MIN)),
        ["task_reminder"]
    );
    // A coach that started but did not submit is late just the same.
    m.ok(&coach("oc"), start("t"));
    m.register_on_call("oc2", 3.0);
    let fired = m.fire_until(overdue + 2 * HOUR + 30 * MIN);
    assert_eq!(kinds(&fired), ["task_reassigned", "task_assigned"]);
    assert_eq!(m.coach("oc").view().strikes, 1);
    assert_eq!(
        m.view("t").assigned.unwrap().coach_id,
        user("c1"),
        "c1 is free again"
    );
    m.check_replay_and_snapshot();
}

#[test]
fn three_strikes_suspend_a_coach() {
    let mut m = Market::new();
    m.register_coach("c1", 4.0);
    for round in 1..=3u32 {
        let t = format!("t_{round}");
        let spare = format!("spare_{round}");
        m.post_task("alice", &t, Urgency::Urgent, Award::Manual);
        m.post_task("alice", &spare, Urgency::Urgent, Award::Manual);
        let b = m.bid("c1", &t, 4000, 1);
        let spare_bid = m.bid("c1", &spare, 4000, 1);
        let deadline = m.accept("alice", &t, &b);
        // Let everything fall due: reminder, then overdue (nobody on call: refund, reopen).
        m.fire_until(deadline + 15 * MIN);
        let c1 = m.coach("c1").view();
        assert_eq!(c1.strikes, round);
        assert_eq!(c1.suspended, round == 3, "suspended at the third strike");
        if round < 3 {
            m.ok(&seeker("alice"), cancel(&spare));
        } else {
            // Its other pending bids stay, but cannot be accepted any more.
            m.refused_with(
                &seeker("alice"),
                accept(&spare, spare_bid.as_str()),
                ErrorCode::Conflict,
            );
        }
    }
    m.post_task("alice", "t_next", Urgency::Urgent, Award::Manual);
    m.refused_with(
        &coach("c1"),
        place_bid("t_next", 4000, 1),
        ErrorCode::Forbidden,
    );
    // Nor is a suspended coach picked on call (an update that keeps the suspension keeps
    // the strikes).
    m.upsert_coach(
        "c1",
        CoachUpsert {
            ratings_count: 0,
            suspended: true,
            ..on_call_profile(4.0)
        },
    );
    assert_eq!(m.coach("c1").view().strikes, 3);
    let fired = m.fire_until(m.now + 10 * MIN);
    assert!(!fired.is_empty());
    assert!(
        kinds(&fired).iter().all(|k| k == "task_unfilled"),
        "{:?}",
        kinds(&fired)
    );
    // Reinstated by an admin: strikes forgiven, on call again.
    m.upsert_coach("c1", on_call_profile(4.0));
    assert_eq!(m.coach("c1").view().strikes, 0);
    let fired = m.fire_until(m.now + 10 * MIN);
    assert!(kinds(&fired).contains(&"task_assigned".to_owned()));
    m.check_replay_and_snapshot();
}

#[test]
fn overdue_without_on_call_coach_refunds_and_reopens() {
    let mut m = Market::new();
    m.register_coach("c1", 4.0);
    m.register_coach("c2", 4.0);
    let deadline = assigned_task(&mut m, "t", Urgency::Urgent, "c1", 4000, 1);
    m.ok(&coach("c1"), start("t"));
    let overdue = deadline + 15 * MIN;
    m.fire_until(overdue - 1);
    let fired = m.fire_until(overdue);
    assert_eq!(
        kinds(&fired),
        [
            "task_reassigned",
            "payment_refunded",
            "bid_rejected",
            "task_opened"
        ]
    );
    assert_eq!(
        fired[0].1.kind,
        EventKind::TaskReassigned {
            task_id: tid("t"),
            from_coach_id: user("c1"),
            to_coach_id: None,
        }
    );
    assert_eq!(
        fired[1].1.kind,
        EventKind::PaymentRefunded {
            task_id: tid("t"),
            amount: 4000
        }
    );
    // task.opened reaches the feed again, with a fresh window and no bids.
    let d = deliveries(&fired[3].1);
    assert!(d.iter().any(|d| d.topic == Topic::Feed));
    let v = m.view("t");
    assert_eq!(v.status, TaskStatus::Open);
    assert_eq!(v.assigned, None);
    assert_eq!(v.bidding_closes_at, overdue + 10 * MIN);
    assert_eq!(
        (v.escrow.held, v.escrow.released, v.escrow.refunded),
        (4000, 0, 4000)
    );
    assert_eq!(
        m.task("t").bids[&bid("b_0")].view.status,
        BidStatus::Rejected,
        "the award is void"
    );
    assert_eq!(m.coach("c1").view().strikes, 1);
    // The reopened task is awarded afresh and settles normally.
    m.advance(MIN);
    let b = m.bid("c2", "t", 5000, 2);
    m.accept("alice", "t", &b);
    m.ok(&coach("c2"), start("t"));
    m.ok(&coach("c2"), submit("t"));
    m.ok(&seeker("alice"), accept_verification("t", 5));
    let v = m.view("t");
    assert_eq!(
        (v.escrow.held, v.escrow.released, v.escrow.refunded),
        (9000, 5000, 4000)
    );
    m.check_replay_and_snapshot();
}
