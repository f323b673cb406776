//! Property tests of the engine: random streams of commands from random actors, with random
//! clock jumps, must keep every invariant, and the state must always be exactly what replaying
//! the journal (or restoring a snapshot) gives.
//!
//! Streams are generated abstractly (indices, fractions, choices) and resolved against the live
//! engine at each step, so most commands name tasks and bids that exist and are in a state the
//! command can act on, and their senders are mostly the right actors; the rest are wrong on
//! purpose (unknown ids, wrong sender, wrong state, out-of-range amounts) and must be refused
//! without changing anything but the deadlines that fired.
//!
//! After every step:
//! - `check_invariants()` holds;
//! - the `seq`s handed out so far are exactly `1..=n`, event times never go backwards;
//! - an engine fed the same events one by one (the journal replayed live) equals the live one,
//!   and every 25 steps and at the end so does one built from scratch from the whole journal;
//! - the snapshot round-trips through JSON, and `Engine::restore` of it equals the live state;
//! - a twin engine, restored from a snapshot every 16 steps, answers every request exactly as
//!   the live one does (so the rebuilt deadline index behaves like the live one);
//! - a request id seen (from the same user) within ten minutes gets the original reply and
//!   applies nothing; a fresh successful command journals its reply on its last event.
//!
//! `PROPTEST_CASES` overrides the number of cases (default 128).

use std::collections::HashMap;

use gavel_engine::idempotency::IDEMPOTENCY_TTL_MS;
use gavel_engine::state::Task;
use gavel_engine::views::{Viewer, feed_task, task_view};
use gavel_engine::{Actor, Command, Engine, EngineConfig, Event, Reply, Request, Snapshot};
use gavel_protocol::command as wire;
use gavel_protocol::http::CoachUpsert;
use gavel_protocol::{
    Award, BidId, BidStatus, DisputeOutcome, Millis, RequestId, Role, Seq, TaskId, TaskStatus,
    Urgency, UserId,
};
use proptest::prelude::*;

/// Engine time at the start of every stream (2025-11-25, an arbitrary realistic epoch).
const T0: Millis = 1_764_000_000_000;
const HOUR: Millis = 3_600_000;

// ---------------------------------------------------------------------------------------------
// The cast

/// Users, each with the role its token would carry. `dual` is both a seeker and a coach (the
/// same `sub` with either role), to exercise "a coach cannot bid on its own task" and the
/// on-call exclusion of the owner. `c_unreg` is never registered.
const SEEKERS: &[&str] = &["s1", "s2", "s3", "dual"];
const COACHES: &[&str] = &["c1", "c2", "c3", "c4", "c5", "dual", "c_unreg"];
/// The coaches an admin may register (`c_unreg` stays unregistered).
const REGISTRABLE: &[&str] = &["c1", "c2", "c3", "c4", "c5", "dual"];

fn user(s: &str) -> UserId {
    UserId::new(s).expect("valid user id")
}

fn actor(s: &str, role: Role) -> Actor {
    Actor::new(user(s), role)
}

fn admin() -> Actor {
    actor("admin", Role::Admin)
}

/// Every actor, for "someone at random".
fn anyone(i: u8) -> Actor {
    let n = SEEKERS.len() + COACHES.len() + 1;
    let i = usize::from(i) % n;
    if i < SEEKERS.len() {
        actor(SEEKERS[i], Role::Seeker)
    } else if i < SEEKERS.len() + COACHES.len() {
        actor(COACHES[i - SEEKERS.len()], Role::Coach)
    } else {
        admin()
    }
}

// ---------------------------------------------------------------------------------------------
// Abstract steps

/// How the clock moves before a step.
#[derive(Debug, Clone)]
enum Jump {
    /// Forward by this many milliseconds.
    Ms(u64),
    /// To the next deadline the engine knows of, plus this offset (ms; -2..=2): crosses
    /// bidding windows, reminders and overdue points exactly at and around their edge.
    ToDue(i64),
    /// The request carries a time this far in the past (the clock itself does not move):
    /// engine time must not run backwards.
    Back(u64),
}

/// Who sends a task command: the natural sender (owner, assigned coach, the bid's coach)
/// most of the time, or anyone at all.
#[derive(Debug, Clone, Copy)]
struct Who(u8);

/// A task to act on: by index into the tasks that suit the command (or all tasks), or an id
/// that does not exist.
#[derive(Debug, Clone, Copy)]
struct Pick(u16);

#[derive(Debug, Clone)]
enum Op {
    Post {
        who: Who,
        urgency: u8,
        base_price: Option<u64>,
        award: Option<bool>,
        explicit_id: Option<u8>,
    },
    Bid {
        who: Who,
        task: Pick,
        amount: u16,
        eta: u8,
    },
    Withdraw {
        who: Who,
        bid: Pick,
    },
    Accept {
        who: Who,
        task: Pick,
        bid: Pick,
    },
    Start {
        who: Who,
        task: Pick,
    },
    Submit {
        who: Who,
        task: Pick,
        notes: bool,
    },
    AcceptVerification {
        who: Who,
        task: Pick,
        rating: u8,
    },
    RequestChanges {
        who: Who,
        task: Pick,
    },
    Cancel {
        who: Who,
        task: Pick,
        by_admin: bool,
    },
    Resolve {
        who: Who,
        task: Pick,
        release: bool,
    },
    Message {
        who: Who,
        task: Pick,
    },
    Upsert {
        who: Who,
        coach: u8,
        rating_tenths: u8,
        verified: bool,
        on_call: bool,
        capacity: u32,
        suspended: bool,
    },
    PaymentFailed {
        who: Who,
        task: Pick,
    },
    /// Drive the timers directly (`Engine::fire`), as the server's timer loop does.
    Fire,
}

/// Whether (and how) the request carries an id.
#[derive(Debug, Clone, Copy)]
enum Rid {
    None,
    Fresh,
    /// Send an earlier request with an id again, exactly (a client retry).
    Retry(u16),
    /// This command, but with an id used before (by whoever): if the same user used it
    /// within ten minutes, the original reply comes back.
    Reuse(u16),
}

#[derive(Debug, Clone)]
struct Step {
    jump: Jump,
    op: Op,
    rid: Rid,
}

fn jump() -> impl Strategy<Value = Jump> {
    prop_oneof![
        8 => Just(Jump::Ms(0)),
        14 => (1u64..2_000).prop_map(Jump::Ms),
        6 => (1u64..600).prop_map(|s| Jump::Ms(s * 1000)),
        2 => (-2i64..=2).prop_map(Jump::ToDue),
        // Past delivery deadlines (reminders, overdue reassignments, strikes), rarely days.
        2 => prop_oneof![
            3 => (1u64..=80).prop_map(|h| Jump::Ms(h * HOUR)),
            1 => (0u64..=4 * 24 * HOUR).prop_map(Jump::Ms),
        ],
        1 => (1u64..=HOUR).prop_map(Jump::Back),
    ]
}

fn who() -> impl Strategy<Value = Who> {
    any::<u8>().prop_map(Who)
}

fn pick() -> impl Strategy<Value = Pick> {
    any::<u16>().prop_map(Pick)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (who(), 0u8..3, prop::option::weighted(0.3, 1u64..10_000), prop::option::of(any::<bool>()),
              prop::option::weighted(0.15, 0u8..40))
            .prop_map(|(who, urgency, base_price, award, explicit_id)| Op::Post {
                who, urgency, base_price, award, explicit_id,
            }),
        14 => (who(), pick(), any::<u16>(), any::<u8>())
            .prop_map(|(who, task, amount, eta)| Op::Bid { who, task, amount, eta }),
        2 => (who(), pick()).prop_map(|(who, bid)| Op::Withdraw { who, bid }),
        4 => (who(), pick(), pick()).prop_map(|(who, task, bid)| Op::Accept { who, task, bid }),
        3 => (who(), pick()).prop_map(|(who, task)| Op::Start { who, task }),
        4 => (who(), pick(), any::<bool>()).prop_map(|(who, task, notes)| Op::Submit { who, task, notes }),
        2 => (who(), pick(), 1u8..=5)
            .prop_map(|(who, task, rating)| Op::AcceptVerification { who, task, rating }),
        4 => (who(), pick()).prop_map(|(who, task)| Op::RequestChanges { who, task }),
        1 => (who(), pick(), any::<bool>())
            .prop_map(|(who, task, by_admin)| Op::Cancel { who, task, by_admin }),
        1 => (who(), pick(), any::<bool>())
            .prop_map(|(who, task, release)| Op::Resolve { who, task, release }),
        1 => (who(), pick()).prop_map(|(who, task)| Op::Message { who, task }),
        3 => (who(), any::<u8>(), 0u8..=50, prop::bool::weighted(0.85), any::<bool>(), 1u32..=3,
              prop::bool::weighted(0.1))
            .prop_map(|(who, coach, rating_tenths, verified, on_call, capacity, suspended)| {
                Op::Upsert { who, coach, rating_tenths, verified, on_call, capacity, suspended }
            }),
        1 => (who(), pick()).prop_map(|(who, task)| Op::PaymentFailed { who, task }),
        1 => Just(Op::Fire),
    ]
}

fn rid() -> impl Strategy<Value = Rid> {
    prop_oneof![
        5 => Just(Rid::None),
        3 => Just(Rid::Fresh),
        1 => any::<u16>().prop_map(Rid::Retry),
        1 => any::<u16>().prop_map(Rid::Reuse),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    (jump(), op(), rid()).prop_map(|(jump, op, rid)| Step { jump, op, rid })
}

/// Every registrable coach registered first, with random profiles (so bids and on-call
/// assignments happen early), then the stream.
fn stream() -> impl Strategy<Value = (Vec<Op>, Vec<Step>)> {
    let setup = prop::collection::vec(
        (
            0u8..=50,
            prop::bool::weighted(0.85),
            prop::bool::weighted(0.5),
            1u32..=3,
        ),
        REGISTRABLE.len(),
    )
    .prop_map(|profiles| {
        profiles
            .into_iter()
            .enumerate()
            .map(
                |(i, (rating_tenths, verified, on_call, capacity))| Op::Upsert {
                    who: Who(0),
                    coach: i as u8,
                    rating_tenths,
                    verified,
                    on_call,
                    capacity,
                    suspended: false,
                },
            )
            .collect()
    });
    (setup, prop::collection::vec(step(), 1..200))
}

// ---------------------------------------------------------------------------------------------
// Resolving abstract steps against the live engine

fn missing_task() -> TaskId {
    TaskId::new("t_missing").expect("valid id")
}

fn missing_bid() -> BidId {
    BidId::new("b_missing").expect("valid id")
}

/// Tasks sorted by id (the map's own order is not deterministic across engines).
fn sorted_tasks(engine: &Engine) -> Vec<TaskId> {
    let mut ids: Vec<TaskId> = engine.state().tasks.keys().cloned().collect();
    ids.sort();
    ids
}

/// Picks a task: one that suits the command three times in four (when there is one), an id
/// that does not exist one time in sixteen, else any task.
fn pick_task(engine: &Engine, p: Pick, suits: impl Fn(&Task) -> bool) -> TaskId {
    let all = sorted_tasks(engine);
    let n = usize::from(p.0 / 16);
    if p.0.is_multiple_of(16) || all.is_empty() {
        return missing_task();
    }
    let fitting: Vec<&TaskId> = all
        .iter()
        .filter(|id| suits(&engine.state().tasks[*id]))
        .collect();
    if p.0 % 4 != 1 && !fitting.is_empty() {
        return fitting[n % fitting.len()].clone();
    }
    all[n % all.len()].clone()
}

/// Tasks in one of these states.
fn status_in(statuses: &[TaskStatus]) -> impl Fn(&Task) -> bool + '_ {
    move |t| statuses.contains(&t.status)
}

/// Bid ids sorted (with their task), pending ones first when `pending_first`.
fn sorted_bids(engine: &Engine) -> Vec<(BidId, TaskId)> {
    let mut bids: Vec<(BidId, TaskId)> = engine
        .state()
        .bid_tasks
        .iter()
        .map(|(b, t)| (b.clone(), t.clone()))
        .collect();
    bids.sort();
    bids
}

fn bid_status(engine: &Engine, bid: &BidId) -> Option<BidStatus> {
    let task = engine.state().bid_tasks.get(bid)?;
    Some(engine.state().tasks[task].bids[bid].view.status)
}

/// Picks a bid: a pending one three times in four (when there is one), a missing id one time
/// in sixteen, else any bid ever placed.
fn pick_bid(engine: &Engine, p: Pick) -> BidId {
    let all = sorted_bids(engine);
    let n = usize::from(p.0 / 16);
    if p.0.is_multiple_of(16) || all.is_empty() {
        return missing_bid();
    }
    let pending: Vec<&BidId> = all
        .iter()
        .map(|(b, _)| b)
        .filter(|b| bid_status(engine, b) == Some(BidStatus::Pending))
        .collect();
    if p.0 % 4 != 1 && !pending.is_empty() {
        return pending[n % pending.len()].clone();
    }
    all[n % all.len()].0.clone()
}

/// The natural sender most of the time (`who < 200`), else anyone.
fn sender(w: Who, natural: Option<Actor>) -> Actor {
    match natural {
        Some(a) if w.0 < 200 => a,
        _ => anyone(w.0),
    }
}

fn owner_of(engine: &Engine, task: &TaskId) -> Option<Actor> {
    let t = engine.state().tasks.get(task)?;
    Some(Actor::new(t.spec.owner.clone(), Role::Seeker))
}

fn coach_of(engine: &Engine, task: &TaskId) -> Option<Actor> {
    let t = engine.state().tasks.get(task)?;
    t.coach().map(|c| Actor::new(c.clone(), Role::Coach))
}

/// A coach to bid as: most of the time a coach that may bid (registered, verified, not
/// suspended, not the owner) if there is one; sometimes any registrable coach (maybe
/// unverified or suspended), the unregistered one, the owner itself, or someone with the
/// wrong role.
fn bidder(engine: &Engine, w: Who, task: &TaskId) -> Actor {
    let owner = engine.state().tasks.get(task).map(|t| t.spec.owner.clone());
    let not_owner = |c: &&str| owner.as_ref().is_none_or(|o| o.as_str() != *c);
    let able: Vec<&str> = REGISTRABLE
        .iter()
        .copied()
        .filter(not_owner)
        .filter(|c| {
            engine
                .state()
                .coaches
                .get(&user(c))
                .is_some_and(|c| c.in_good_standing())
        })
        .collect();
    match w.0 {
        0..=179 if !able.is_empty() => actor(able[usize::from(w.0) % able.len()], Role::Coach),
        0..=219 => {
            let candidates: Vec<&str> = REGISTRABLE.iter().copied().filter(not_owner).collect();
            actor(candidates[usize::from(w.0) % candidates.len()], Role::Coach)
        }
        220..=229 => actor("c_unreg", Role::Coach),
        230..=239 => owner_of(engine, task)
            .map(|a| Actor::new(a.user, Role::Coach))
            .unwrap_or_else(|| actor("c1", Role::Coach)),
        _ => anyone(w.0),
    }
}

/// A bid amount: in the task's range nine times in ten (spread over it), else just outside.
fn amount(engine: &Engine, task: &TaskId, a: u16) -> u64 {
    let [min, max] = engine
        .state()
        .tasks
        .get(task)
        .map_or([2500, 5000], |t| t.spec.price_range);
    match a % 20 {
        0 => min.saturating_sub(1),
        1 => max + 1,
        _ => min + u64::from(a) * (max - min) / u64::from(u16::MAX),
    }
}

/// An `eta_hours`: within the tier's window mostly, sometimes 0 or one past it.
fn eta(engine: &Engine, task: &TaskId, e: u8) -> u32 {
    let window = engine.state().tasks.get(task).map_or(24, |t| {
        engine.config().tiers.get(t.spec.urgency).delivery_hours
    });
    match e % 16 {
        0 => 0,
        1 => window + 1,
        _ => 1 + u32::from(e) % window,
    }
}

const ACTIVE: &[TaskStatus] = &[TaskStatus::Assigned, TaskStatus::InProgress];

/// The request for `op` against the engine as it is now (`None` for [`Op::Fire`]).
fn resolve(engine: &Engine, op: &Op, now: Millis) -> Option<(Actor, Command)> {
    use TaskStatus::*;
    let e = engine;
    Some(match op {
        Op::Fire => return None,
        Op::Post {
            who,
            urgency,
            base_price,
            award,
            explicit_id,
        } => {
            let seeker = actor(SEEKERS[usize::from(who.0) % SEEKERS.len()], Role::Seeker);
            let (sender, owner) = match who.0 {
                0..=199 => (seeker, None),
                200..=219 => (admin(), Some(seeker.user.clone())),
                220..=229 => (admin(), None), // refused: an admin must name the owner
                230..=239 => (seeker, Some(user("s1"))), // refused unless it is s1
                _ => (anyone(who.0), None),
            };
            let c = wire::PostTask {
                resume_id: format!("resume-{}", who.0),
                task_type: (who.0 % 3 == 0).then(|| "linkedin_review".to_owned()),
                urgency: Urgency::ALL[usize::from(*urgency) % 3],
                base_price: *base_price,
                award: award.map(|auto| if auto { Award::Auto } else { Award::Manual }),
                // Client-chosen ids: some collide with server-chosen `t_<n>` ones.
                task_id: explicit_id.map(|n| {
                    TaskId::new(&if n % 2 == 0 {
                        format!("t_{}", n / 2)
                    } else {
                        format!("mine-{n}")
                    })
                    .expect("valid id")
                }),
                owner,
            };
            (sender, Command::PostTask(c))
        }
        Op::Bid {
            who,
            task,
            amount: a,
            eta: h,
        } => {
            // Open tasks whose window is still open at `now`, mostly.
            let task_id = pick_task(e, *task, |t| {
                t.status == Open && !t.awaiting_owner && t.bidding_closes_at > now
            });
            let c = wire::PlaceBid {
                amount: amount(e, &task_id, *a),
                eta_hours: eta(e, &task_id, *h),
                task_id: task_id.clone(),
            };
            (bidder(e, *who, &task_id), Command::PlaceBid(c))
        }
        Op::Withdraw { who, bid } => {
            let bid_id = pick_bid(e, *bid);
            let natural = e.state().bid_tasks.get(&bid_id).map(|t| {
                let coach = e.state().tasks[t].bids[&bid_id].view.coach_id.clone();
                Actor::new(coach, Role::Coach)
            });
            (
                sender(*who, natural),
                Command::WithdrawBid(wire::WithdrawBid { bid_id }),
            )
        }
        Op::Accept { who, task, bid } => {
            let task_id = pick_task(e, *task, |t| t.status == Open && t.bid_count() > 0);
            // Mostly one of the task's own bids (pending first), sometimes any bid at all.
            let own: Vec<BidId> = e.state().tasks.get(&task_id).map_or(Vec::new(), |t| {
                let mut ids: Vec<(bool, BidId)> = t
                    .bids
                    .values()
                    .map(|b| (b.view.status != BidStatus::Pending, b.view.bid_id.clone()))
                    .collect();
                ids.sort();
                ids.into_iter().map(|(_, id)| id).collect()
            });
            let bid_id = if bid.0 % 8 != 0 && !own.is_empty() {
                // Bias to the best-ranked or first pending bids.
                own[usize::from(bid.0 / 8) % own.len().min(3)].clone()
            } else {
                pick_bid(e, *bid)
            };
            (
                sender(*who, owner_of(e, &task_id)),
                Command::AcceptBid(wire::AcceptBid { task_id, bid_id }),
            )
        }
        Op::Start { who, task } => {
            let task_id = pick_task(e, *task, status_in(&[Assigned]));
            (
                sender(*who, coach_of(e, &task_id)),
                Command::StartWork(wire::StartWork { task_id }),
            )
        }
        Op::Submit { who, task, notes } => {
            let task_id = pick_task(e, *task, status_in(&[InProgress]));
            (
                sender(*who, coach_of(e, &task_id)),
                Command::SubmitVerification(wire::SubmitVerification {
                    task_id,
                    notes: notes.then(|| "done, see comments".to_owned()),
                }),
            )
        }
        Op::AcceptVerification { who, task, rating } => {
            let task_id = pick_task(e, *task, status_in(&[Submitted]));
            (
                sender(*who, owner_of(e, &task_id)),
                Command::AcceptVerification(wire::AcceptVerification {
                    task_id,
                    rating: *rating,
                }),
            )
        }
        Op::RequestChanges { who, task } => {
            let task_id = pick_task(e, *task, status_in(&[Submitted]));
            (
                sender(*who, owner_of(e, &task_id)),
                Command::RequestChanges(wire::RequestChanges {
                    task_id,
                    reason: "please expand the summary".to_owned(),
                }),
            )
        }
        Op::Cancel {
            who,
            task,
            by_admin,
        } => {
            let preferred: &[TaskStatus] = if *by_admin {
                &[Open, Assigned, InProgress, Submitted, Disputed]
            } else {
                &[Open, Assigned]
            };
            let task_id = pick_task(e, *task, status_in(preferred));
            let natural = if *by_admin {
                Some(admin())
            } else {
                owner_of(e, &task_id)
            };
            (
                sender(*who, natural),
                Command::CancelTask(wire::CancelTask {
                    task_id,
                    reason: (who.0 % 2 == 0).then(|| "no longer needed".to_owned()),
                }),
            )
        }
        Op::Resolve { who, task, release } => {
            let task_id = pick_task(e, *task, status_in(&[Disputed]));
            (
                sender(*who, Some(admin())),
                Command::ResolveDispute(wire::ResolveDispute {
                    task_id,
                    outcome: if *release {
                        DisputeOutcome::Release
                    } else {
                        DisputeOutcome::Refund
                    },
                }),
            )
        }
        Op::Message { who, task } => {
            let task_id = pick_task(e, *task, status_in(ACTIVE));
            let natural = if who.0 % 2 == 0 {
                owner_of(e, &task_id)
            } else {
                coach_of(e, &task_id)
            };
            (
                sender(*who, natural),
                Command::SendMessage(wire::SendMessage {
                    task_id,
                    text: "hello".to_owned(),
                }),
            )
        }
        Op::Upsert {
            who,
            coach,
            rating_tenths,
            verified,
            on_call,
            capacity,
            suspended,
        } => {
            let coach_id = user(REGISTRABLE[usize::from(*coach) % REGISTRABLE.len()]);
            let profile = CoachUpsert {
                display_name: format!("Coach {coach_id}"),
                rating: f64::from(*rating_tenths) / 10.0,
                verified: *verified,
                on_call: *on_call,
                capacity: *capacity,
                suspended: *suspended,
            };
            (
                sender(*who, Some(admin())),
                Command::UpsertCoach { coach_id, profile },
            )
        }
        Op::PaymentFailed { who, task } => {
            let task_id = pick_task(e, *task, status_in(&[Assigned]));
            (
                sender(*who, Some(admin())),
                Command::PaymentFailed { task_id },
            )
        }
    })
}

// ---------------------------------------------------------------------------------------------
// The checks

fn replay(config: &EngineConfig, journal: &[(Seq, Event)]) -> Engine {
    let mut engine = Engine::new(config.clone());
    for (seq, event) in journal {
        assert_eq!(engine.evolve(event), *seq, "replay assigns the same seq");
    }
    engine
}

fn check_journal(journal: &[(Seq, Event)]) -> Result<(), TestCaseError> {
    for (i, (seq, _)) in journal.iter().enumerate() {
        prop_assert_eq!(*seq, i as Seq + 1, "seqs are contiguous from 1");
    }
    for w in journal.windows(2) {
        prop_assert!(w[0].1.at <= w[1].1.at, "event times never go backwards");
    }
    Ok(())
}

fn check_snapshot(live: &Engine) -> Result<Engine, TestCaseError> {
    let snapshot = live.snapshot();
    let json = serde_json::to_string(&snapshot)
        .map_err(|e| TestCaseError::fail(format!("snapshot does not serialize: {e}")))?;
    let back: Snapshot = serde_json::from_str(&json)
        .map_err(|e| TestCaseError::fail(format!("snapshot does not deserialize: {e}")))?;
    prop_assert!(back == snapshot, "snapshot JSON round trip");
    let restored = Engine::restore(live.config().clone(), back).map_err(TestCaseError::fail)?;
    prop_assert!(
        restored.state() == live.state(),
        "restored state equals live"
    );
    prop_assert!(restored.check_invariants().is_ok());
    Ok(restored)
}

/// Renders every view of the state (nothing may panic).
fn render_views(engine: &Engine) {
    for task in engine.state().tasks.values() {
        let _ = task_view(task, Viewer::Privileged);
        if let Some(coach) = task.coach() {
            let _ = task_view(task, Viewer::Coach(coach));
        }
        let _ = feed_task(task, Some(&user("c1")));
    }
    for coach in COACHES {
        let _ = engine.coach_snapshot(&user(coach));
    }
    let _ = engine.admin_snapshot(0);
}

/// The replies remembered per (user, request id): when, and what.
type Remembered = HashMap<(UserId, RequestId), (Millis, Reply)>;

fn run(setup: Vec<Op>, steps: Vec<Step>) -> Result<(), TestCaseError> {
    let config = EngineConfig::default();
    let mut live = Engine::new(config.clone());
    let mut follower = Engine::new(config.clone());
    let mut twin = live.clone();
    let mut journal: Vec<(Seq, Event)> = Vec::new();
    let mut clock = T0;
    let mut remembered: Remembered = HashMap::new();
    let mut with_ids: Vec<Request> = Vec::new();
    let mut next_rid = 0u32;

    let setup = setup.into_iter().map(|op| Step {
        jump: Jump::Ms(0),
        op,
        rid: Rid::None,
    });
    for (i, step) in setup.chain(steps).enumerate() {
        if i % 16 == 0 {
            twin = check_snapshot(&live)?;
        }
        // Move the clock.
        let mut now = clock;
        match step.jump {
            Jump::Ms(ms) => {
                clock += ms;
                now = clock;
            }
            Jump::ToDue(offset) => {
                if let Some(due) = live.next_due() {
                    let target = due.saturating_add_signed(offset);
                    if target > clock {
                        clock = target;
                    }
                }
                now = clock;
            }
            Jump::Back(ms) => now -= ms,
        }

        let events = match resolve(&live, &step.op, now) {
            None => {
                let fired = live.fire(now);
                prop_assert_eq!(&twin.fire(now), &fired, "twin fires the same");
                fired
            }
            Some((actor, command)) => {
                let request = match step.rid {
                    Rid::Retry(k) if !with_ids.is_empty() => {
                        with_ids[usize::from(k) % with_ids.len()].clone()
                    }
                    Rid::None => Request {
                        actor,
                        request_id: None,
                        command,
                    },
                    Rid::Reuse(k) if !with_ids.is_empty() => Request {
                        request_id: with_ids[usize::from(k) % with_ids.len()].request_id.clone(),
                        actor,
                        command,
                    },
                    _ => {
                        next_rid += 1;
                        Request {
                            actor,
                            request_id: Some(RequestId::new(&format!("r{next_rid}")).unwrap()),
                            command,
                        }
                    }
                };
                let effective = now.max(live.state().now);
                let seq_before = live.seq();
                let outcome = live.execute(&request, now);
                prop_assert_eq!(
                    &twin.execute(&request, now),
                    &outcome,
                    "twin answers the same"
                );
                for (_, event) in &outcome.events {
                    prop_assert!(event.at <= effective, "no event from the future");
                }
                if let Some(rid) = &request.request_id {
                    let key = (request.actor.user.clone(), rid.clone());
                    let fresh = remembered
                        .get(&key)
                        .filter(|(at, _)| effective < at + IDEMPOTENCY_TTL_MS)
                        .map(|(_, reply)| reply.clone());
                    match (&fresh, &outcome.reply) {
                        (Some(original), reply) => {
                            prop_assert_eq!(
                                reply,
                                &Ok(original.clone()),
                                "a retry gets the original reply"
                            );
                            prop_assert!(
                                outcome.events.iter().all(|(_, e)| e.origin.is_none()),
                                "a retry applies nothing"
                            );
                        }
                        (None, Ok(reply)) => {
                            let last = &outcome.events.last().expect("a success journals events").1;
                            let origin = last
                                .origin
                                .as_ref()
                                .expect("the last event carries the reply");
                            prop_assert_eq!(&origin.reply, reply);
                            prop_assert_eq!(&origin.request_id, rid);
                            prop_assert_eq!(&origin.user, &request.actor.user);
                            remembered.insert(key, (effective, reply.clone()));
                        }
                        (None, Err(_)) => {}
                    }
                    if with_ids.len() < 64 {
                        with_ids.push(request.clone());
                    }
                } else {
                    prop_assert!(outcome.events.iter().all(|(_, e)| e.origin.is_none()));
                }
                if outcome.reply.is_err() {
                    // A refusal applies nothing of its own: only deadlines that fired.
                    prop_assert!(outcome.events.iter().all(|(_, e)| e.origin.is_none()));
                }
                let applied = outcome.events.len() as Seq;
                prop_assert_eq!(live.seq(), seq_before + applied);
                outcome.events
            }
        };

        for (seq, event) in &events {
            prop_assert_eq!(
                follower.evolve(event),
                *seq,
                "the follower assigns the same seq"
            );
        }
        journal.extend(events);

        if let Err(broken) = live.check_invariants() {
            return Err(TestCaseError::fail(format!("step {i}: {broken}")));
        }
        check_journal(&journal)?;
        prop_assert_eq!(live.seq(), journal.len() as Seq);
        prop_assert!(
            follower.state() == live.state(),
            "step {}: the follower equals live",
            i
        );
        prop_assert!(
            twin.state() == live.state(),
            "step {}: the twin equals live",
            i
        );
        check_snapshot(&live)?;
        if i % 25 == 0 {
            prop_assert!(
                replay(&config, &journal).state() == live.state(),
                "step {}: replay",
                i
            );
        }
    }
    prop_assert!(
        replay(&config, &journal).state() == live.state(),
        "final replay"
    );
    render_views(&live);
    for (_, event) in &journal {
        let _ = gavel_engine::wire::deliveries(event);
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(128)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        max_shrink_iters: 4096,
        // Integration tests have no lib.rs for proptest to find its regression file by; a
        // failure prints the minimal stream, which is what a fix needs.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_streams_keep_invariants_and_replay_exactly((setup, steps) in stream()) {
        run(setup, steps)?;
    }
}
