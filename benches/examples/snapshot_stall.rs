//! How long the engine task pauses for a snapshot at 100,000 open tasks (issue 4): the
//! in-memory copy of the state (`Engine::snapshot`) is the part on the engine's hot path; the
//! JSON encoding that follows runs on a blocking thread and is timed here for reference.
//!
//! `cargo run --release -p gavel-benches --example snapshot_stall [-- TASKS]`

#![allow(clippy::print_stdout)]

use std::time::Instant;

use gavel_benches::market;

fn main() {
    let tasks: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let m = market(tasks, 1_000);
    let engine = &m.engine;
    let mut copies = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let snapshot = engine.snapshot();
        copies.push(t.elapsed());
        std::hint::black_box(&snapshot);
    }
    copies.sort();
    let snapshot = engine.snapshot();
    let t = Instant::now();
    let bytes = serde_json::to_vec(&snapshot).expect("snapshots serialize");
    let encode = t.elapsed();
    println!(
        "{tasks} open tasks: state copy (engine pause) min {:?}, median {:?}, max {:?}; \
         JSON encode off the engine task {:?} ({} MB)",
        copies[0],
        copies[copies.len() / 2],
        copies[copies.len() - 1],
        encode,
        bytes.len() / 1_000_000
    );
}
