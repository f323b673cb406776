//! Engine benchmarks (issue 3): `place_bid` decide+evolve on a 100,000-task market, firing
//! deadlines with 1,000,000 pending, the owner's `TaskView` of a task with 1,000 bids, and
//! `quote` on a market with full windows (issue 11).
//!
//! `cargo bench -p gavel-benches --bench engine -- --warm-up-time 1 --measurement-time 3`
//! (results and targets: docs/benchmarks.md).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use gavel_benches::{BIDDING_WINDOW_MS, BidCycle, Market, T0, deadline_market, market};
use gavel_engine::views::{Viewer, task_view};

/// Tasks in the `place_bid` market.
const MARKET_TASKS: usize = 100_000;
/// Registered, verified coaches in it.
const MARKET_COACHES: usize = 1_000;
/// Pending deadlines in the `fire` benchmark.
const DEADLINES: usize = 1_000_000;
/// Deadlines fired per measured `fire` call.
const FIRE_BATCH: usize = 1_000;
/// New bids placed on one market before it is replaced by a fresh copy (ten per task).
const NEW_BIDS_PER_MARKET: usize = 1_000_000;
/// Commands timed per `Instant` reading.
const CHUNK: usize = 10_000;

fn place_bid_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("place_bid");
    group.throughput(Throughput::Elements(1));

    // New bids: every command is a coach's first bid on a task (the clock stays inside every
    // bidding window, so none closes during the run). After `NEW_BIDS_PER_MARKET` bids (ten
    // per task) the market is replaced by a fresh copy, outside the timing, so the measured
    // state stays a 100,000-task market with 0–10 bids per task however many iterations
    // criterion asks for (the example binary measures the same million bids).
    let m = market(MARKET_TASKS, MARKET_COACHES);
    let now = m.now + 1_000;
    let mut engine = m.engine.clone();
    let mut cycle = BidCycle { i: 0 };
    group.bench_function("new_bid_100k_tasks", |b| {
        b.iter_custom(|iters| {
            let mut measured = Duration::ZERO;
            let mut left = iters as usize;
            while left > 0 {
                if cycle.i == NEW_BIDS_PER_MARKET {
                    engine = m.engine.clone();
                    cycle.i = 0;
                }
                let n = left.min(NEW_BIDS_PER_MARKET - cycle.i).min(CHUNK);
                let requests: Vec<_> = (0..n).map(|_| cycle.next(&m)).collect();
                let mut outcomes = Vec::with_capacity(n);
                let start = Instant::now();
                for request in &requests {
                    outcomes.push(engine.execute(request, now));
                }
                measured += start.elapsed();
                debug_assert!(outcomes.iter().all(|o| o.reply.is_ok()));
                drop(outcomes);
                left -= n;
            }
            measured
        })
    });
    // (When a filter skipped the benchmark, nothing was placed.)
    assert!(
        cycle.i == 0 || !engine.state().bid_tasks.is_empty(),
        "bids were placed"
    );
    drop(engine);

    // Updates: two coaches have bid on every task; each command replaces one of those bids.
    let mut m = market(MARKET_TASKS, 2);
    let now = m.now + 1_000;
    let mut setup = BidCycle { i: 0 };
    for _ in 0..2 * MARKET_TASKS {
        let request = setup.next(&m);
        let outcome = m.engine.execute(&request, now);
        assert!(
            outcome.reply.is_ok(),
            "fixture bid refused: {:?}",
            outcome.reply
        );
    }
    let mut engine = std::mem::take(&mut m.engine);
    let mut cycle = BidCycle { i: 0 };
    group.bench_function("update_bid_100k_tasks", |b| {
        b.iter_batched(
            || {
                // Same (task, coach) pairs as the setup, other amounts: always `bid.updated`.
                let mut r = cycle.next(&m);
                if let gavel_engine::Command::PlaceBid(p) = &mut r.command {
                    let [min, _] = m.terms[(cycle.i - 1) % m.tasks.len()].0;
                    p.amount = min + (cycle.i as u64 % 97);
                }
                r
            },
            |request| engine.execute(&request, now),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn fire_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("fire");
    group.throughput(Throughput::Elements(FIRE_BATCH as u64));
    group.sample_size(30);
    for coaches in [0, MARKET_COACHES] {
        let mut engine = deadline_market(DEADLINES, coaches);
        let window = BIDDING_WINDOW_MS;
        // Time advanced per call: FIRE_BATCH deadlines' worth of the 30-minute spread.
        let step = window * FIRE_BATCH as u64 / DEADLINES as u64;
        let mut now = T0 + window - 1;
        let name = format!("1m_pending_{coaches}_coaches_batch_{FIRE_BATCH}");
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    now += step;
                    let fired = engine.fire(now);
                    debug_assert_eq!(fired.len(), FIRE_BATCH);
                    black_box(fired);
                }
                start.elapsed()
            })
        });
        // Steady state: every deadline that fired was replaced by the next window's.
        assert_eq!(engine.state().timers.len(), DEADLINES);
    }
    group.finish();
}

fn task_view_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("task_view");
    let mut m: Market = market(1, 1_000);
    let now = m.now + 1_000;
    let mut cycle = BidCycle { i: 0 };
    for _ in 0..1_000 {
        let request = cycle.next(&m);
        assert!(m.engine.execute(&request, now).reply.is_ok());
    }
    let task = &m.engine.state().tasks[&m.tasks[0]];
    assert_eq!(task.bid_count(), 1_000);
    group.throughput(Throughput::Elements(1));
    group.bench_function("privileged_1000_bids", |b| {
        b.iter(|| task_view(black_box(task), Viewer::Privileged))
    });
    group.finish();
}

/// `quote` (contract §11) on the 100,000-task market with a full market window in each tier:
/// three percentile reads by index and a few counters, whatever the market's size.
fn quote_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("quote");
    let mut m = market(MARKET_TASKS, MARKET_COACHES);
    let now = m.now + 1_000;
    // 600 tasks hired at their first bid: 200 samples per tier (tasks cycle through tiers).
    for task in 0..600 {
        let bid = gavel_benches::place_bid(&m, task, task % MARKET_COACHES, 0);
        let outcome = m.engine.execute(&bid, now);
        let Ok(gavel_engine::Reply::PlaceBid(placed)) = outcome.reply else {
            panic!("the bid is placed: {:?}", outcome.reply);
        };
        let owner = m.engine.state().tasks[&m.tasks[task]].spec.owner.clone();
        let accept = gavel_engine::Request {
            actor: gavel_engine::Actor::new(owner, gavel_protocol::Role::Seeker),
            request_id: None,
            command: gavel_engine::Command::AcceptBid(gavel_protocol::command::AcceptBid {
                task_id: m.tasks[task].clone(),
                bid_id: placed.bid_id,
            }),
        };
        assert!(m.engine.execute(&accept, now).reply.is_ok());
    }
    let quote = gavel_protocol::command::Quote {
        task_type: None,
        base_price: None,
    };
    let q = m.engine.quote(&quote);
    assert_eq!(q.tiers.standard.market.map(|s| s.samples), Some(200));
    group.throughput(Throughput::Elements(1));
    group.bench_function("three_tiers_100k_tasks", |b| {
        b.iter(|| m.engine.quote(black_box(&quote)))
    });
    group.finish();
}

criterion_group!(
    benches,
    place_bid_benches,
    fire_benches,
    task_view_benches,
    quote_benches
);
criterion_main!(benches);
