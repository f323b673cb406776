//! Awarding a task: the owner accepts a bid (the coach is assigned, the escrow holds the
//! amount, the other bids lose), the bidding window closes on time, and auto or manual award
//! when it does.

use std::collections::BTreeMap;

use gavel_engine::{EventKind, Reply};
use gavel_protocol::http::CoachUpsert;
use gavel_protocol::{Award, BidStatus, ErrorCode, TaskStatus, Urgency};

use crate::common::*;
use crate::helpers::{names, request, since};

#[test]
fn accept_assigns_holds_escrow_and_rejects_others() {
    let mut m = Market::new();
    for (c, r) in [("c1", 4.0), ("c2", 5.0), ("c3", 0.0), ("c4", 4.5)] {
        m.register_coach(c, r);
    }
    m.post_task("alice", "t", Urgency::Urgent, Award::Manual);
    m.bid("c1", "t", 3750, 2); // 7400
    m.bid("c2", "t", 5000, 1); // 7333
    m.bid("c3", "t", 4500, 1); // 6500
    m.bid("c4", "t", 7500, 1); // 3700
    m.advance(5 * MIN);
    m.refused_with(&seeker("bob"), accept("t", "b_2"), ErrorCode::Forbidden);
    m.refused_with(&admin(), accept("t", "b_2"), ErrorCode::Forbidden);
    m.refused_with(&coach("c3"), accept("t", "b_2"), ErrorCode::Forbidden);
    m.refused_with(&seeker("alice"), accept("t", "b_9"), ErrorCode::NotFound);

    let from = m.journal.len();
    let reply = m.ok(&seeker("alice"), accept("t", "b_2"));
    let Reply::AcceptBid(r) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(
        (r.task_id.as_str(), r.coach_id.as_str(), r.amount),
        ("t", "c3", 4500)
    );
    assert_eq!(
        r.deadline,
        T0 + 5 * MIN + HOUR,
        "deadline = now + eta_hours"
    );
    let events = since(&m, from);
    assert_eq!(
        names(&events),
        [
            "bid_accepted",
            "bid_rejected",
            "bid_rejected",
            "bid_rejected",
            "task_assigned",
            "payment_held",
            "task_closed"
        ]
    );
    let rejected: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            EventKind::BidRejected { bid_id, .. } => Some(bid_id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(rejected, ["b_0", "b_1", "b_3"], "best first");
    assert!(events.contains(&EventKind::PaymentHeld {
        task_id: tid("t"),
        amount: 4500
    }));
    assert!(events.contains(&EventKind::TaskClosed {
        task_id: tid("t"),
        status: TaskStatus::Assigned
    }));

    let v = m.view("t");
    assert_eq!(v.status, TaskStatus::Assigned);
    assert_eq!(
        (v.escrow.held, v.escrow.released, v.escrow.refunded),
        (4500, 0, 0)
    );
    assert_eq!((v.bid_count, v.bids.len(), v.top3.len()), (0, 0, 0));
    let a = v.assigned.expect("assigned");
    assert_eq!(
        (
            a.coach_id.as_str(),
            a.bid_id,
            a.amount,
            a.deadline,
            a.on_call
        ),
        ("c3", Some(bid("b_2")), 4500, T0 + 5 * MIN + HOUR, false)
    );
    let statuses: BTreeMap<String, BidStatus> = m
        .task("t")
        .bids
        .values()
        .map(|b| (b.view.bid_id.as_str().to_owned(), b.view.status))
        .collect();
    assert_eq!(statuses["b_2"], BidStatus::Accepted);
    for b in ["b_0", "b_1", "b_3"] {
        assert_eq!(statuses[b], BidStatus::Rejected);
    }
    assert_eq!(m.coach("c3").view().active, 1);
    assert!(!m.engine.state().open_tasks.contains(&tid("t")));
    // Once assigned, nothing more can be accepted or bid.
    m.refused_with(&seeker("alice"), accept("t", "b_0"), ErrorCode::Conflict);
    m.refused_with(&coach("c1"), place_bid("t", 3750, 1), ErrorCode::Conflict);
}

#[test]
fn bid_after_window_closes_is_rejected_even_before_timer_is_driven() {
    let mut m = Market::new();
    m.register_coach("c1", 4.0);
    m.register_coach("c2", 4.0);
    m.post_task("alice", "t", Urgency::Urgent, Award::Manual);
    m.bid("c1", "t", 4000, 1);
    let closes = T0 + 10 * MIN;
    let late_bid = request(&coach("c2"), place_bid("t", 4000, 1));
    let late_update = request(&coach("c1"), place_bid("t", 3900, 1));
    // The timer has not fired (nothing drove it), yet the window is closed by the clock.
    assert!(m.engine.next_due().is_some_and(|due| due <= closes));
    assert!(m.engine.decide(&late_bid, closes - 1).is_ok());
    for r in [&late_bid, &late_update] {
        let refusal = m
            .engine
            .decide(r, closes)
            .expect_err("the window is closed");
        assert_eq!(refusal.code, ErrorCode::Conflict);
    }
    // Through `execute` the deadline fires first (the owner now chooses), then the refusal.
    m.advance_to(closes);
    let outcome = m.run(&coach("c2"), place_bid("t", 4000, 1));
    assert_eq!(kinds(&outcome.events), ["bidding_closed"]);
    assert_eq!(outcome.reply.expect_err("closed").code, ErrorCode::Conflict);
    assert_eq!(m.view("t").bid_count, 1);
    m.check_replay_and_snapshot();
}

#[test]
fn auto_award_accepts_best_bid_when_window_closes() {
    let mut m = Market::new();
    m.register_coach("c1", 4.0);
    m.register_coach("c2", 5.0);
    m.post_task("alice", "t", Urgency::Urgent, Award::Auto);
    m.bid("c2", "t", 5000, 1); // b_0: 7333
    m.bid("c1", "t", 3750, 2); // b_1: 7400 (best)
    assert!(m.fire_until(T0 + 10 * MIN - 1).is_empty());
    let fired = m.fire_until(T0 + 10 * MIN);
    assert_eq!(
        kinds(&fired),
        [
            "bid_accepted",
            "bid_rejected",
            "task_assigned",
            "payment_held",
            "task_closed"
        ]
    );
    assert!(
        matches!(&fired[0].1.kind, EventKind::BidAccepted { bid_id, .. } if *bid_id == bid("b_1"))
    );
    assert_eq!(
        fired[0].1.at,
        T0 + 10 * MIN,
        "the event happens at the window's close"
    );
    let a = m.view("t").assigned.unwrap();
    assert_eq!(
        (a.coach_id.as_str(), a.bid_id, a.amount, a.deadline),
        ("c1", Some(bid("b_1")), 3750, T0 + 10 * MIN + 2 * HOUR)
    );
    assert_eq!(m.view("t").escrow.held, 3750);
}

#[test]
fn auto_award_skips_bids_of_coaches_no_longer_in_good_standing() {
    let mut m = Market::new();
    m.register_coach("c1", 4.0);
    m.register_coach("c2", 5.0);
    m.register_on_call("oc", 3.0);
    m.post_task("alice", "t", Urgency::Urgent, Award::Auto);
    m.bid("c1", "t", 3750, 2); // b_0: 7400 (best)
    m.bid("c2", "t", 5000, 1); // b_1: 7333
    // c1 is suspended before the window closes: the owner could not accept its bid
    // (accept_bid refuses it), so neither does the automatic award.
    m.upsert_coach(
        "c1",
        CoachUpsert {
            ratings_count: 0,
            suspended: true,
            ..profile(4.0)
        },
    );
    let fired = m.fire_until(T0 + 10 * MIN);
    assert_eq!(
        kinds(&fired),
        [
            "bid_accepted",
            "bid_rejected",
            "task_assigned",
            "payment_held",
            "task_closed"
        ]
    );
    assert_eq!(m.view("t").assigned.unwrap().coach_id, user("c2"));

    // Only bids of coaches out of good standing: as if unbid (they are rejected, on call).
    m.post_task("alice", "t2", Urgency::Urgent, Award::Auto);
    m.bid("c2", "t2", 5000, 1); // b_2
    m.upsert_coach(
        "c2",
        CoachUpsert {
            ratings_count: 0,
            verified: false,
            ..profile(5.0)
        },
    );
    let fired = m.fire_until(m.now + 10 * MIN);
    assert_eq!(
        kinds(&fired),
        [
            "bid_rejected",
            "task_assigned",
            "payment_held",
            "task_closed"
        ]
    );
    let a = m.view("t2").assigned.unwrap();
    assert_eq!(
        (a.coach_id.as_str(), a.amount, a.on_call),
        ("oc", 4500, true)
    );
    m.check_replay_and_snapshot();
}

#[test]
fn manual_award_waits_for_owner_after_window() {
    let mut m = Market::new();
    m.register_coach("c1", 4.0);
    m.register_coach("c2", 4.0);
    m.register_on_call("oc", 5.0);
    m.post_task("alice", "t", Urgency::Urgent, Award::Manual);
    m.bid("c1", "t", 4000, 2);
    let fired = m.fire_until(T0 + 10 * MIN);
    assert_eq!(kinds(&fired), ["bidding_closed"], "no award, no on-call");
    let v = m.view("t");
    assert_eq!((v.status, v.bid_count), (TaskStatus::Open, 1));
    assert!(m.task("t").deadline.is_none(), "no further window");
    m.refused_with(&coach("c2"), place_bid("t", 4000, 1), ErrorCode::Conflict);
    // Days pass: nothing happens until the owner chooses.
    assert!(m.fire_until(T0 + 3 * DAY).is_empty());
    let deadline = m.accept("alice", "t", &bid("b_0"));
    assert_eq!(
        deadline,
        T0 + 3 * DAY + 2 * HOUR,
        "deadline from the acceptance"
    );
    assert_eq!(m.view("t").status, TaskStatus::Assigned);
}
