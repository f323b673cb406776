//! `list_tasks` against a large archive (docs/benchmarks.md, "The task archive"): 1,000,000
//! archived tasks of 10,000 seekers and 1,000 coaches, written through `Store::append` as the
//! journal writer writes them (journal rows of `tasks_archived` events carrying the archive
//! rows), then the archive part of `list_tasks` timed for the pages a client asks for:
//! a seeker's newest 20, a seeker's page deep in its history, a coach's newest 20, every
//! task's newest 20 (an admin), and every task's page half-way down.
//!
//! ```text
//! cargo run --release -p gavel-storage --example archive_bench -- \
//!     [--backend sqlite|postgres|both] [--tasks N] [--queries Q]
//! ```
//! Postgres: a fresh database next to `GAVEL_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`), dropped at the end. SQLite: a temp directory.
#![allow(clippy::print_stdout)] // a benchmark program reports on stdout

use std::time::{Duration, Instant};

use gavel_engine::archive::{ArchivedCoach, ArchivedTask};
use gavel_engine::listing::{ListQuery, Scope};
use gavel_engine::{Event, EventKind};
use gavel_protocol::views::{AssignedView, BidView, EscrowView, TaskView};
use gavel_protocol::{Award, BidId, BidStatus, TaskId, TaskStatus, Urgency, UserId};
use gavel_storage::{Store, StoredEvent};
use sqlx::Connection;

/// The query of the `i`th run of one row of the table.
type QueryOf<'a> = Box<dyn Fn(usize) -> ListQuery + 'a>;

const SEEKERS: usize = 10_000;
const COACHES: usize = 1_000;
const PER_EVENT: usize = 1_000;
const T0: u64 = 1_764_000_000_000;

fn archived(i: usize) -> ArchivedTask {
    let task_id = TaskId::new(&format!("t_{i}")).unwrap();
    let coach = UserId::new(&format!("c{}", i % COACHES)).unwrap();
    let created_at = T0 + i as u64 * 1_000;
    let bid = BidView {
        bid_id: BidId::new(&format!("b_{i}")).unwrap(),
        task_id: task_id.clone(),
        coach_id: coach.clone(),
        amount: 3000,
        eta_hours: 12,
        score: 6000,
        status: BidStatus::Accepted,
        created_at,
        coach: None,
    };
    let completed = !i.is_multiple_of(4);
    let view = TaskView {
        task_id,
        owner: UserId::new(&format!("s{}", i % SEEKERS)).unwrap(),
        resume_id: format!("res_{i}"),
        task_type: "resume_review_full".into(),
        urgency: Urgency::Standard,
        award: Award::Manual,
        status: if completed {
            TaskStatus::Completed
        } else {
            TaskStatus::Canceled
        },
        suggested_price: 2500,
        price_range: [2500, 5000],
        created_at,
        bidding_closes_at: created_at + 1_800_000,
        bid_count: 0,
        bids: Vec::new(),
        top3: Vec::new(),
        assigned: completed.then(|| AssignedView {
            coach_id: coach.clone(),
            bid_id: Some(bid.bid_id.clone()),
            amount: 3000,
            deadline: created_at + 43_200_000,
            on_call: false,
        }),
        escrow: EscrowView {
            held: if completed { 3000 } else { 0 },
            released: if completed { 3000 } else { 0 },
            refunded: 0,
        },
        revisions: 0,
        archived: true,
    };
    let coaches = if completed {
        vec![ArchivedCoach {
            coach_id: coach,
            bid: Some(bid),
        }]
    } else {
        Vec::new()
    };
    ArchivedTask { view, coaches }
}

async fn fill(store: &Store, tasks: usize) -> Duration {
    let started = Instant::now();
    for (n, first) in (0..tasks).step_by(PER_EVENT).enumerate() {
        let archived: Vec<ArchivedTask> = (first..(first + PER_EVENT).min(tasks))
            .map(archived)
            .collect();
        let event = Event {
            at: T0,
            origin: None,
            owner: None,
            kind: EventKind::TasksArchived {
                task_ids: archived.iter().map(|t| t.view.task_id.clone()).collect(),
                archived,
            },
        };
        store
            .append(&[StoredEvent::encode(n as u64 + 1, &event)])
            .await
            .unwrap();
    }
    started.elapsed()
}

fn query(scope: Scope, before: Option<(u64, TaskId)>, coach_view: Option<UserId>) -> ListQuery {
    ListQuery {
        scope,
        also_owner: None,
        statuses: None,
        before,
        limit: 20,
        coach_view,
    }
}

/// p50 / p99 / max of `queries` runs of `make(i)`.
async fn timed(
    store: &Store,
    queries: usize,
    make: impl Fn(usize) -> ListQuery,
) -> (Duration, Duration, Duration) {
    let mut took = Vec::with_capacity(queries);
    for i in 0..queries {
        let q = make(i);
        let started = Instant::now();
        let page = store.list_archived(&q, u64::MAX).await.unwrap();
        took.push(started.elapsed());
        assert!(!page.is_empty(), "every query here has results");
    }
    took.sort();
    let at = |q: f64| took[((took.len() as f64 * q) as usize).min(took.len() - 1)];
    (at(0.5), at(0.99), took[took.len() - 1])
}

async fn bench(name: &str, store: &Store, tasks: usize, queries: usize) {
    let filled = fill(store, tasks).await;
    println!("\n{name}: {tasks} archived tasks written in {filled:.1?} (through Store::append)");
    println!("| page (20 tasks) | p50 | p99 | max |\n|---|---|---|---|");
    let seeker = |i: usize| UserId::new(&format!("s{}", (i * 7919) % SEEKERS)).unwrap();
    // Coaches c<k> with k % 4 = 0 only had canceled tasks (never assigned): ask the others.
    let coach = |i: usize| UserId::new(&format!("c{}", (i * 31) % (COACHES / 4) * 4 + 1)).unwrap();
    let deep = |i: usize| {
        // Half-way through this seeker's 100 tasks.
        let n = (i * 7919) % SEEKERS + SEEKERS * 50;
        Some((
            T0 + n as u64 * 1_000,
            TaskId::new(&format!("t_{n}")).unwrap(),
        ))
    };
    let middle = Some((
        T0 + (tasks / 2) as u64 * 1_000,
        TaskId::new(&format!("t_{}", tasks / 2)).unwrap(),
    ));
    let rows: [(&str, QueryOf); 5] = [
        (
            "a seeker's newest",
            Box::new(|i| query(Scope::Owner(seeker(i)), None, None)),
        ),
        (
            "a seeker's, half-way down",
            Box::new(|i| query(Scope::Owner(seeker(i)), deep(i), None)),
        ),
        (
            "a coach's newest (coach view)",
            Box::new(|i| query(Scope::Coach(coach(i)), None, Some(coach(i)))),
        ),
        (
            "every task's newest (admin)",
            Box::new(|_| query(Scope::All, None, None)),
        ),
        (
            "every task's, half-way down",
            Box::new(|_| query(Scope::All, middle.clone(), None)),
        ),
    ];
    for (what, make) in rows {
        let (p50, p99, max) = timed(store, queries, make).await;
        println!("| {what} | {p50:.2?} | {p99:.2?} | {max:.2?} |");
    }
}

fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(run());
}

async fn run() {
    let mut backend = "both".to_owned();
    let mut tasks = 1_000_000;
    let mut queries = 2_000;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().expect("every flag takes a value");
        match arg.as_str() {
            "--backend" => backend = value,
            "--tasks" => tasks = value.parse().unwrap(),
            "--queries" => queries = value.parse().unwrap(),
            other => panic!("unknown flag {other}"),
        }
    }
    if backend == "sqlite" || backend == "both" {
        let dir = std::env::temp_dir().join(format!("gavel-archive-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open_sqlite(&dir).await.unwrap();
        bench("SQLite", &store, tasks, queries).await;
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
    if backend == "postgres" || backend == "both" {
        let base = std::env::var("GAVEL_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let db = format!("gavel_bench_archive_{}", std::process::id());
        let mut admin = sqlx::PgConnection::connect(&base).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
            .execute(&mut admin)
            .await
            .unwrap();
        let url = format!("{}/{db}", base.rsplit_once('/').unwrap().0);
        let store = Store::open_postgres(&url).await.unwrap();
        bench("Postgres", &store, tasks, queries).await;
        drop(store);
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE {db} WITH (FORCE)"
        )))
        .execute(&mut admin)
        .await
        .unwrap();
    }
}
