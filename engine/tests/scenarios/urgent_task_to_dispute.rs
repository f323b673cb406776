//! Seed flow 1: an urgent task from four bids, ranked and accepted, through a reminder, a
//! submission and three change requests to a dispute the admin resolves.

use gavel_protocol::{Award, DisputeOutcome, ErrorCode, TaskStatus, Urgency};

use crate::Expect::{Events, Rejected};
use crate::Step::{Do, Tick};
use crate::common::*;
use crate::{BID, NOTHING, OPENED, UPSERTED, clock, run_table};

/// Post urgent → four bids → ranked order and top3 → accept → reminder → submit →
/// changes ×3 → dispute → resolve.
#[test]
fn seed_flow_urgent_task_from_four_bids_to_a_resolved_dispute() {
    let mut m = Market::new();
    let alice = || seeker("alice");
    run_table(
        &mut m,
        vec![
            (0, admin(), Do(upsert("c1", profile(4.0))), Events(UPSERTED)),
            (0, admin(), Do(upsert("c2", profile(5.0))), Events(UPSERTED)),
            (0, admin(), Do(upsert("c3", profile(0.0))), Events(UPSERTED)),
            (0, admin(), Do(upsert("c4", profile(4.5))), Events(UPSERTED)),
            (
                0,
                alice(),
                Do(post("t_u", Urgency::Urgent, Award::Manual)),
                Events(OPENED),
            ),
            // Four bids within [3750, 7500] and eta 1..=2.
            (MIN, coach("c1"), Do(place_bid("t_u", 3750, 2)), Events(BID)),
            (
                2 * MIN,
                coach("c2"),
                Do(place_bid("t_u", 5000, 1)),
                Events(BID),
            ),
            (
                3 * MIN,
                coach("c3"),
                Do(place_bid("t_u", 4500, 1)),
                Events(BID),
            ),
            (
                4 * MIN,
                coach("c4"),
                Do(place_bid("t_u", 7500, 1)),
                Events(BID),
            ),
            (
                4 * MIN,
                coach("c4"),
                Do(place_bid("t_u", 7501, 1)),
                Rejected(ErrorCode::ValidationError),
            ),
            (
                4 * MIN,
                coach("c4"),
                Do(place_bid("t_u", 7500, 3)),
                Rejected(ErrorCode::ValidationError),
            ),
            (
                5 * MIN,
                coach("c5"),
                Do(place_bid("t_u", 4000, 1)),
                Rejected(ErrorCode::Forbidden),
            ),
            (
                5 * MIN,
                coach("c1"),
                Do(accept("t_u", "b_0")),
                Rejected(ErrorCode::Forbidden),
            ),
        ],
    );

    // Ranked best first (scores by hand, urgent range [3750, 7500], window 2 h):
    //   c1: price (7500-3750)*10000/3750 = 10000, rating 400*20 = 8000, eta 0
    //       → (50000 + 24000 + 0) / 10 = 7400
    //   c2: price 2500*10000/3750 = 6666, rating 10000, eta (2-1)*10000/2 = 5000
    //       → (33330 + 30000 + 10000) / 10 = 7333
    //   c3: price 3000*10000/3750 = 8000, unrated → 250*20 = 5000, eta 5000
    //       → (40000 + 15000 + 10000) / 10 = 6500
    //   c4: price 0, rating 450*20 = 9000, eta 5000 → (0 + 27000 + 10000) / 10 = 3700
    let v = m.view("t_u");
    let ranked: Vec<(&str, u32)> = v
        .bids
        .iter()
        .map(|b| (b.bid_id.as_str(), b.score))
        .collect();
    assert_eq!(
        ranked,
        [("b_0", 7400), ("b_1", 7333), ("b_2", 6500), ("b_3", 3700)]
    );
    assert_eq!(v.top3, [bid("b_0"), bid("b_1"), bid("b_2")]);
    assert_eq!(v.bid_count, 4);

    // The owner picks c2 (not the top bid: a manual award is the owner's choice).
    // Accepted at +6 min with eta 1 h: deadline +66 min; lead = min(2 h, 1 h / 4) = 15 min:
    // reminder at +51 min, overdue at +81 min.
    run_table(
        &mut m,
        vec![
            (
                6 * MIN,
                alice(),
                Do(accept("t_u", "b_1")),
                Events(&[
                    "bid_accepted",
                    "bid_rejected",
                    "bid_rejected",
                    "bid_rejected",
                    "task_assigned",
                    "payment_held",
                    "task_closed",
                ]),
            ),
            (
                7 * MIN,
                coach("c1"),
                Do(start("t_u")),
                Rejected(ErrorCode::Forbidden),
            ),
            (
                7 * MIN,
                coach("c3"),
                Do(place_bid("t_u", 4000, 1)),
                Rejected(ErrorCode::Conflict),
            ),
            (
                8 * MIN,
                coach("c2"),
                Do(start("t_u")),
                Events(&["task_started"]),
            ),
            // The bidding window's end passes silently: the task is no longer open.
            (10 * MIN, clock(), Tick, Events(NOTHING)),
            (51 * MIN - 1, clock(), Tick, Events(NOTHING)),
            (51 * MIN, clock(), Tick, Events(&["task_reminder"])),
            (
                60 * MIN,
                coach("c2"),
                Do(submit("t_u")),
                Events(&["task_submitted"]),
            ),
            // Submitted in time: the overdue point passes silently.
            (81 * MIN, clock(), Tick, Events(NOTHING)),
            (
                90 * MIN,
                alice(),
                Do(request_changes("t_u")),
                Events(&["changes_requested"]),
            ),
            (
                95 * MIN,
                coach("c2"),
                Do(submit("t_u")),
                Events(&["task_submitted"]),
            ),
            (
                100 * MIN,
                alice(),
                Do(request_changes("t_u")),
                Events(&["changes_requested"]),
            ),
            (
                105 * MIN,
                coach("c2"),
                Do(submit("t_u")),
                Events(&["task_submitted"]),
            ),
            (
                110 * MIN,
                alice(),
                Do(request_changes("t_u")),
                Events(&["changes_requested", "task_disputed"]),
            ),
            (
                111 * MIN,
                coach("c2"),
                Do(submit("t_u")),
                Rejected(ErrorCode::Conflict),
            ),
            (
                112 * MIN,
                alice(),
                Do(accept_verification("t_u", 5)),
                Rejected(ErrorCode::Conflict),
            ),
            (
                113 * MIN,
                alice(),
                Do(resolve("t_u", DisputeOutcome::Release)),
                Rejected(ErrorCode::Forbidden),
            ),
            (
                120 * MIN,
                admin(),
                Do(resolve("t_u", DisputeOutcome::Release)),
                Events(&["payment_released", "task_completed"]),
            ),
            (
                121 * MIN,
                admin(),
                Do(cancel("t_u")),
                Rejected(ErrorCode::Conflict),
            ),
            (3 * DAY, clock(), Tick, Events(NOTHING)),
        ],
    );

    let v = m.view("t_u");
    assert_eq!(v.status, TaskStatus::Completed);
    assert_eq!(v.revisions, 3);
    // 5000 × 85 / 100 = 4250 to the coach, 750 to the platform.
    assert_eq!(
        (v.escrow.held, v.escrow.released, v.escrow.refunded),
        (5000, 5000, 0)
    );
    let completed = m
        .journal
        .iter()
        .find_map(|(_, e)| match &e.kind {
            gavel_engine::EventKind::TaskCompleted {
                coach_amount,
                platform_fee,
                rating,
                ..
            } => Some((*coach_amount, *platform_fee, *rating)),
            _ => None,
        })
        .expect("the task completed");
    assert_eq!(completed, (4250, 750, None));
    assert_eq!(m.coach("c2").view().active, 0);
    m.check_replay_and_snapshot();
}
