//! Seed flow 3: a coach misses the deadline, gets a strike, and the task goes to the on-call
//! pool at the escrowed amount.

use gavel_protocol::{Award, ErrorCode, TaskStatus, Urgency};

use crate::Expect::{Events, Rejected};
use crate::Step::{Do, Tick};
use crate::common::*;
use crate::{BID, NOTHING, OPENED, UPSERTED, clock, run_table};

/// A coach misses the deadline: a strike, and the task goes to the on-call pool at the
/// escrowed amount with a fresh window.
#[test]
fn seed_flow_late_coach_gets_a_strike_and_the_task_is_reassigned() {
    let mut m = Market::new();
    let alice = || seeker("alice");
    // Accepted at +2 min, eta 1 h: deadline +62 min, lead 15 min → reminder +47, overdue +77.
    // Reassigned at +77 min with the urgent window (2 h): deadline +197, lead 30 min →
    // reminder +167 min.
    run_table(
        &mut m,
        vec![
            (0, admin(), Do(upsert("c1", profile(4.0))), Events(UPSERTED)),
            (
                0,
                admin(),
                Do(upsert("oc", on_call_profile(4.5))),
                Events(UPSERTED),
            ),
            (
                0,
                alice(),
                Do(post("t_l", Urgency::Urgent, Award::Manual)),
                Events(OPENED),
            ),
            (MIN, coach("c1"), Do(place_bid("t_l", 4000, 1)), Events(BID)),
            (
                2 * MIN,
                alice(),
                Do(accept("t_l", "b_0")),
                Events(&[
                    "bid_accepted",
                    "task_assigned",
                    "payment_held",
                    "task_closed",
                ]),
            ),
            (
                3 * MIN,
                coach("c1"),
                Do(start("t_l")),
                Events(&["task_started"]),
            ),
            (47 * MIN - 1, clock(), Tick, Events(NOTHING)),
            (47 * MIN, clock(), Tick, Events(&["task_reminder"])),
            (
                50 * MIN,
                coach("c1"),
                Do(message("t_l", "almost there")),
                Events(&["task_message"]),
            ),
            (77 * MIN - 1, clock(), Tick, Events(NOTHING)),
            (
                77 * MIN,
                clock(),
                Tick,
                Events(&["task_reassigned", "task_assigned"]),
            ),
            (
                78 * MIN,
                coach("c1"),
                Do(submit("t_l")),
                Rejected(ErrorCode::Forbidden),
            ),
            (
                78 * MIN,
                coach("c1"),
                Do(message("t_l", "wait")),
                Rejected(ErrorCode::Forbidden),
            ),
            (
                79 * MIN,
                coach("oc"),
                Do(start("t_l")),
                Events(&["task_started"]),
            ),
            (167 * MIN, clock(), Tick, Events(&["task_reminder"])),
            (
                170 * MIN,
                coach("oc"),
                Do(submit("t_l")),
                Events(&["task_submitted"]),
            ),
            (
                171 * MIN,
                alice(),
                Do(accept_verification("t_l", 4)),
                Events(&["payment_released", "task_completed"]),
            ),
        ],
    );

    let c1 = m.coach("c1").view();
    assert_eq!((c1.strikes, c1.suspended, c1.active), (1, false, 0));
    let v = m.view("t_l");
    assert_eq!(v.status, TaskStatus::Completed);
    // The on-call coach took over at the escrowed amount (4000, not the on-call price):
    // 4000 × 85 / 100 = 3400 and 600.
    assert_eq!((v.escrow.held, v.escrow.released), (4000, 4000));
    let released = m.journal.iter().find_map(|(_, e)| match &e.kind {
        gavel_engine::EventKind::PaymentReleased {
            coach_id,
            coach_amount,
            platform_fee,
            ..
        } => Some((coach_id.as_str().to_owned(), *coach_amount, *platform_fee)),
        _ => None,
    });
    assert_eq!(released, Some(("oc".to_owned(), 3400, 600)));
    m.check_replay_and_snapshot();
}
