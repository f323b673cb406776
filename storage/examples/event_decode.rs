//! What decoding one journal row costs (`StoredEvent::decode`: the row's JSON into an engine
//! `Event`), over real events from the benchmark market, for before/after comparisons under
//! callgrind (instruction counts are stable on a noisy machine):
//!
//! ```text
//! cargo build --release -p gavel-storage --example event_decode
//! valgrind --tool=callgrind --toggle-collect='*measured_decode*' \
//!     target/release/examples/event_decode [EVENTS]
//! ```
//! Divide `measured_decode`'s inclusive instruction count by the events it decodes (printed).
#![allow(clippy::print_stdout)] // a benchmark program reports on stdout

use std::hint::black_box;
use std::time::Instant;

use gavel_storage::StoredEvent;

#[allow(dead_code)] // shared with journal_bench, which uses more of it
#[path = "journal_bench/market.rs"]
mod market;

fn main() {
    let events: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse().expect("EVENTS is a number"))
        .unwrap_or(100_000);
    let rows: Vec<StoredEvent> = market::event_pool(events)
        .iter()
        .enumerate()
        .map(|(i, e)| StoredEvent::encode(i as u64 + 1, e))
        .collect();
    let bytes: usize = rows.iter().map(|r| r.payload.len()).sum();
    println!(
        "{} events, {} bytes of JSON each on average",
        rows.len(),
        bytes / rows.len()
    );
    for _ in 0..3 {
        let t = Instant::now();
        let decoded = measured_decode(&rows);
        let took = t.elapsed();
        println!(
            "decoded {decoded} events in {took:.1?}: {:.2} µs/event",
            took.as_secs_f64() * 1e6 / decoded as f64
        );
    }
}

#[inline(never)]
fn measured_decode(rows: &[StoredEvent]) -> usize {
    for row in rows {
        black_box(row.decode().expect("the market's events decode"));
    }
    rows.len()
}
