//! One test per marketplace rule of contract §5 (and the row-level visibility rules of §3/§8),
//! each named after its rule and driven by a simulated clock. Expected numbers are the
//! contract's, computed by hand in the comments (urgent: base 2500 → suggested 3750, range
//! [3750, 7500], on call 4500; 85/15 split with integer division).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::*;
use gavel_engine::wire::{Audience, deliveries};
use gavel_engine::{Command, Engine, EngineConfig, Event, EventKind, Reply, Request};
use gavel_protocol::command as wire_cmd;
use gavel_protocol::http::CoachUpsert;
use gavel_protocol::views::{PostTaskResult, Snapshot};
use gavel_protocol::{
    Award, BidStatus, Cents, DisputeOutcome, ErrorCode, Millis, RequestId, Seq, TaskStatus, Topic,
    Urgency,
};

// ---------------------------------------------------------------------------------------------
// Helpers

fn post_priced(task_id: &str, urgency: Urgency, base_price: Cents) -> Command {
    Command::PostTask(wire_cmd::PostTask {
        resume_id: "resume-1".to_owned(),
        task_type: None,
        urgency,
        base_price: Some(base_price),
        award: None,
        task_id: Some(tid(task_id)),
        owner: None,
    })
}

fn posted(reply: Reply) -> PostTaskResult {
    match reply {
        Reply::PostTask(r) => r,
        other => panic!("post_task replied {other:?}"),
    }
}

/// The events applied since journal position `from`.
fn since(m: &Market, from: usize) -> Vec<EventKind> {
    m.journal[from..]
        .iter()
        .map(|(_, e)| e.kind.clone())
        .collect()
}

fn names(events: &[EventKind]) -> Vec<String> {
    events.iter().map(kind_name).collect()
}

/// A task posted by `alice` with one accepted bid from `coach_id`; returns the deadline.
fn assigned_task(
    m: &mut Market,
    task_id: &str,
    urgency: Urgency,
    coach_id: &str,
    amount: Cents,
    eta_hours: u32,
) -> Millis {
    m.post_task("alice", task_id, urgency, Award::Manual);
    let b = m.bid(coach_id, task_id, amount, eta_hours);
    m.accept("alice", task_id, &b)
}

/// Every `(task, coach_amount, platform_fee)` release in the journal.
fn releases(m: &Market) -> Vec<(String, Cents, Cents)> {
    m.journal
        .iter()
        .filter_map(|(_, e)| match &e.kind {
            EventKind::PaymentReleased {
                task_id,
                coach_amount,
                platform_fee,
                ..
            } => Some((task_id.as_str().to_owned(), *coach_amount, *platform_fee)),
            _ => None,
        })
        .collect()
}

fn request(actor: &gavel_engine::Actor, command: Command) -> Request {
    Request {
        actor: actor.clone(),
        request_id: None,
        command,
    }
}

// ---------------------------------------------------------------------------------------------
// Prices, bids, ranking

#[test]
fn suggested_price_is_base_times_tier_multiplier() {
    let mut m = Market::new();
    let alice = seeker("alice");
    // Defaults: base 2500 × 1.5 / 1.0 / 0.8; range [s, 2s]; windows 10 / 30 / 30 min.
    let cases = [
        ("t_u", Urgency::Urgent, 3750, 10 * MIN),
        ("t_s", Urgency::Standard, 2500, 30 * MIN),
        ("t_f", Urgency::Flexible, 2000, 30 * MIN),
    ];
    for (id, urgency, suggested, window) in cases {
        let r = posted(m.ok(&alice, post(id, urgency, Award::Manual)));
        assert_eq!(r.task_id, tid(id));
        assert_eq!(r.suggested_price, suggested, "{urgency}");
        assert_eq!(r.price_range, [suggested, 2 * suggested], "{urgency}");
        assert_eq!(r.bidding_closes_at, T0 + window, "{urgency}");
        assert_eq!(m.view(id).suggested_price, suggested);
    }
    // round(): 1999 × 1.5 = 2998.5 → 2999 (halves up); 1003 × 0.8 = 802.4 → 802.
    let r = posted(m.ok(&alice, post_priced("t_r1", Urgency::Urgent, 1999)));
    assert_eq!((r.suggested_price, r.price_range), (2999, [2999, 5998]));
    let r = posted(m.ok(&alice, post_priced("t_r2", Urgency::Flexible, 1003)));
    assert_eq!((r.suggested_price, r.price_range), (802, [802, 1604]));
    let r = posted(m.ok(&alice, post_priced("t_r3", Urgency::Standard, 1001)));
    assert_eq!((r.suggested_price, r.price_range), (1001, [1001, 2002]));
}

#[test]
fn post_task_fills_defaults_and_only_seekers_and_admins_post() {
    let mut m = Market::new();
    let r = posted(m.ok(&seeker("alice"), post_defaults(Urgency::Standard)));
    assert_eq!(r.task_id, tid("t_0"), "server-chosen ids are t_<n>");
    let v = m.view("t_0");
    assert_eq!(v.task_type, "resume_review_full");
    assert_eq!(v.award, Award::Manual);
    assert_eq!(v.owner, user("alice"));
    assert_eq!(
        (v.status, v.bid_count, v.revisions),
        (TaskStatus::Open, 0, 0)
    );
    let r = posted(m.ok(&seeker("bob"), post_defaults(Urgency::Standard)));
    assert_eq!(r.task_id, tid("t_1"));

    m.refused_with(
        &coach("c1"),
        post_defaults(Urgency::Urgent),
        ErrorCode::Forbidden,
    );
    // An admin posts on a seeker's behalf and must name the owner.
    let no_owner = m.refused_with(
        &admin(),
        post_defaults(Urgency::Urgent),
        ErrorCode::ValidationError,
    );
    assert_eq!(no_owner.field.as_deref(), Some("owner"));
    let mut on_behalf = wire_cmd::PostTask {
        resume_id: "r".to_owned(),
        task_type: Some("linkedin_review".to_owned()),
        urgency: Urgency::Flexible,
        base_price: None,
        award: Some(Award::Auto),
        task_id: Some(tid("t_x")),
        owner: Some(user("carol")),
    };
    m.ok(&admin(), Command::PostTask(on_behalf.clone()));
    let v = m.view("t_x");
    assert_eq!(
        (v.owner.as_str(), v.task_type.as_str()),
        ("carol", "linkedin_review")
    );
    // A seeker cannot post for someone else, and ids are unique.
    on_behalf.task_id = Some(tid("t_y"));
    m.refused_with(
        &seeker("alice"),
        Command::PostTask(on_behalf.clone()),
        ErrorCode::Forbidden,
    );
    on_behalf.task_id = Some(tid("t_x"));
    m.refused_with(&admin(), Command::PostTask(on_behalf), ErrorCode::Conflict);
}

#[test]
fn bid_outside_price_range_is_a_validation_error_on_amount() {
    let mut m = Market::new();
    for c in ["c1", "c2", "c3"] {
        m.register_coach(c, 4.0);
    }
    m.post_task("alice", "t_u", Urgency::Urgent, Award::Manual);
    m.post_task("alice", "t_s", Urgency::Standard, Award::Manual);
    for (task, amount) in [
        ("t_u", 3749),
        ("t_u", 7501),
        ("t_u", 0),
        ("t_s", 2499),
        ("t_s", 5001),
    ] {
        let r = m.refused_with(
            &coach("c1"),
            place_bid(task, amount, 1),
            ErrorCode::ValidationError,
        );
        assert_eq!(r.field.as_deref(), Some("amount"), "{task} {amount}");
    }
    assert_eq!(m.view("t_u").bid_count, 0, "nothing was applied");
    // Both ends of the range are inside it.
    m.bid("c1", "t_u", 3750, 1);
    m.bid("c2", "t_u", 7500, 1);
    m.bid("c3", "t_s", 2500, 1);
    m.bid("c1", "t_s", 5000, 24);
    assert_eq!(m.view("t_u").bid_count, 2);
}

#[test]
fn eta_beyond_tier_window_is_rejected() {
    let mut m = Market::new();
    m.register_coach("c1", 4.0);
    m.post_task("alice", "t_u", Urgency::Urgent, Award::Manual);
    m.post_task("alice", "t_s", Urgency::Standard, Award::Manual);
    m.post_task("alice", "t_f", Urgency::Flexible, Award::Manual);
    for (task, eta) in [("t_u", 0), ("t_u", 3), ("t_s", 25), ("t_f", 73), ("t_f", 0)] {
        let r = m.refused_with(
            &coach("c1"),
            place_bid(task, 5000.min(m.view(task).price_range[1]), eta),
            ErrorCode::ValidationError,
        );
        assert_eq!(r.field.as_deref(), Some("eta_hours"), "{task} eta {eta}");
    }
    m.bid("c1", "t_u", 4000, 2);
    m.bid("c1", "t_u", 4000, 1);
    m.bid("c1", "t_s", 3000, 24);
    m.bid("c1", "t_f", 3000, 72);
}

#[test]
fn unregistered_unverified_or_suspended_coach_cannot_bid() {
    let mut m = Market::new();
    m.post_task("alice", "t", Urgency::Urgent, Award::Manual);
    m.upsert_coach(
        "c_unverified",
        CoachUpsert {
            verified: false,
            ..profile(4.0)
        },
    );
    m.upsert_coach(
        "c_suspended",
        CoachUpsert {
            suspended: true,
            ..profile(4.0)
        },
    );
    for c in ["c_unregistered", "c_unverified", "c_suspended"] {
        m.refused_with(&coach(c), place_bid("t", 4000, 1), ErrorCode::Forbidden);
    }
    // Only coaches bid at all.
    m.refused_with(
        &seeker("bob"),
        place_bid("t", 4000, 1),
        ErrorCode::Forbidden,
    );
    m.refused_with(&admin(), place_bid("t", 4000, 1), ErrorCode::Forbidden);
    assert_eq!(m.view("t").bid_count, 0);
    // Once verified and reinstated, they may.
    m.upsert_coach("c_unverified", profile(4.0));
    m.upsert_coach("c_suspended", profile(4.0));
    m.bid("c_unverified", "t", 4000, 1);
    m.bid("c_suspended", "t", 4000, 1);
    // A pending bid of a coach suspended afterwards cannot be accepted either.
    m.upsert_coach(
        "c_suspended",
        CoachUpsert {
            suspended: true,
            ..profile(4.0)
        },
    );
    m.refused_with(&seeker("alice"), accept("t", "b_1"), ErrorCode::Conflict);
}

#[test]
fn coach_cannot_bid_on_own_task() {
    let mut m = Market::new();
    m.register_coach("c1", 4.0);
    // An admin posts a task owned by the user who is also coach c1.
    m.ok(
        &admin(),
        Command::PostTask(wire_cmd::PostTask {
            resume_id: "mine".to_owned(),
            task_type: None,
            urgency: Urgency::Standard,
            base_price: None,
            award: None,
            task_id: Some(tid("t_own")),
            owner: Some(user("c1")),
        }),
    );
    m.refused_with(
        &coach("c1"),
        place_bid("t_own", 3000, 5),
        ErrorCode::Forbidden,
    );
    assert_eq!(m.view("t_own").bid_count, 0);
    // Nor is it picked on call for it (the window closes unbid, c1 the only on-call coach).
    m.register_on_call("c1", 4.0);
    assert_eq!(kinds(&m.fire_until(T0 + 30 * MIN)), ["task_unfilled"]);
}

#[test]
fn second_bid_by_same_coach_updates_it() {
    let mut m = Market::new();
    m.register_coach("c1", 4.0);
    m.post_task("alice", "t", Urgency::Urgent, Award::Manual);
    let first = m.bid("c1", "t", 5000, 2);
    assert_eq!(first, bid("b_0"));
    m.advance(MIN);
    let from = m.journal.len();
    let again = m.bid("c1", "t", 4000, 1);
    assert_eq!(again, first, "the same live bid");
    assert_eq!(
        names(&since(&m, from)),
        ["bid_updated"],
        "no bid_count: still one bid"
    );
    let v = m.view("t");
    assert_eq!(v.bid_count, 1);
    let b = &v.bids[0];
    // Rating 4.0 → 8000 bp. Before: price (7500-5000)*10000/3750 = 6666, eta 0
    //   → (33330 + 24000) / 10 = 5733. After: price 3500*10000/3750 = 9333, eta 5000
    //   → (46665 + 24000 + 10000) / 10 = 8066.
    assert_eq!((b.amount, b.eta_hours, b.score), (4000, 1, 8066));
    assert_eq!(b.created_at, T0, "the bid keeps its place in time");
    // Withdrawn, a new bid is a new one.
    m.ok(&coach("c1"), withdraw("b_0"));
    assert_eq!(m.view("t").bid_count, 0);
    let from = m.journal.len();
    assert_eq!(m.bid("c1", "t", 5000, 2), bid("b_1"));
    assert_eq!(names(&since(&m, from)), ["bid_placed", "bid_count"]);
    assert_eq!(m.view("t").bids[0].score, 5733);
}

#[test]
fn withdraw_bid_only_by_its_coach_while_pending() {
    let mut m = Market::new();
    m.register_coach("c1", 4.0);
    m.register_coach("c2", 4.0);
    m.post_task("alice", "t", Urgency::Urgent, Award::Manual);
    m.bid("c1", "t", 4000, 1);
    m.bid("c2", "t", 4000, 1);
    m.refused_with(&coach("c2"), withdraw("b_0"), ErrorCode::Forbidden);
    m.refused_with(&seeker("alice"), withdraw("b_0"), ErrorCode::Forbidden);
    assert_eq!(
        m.ok_events(&coach("c1"), withdraw("b_0")),
        ["bid_withdrawn", "bid_count"]
    );
    assert_eq!(
        m.task("t").bids[&bid("b_0")].view.status,
        BidStatus::Withdrawn
    );
    m.refused_with(&coach("c1"), withdraw("b_0"), ErrorCode::Conflict);
    m.refused_with(&seeker("alice"), accept("t", "b_0"), ErrorCode::Conflict);
    m.refused_with(&coach("c1"), withdraw("b_99"), ErrorCode::NotFound);
    assert_eq!(m.view("t").bids.len(), 1);
}

#[test]
fn bids_rank_by_score_then_lower_amount_then_earlier() {
    let mut m = Market::new();
    m.register_coach("b_rated", 4.5);
    m.register_coach("c_three", 3.0);
    m.register_coach("d_three", 3.0);
    m.register_coach("a_low", 2.0);
    m.register_coach("e_top", 5.0);
    m.post_task("alice", "t", Urgency::Urgent, Award::Manual);
    // Urgent: range [3750, 7500], window 2 h.
    // B (4.5): 5625, eta 1: price 1875*10000/3750 = 5000, rating 9000, eta 5000
    //   → (25000 + 27000 + 10000) / 10 = 6200                              (b_0)
    // C (3.0): 4000, eta 1: price 3500*10000/3750 = 9333, rating 6000, eta 5000
    //   → (46665 + 18000 + 10000) / 10 = 7466                              (b_1)
    // D: the same as C, one minute later                              7466 (b_2)
    // A (2.0): 3750, eta 2: price 10000, rating 4000, eta 0
    //   → (50000 + 12000 + 0) / 10 = 6200 — ties with B, lower amount     (b_3)
    // E (5.0): 3750, eta 1: (50000 + 30000 + 10000) / 10 = 9000           (b_4)
    let bids = [
        ("b_rated", 5625, 1),
        ("c_three", 4000, 1),
        ("d_three", 4000, 1),
        ("a_low", 3750, 2),
        ("e_top", 3750, 1),
    ];
    for (c, amount, eta) in bids {
        m.bid(c, "t", amount, eta);
        m.advance(MIN);
    }
    let ranked = |m: &Market| -> Vec<(String, u32)> {
        m.view("t")
            .bids
            .iter()
            .map(|b| (b.bid_id.as_str().to_owned(), b.score))
            .collect()
    };
    let expect = |v: &[(&str, u32)]| -> Vec<(String, u32)> {
        v.iter().map(|(b, s)| (b.to_string(), *s)).collect()
    };
    assert_eq!(
        ranked(&m),
        expect(&[
            ("b_4", 9000),
            ("b_1", 7466),
            ("b_2", 7466),
            ("b_3", 6200),
            ("b_0", 6200)
        ])
    );
    // D lowers its amount to 3900: price 3600*10000/3750 = 9600
    //   → (48000 + 18000 + 10000) / 10 = 7600: ahead of C.
    m.bid("d_three", "t", 3900, 1);
    assert_eq!(
        ranked(&m),
        expect(&[
            ("b_4", 9000),
            ("b_2", 7600),
            ("b_1", 7466),
            ("b_3", 6200),
            ("b_0", 6200)
        ])
    );
}

#[test]
fn top3_is_the_first_three_ranked_bids() {
    let mut m = Market::new();
    for (c, r) in [
        ("c1", 1.0),
        ("c2", 2.0),
        ("c3", 3.0),
        ("c4", 4.0),
        ("c5", 5.0),
    ] {
        m.register_coach(c, r);
    }
    m.post_task("alice", "t", Urgency::Urgent, Award::Manual);
    // Same amount and eta: the higher rating ranks first.
    m.bid("c1", "t", 4000, 1); // b_0
    m.bid("c2", "t", 4000, 1); // b_1
    assert_eq!(
        m.view("t").top3,
        [bid("b_1"), bid("b_0")],
        "fewer than three: all"
    );
    m.bid("c3", "t", 4000, 1); // b_2
    m.bid("c4", "t", 4000, 1); // b_3
    m.bid("c5", "t", 4000, 1); // b_4
    let v = m.view("t");
    assert_eq!(v.top3, [bid("b_4"), bid("b_3"), bid("b_2")]);
    let first3: Vec<_> = v.bids.iter().take(3).map(|b| b.bid_id.clone()).collect();
    assert_eq!(v.top3, first3);
    assert_eq!(v.bids.len(), 5);
    m.ok(&coach("c4"), withdraw("b_3"));
    assert_eq!(m.view("t").top3, [bid("b_4"), bid("b_2"), bid("b_1")]);
    // The owner sees the same ranking as an admin.
    match m
        .engine
        .snapshot_for(&seeker("alice"), &Topic::Task(tid("t")), None, 0)
    {
        Ok(Snapshot::Task(v)) => assert_eq!(v.top3, [bid("b_4"), bid("b_2"), bid("b_1")]),
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Awarding

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
fn window_closing_without_bids_assigns_on_call_coach_at_1_2x() {
    let mut m = Market::new();
    let alice = "alice";
    // Two on-call coaches alone: t_1 and t_2 close unbid at +10 min. Equal load and rating:
    // the smallest id first (oc_busy), then the one with fewer active tasks (oc_full).
    m.register_on_call("oc_busy", 5.0);
    m.upsert_coach(
        "oc_full",
        CoachUpsert {
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
            verified: false,
            ..on_call_profile(5.0)
        },
    );
    m.upsert_coach(
        "oc_suspended",
        CoachUpsert {
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

#[test]
fn no_free_on_call_coach_leaves_task_open_with_new_window_and_unfilled() {
    let mut m = Market::new();
    m.register_coach("c1", 4.0); // not on call
    m.upsert_coach(
        "oc_unverified",
        CoachUpsert {
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

// ---------------------------------------------------------------------------------------------
// Delivery deadlines

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

// ---------------------------------------------------------------------------------------------
// Work and payment

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

/// Drives task `t` (owner alice, coach c1, `amount`) into `disputed`.
fn disputed_task(m: &mut Market, t: &str, amount: Cents) {
    assigned_task(m, t, Urgency::Urgent, "c1", amount, 2);
    m.ok(&coach("c1"), start(t));
    for _ in 0..3 {
        m.ok(&coach("c1"), submit(t));
        m.ok(&seeker("alice"), request_changes(t));
    }
    assert_eq!(m.view(t).status, TaskStatus::Disputed);
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
    // A message reaches the task topic (owner and assigned coach only) and admins, no feed.
    let (_, last) = m.journal.last().unwrap();
    let topics: Vec<Topic> = deliveries(last).into_iter().map(|d| d.topic).collect();
    assert_eq!(topics, [Topic::Task(tid("t")), Topic::Admin]);
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

// ---------------------------------------------------------------------------------------------
// Idempotency

#[test]
fn idempotent_retry_returns_original_reply_and_applies_nothing() {
    let mut m = Market::new();
    m.register_coach("c1", 4.0);
    let alice = seeker("alice");
    let first = m.run_with_id(&alice, "r1", post_defaults(Urgency::Standard));
    let original = first.reply.clone().expect("posted");
    assert_eq!(kinds(&first.events), ["task_opened"]);
    let posted_at = m.now;

    m.advance(5 * MIN);
    let seq = m.engine.seq();
    let retry = m.run_with_id(&alice, "r1", post_defaults(Urgency::Standard));
    assert_eq!(retry.reply, Ok(original.clone()), "the original reply");
    assert!(retry.events.is_empty(), "nothing applied");
    assert_eq!(m.engine.seq(), seq);
    assert_eq!(m.engine.state().tasks.len(), 1);
    // The key is the user's: another user's "r1" is a new request.
    let bobs = m.run_with_id(&seeker("bob"), "r1", post_defaults(Urgency::Standard));
    assert_ne!(bobs.reply, Ok(original.clone()));
    assert_eq!(m.engine.state().tasks.len(), 2);
    // A retried bid, even with other numbers, is the first bid.
    let b = m.run_with_id(&coach("c1"), "rb", place_bid("t_0", 3000, 5));
    let again = m.run_with_id(&coach("c1"), "rb", place_bid("t_0", 4000, 1));
    assert_eq!(again.reply, b.reply);
    assert!(again.events.is_empty());
    assert_eq!(m.view("t_0").bids[0].amount, 3000);

    // Across a restart: the journal replayed into a fresh engine, or a restored snapshot.
    let replayed = m.check_replay_and_snapshot();
    let retry_req = Request {
        actor: alice.clone(),
        request_id: Some(RequestId::new("r1").unwrap()),
        command: post_defaults(Urgency::Standard),
    };
    for mut engine in [
        replayed,
        Engine::restore(EngineConfig::default(), m.engine.snapshot()).unwrap(),
    ] {
        let out = engine.execute(&retry_req, m.now);
        assert_eq!(out.reply, Ok(original.clone()));
        assert!(out.events.is_empty());
        assert_eq!(engine.state().tasks.len(), 2);
    }

    // Remembered for ten minutes of engine time, then forgotten: the retry is new.
    m.advance_to(posted_at + 10 * MIN - 1);
    let out = m.run_with_id(&alice, "r1", post_defaults(Urgency::Standard));
    assert_eq!((out.reply, out.events.len()), (Ok(original.clone()), 0));
    m.advance_to(posted_at + 10 * MIN);
    let out = m.run_with_id(&alice, "r1", post_defaults(Urgency::Standard));
    assert_eq!(kinds(&out.events), ["task_opened"]);
    assert!(matches!(out.reply, Ok(Reply::PostTask(r)) if r.task_id == tid("t_2")));

    // A refusal is not remembered (nothing was applied): the same id may succeed later.
    let refused = m.run_with_id(&coach("c2"), "rx", place_bid("t_0", 3000, 5));
    assert_eq!(refused.reply.unwrap_err().code, ErrorCode::Forbidden);
    m.register_coach("c2", 4.0);
    let ok = m.run_with_id(&coach("c2"), "rx", place_bid("t_0", 3000, 5));
    assert!(ok.reply.is_ok());
    m.check_replay_and_snapshot();
}

// ---------------------------------------------------------------------------------------------
// Who sees what (§3, §8)

#[test]
fn seeker_cannot_subscribe_to_another_seekers_task() {
    let mut m = Market::new();
    m.register_coach("c1", 4.0);
    m.register_coach("c2", 4.0);
    m.post_task("alice", "t", Urgency::Urgent, Award::Manual);
    m.bid("c1", "t", 4000, 1);
    m.bid("c2", "t", 4000, 1);
    let e = &m.engine;
    let task = Topic::Task(tid("t"));
    let missing = Topic::Task(tid("t_missing"));
    let code = |actor, topic: &Topic| e.authorize_subscribe(&actor, topic).err().map(|r| r.code);
    assert_eq!(code(seeker("alice"), &task), None);
    assert_eq!(code(seeker("bob"), &task), Some(ErrorCode::Forbidden));
    assert_eq!(code(seeker("bob"), &missing), Some(ErrorCode::Forbidden));
    assert_eq!(
        code(seeker("alice"), &Topic::Feed),
        Some(ErrorCode::Forbidden)
    );
    assert_eq!(
        code(seeker("alice"), &Topic::Admin),
        Some(ErrorCode::Forbidden)
    );
    assert_eq!(
        code(seeker("alice"), &Topic::Coach(user("c1"))),
        Some(ErrorCode::Forbidden)
    );
    // A coach: the feed, its own topic, and tasks it is assigned to — not ones it bid on.
    assert_eq!(code(coach("c1"), &Topic::Feed), None);
    assert_eq!(code(coach("c1"), &Topic::Coach(user("c1"))), None);
    assert_eq!(
        code(coach("c1"), &Topic::Coach(user("c2"))),
        Some(ErrorCode::Forbidden)
    );
    assert_eq!(code(coach("c1"), &Topic::Admin), Some(ErrorCode::Forbidden));
    assert_eq!(code(coach("c1"), &task), Some(ErrorCode::Forbidden));
    assert_eq!(code(admin(), &task), None);
    assert_eq!(code(admin(), &missing), Some(ErrorCode::NotFound));
    let r = m.engine.snapshot_for(&seeker("bob"), &task, None, 0);
    assert_eq!(r.unwrap_err().code, ErrorCode::Forbidden);
    m.accept("alice", "t", &bid("b_0"));
    let e = &m.engine;
    assert!(e.authorize_subscribe(&coach("c1"), &task).is_ok());
    assert!(e.authorize_subscribe(&coach("c2"), &task).is_err());
}

#[test]
fn coach_views_never_show_other_coaches_bids() {
    let mut m = Market::new();
    for c in ["c1", "c2", "c3"] {
        m.register_coach(c, 4.0);
    }
    m.post_task("alice", "t", Urgency::Urgent, Award::Manual);
    m.post_task("alice", "t_other", Urgency::Urgent, Award::Manual);
    let b1 = m.bid("c1", "t", 4000, 1);
    m.bid("c2", "t", 4321, 2);
    m.bid("c2", "t_other", 5000, 1);
    m.bid("c2", "t", 4322, 2); // an update

    // Feed: bid_count, and only the subscriber's own bid.
    let feed = |m: &Market, c: &str| match m.engine.snapshot_for(&coach(c), &Topic::Feed, None, 0) {
        Ok(Snapshot::Feed(f)) => f,
        other => panic!("{other:?}"),
    };
    let f1 = feed(&m, "c1");
    let t = f1.tasks.iter().find(|t| t.task_id == tid("t")).unwrap();
    assert_eq!(t.bid_count, 2);
    assert_eq!(t.my_bid.as_ref().map(|b| &b.bid_id), Some(&b1));
    let json = serde_json::to_string(&f1).unwrap();
    assert!(!json.contains("c2") && !json.contains("4322"), "{json}");
    let f3 = feed(&m, "c3");
    assert!(f3.tasks.iter().all(|t| t.my_bid.is_none()));
    let json = serde_json::to_string(&f3).unwrap();
    assert!(
        !json.contains("\"c1\"") && !json.contains("\"c2\""),
        "{json}"
    );
    // The coach topic: its own bids only.
    match m
        .engine
        .snapshot_for(&coach("c1"), &Topic::Coach(user("c1")), None, 0)
    {
        Ok(Snapshot::Coach(s)) => {
            assert_eq!(s.bids.len(), 1);
            assert_eq!(s.bids[0].bid_id, b1);
        }
        other => panic!("{other:?}"),
    }

    // The assigned coach's task view: its own bid, no top3, nobody else.
    m.accept("alice", "t", &b1);
    match m
        .engine
        .snapshot_for(&coach("c1"), &Topic::Task(tid("t")), None, 0)
    {
        Ok(Snapshot::Task(v)) => {
            assert_eq!(v.bids.len(), 1);
            assert_eq!(v.bids[0].bid_id, b1);
            assert!(v.top3.is_empty());
            let json = serde_json::to_string(&v).unwrap();
            assert!(!json.contains("c2") && !json.contains("4322"), "{json}");
        }
        other => panic!("{other:?}"),
    }

    // Wire routing: bid.* and payment.* never reach a task topic's non-privileged audience,
    // the feed never carries bid events or coach ids, and a coach topic only its own bids.
    let mut checked = 0;
    for (_, event) in &m.journal {
        for d in deliveries(event) {
            let json = serde_json::to_value(&d.event).unwrap();
            let kind = json["kind"].as_str().unwrap().to_owned();
            let bid_coach = json
                .get("coach_id")
                .or_else(|| json.get("bid").map(|b| &b["coach_id"]));
            match &d.topic {
                Topic::Task(_) if kind.starts_with("bid.") || kind.starts_with("payment.") => {
                    assert_eq!(d.audience, Audience::Privileged, "{kind} on the task topic");
                    checked += 1;
                }
                Topic::Feed => {
                    assert!(!kind.starts_with("bid."), "{kind} on the feed");
                    let text = json.to_string();
                    assert!(
                        !text.contains("\"c1\"") && !text.contains("\"c2\""),
                        "{text}"
                    );
                }
                Topic::Coach(c) if kind.starts_with("bid.") => {
                    assert_eq!(
                        bid_coach.and_then(|v| v.as_str()),
                        Some(c.as_str()),
                        "{kind}"
                    );
                }
                _ => {}
            }
        }
    }
    assert!(checked >= 6, "bid events were routed ({checked})");
}

#[test]
fn missing_task_is_not_found_only_to_admins() {
    let mut m = Market::new();
    m.register_coach("c1", 4.0);
    let t = "t_missing";
    for (actor, command) in [
        (coach("c1"), place_bid(t, 4000, 1)),
        (coach("c1"), start(t)),
        (coach("c1"), submit(t)),
        (coach("c1"), message(t, "hi")),
        (seeker("alice"), accept(t, "b_0")),
        (seeker("alice"), accept_verification(t, 5)),
        (seeker("alice"), request_changes(t)),
        (seeker("alice"), cancel(t)),
        (seeker("alice"), message(t, "hi")),
    ] {
        let name = command.name();
        let r = m.refused(&actor, command);
        assert_eq!(r.code, ErrorCode::Forbidden, "{name} by {}", actor.user);
    }
    for command in [
        cancel(t),
        resolve(t, DisputeOutcome::Refund),
        payment_failed(t),
    ] {
        let name = command.name();
        assert_eq!(
            m.refused(&admin(), command).code,
            ErrorCode::NotFound,
            "{name}"
        );
    }
    assert_eq!(
        m.engine.task_view(&tid(t), &admin()).unwrap_err().code,
        ErrorCode::NotFound
    );
    assert_eq!(
        m.engine
            .task_view(&tid(t), &seeker("alice"))
            .unwrap_err()
            .code,
        ErrorCode::Forbidden
    );
    // An existing task someone else owns is just as forbidden: ids cannot be probed.
    m.post_task("alice", "t_real", Urgency::Urgent, Award::Manual);
    assert_eq!(
        m.refused(&seeker("bob"), cancel("t_real")).code,
        ErrorCode::Forbidden
    );
    assert_eq!(
        m.engine
            .task_view(&tid("t_real"), &seeker("bob"))
            .unwrap_err()
            .code,
        ErrorCode::Forbidden
    );
}

// ---------------------------------------------------------------------------------------------
// Money

/// Checks, for every task, that the journal's money movements add up: held (minus reversed
/// holds) = released + refunded + still held, with the still-held amount the assignment's in
/// a live state and zero in a final one; releases split 85/15.
fn assert_money_is_conserved(m: &Market) {
    #[derive(Default, Debug)]
    struct Ledger {
        held: Cents,
        released: Cents,
        refunded: Cents,
    }
    let mut ledgers: BTreeMap<String, Ledger> = BTreeMap::new();
    for (_, e) in &m.journal {
        let entry = |id: &gavel_protocol::TaskId| id.as_str().to_owned();
        match &e.kind {
            EventKind::PaymentHeld { task_id, amount } => {
                ledgers.entry(entry(task_id)).or_default().held += amount;
            }
            EventKind::PaymentFailed { task_id, amount } => {
                ledgers.entry(entry(task_id)).or_default().held -= amount;
            }
            EventKind::PaymentReleased {
                task_id,
                coach_amount,
                platform_fee,
                ..
            } => {
                let amount = coach_amount + platform_fee;
                assert_eq!(*coach_amount, amount * 85 / 100);
                ledgers.entry(entry(task_id)).or_default().released += amount;
            }
            EventKind::PaymentRefunded { task_id, amount } => {
                ledgers.entry(entry(task_id)).or_default().refunded += amount;
            }
            _ => {}
        }
    }
    for (id, task) in &m.engine.state().tasks {
        let l = ledgers.remove(id.as_str()).unwrap_or_default();
        let e = task.escrow;
        assert_eq!(
            (e.held, e.released, e.refunded),
            (l.held, l.released, l.refunded),
            "{id}"
        );
        let still = e.held - e.released - e.refunded;
        if task.status.is_final() || task.status == TaskStatus::Open {
            assert_eq!(still, 0, "{id} ({}) holds nothing", task.status);
        } else {
            assert_eq!(still, task.assigned.as_ref().unwrap().amount, "{id}");
        }
    }
    assert!(ledgers.is_empty());
}

#[test]
fn money_is_conserved_on_every_settlement_path() {
    let mut m = Market::new();
    m.register_coach("c1", 4.0);
    m.register_coach("c2", 3.5);
    // Accepted and released.
    assigned_task(&mut m, "t_done", Urgency::Urgent, "c1", 4999, 2);
    m.ok(&coach("c1"), start("t_done"));
    m.ok(&coach("c1"), submit("t_done"));
    m.ok(&seeker("alice"), accept_verification("t_done", 5));
    // Disputed, released and refunded.
    disputed_task(&mut m, "t_rel", 7499);
    m.ok(&admin(), resolve("t_rel", DisputeOutcome::Release));
    disputed_task(&mut m, "t_ref", 3751);
    m.ok(&admin(), resolve("t_ref", DisputeOutcome::Refund));
    // Canceled while assigned, and by an admin while submitted.
    assigned_task(&mut m, "t_can", Urgency::Urgent, "c2", 4444, 2);
    m.ok(&seeker("alice"), cancel("t_can"));
    assigned_task(&mut m, "t_adm", Urgency::Standard, "c2", 3333, 24);
    m.ok(&coach("c2"), start("t_adm"));
    m.ok(&coach("c2"), submit("t_adm"));
    m.ok(&admin(), cancel("t_adm"));
    // Payment failed, then awarded again and still held.
    assigned_task(&mut m, "t_pf", Urgency::Urgent, "c1", 4000, 2);
    m.ok(&admin(), payment_failed("t_pf"));
    let b = m.bid("c2", "t_pf", 4100, 2);
    m.accept("alice", "t_pf", &b);
    // Late with nobody on call (refund, reopen), then on call (reassigned at the same amount).
    assigned_task(&mut m, "t_late", Urgency::Urgent, "c1", 6000, 1);
    m.fire_until(m.now + HOUR + 15 * MIN);
    assert_eq!(m.view("t_late").status, TaskStatus::Open);
    let b = m.bid("c2", "t_late", 5000, 1);
    m.accept("alice", "t_late", &b);
    m.register_on_call("oc", 4.0);
    m.fire_until(m.now + HOUR + 15 * MIN);
    assert_eq!(m.view("t_late").assigned.unwrap().coach_id, user("oc"));
    // Unbid: on call at 4500.
    m.post_task("alice", "t_unbid", Urgency::Urgent, Award::Manual);
    m.fire_until(m.now + 10 * MIN);
    assert_eq!(m.view("t_unbid").escrow.held, 4500);

    assert_money_is_conserved(&m);
    let total_released: Cents = releases(&m).iter().map(|(_, c, f)| c + f).sum();
    assert_eq!(total_released, 4999 + 7499);
    m.check_replay_and_snapshot();
}

// ---------------------------------------------------------------------------------------------
// Days of deadlines

/// A tiny deterministic generator (no dependency, same run every time).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// An engine driven directly (no per-step invariant check, which would make a long run
/// quadratic), with a journal and the wall-clock time spent inside the engine.
struct Driven {
    engine: Engine,
    journal: Vec<(Seq, Event)>,
    busy: Duration,
}

impl Driven {
    fn execute(
        &mut self,
        actor: gavel_engine::Actor,
        command: Command,
        now: Millis,
    ) -> gavel_engine::Outcome {
        let request = request(&actor, command);
        let started = Instant::now();
        let out = self.engine.execute(&request, now);
        self.busy += started.elapsed();
        self.journal.extend(out.events.iter().cloned());
        out
    }

    fn fire(&mut self, now: Millis) -> Vec<(Seq, Event)> {
        let started = Instant::now();
        let fired = self.engine.fire(now);
        self.busy += started.elapsed();
        self.journal.extend(fired.iter().cloned());
        fired
    }
}

/// Thousands of tasks over three simulated days — bids, awards, reminders, late coaches,
/// strikes, suspensions, on-call takeovers, refunds, changes, disputes — driven straight
/// through `Engine`, with the invariants checked every six simulated hours and at the end.
/// The engine's share of the run takes well under a second of real time, even unoptimized.
#[test]
fn days_of_deadlines_for_thousands_of_tasks_run_in_well_under_a_second() {
    let mut sim = Driven {
        engine: Engine::new(EngineConfig::default()),
        journal: Vec::new(),
        busy: Duration::ZERO,
    };
    let mut rng = Lcg(42);
    let mut now = T0;
    // 40 bidders (five of them unreliable), 10 on-call coaches.
    let coaches: Vec<String> = (0..40).map(|i| format!("c{i:02}")).collect();
    for (i, c) in coaches.iter().enumerate() {
        let p = CoachUpsert {
            rating: 3.0 + (i % 5) as f64 * 0.5,
            capacity: 50,
            ..profile(0.0)
        };
        assert!(sim.execute(admin(), upsert(c, p), now).reply.is_ok());
    }
    for i in 0..10 {
        let p = CoachUpsert {
            capacity: 20,
            ..on_call_profile(4.0)
        };
        let out = sim.execute(admin(), upsert(&format!("oc{i}"), p), now);
        assert!(out.reply.is_ok());
    }
    let unreliable = |c: &str| c < "c05";

    // What the participants will do later: (when, order, what).
    #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
    enum Act {
        Accept(String, String),
        Start(String, String),
        Submit(String, String),
        Verify(String),
    }
    let mut agenda: BTreeSet<(Millis, u64, Act)> = BTreeSet::new();
    let mut n_act = 0u64;
    let end = T0 + 3 * DAY;
    let mut posted = 0u64;
    let mut next_post = T0;
    let mut next_check = T0 + 6 * HOUR;
    let mut refusals = 0u64;
    while now < end {
        // The next thing to happen: a post, a scheduled action, or a deadline.
        let next_act = agenda.first().map_or(Millis::MAX, |(t, _, _)| *t);
        let next_deadline = sim.engine.next_due().unwrap_or(Millis::MAX);
        now = next_post.min(next_act).min(next_deadline).min(end).max(now);
        let mut applied = sim.fire(now);
        if now == next_post {
            let i = posted;
            posted += 1;
            next_post += 60_000 + rng.next(30_000); // a task every ~75 s
            let urgency =
                [Urgency::Urgent, Urgency::Standard, Urgency::Flexible][rng.next(3) as usize];
            let award = if rng.next(2) == 0 {
                Award::Auto
            } else {
                Award::Manual
            };
            let t = format!("t{i}");
            let owner = format!("s{}", i % 200);
            let out = sim.execute(seeker(&owner), post(&t, urgency, award), now);
            let Ok(Reply::PostTask(p)) = out.reply else {
                panic!("{:?}", out.reply)
            };
            applied.extend(out.events);
            let window_h = sim.engine.config().tiers.get(urgency).delivery_hours;
            // 0–3 bids: a quarter of the tasks get none and go on call.
            for _ in 0..rng.next(4) {
                let c = &coaches[rng.next(40) as usize];
                let [min, max] = p.price_range;
                let amount = min + rng.next(max - min + 1);
                let eta = 1 + rng.next(u64::from(window_h)) as u32;
                let out = sim.execute(coach(c), place_bid(&t, amount, eta), now);
                refusals += u64::from(out.reply.is_err());
                applied.extend(out.events);
            }
            if award == Award::Manual {
                // The owner comes back after the window and takes the top bid.
                let at = p.bidding_closes_at + rng.next(20 * MIN);
                n_act += 1;
                agenda.insert((at, n_act, Act::Accept(owner, t.clone())));
            }
        }
        while agenda.first().is_some_and(|(at, _, _)| *at <= now) {
            let (_, _, act) = agenda.pop_first().expect("first exists");
            let out = match act {
                Act::Accept(s, t) => {
                    let view = sim.engine.task_view(&tid(&t), &seeker(&s));
                    let Some(b) = view.ok().and_then(|v| v.top3.first().cloned()) else {
                        continue;
                    };
                    sim.execute(seeker(&s), accept(&t, b.as_str()), now)
                }
                Act::Start(c, t) => sim.execute(coach(&c), start(&t), now),
                Act::Submit(c, t) => sim.execute(coach(&c), submit(&t), now),
                Act::Verify(t) => {
                    let s = sim.engine.state().tasks[&tid(&t)].spec.owner.clone();
                    let command = if rng.next(4) == 0 {
                        request_changes(&t)
                    } else {
                        accept_verification(&t, 5)
                    };
                    sim.execute(seeker(s.as_str()), command, now)
                }
            };
            // Refused: e.g. the coach was late and the task went to someone else.
            refusals += u64::from(out.reply.is_err());
            applied.extend(out.events);
        }
        // React to what happened: assigned coaches work (unreliable ones often never
        // deliver); submissions are verified by their owners; disputes are resolved.
        let mut disputed = Vec::new();
        for (_, e) in &applied {
            match &e.kind {
                EventKind::TaskAssigned {
                    task_id,
                    coach_id,
                    deadline,
                    ..
                } => {
                    let (t, c) = (task_id.as_str().to_owned(), coach_id.as_str().to_owned());
                    if unreliable(&c) && rng.next(2) == 0 {
                        continue; // will be late
                    }
                    let span = deadline - now;
                    let submit_at = now + span / 2 + rng.next(span / 3);
                    n_act += 1;
                    agenda.insert((now + span / 10, n_act, Act::Start(c.clone(), t.clone())));
                    n_act += 1;
                    agenda.insert((submit_at, n_act, Act::Submit(c, t)));
                }
                EventKind::TaskSubmitted { task_id, .. } => {
                    n_act += 1;
                    let t = task_id.as_str().to_owned();
                    agenda.insert((now + 10 * MIN, n_act, Act::Verify(t)));
                }
                EventKind::ChangesRequested {
                    task_id, coach_id, ..
                } => {
                    n_act += 1;
                    let (t, c) = (task_id.as_str().to_owned(), coach_id.as_str().to_owned());
                    agenda.insert((now + 30 * MIN, n_act, Act::Submit(c, t)));
                }
                EventKind::TaskDisputed { task_id } => disputed.push(task_id.as_str().to_owned()),
                _ => {}
            }
        }
        for t in disputed {
            let outcome = if rng.next(2) == 0 {
                DisputeOutcome::Release
            } else {
                DisputeOutcome::Refund
            };
            assert!(
                sim.execute(admin(), resolve(&t, outcome), now)
                    .reply
                    .is_ok()
            );
        }
        if now >= next_check {
            next_check += 6 * HOUR;
            if let Err(broken) = sim.engine.check_invariants() {
                panic!("at +{}ms: {broken}", now - T0);
            }
        }
    }
    let busy = sim.busy;
    let Driven {
        engine, journal, ..
    } = sim;
    engine.check_invariants().unwrap();

    // It really was days of everything.
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for (_, e) in &journal {
        *count.entry(kind_name(&e.kind)).or_default() += 1;
    }
    let count = |kind: &str| count.get(kind).copied().unwrap_or(0);
    assert!(posted >= 3000, "posted {posted}");
    assert!(
        count("task_completed") >= 1000,
        "{}",
        count("task_completed")
    );
    for kind in [
        "task_reminder",
        "task_reassigned",
        "bidding_closed",
        "bid_updated",
        "payment_refunded",
        "changes_requested",
        "task_disputed",
    ] {
        assert!(count(kind) > 0, "no {kind}");
    }
    let on_call = journal
        .iter()
        .filter(|(_, e)| matches!(e.kind, EventKind::TaskAssigned { on_call: true, .. }))
        .count();
    assert!(on_call > 100, "on call {on_call}");
    let suspended = engine
        .state()
        .coaches
        .values()
        .filter(|c| c.profile.suspended);
    assert!(suspended.count() > 0, "late coaches were suspended");
    assert!(refusals > 0, "suspended coaches were refused");
    for (i, (seq, _)) in journal.iter().enumerate() {
        assert_eq!(*seq, i as Seq + 1);
    }
    // Money is conserved per task; the journal rebuilds the same state.
    for task in engine.state().tasks.values() {
        let e = task.escrow;
        assert!(e.held >= e.released + e.refunded);
        if task.status.is_final() {
            assert_eq!(e.held, e.released + e.refunded, "{}", task.spec.task_id);
        }
    }
    let mut replayed = Engine::new(EngineConfig::default());
    for (_, e) in &journal {
        replayed.evolve(e);
    }
    assert!(replayed.state() == engine.state());
    assert!(
        busy < Duration::from_secs(1),
        "three simulated days took the engine {busy:?}"
    );
}
