//! Seed flow 4: a suspended coach cannot bid, whether suspended by an admin or by three
//! strikes.

use gavel_protocol::{Award, ErrorCode, TaskStatus, Urgency};

use crate::Expect::{Events, Rejected};
use crate::Step::{Do, Tick};
use crate::common::*;
use crate::{BID, OPENED, UPSERTED, clock, run_table};

/// A suspended coach cannot bid: suspended by an admin, or by three strikes (late three
/// times, here with no on-call coach, so each task is refunded and reopened).
#[test]
fn seed_flow_suspended_coach_cannot_bid() {
    let mut m = Market::new();
    let alice = || seeker("alice");
    let suspended = gavel_protocol::http::CoachUpsert {
        ratings_count: 0,
        suspended: true,
        ..profile(4.0)
    };
    run_table(
        &mut m,
        vec![
            (0, admin(), Do(upsert("c_sus", suspended)), Events(UPSERTED)),
            (
                0,
                admin(),
                Do(upsert("c_late", profile(4.0))),
                Events(UPSERTED),
            ),
            (
                0,
                admin(),
                Do(upsert("c_ok", profile(3.0))),
                Events(UPSERTED),
            ),
            (
                0,
                alice(),
                Do(post("t_a", Urgency::Urgent, Award::Manual)),
                Events(OPENED),
            ),
            (
                0,
                alice(),
                Do(post("t_b", Urgency::Urgent, Award::Manual)),
                Events(OPENED),
            ),
            (
                0,
                alice(),
                Do(post("t_c", Urgency::Urgent, Award::Manual)),
                Events(OPENED),
            ),
            (
                MIN,
                coach("c_sus"),
                Do(place_bid("t_a", 4000, 1)),
                Rejected(ErrorCode::Forbidden),
            ),
            (
                MIN,
                coach("c_late"),
                Do(place_bid("t_a", 4000, 1)),
                Events(BID),
            ),
            (
                MIN,
                coach("c_late"),
                Do(place_bid("t_b", 4100, 1)),
                Events(BID),
            ),
            (
                MIN,
                coach("c_late"),
                Do(place_bid("t_c", 4200, 1)),
                Events(BID),
            ),
            (
                2 * MIN,
                alice(),
                Do(accept("t_a", "b_0")),
                Events(&[
                    "bid_accepted",
                    "task_assigned",
                    "payment_held",
                    "task_closed",
                ]),
            ),
            (
                2 * MIN,
                alice(),
                Do(accept("t_b", "b_1")),
                Events(&[
                    "bid_accepted",
                    "task_assigned",
                    "payment_held",
                    "task_closed",
                ]),
            ),
            (
                2 * MIN,
                alice(),
                Do(accept("t_c", "b_2")),
                Events(&[
                    "bid_accepted",
                    "task_assigned",
                    "payment_held",
                    "task_closed",
                ]),
            ),
            // Deadlines +62 min, lead 15 min: reminders at +47, overdue at +77 (task order).
            (
                47 * MIN,
                clock(),
                Tick,
                Events(&["task_reminder", "task_reminder", "task_reminder"]),
            ),
            (
                77 * MIN,
                clock(),
                Tick,
                Events(&[
                    "task_reassigned",
                    "payment_refunded",
                    "bid_rejected",
                    "task_opened",
                    "task_reassigned",
                    "payment_refunded",
                    "bid_rejected",
                    "task_opened",
                    "task_reassigned",
                    "payment_refunded",
                    "bid_rejected",
                    "task_opened",
                ]),
            ),
            // Three strikes: suspended.
            (
                78 * MIN,
                coach("c_late"),
                Do(place_bid("t_a", 4000, 1)),
                Rejected(ErrorCode::Forbidden),
            ),
            // The reopened task takes bids again and can be awarded anew.
            (
                78 * MIN,
                coach("c_ok"),
                Do(place_bid("t_a", 3900, 2)),
                Events(BID),
            ),
            (
                79 * MIN,
                alice(),
                Do(accept("t_a", "b_3")),
                Events(&[
                    "bid_accepted",
                    "task_assigned",
                    "payment_held",
                    "task_closed",
                ]),
            ),
            // Lifting the suspension forgives the strikes: the coach may bid again.
            (
                80 * MIN,
                admin(),
                Do(upsert("c_late", profile(4.0))),
                Events(UPSERTED),
            ),
            (
                80 * MIN,
                coach("c_late"),
                Do(place_bid("t_b", 4000, 1)),
                Events(BID),
            ),
            (
                80 * MIN,
                admin(),
                Do(upsert("c_sus", profile(4.0))),
                Events(UPSERTED),
            ),
            (
                80 * MIN,
                coach("c_sus"),
                Do(place_bid("t_c", 4000, 1)),
                Events(BID),
            ),
        ],
    );

    let c = m.coach("c_late").view();
    assert_eq!((c.strikes, c.suspended), (0, false));
    for t in ["t_a", "t_b", "t_c"] {
        let v = m.view(t);
        assert!(v.escrow.refunded > 0, "{t}'s first escrow was refunded");
    }
    let a = m.view("t_a");
    assert_eq!(a.escrow.held, 4000 + 3900);
    assert_eq!(a.escrow.refunded, 4000);
    assert_eq!(a.status, TaskStatus::Assigned);
    m.check_replay_and_snapshot();
}
