//! Contract §10: a coach's rating moves with every accepted verification, by the exact
//! integer formula, and the ranking of bids placed afterwards uses it.

use gavel_protocol::http::CoachUpsert;
use gavel_protocol::{DisputeOutcome, Urgency};

use crate::common::*;
use crate::helpers::{assigned_task, disputed_task};

fn imported(rating: f64, ratings_count: u32) -> CoachUpsert {
    CoachUpsert {
        ratings_count,
        ..profile(rating)
    }
}

fn completed(m: &mut Market, task: &str, coach_id: &str, rating: u8) {
    assigned_task(m, task, Urgency::Standard, coach_id, 3000, 10);
    m.ok(&coach(coach_id), start(task));
    m.ok(&coach(coach_id), submit(task));
    m.ok(&seeker("alice"), accept_verification(task, rating));
}

#[test]
fn every_rating_moves_the_coach_by_the_integer_formula() {
    let mut m = Market::new();
    m.upsert_coach("c1", imported(4.8, 127));
    let p = &m.coach("c1").profile;
    assert_eq!(
        (p.rating, p.rating_centi, p.ratings_count, p.completed),
        (480, 480, 127, 0)
    );
    completed(&mut m, "t1", "c1", 1);
    // (480 × 127 + 100 × 1) / 128 = 61,060 / 128 = 477 (477.03, truncated).
    let p = &m.coach("c1").profile;
    assert_eq!((p.rating, p.ratings_count, p.completed), (477, 128, 1));
    completed(&mut m, "t2", "c1", 5);
    // (477 × 128 + 100 × 5) / 129 = 61,556 / 129 = 477 (477.18).
    assert_eq!(m.coach("c1").profile.rating, 477);
    // A first rating replaces "unrated" outright: (0 × 0 + 300) / 1.
    m.register_coach("c2", 0.0);
    completed(&mut m, "t3", "c2", 3);
    let p = &m.coach("c2").profile;
    assert_eq!((p.rating, p.ratings_count, p.completed), (300, 1, 1));
    m.check_replay_and_snapshot();
}

#[test]
fn a_released_dispute_counts_as_completed_but_not_as_a_rating() {
    let mut m = Market::new();
    m.upsert_coach("c1", imported(4.0, 10));
    disputed_task(&mut m, "t", 4000);
    m.ok(&admin(), resolve("t", DisputeOutcome::Release));
    let p = &m.coach("c1").profile;
    assert_eq!((p.rating, p.ratings_count, p.completed), (400, 10, 1));
    // Re-registering keeps `completed` (the server counts it) and takes the imported count.
    m.upsert_coach("c1", imported(4.5, 20));
    let p = &m.coach("c1").profile;
    assert_eq!((p.rating, p.ratings_count, p.completed), (450, 20, 1));
}

#[test]
fn the_next_ranking_uses_the_new_rating_and_bids_show_the_coach() {
    let mut m = Market::new();
    m.upsert_coach("c_pro", imported(4.2, 127));
    m.upsert_coach("c_new", imported(4.0, 3));
    m.post_task(
        "alice",
        "before",
        Urgency::Standard,
        gavel_protocol::Award::Manual,
    );
    m.bid("c_pro", "before", 3000, 12);
    m.bid("c_new", "before", 3000, 12);
    let view = m.view("before");
    assert_eq!(view.bids[0].coach_id.as_str(), "c_pro");
    let summary = view.bids[1]
        .coach
        .clone()
        .expect("the owner's view shows the coach");
    assert_eq!(
        (
            &*summary.display_name,
            summary.rating,
            summary.ratings_count,
            summary.completed
        ),
        ("Coach", 400, 3, 0)
    );
    completed(&mut m, "job", "c_new", 5);
    // (400 × 3 + 500) / 4 = 425 > 420.
    assert_eq!(m.coach("c_new").profile.rating, 425);
    m.post_task(
        "alice",
        "after",
        Urgency::Standard,
        gavel_protocol::Award::Manual,
    );
    m.bid("c_pro", "after", 3000, 12);
    m.bid("c_new", "after", 3000, 12);
    let after = m.view("after");
    assert_eq!(after.bids[0].coach_id.as_str(), "c_new");
    assert_eq!(after.bids[0].coach.as_ref().map(|c| c.rating), Some(425));
    // The bids placed before the rating keep the score they were ranked by.
    assert_eq!(m.view("before").bids[0].coach_id.as_str(), "c_pro");
    m.check_replay_and_snapshot();
}
