//! Scenario tables for the seed flows: each row is `(at, actor, command, expect)` — at `at`
//! (milliseconds after [`T0`]) the clock moves forward, and either a command runs (firing every
//! deadline due by then first) or, for a [`Step::Tick`] row, only the deadlines fire. `expect`
//! is the exact list of event kinds the step applied, in order (deadline events included), or
//! the code the command was refused with (then nothing may have been applied: a deadline due
//! before a refused command gets its own `Tick` row).
//!
//! After every scenario the whole journal is replayed into a fresh engine (same state), and
//! the snapshot round-trips through JSON and restores.

mod common;

use common::*;
use gavel_engine::{Actor, Command};
use gavel_protocol::{Award, DisputeOutcome, ErrorCode, Millis, TaskStatus, Urgency};

/// What a row does.
#[derive(Debug)]
enum Step {
    /// Run a command.
    Do(Command),
    /// Only move the clock and fire the deadlines due.
    Tick,
}

use Step::{Do, Tick};

/// What a row must produce.
#[derive(Debug)]
enum Expect {
    /// Exactly these event kinds, in order.
    Events(&'static [&'static str]),
    /// A refusal with this code, and no event at all.
    Rejected(ErrorCode),
}

use Expect::{Events, Rejected};

/// `(at (ms after T0), actor, step, expect)`.
type Row = (Millis, Actor, Step, Expect);

/// Who "does" a tick (only a label: ticks are the clock's).
fn clock() -> Actor {
    admin()
}

/// Runs the rows in order, asserting each one.
fn run_table(m: &mut Market, rows: Vec<Row>) {
    for (i, (at, actor, step, expect)) in rows.into_iter().enumerate() {
        let at = T0 + at;
        assert!(at >= m.now, "row {i}: rows must be in time order");
        let (label, events, reply) = match step {
            Tick => (format!("tick at +{}ms", at - T0), m.fire_until(at), None),
            Do(command) => {
                m.advance_to(at);
                let label = format!("{} by {} at +{}ms", command.name(), actor.user, at - T0);
                let outcome = m.run(&actor, command);
                (label, outcome.events, Some(outcome.reply))
            }
        };
        let got = kinds(&events);
        match expect {
            Events(want) => {
                if let Some(Err(r)) = &reply {
                    panic!("row {i} ({label}): refused: {r}");
                }
                assert_eq!(got, want, "row {i} ({label}): events");
            }
            Rejected(code) => {
                match reply {
                    None => panic!("row {i} ({label}): a tick cannot be refused"),
                    Some(Ok(reply)) => panic!("row {i} ({label}): accepted: {reply:?}"),
                    Some(Err(r)) => assert_eq!(r.code, code, "row {i} ({label}): {r}"),
                }
                assert!(
                    got.is_empty(),
                    "row {i} ({label}): deadlines fired before the refusal: {got:?}"
                );
            }
        }
    }
}

const BID: &[&str] = &["bid_placed", "bid_count"];
const UPSERTED: &[&str] = &["coach_upserted"];
const OPENED: &[&str] = &["task_opened"];
const NOTHING: &[&str] = &[];

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

/// No bid → the on-call pool; no free on-call coach → a new window, `task.unfilled`.
#[test]
fn seed_flow_unbid_tasks_go_on_call_or_get_a_new_window() {
    let mut m = Market::new();
    let alice = || seeker("alice");
    let one_slot = |rating| gavel_protocol::http::CoachUpsert {
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

/// A suspended coach cannot bid: suspended by an admin, or by three strikes (late three
/// times, here with no on-call coach, so each task is refunded and reopened).
#[test]
fn seed_flow_suspended_coach_cannot_bid() {
    let mut m = Market::new();
    let alice = || seeker("alice");
    let suspended = gavel_protocol::http::CoachUpsert {
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
