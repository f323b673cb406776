//! What one `place_bid`, one `accept_verification` and one deadline fire cost in the engine,
//! for before/after comparisons under callgrind (instruction counts are stable on a noisy
//! machine):
//!
//! ```text
//! cargo build --release -p gavel-benches --example op_costs
//! valgrind --tool=callgrind --toggle-collect='*measured_*' target/release/examples/op_costs \
//!     [all|fire] [PENDING]
//! ```
//! Each measured loop runs `N` operations inside a `measured_*` function; divide its inclusive
//! instruction count by `N` (the program prints each `N`). `fire` skips the bids and only
//! fires deadlines: `FIRES` of them, one per `Engine::fire` call, with `PENDING` (default
//! 1,000,000) pending throughout — every bidding window that closes finds no bid and no
//! on-call coach and opens the next (`task.unfilled`), as in `place_bid_latency`. Only the engine's public API of every version since the first
//! release is used (coaches are registered from JSON bodies), so the same file builds against
//! an older checkout.
#![allow(clippy::print_stdout)] // a benchmark program reports on stdout

use std::time::Instant;

use gavel_engine::{Actor, Command, Engine, EngineConfig, Request};
use gavel_protocol::command as wire;
use gavel_protocol::http::parse_coach_upsert;
use gavel_protocol::{Role, TaskId, Urgency, UserId};

const COACHES: usize = 1_000;
const TASKS: usize = 20_000;
const T0: u64 = 1_764_000_000_000;
/// Deadlines fired in the measured fire loop.
const FIRES: usize = 20_000;
/// A standard task's bidding window (the default tier table's), over which the deadline
/// market's windows are spread evenly.
const BIDDING_WINDOW_MS: u64 = 30 * 60_000;

fn actor(id: &str, role: Role) -> Actor {
    Actor::new(UserId::new(id).unwrap(), role)
}

fn run(engine: &mut Engine, who: &Actor, command: Command, now: u64) {
    let request = Request {
        actor: who.clone(),
        request_id: None,
        command,
    };
    let outcome = engine.execute(&request, now);
    assert!(outcome.reply.is_ok(), "{:?}", outcome.reply);
}

/// Task ids in the engine's own shape (`t_<n>`, what a server-chosen id is), so the commands
/// find their tasks the way a real market's do. (Until stop 27 they were `t<n>`: counts before
/// it are not comparable with counts after.)
fn tid(i: usize) -> TaskId {
    TaskId::new(&format!("t_{i}")).unwrap()
}

fn coach(i: usize) -> Actor {
    actor(&format!("c{}", i % COACHES), Role::Coach)
}

/// Builds the requests outside the measured loops: only `Engine::execute` is counted.
fn request(who: &Actor, command: Command) -> Request {
    Request {
        actor: who.clone(),
        request_id: None,
        command,
    }
}

#[inline(never)]
fn measured_place_bid(engine: &mut Engine, requests: &[Request], now: u64) {
    for request in requests {
        assert!(engine.execute(request, now).reply.is_ok());
    }
}

#[inline(never)]
fn measured_accept_verification(engine: &mut Engine, requests: &[Request], now: u64) {
    for request in requests {
        assert!(engine.execute(request, now).reply.is_ok());
    }
}

/// Fires the next due deadline `fires` times (each call advances the clock to it); returns
/// the deadlines fired.
#[inline(never)]
fn measured_fire(engine: &mut Engine, fires: usize) -> usize {
    let mut fired = 0;
    for _ in 0..fires {
        let due = engine.next_due().expect("deadlines are always pending");
        fired += engine.fire(due).len();
    }
    fired
}

/// `pending` open standard tasks whose bidding windows close evenly over the window, 1,000
/// verified coaches none of whom is on call; then [`FIRES`] deadlines fired.
fn fire_costs(pending: usize) {
    let mut engine = Engine::new(EngineConfig::default());
    register(&mut engine);
    let owners: Vec<Actor> = (0..5_000)
        .map(|i| actor(&format!("s{i}"), Role::Seeker))
        .collect();
    for i in 0..pending {
        let post = wire::PostTask {
            resume_id: "r".into(),
            task_type: None,
            urgency: Urgency::Standard,
            base_price: None,
            award: None,
            task_id: Some(tid(i)),
            owner: None,
        };
        let at = T0 + i as u64 * BIDDING_WINDOW_MS / pending as u64;
        run(
            &mut engine,
            &owners[i % owners.len()],
            Command::PostTask(post),
            at,
        );
    }
    let started = Instant::now();
    let fired = measured_fire(&mut engine, FIRES);
    let took = started.elapsed();
    assert_eq!(
        engine.state().timers.len(),
        pending,
        "every fire opens the next window"
    );
    println!(
        "fire: {fired} deadlines in {FIRES} calls with {pending} pending in {took:?} ({:.0}/s)",
        fired as f64 / took.as_secs_f64()
    );
}

/// Registers the [`COACHES`] verified coaches `c0..` (capacity 1,000, not on call).
fn register(engine: &mut Engine) {
    let admin = actor("ops", Role::Admin);
    for i in 0..COACHES {
        let body =
            format!(r#"{{"display_name":"c{i}","rating":4.0,"verified":true,"capacity":1000}}"#);
        let profile = parse_coach_upsert(body.as_bytes()).unwrap();
        let coach_id = UserId::new(&format!("c{i}")).unwrap();
        run(
            engine,
            &admin,
            Command::UpsertCoach { coach_id, profile },
            T0,
        );
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let only_fire = args.next().as_deref() == Some("fire");
    let pending = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    if only_fire {
        fire_costs(pending);
        return;
    }
    bid_and_accept_costs();
    fire_costs(pending);
}

fn bid_and_accept_costs() {
    let mut engine = Engine::new(EngineConfig::default());
    register(&mut engine);
    let owners: Vec<Actor> = (0..TASKS)
        .map(|i| actor(&format!("s{}", i % 5_000), Role::Seeker))
        .collect();
    for (i, owner) in owners.iter().enumerate() {
        let post = wire::PostTask {
            resume_id: "r".into(),
            task_type: None,
            urgency: Urgency::Standard,
            base_price: None,
            award: None,
            task_id: Some(tid(i)),
            owner: None,
        };
        run(&mut engine, owner, Command::PostTask(post), T0);
    }
    let now = T0 + 1_000;
    let bids: Vec<Request> = (0..TASKS)
        .map(|i| {
            let bid = wire::PlaceBid {
                task_id: tid(i),
                amount: 2600 + (i % 100) as u64,
                eta_hours: 12,
            };
            request(&coach(i), Command::PlaceBid(bid))
        })
        .collect();
    let started = Instant::now();
    measured_place_bid(&mut engine, &bids, now);
    let bid = started.elapsed();
    for (i, owner) in owners.iter().enumerate() {
        let task = &engine.state().tasks[&tid(i)];
        let bid_id = task.ranked_bids().next().unwrap().view.bid_id.clone();
        let accept = wire::AcceptBid {
            task_id: tid(i),
            bid_id,
        };
        run(&mut engine, owner, Command::AcceptBid(accept), now);
        let c = coach(i);
        let start = wire::StartWork { task_id: tid(i) };
        run(&mut engine, &c, Command::StartWork(start), now);
        let submit = wire::SubmitVerification {
            task_id: tid(i),
            notes: None,
        };
        run(&mut engine, &c, Command::SubmitVerification(submit), now);
    }
    let accepts: Vec<Request> = owners
        .iter()
        .enumerate()
        .map(|(i, owner)| {
            let accept = wire::AcceptVerification {
                task_id: tid(i),
                rating: 1 + (i % 5) as u8,
            };
            request(owner, Command::AcceptVerification(accept))
        })
        .collect();
    let started = Instant::now();
    measured_accept_verification(&mut engine, &accepts, now);
    let accept = started.elapsed();
    println!(
        "place_bid: {TASKS} in {bid:?} ({:.0}/s); accept_verification: {TASKS} in {accept:?} ({:.0}/s)",
        TASKS as f64 / bid.as_secs_f64(),
        TASKS as f64 / accept.as_secs_f64()
    );
}
