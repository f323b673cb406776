//! A task's history against a large journal (docs/benchmarks.md, "A task's history"): a SQLite
//! journal of `--events` posted tasks (one `task.opened` each), then
//! 1. one `task_history` answer before anything is indexed (the tail scan: at most 10,000
//!    journal rows per answer),
//! 2. the index's catch-up from 0 (what a journal written before the index costs at start; the
//!    appends index as they go, so the journal's index is dropped first to measure it),
//! 3. `task_history` answers once indexed, for tasks spread over the journal (p50/p99/max).
//!
//! ```text
//! cargo run --release -p gavel-gateway --example history_bench -- [--events N] [--queries Q]
//! ```
#![allow(clippy::print_stdout)] // a benchmark program reports on stdout

use std::time::{Duration, Instant};

use gavel_gateway::history::{indexer, task_history};
use gavel_protocol::{Role, TaskId, UserId};
use gavel_storage::{Store, StoredEvent};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect("a number"))
}

/// Journals `events` posted tasks, 5,000 rows per append.
async fn populate(store: &Store, events: usize) {
    let mut engine = gavel_engine::Engine::new(gavel_engine::EngineConfig {
        archive_after: None,
        ..Default::default()
    });
    let actor = gavel_engine::Actor::new(UserId::new("sally").unwrap(), Role::Seeker);
    let mut rows: Vec<StoredEvent> = Vec::new();
    for i in 0..events {
        let request = gavel_engine::Request {
            actor: actor.clone(),
            request_id: None,
            command: gavel_engine::Command::PostTask(gavel_protocol::command::PostTask {
                resume_id: format!("cv-{i}"),
                task_type: None,
                urgency: gavel_protocol::Urgency::Flexible,
                base_price: None,
                award: None,
                task_id: None,
                owner: None,
            }),
        };
        let outcome = engine.execute(&request, 1_764_000_000_000 + i as u64);
        rows.extend(
            outcome
                .events
                .iter()
                .map(|(s, e)| StoredEvent::encode(*s, e)),
        );
        if rows.len() >= 5_000 {
            store.append(&rows).await.unwrap();
            rows.clear();
        }
    }
    store.append(&rows).await.unwrap();
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let events = arg("--events", 1_000_000);
    let queries = arg("--queries", 2_000);
    let dir = std::env::temp_dir().join(format!("gavel-history-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = Store::open_sqlite(&dir).await.unwrap();
    let started = Instant::now();
    populate(&store, events).await;
    println!("journal: {events} events in {:.1?}", started.elapsed());
    let end = store.latest_seq().await.unwrap();
    store.task_index_reset().await.unwrap();
    let last = TaskId::new(&format!("t_{}", events - 1)).unwrap();

    let t = Instant::now();
    let page = task_history(&store, &last, 0, 500, u64::MAX).await.unwrap();
    println!(
        "unindexed: one answer scanned to seq {:?} in {:.1?} ({} events)",
        page.next,
        t.elapsed(),
        page.events.len()
    );

    let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let t = Instant::now();
    indexer::run(store.clone(), stop_rx).await;
    assert_eq!(store.task_index_seq().await.unwrap(), end);
    let took = t.elapsed();
    println!(
        "catch-up: {end} rows in {took:.1?} ({:.0} rows/s)",
        end as f64 / took.as_secs_f64()
    );

    let mut times = Vec::with_capacity(queries);
    for q in 0..queries {
        let n = (q * 7_919) % events;
        let id = TaskId::new(&format!("t_{n}")).unwrap();
        let t = Instant::now();
        let page = task_history(&store, &id, 0, 500, u64::MAX).await.unwrap();
        times.push(t.elapsed());
        assert_eq!(page.events.len(), 1, "t_{n}");
    }
    times.sort_unstable();
    println!(
        "indexed: {queries} answers, p50 {:.0?} p99 {:.0?} max {:.0?}",
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        times[times.len() - 1]
    );
    drop(store);
    std::fs::remove_dir_all(&dir).unwrap();
}
