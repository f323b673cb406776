//! Seed flow 2: unbid tasks go to the on-call pool at 1.2×, or get a new window and
//! `task.unfilled` when no on-call coach is free.

use gavel_protocol::{Award, ErrorCode, Urgency};

use crate::Expect::{Events, Rejected};
use crate::Step::{Do, Tick};
use crate::common::*;
use crate::{BID, NOTHING, OPENED, UPSERTED, clock, run_table};

/// No bid → the on-call pool; no free on-call coach → a new window, `task.unfilled`.
#[test]
fn seed_flow_unbid_tasks_go_on_call_or_get_a_new_window() {
    let mut m = Market::new();
    let alice = || seeker("alice");
    let one_slot = |rating| gavel_protocol::http::CoachUpsert {
        ratings_count: 0,
        capacity: 1,
        ..on_call_profile(rating)
    };
    run_table(
        &mut m,
        vec![
            (
                0,
                admin(),
                Do(upsert("oc_1", one_slot(4.0))),
                Events(UPSERTED),
            ),
            (
                0,
                admin(),
                Do(upsert("oc_2", one_slot(4.8))),
                Events(UPSERTED),
            ),
            (0, admin(), Do(upsert("c1", profile(3.0))), Events(UPSERTED)),
            (
                0,
                alice(),
                Do(post("t_std", Urgency::Standard, Award::Manual)),
                Events(OPENED),
            ),
            (
                0,
                alice(),
                Do(post("t_urg", Urgency::Urgent, Award::Auto)),
                Events(OPENED),
            ),
            (10 * MIN - 1, clock(), Tick, Events(NOTHING)),
            // Urgent window closes unbid: oc_2 (equal load, higher rating) at 3750 × 1.2.
            (
                10 * MIN,
                clock(),
                Tick,
                Events(&["task_assigned", "payment_held", "task_closed"]),
            ),
            // Standard window closes unbid: oc_1 (oc_2 is at capacity) at 2500 × 1.2.
            (
                30 * MIN,
                clock(),
                Tick,
                Events(&["task_assigned", "payment_held", "task_closed"]),
            ),
            (
                31 * MIN,
                alice(),
                Do(post("t_late", Urgency::Standard, Award::Manual)),
                Events(OPENED),
            ),
            // Both on-call coaches are full: the task stays open for another window.
            (61 * MIN, clock(), Tick, Events(&["task_unfilled"])),
            (
                62 * MIN,
                coach("c1"),
                Do(place_bid("t_late", 2600, 10)),
                Events(BID),
            ),
            // The new window closes with a bid on a manual task: the owner chooses.
            (91 * MIN, clock(), Tick, Events(&["bidding_closed"])),
            (
                92 * MIN,
                coach("c1"),
                Do(place_bid("t_late", 2500, 10)),
                Rejected(ErrorCode::Conflict),
            ),
            // oc_2's reminder: deadline +10 min + 2 h, lead 30 min.
            (100 * MIN, clock(), Tick, Events(&["task_reminder"])),
            (
                2 * HOUR,
                alice(),
                Do(accept("t_late", "b_0")),
                Events(&[
                    "bid_accepted",
                    "task_assigned",
                    "payment_held",
                    "task_closed",
                ]),
            ),
        ],
    );

    let urg = m.view("t_urg").assigned.expect("assigned on call");
    assert_eq!(
        (urg.coach_id.as_str(), urg.bid_id, urg.amount, urg.on_call),
        ("oc_2", None, 4500, true)
    );
    assert_eq!(
        urg.deadline,
        T0 + 10 * MIN + 2 * HOUR,
        "eta = the tier's window"
    );
    let std = m.view("t_std").assigned.expect("assigned on call");
    assert_eq!((std.coach_id.as_str(), std.amount), ("oc_1", 3000));
    assert_eq!(std.deadline, T0 + 30 * MIN + 24 * HOUR);
    let late = m.view("t_late");
    assert_eq!(late.bidding_closes_at, T0 + 91 * MIN, "the second window");
    assert_eq!(
        late.assigned.expect("assigned").deadline,
        T0 + 2 * HOUR + 10 * HOUR
    );
    m.check_replay_and_snapshot();
}
