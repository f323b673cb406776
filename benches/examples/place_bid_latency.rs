//! Per-command latency of the engine on one thread (issue 3), measured with
//! `std::time::Instant` around every call:
//!
//! - `place_bid`: 1,000,000 new bids on a 100,000-task market (1,000 coaches; the clock stays
//!   inside every bidding window);
//! - `fire`: 1,000,000 deadlines fired one at a time (each call advances the clock to the next
//!   deadline) out of 1,000,000 pending, with the same 1,000 coaches registered and none on
//!   call (every window closing opens the next: `task.unfilled`).
//!
//! `cargo run --release -p gavel-benches --example place_bid_latency [-- COMMANDS [place_bid|fire]]`
//! (default: 1,000,000 of each; naming one part runs only it, e.g. for a profiler).
//! Results and targets: docs/benchmarks.md.

#![allow(clippy::print_stdout)]

/// With `--features jemalloc`, the gavel binary's allocator, to measure the engine as it runs
/// there; without, glibc's malloc (the series in docs/benchmarks.md, with `PREFAULT_MB`).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::time::Instant;

use gavel_benches::{BidCycle, deadline_market, market};
use gavel_engine::{Engine, Request};

const TASKS: usize = 100_000;
const COACHES: usize = 1_000;
const DEADLINES: usize = 1_000_000;

/// Throughput and percentiles of per-call latencies (nanoseconds).
fn report(what: &str, mut nanos: Vec<u64>, wall_s: f64) {
    nanos.sort_unstable();
    let n = nanos.len();
    let pct = |p: f64| nanos[((n as f64 * p) as usize).min(n - 1)];
    let total: u64 = nanos.iter().sum();
    println!(
        "{what}: {n} calls in {wall_s:.3} s wall = {:.0}/s (sum of timed calls {:.3} s = {:.0}/s); \
         latency p50 {} ns, p99 {} ns, p99.9 {} ns, max {} ns",
        n as f64 / wall_s,
        total as f64 / 1e9,
        n as f64 / (total as f64 / 1e9),
        pct(0.50),
        pct(0.99),
        pct(0.999),
        nanos[n - 1],
    );
}

fn main() {
    let commands: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let only = std::env::args().nth(2);
    if only.as_deref() != Some("fire") {
        place_bids(commands);
    }
    if only.as_deref() != Some("place_bid") {
        fire(commands);
    }
}

fn place_bids(commands: usize) {
    let t = Instant::now();
    let mut m = market(TASKS, COACHES);
    println!(
        "market: {TASKS} open tasks, {COACHES} coaches, built in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    prefault_heap();
    let now = m.now + 1_000;
    let mut cycle = BidCycle { i: 0 };
    let requests: Vec<_> = (0..commands).map(|_| cycle.next(&m)).collect();
    let faults = minor_faults();
    let wall = Instant::now();
    let (nanos, refused) = measured_place_bids(&mut m.engine, &requests, now);
    let wall_s = wall.elapsed().as_secs_f64();
    assert_eq!(refused, 0, "every bid is valid");
    if let (Some(before), Some(after)) = (faults, minor_faults()) {
        println!("page faults in the measured loop: {}", after - before);
    }
    report("place_bid", nanos, wall_s);
    // The process ends here: freeing the market and the requests would only blur a profile of
    // the loop.
    std::mem::forget((m, requests));
}

/// The measured loop: each request's latency, and how many were refused. Its own function so
/// that callgrind can count it alone (`--toggle-collect='*measured_*'`).
#[inline(never)]
fn measured_place_bids(engine: &mut Engine, requests: &[Request], now: u64) -> (Vec<u64>, usize) {
    let mut nanos = Vec::with_capacity(requests.len());
    let mut refused = 0usize;
    for request in requests {
        let start = Instant::now();
        let outcome = engine.execute(request, now);
        let elapsed = start.elapsed();
        refused += usize::from(outcome.reply.is_err());
        nanos.push(elapsed.as_nanos() as u64);
        drop(outcome);
    }
    (nanos, refused)
}

/// With `PREFAULT_MB=N`, touches N MiB of heap in 16 KiB blocks and frees it before the
/// measured loop, so the state's growth reuses memory the kernel has already mapped: the run
/// then measures the engine without the page faults of a heap that grows by ~450 MB (one per
/// ~13 bids without it; docs/benchmarks.md). Keeping the freed memory in the heap needs glibc
/// told not to return it: `GLIBC_TUNABLES=glibc.malloc.trim_threshold=4294967295`.
fn prefault_heap() {
    let Some(mb) = std::env::var("PREFAULT_MB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    else {
        return;
    };
    const BLOCK: usize = 16 * 1024;
    let blocks: Vec<Vec<u8>> = (0..mb * 1024 * 1024 / BLOCK)
        .map(|_| vec![1u8; BLOCK])
        .collect();
    println!(
        "prefaulted {} MiB of heap",
        blocks.len() * BLOCK / (1024 * 1024)
    );
}

/// The process's minor page faults so far (`/proc/self/stat`, field 10), where there is one.
fn minor_faults() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let after_name = &stat[stat.rfind(')')? + 2..];
    after_name.split(' ').nth(7)?.parse().ok()
}

fn fire(commands: usize) {
    let t = Instant::now();
    let mut engine = deadline_market(DEADLINES, COACHES);
    println!(
        "deadlines: {DEADLINES} pending, built in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let mut nanos = Vec::with_capacity(commands);
    let mut fired = 0usize;
    let wall = Instant::now();
    while fired < commands {
        let due = engine.next_due().expect("deadlines are always pending");
        let start = Instant::now();
        let events = engine.fire(due);
        let elapsed = start.elapsed();
        fired += events.len();
        nanos.push(elapsed.as_nanos() as u64);
        drop(events);
    }
    let wall_s = wall.elapsed().as_secs_f64();
    assert_eq!(engine.state().timers.len(), DEADLINES);
    // The process ends here: freeing a million tasks would only blur a profile of the fires.
    std::mem::forget(engine);
    println!("fire: {fired} deadlines fired");
    report("fire (per call, ~1 deadline each)", nanos, wall_s);
}
