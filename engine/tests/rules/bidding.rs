//! Placing, updating and withdrawing bids, and how they rank: price range and ETA limits, who
//! may bid, score order, `top3`.

use gavel_engine::Command;
use gavel_protocol::command as wire_cmd;
use gavel_protocol::http::CoachUpsert;
use gavel_protocol::views::Snapshot;
use gavel_protocol::{Award, BidStatus, ErrorCode, Topic, Urgency};

use crate::common::*;
use crate::helpers::{names, since};

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
            ratings_count: 0,
            verified: false,
            ..profile(4.0)
        },
    );
    m.upsert_coach(
        "c_suspended",
        CoachUpsert {
            ratings_count: 0,
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
            ratings_count: 0,
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
fn a_bid_id_spelling_an_existing_number_another_way_names_no_bid() {
    let mut m = Market::new();
    m.register_coach("c1", 4.0);
    m.post_task("alice", "t", Urgency::Urgent, Award::Manual);
    m.bid("c1", "t", 4000, 1);
    m.bid("c1", "t", 4100, 1); // an update: still b_0
    for other_spelling in [
        "b_00",
        "b_-0",
        "b_0a",
        "b_",
        "B_0",
        "b_18446744073709551616",
    ] {
        m.refused_with(&coach("c1"), withdraw(other_spelling), ErrorCode::NotFound);
        m.refused_with(
            &seeker("alice"),
            accept("t", other_spelling),
            ErrorCode::NotFound,
        );
    }
    assert_eq!(
        m.ok_events(&coach("c1"), withdraw("b_0")),
        ["bid_withdrawn", "bid_count"]
    );
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

#[test]
fn a_coach_places_at_most_ten_bids_on_one_task_withdrawn_ones_included() {
    let mut m = Market::new();
    m.register_coach("c1", 4.0);
    m.register_coach("c2", 4.0);
    m.post_task("alice", "t", Urgency::Urgent, Award::Manual);
    for n in 0..10u64 {
        m.bid("c1", "t", 4000 + n, 1);
        m.bid("c1", "t", 4100 + n, 1); // an update is not a new bid
        m.ok(&coach("c1"), withdraw(&format!("b_{n}")));
    }
    let refused = m.refused_with(&coach("c1"), place_bid("t", 4000, 1), ErrorCode::Conflict);
    assert!(
        refused.message.contains("at most 10 bids"),
        "{}",
        refused.message
    );
    // Another coach is not affected.
    m.bid("c2", "t", 4000, 1);
    assert_eq!(m.task("t").bids.len(), 11);
}
