//! criterion benchmarks of gavel (engine, codec, fan-out) live in `benches/benches/`; plain
//! latency runs in `benches/examples/`. This library only holds the fixtures they share: the
//! markets they run on, built through the engine's own commands.

use gavel_engine::{Actor, Command, Engine, EngineConfig, Request};
use gavel_protocol::command::{PlaceBid, PostTask};
use gavel_protocol::http::CoachUpsert;
use gavel_protocol::{Award, Cents, Millis, Role, TaskId, Urgency, UserId};

/// Engine time at which every market opens (2025-11-25).
pub const T0: Millis = 1_764_000_000_000;

/// Seekers posting the tasks of a market.
pub const SEEKERS: usize = 1_000;

/// A market: the engine plus the ids and actors a benchmark cycles over.
#[derive(Debug)]
pub struct Market {
    pub engine: Engine,
    /// Every task, in posting order.
    pub tasks: Vec<TaskId>,
    /// Each task's price range and delivery window in hours (so building a valid bid needs
    /// no lookup in the engine).
    pub terms: Vec<([Cents; 2], u32)>,
    /// Registered, verified, unsuspended coaches (not on call).
    pub coaches: Vec<Actor>,
    /// When the last task was posted: bidding windows stay open for at least 10 minutes after.
    pub now: Millis,
}

fn user(s: &str) -> UserId {
    UserId::new(s).expect("fixture ids are valid")
}

fn expect_ok(engine: &mut Engine, request: &Request, now: Millis) {
    let outcome = engine.execute(request, now);
    if let Err(e) = outcome.reply {
        panic!("fixture command {} refused: {e:?}", request.command.name());
    }
}

/// Registers `n` verified coaches `c_0..` (rating 3.0–5.0, not on call).
pub fn register_coaches(engine: &mut Engine, n: usize, now: Millis) -> Vec<Actor> {
    let admin = Actor::new(user("admin"), Role::Admin);
    (0..n)
        .map(|i| {
            let coach_id = user(&format!("c_{i}"));
            let profile = CoachUpsert {
                ratings_count: 0,
                display_name: format!("Coach {i}"),
                rating: 3.0 + (i % 21) as f64 / 10.0,
                verified: true,
                on_call: false,
                capacity: 3,
                suspended: false,
            };
            let request = Request {
                actor: admin.clone(),
                request_id: None,
                command: Command::UpsertCoach {
                    coach_id: coach_id.clone(),
                    profile,
                },
            };
            expect_ok(engine, &request, now);
            Actor::new(coach_id, Role::Coach)
        })
        .collect()
}

/// The `i`th task's urgency: a mix of the three tiers.
pub fn urgency(i: usize) -> Urgency {
    Urgency::ALL[i % 3]
}

/// Posts `n` manual-award tasks from [`SEEKERS`] seekers. Task `i` is posted at
/// `at(i)` (non-decreasing).
pub fn post_tasks(
    engine: &mut Engine,
    n: usize,
    urgency: impl Fn(usize) -> Urgency,
    at: impl Fn(usize) -> Millis,
) -> Vec<TaskId> {
    let seekers: Vec<Actor> = (0..SEEKERS)
        .map(|i| Actor::new(user(&format!("s_{i}")), Role::Seeker))
        .collect();
    (0..n)
        .map(|i| {
            let request = Request {
                actor: seekers[i % SEEKERS].clone(),
                request_id: None,
                command: Command::PostTask(PostTask {
                    resume_id: format!("resume-{i}"),
                    task_type: None,
                    urgency: urgency(i),
                    base_price: None,
                    award: Some(Award::Manual),
                    task_id: None,
                    owner: None,
                }),
            };
            let outcome = engine.execute(&request, at(i));
            match outcome.reply {
                Ok(gavel_engine::Reply::PostTask(r)) => r.task_id,
                other => panic!("post_task failed: {other:?}"),
            }
        })
        .collect()
}

/// `tasks` open tasks (all posted at [`T0`], tiers mixed) and `coaches` verified coaches.
pub fn market(tasks: usize, coaches: usize) -> Market {
    let mut engine = Engine::new(EngineConfig::default());
    let coaches = register_coaches(&mut engine, coaches, T0);
    let tasks = post_tasks(&mut engine, tasks, urgency, |_| T0);
    let terms = tasks
        .iter()
        .map(|id| {
            let t = &engine.state().tasks[id];
            let window = engine.config().tiers.get(t.spec.urgency).delivery_hours;
            (t.spec.price_range, window)
        })
        .collect();
    Market {
        engine,
        tasks,
        terms,
        coaches,
        now: T0,
    }
}

/// A valid `place_bid` for task `task` (of `market.tasks`) by `coach` (of `market.coaches`);
/// `salt` varies amount and eta.
pub fn place_bid(market: &Market, task: usize, coach: usize, salt: u64) -> Request {
    let task_id = &market.tasks[task];
    let ([min, max], window) = market.terms[task];
    Request {
        actor: market.coaches[coach].clone(),
        request_id: None,
        command: Command::PlaceBid(PlaceBid {
            task_id: task_id.clone(),
            amount: min + salt % (max - min + 1),
            eta_hours: 1 + (salt % u64::from(window)) as u32,
        }),
    }
}

/// Cycles over every (task, coach) pair so each command is a new bid: task `i % tasks`, coach
/// `(i / tasks) % coaches` — new until `tasks × coaches` commands, then updates.
#[derive(Debug)]
pub struct BidCycle {
    pub i: usize,
}

impl BidCycle {
    pub fn next(&mut self, market: &Market) -> Request {
        let tasks = market.tasks.len();
        let i = self.i;
        self.i += 1;
        let task = i % tasks;
        let coach = (i / tasks) % market.coaches.len();
        place_bid(market, task, coach, i as u64 * 7919)
    }
}

/// The standard tier's bidding window (the `fire` benchmarks' tasks are all standard).
pub const BIDDING_WINDOW_MS: Millis = 30 * 60_000;

/// An engine with `n` open standard tasks whose bidding windows close evenly over the 30-minute
/// window (one every 1.8 ms for a million), and `coaches` verified coaches none of whom is on
/// call: every window closing finds no on-call coach and opens a new window 30 minutes later
/// (`task.unfilled`), so the number of pending deadlines stays `n` however long the run.
pub fn deadline_market(n: usize, coaches: usize) -> Engine {
    let mut engine = Engine::new(EngineConfig::default());
    register_coaches(&mut engine, coaches, T0);
    let window = BIDDING_WINDOW_MS;
    post_tasks(
        &mut engine,
        n,
        |_| Urgency::Standard,
        |i| T0 + i as u64 * window / n as u64,
    );
    assert_eq!(engine.state().timers.len(), n);
    engine
}
