//! Journal benchmarks for docs/benchmarks.md ("Storage"), on both backends:
//!
//! 1. events committed per second against batch size (1, 10, 100, 1000 events per append),
//!    with 1 appender (no grouping possible) and with 64 concurrent appenders feeding the
//!    group-commit [`JournalHandle`];
//! 2. commit latency (from `append` to `Ok`) at a steady, open-loop offered load of 5,000
//!    events/s — 500 batches/s of 10 events, and 50 batches/s of 100;
//! 3. recovery of 1,000,000 journaled events: full replay, and snapshot (at 900,000) + tail,
//!    with where the time goes (DB read, JSON decode, `evolve`, snapshot load).
//!
//! The events are real engine events: a market of coaches and seekers driven through
//! `Engine::execute` (post, bid, accept, start, submit, accept/cancel, messages).
//!
//! ```text
//! cargo run --release -p gavel-storage --example journal_bench -- \
//!     [--backend sqlite|postgres|both] [--database-url URL] [--seconds S] [--events N] \
//!     [--only throughput,insert,latency,recovery]
//! ```
//! Postgres: a fresh database is created next to `--database-url` (default
//! `GAVEL_TEST_DATABASE_URL`, else `postgres://postgres@127.0.0.1:5432/test`) and dropped at
//! the end. SQLite: a fresh directory under the system temp dir.
#![allow(clippy::print_stdout)] // a benchmark program reports on stdout

mod market;
mod recovery;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gavel_engine::Event;
use gavel_protocol::Seq;
use gavel_storage::{JournalHandle, StorageError, Store, StoredEvent, WriterStats};
use sqlx::Connection;

use market::event_pool;
use recovery::recovery;

// -------------------------------------------------------------------------------------------

fn main() {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(args));
}

async fn run(args: Args) {
    print_machine();
    let pool = Arc::new(event_pool(20_000));
    let bytes: usize = pool
        .iter()
        .map(|e| serde_json::to_string(e).unwrap().len())
        .sum();
    println!(
        "event pool: {} real engine events, {} bytes of JSON each on average\n",
        pool.len(),
        bytes / pool.len()
    );
    let mut stores = Stores::new(&args.database_url);
    for backend in &args.backends {
        println!("## {backend} (load average {})\n", load_average());
        if args.runs("throughput") {
            throughput(&mut stores, backend, &pool, args.seconds).await;
        }
        if backend == "sqlite" && args.runs("insert") {
            sqlite_insert_paths(&mut stores, &pool).await;
        }
        if args.runs("latency") {
            latency(&mut stores, backend, &pool).await;
        }
        if args.runs("recovery") {
            recovery(&mut stores, backend, args.events).await;
        }
    }
    stores.clean_up().await;
    println!("load average at the end: {}", load_average());
}

/// `/proc/loadavg`'s 1-, 5- and 15-minute figures: other work on the machine skews results.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn print_machine() {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kb: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|m| m.trim().trim_end_matches(" kB").parse().ok())
        .unwrap_or(0);
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "machine: {cpus} CPUs ({model}), {:.1} GiB RAM; the load generator runs on the same CPUs; \
         load average {}\n",
        mem_kb as f64 / 1024.0 / 1024.0,
        load_average()
    );
}

/// Fresh stores, cleaned up at the end.
struct Stores {
    base_url: String,
    databases: Vec<String>,
    dirs: Vec<std::path::PathBuf>,
}

impl Stores {
    fn new(base_url: &str) -> Self {
        Stores {
            base_url: base_url.to_owned(),
            databases: Vec::new(),
            dirs: Vec::new(),
        }
    }

    async fn fresh(&mut self, backend: &str, name: &str) -> Store {
        let unique = format!("gavel_bench_{name}_{}", std::process::id());
        match backend {
            "sqlite" => {
                let dir = std::env::temp_dir().join(&unique);
                let _ = std::fs::remove_dir_all(&dir);
                self.dirs.push(dir.clone());
                Store::open_sqlite(&dir).await.unwrap()
            }
            "postgres" => {
                let mut admin = sqlx::PgConnection::connect(&self.base_url).await.unwrap();
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {unique} WITH (FORCE)"
                )))
                .execute(&mut admin)
                .await
                .unwrap();
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {unique}")))
                    .execute(&mut admin)
                    .await
                    .unwrap();
                self.databases.push(unique.clone());
                let (prefix, _) = self.base_url.rsplit_once('/').unwrap();
                Store::open_postgres(&format!("{prefix}/{unique}"))
                    .await
                    .unwrap()
            }
            other => panic!("unknown backend {other}"),
        }
    }

    async fn clean_up(self) {
        for dir in &self.dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
        if self.databases.is_empty() {
            return;
        }
        let mut admin = sqlx::PgConnection::connect(&self.base_url).await.unwrap();
        for db in &self.databases {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
            )))
            .execute(&mut admin)
            .await
            .unwrap();
        }
    }
}

async fn close(store: Store) {
    match store {
        Store::Sqlite(pool) => pool.close().await,
        Store::Postgres(pool) => pool.close().await,
    }
}

fn make_batch(pool: &[Event], first: Seq, cursor: usize, size: usize) -> Arc<Vec<(Seq, Event)>> {
    Arc::new(
        (0..size)
            .map(|i| (first + i as Seq, pool[(cursor + i) % pool.len()].clone()))
            .collect(),
    )
}

// ---- 1. throughput against batch size ----------------------------------------------------

async fn throughput(stores: &mut Stores, backend: &str, pool: &Arc<Vec<Event>>, seconds: f64) {
    println!("### events committed per second ({seconds} s per cell)\n");
    println!("| events/append | appenders | events/s | appends/s | commits/s | events/commit |");
    println!("|---:|---:|---:|---:|---:|---:|");
    let store = stores.fresh(backend, "throughput").await;
    for batch in [1usize, 10, 100, 1000] {
        for appenders in [1usize, 64] {
            let r = throughput_run(&store, pool, batch, appenders, seconds).await;
            println!(
                "| {batch} | {appenders} | {:.0} | {:.0} | {:.0} | {:.1} |",
                r.events / r.secs,
                r.events / batch as f64 / r.secs,
                r.commits / r.secs,
                r.events / r.commits,
            );
        }
    }
    println!();
    close(store).await;
}

struct ThroughputResult {
    events: f64,
    commits: f64,
    secs: f64,
}

/// `appenders` tasks, each with one batch of `batch` events in flight: they take the next
/// seqs and queue in the same critical section (batches must arrive in seq order), then wait
/// for their own commit outside it — so the writer finds up to `appenders` batches queued.
async fn throughput_run(
    store: &Store,
    pool: &Arc<Vec<Event>>,
    batch: usize,
    appenders: usize,
    seconds: f64,
) -> ThroughputResult {
    let durable = store.latest_seq().await.unwrap();
    let stats = Arc::new(WriterStats::default());
    let journal = JournalHandle::spawn(store.clone(), durable, stats.clone());
    let next = Arc::new(tokio::sync::Mutex::new(durable + 1));
    let committed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let tasks: Vec<_> = (0..appenders)
        .map(|a| {
            let (pool, journal, next, committed) = (
                pool.clone(),
                journal.clone(),
                next.clone(),
                committed.clone(),
            );
            tokio::spawn(async move {
                let mut cursor = a * 997;
                while Instant::now() < deadline {
                    let wait = {
                        let mut next = next.lock().await;
                        match journal.try_append(make_batch(&pool, *next, cursor, batch)) {
                            Ok(wait) => {
                                *next += batch as Seq;
                                wait
                            }
                            Err(StorageError::Busy) => {
                                drop(next);
                                tokio::task::yield_now().await;
                                continue;
                            }
                            Err(e) => panic!("append: {e}"),
                        }
                    };
                    cursor += batch;
                    wait.await.unwrap().unwrap();
                    committed.fetch_add(batch as u64, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(
        stats.events.load(Ordering::Relaxed),
        committed.load(Ordering::Relaxed)
    );
    ThroughputResult {
        events: committed.load(Ordering::Relaxed) as f64,
        commits: stats.commits.load(Ordering::Relaxed) as f64,
        secs,
    }
}

/// What a large SQLite commit costs per row: `Store::append` (multi-row `INSERT … VALUES`
/// statements of up to 64 rows) against one statement per row and against bigger statements,
/// for commits of 8,192 rows (the writer's cap), measured outside the writer.
async fn sqlite_insert_paths(stores: &mut Stores, pool: &Arc<Vec<Event>>) {
    const ROWS: usize = 8192;
    const COMMITS: usize = 10;
    println!("### SQLite insert path: {COMMITS} commits of {ROWS} rows each\n");
    println!("| statement shape | per commit | per row | rows/s |");
    println!("|---|---:|---:|---:|");
    let store = stores.fresh("sqlite", "insertpath").await;
    let Store::Sqlite(sqlite) = &store else {
        unreachable!()
    };
    let mut next: Seq = 1;
    let rows_for = |next: &mut Seq| -> Vec<StoredEvent> {
        let rows = (0..ROWS)
            .map(|i| StoredEvent::encode(*next + i as Seq, &pool[i % pool.len()]))
            .collect();
        *next += ROWS as Seq;
        rows
    };
    let report = |name: &str, took: Duration| {
        let per_commit = took / COMMITS as u32;
        let per_row = took.as_secs_f64() / (COMMITS * ROWS) as f64;
        println!(
            "| {name} | {} | {:.2} µs | {:.0} |",
            ms(per_commit),
            per_row * 1e6,
            1.0 / per_row
        );
    };

    let mut took = Duration::ZERO;
    for _ in 0..COMMITS {
        let rows = rows_for(&mut next);
        let t = Instant::now();
        store.append(&rows).await.unwrap();
        took += t.elapsed();
    }
    report("`Store::append` (runs of 64, then 32, 16, … rows)", took);

    for per_statement in [1usize, 1000] {
        let mut took = Duration::ZERO;
        for _ in 0..COMMITS {
            let rows = rows_for(&mut next);
            let t = Instant::now();
            let mut tx = sqlite.begin().await.unwrap();
            for chunk in rows.chunks(per_statement) {
                let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                    "INSERT INTO journal (seq, at, kind, payload) ",
                );
                insert.push_values(chunk, |mut row, e| {
                    row.push_bind(e.seq as i64)
                        .push_bind(e.at as i64)
                        .push_bind(e.kind.clone())
                        .push_bind(e.payload.clone());
                });
                insert.build().execute(&mut *tx).await.unwrap();
            }
            tx.commit().await.unwrap();
            took += t.elapsed();
        }
        report(
            &format!("INSERT … VALUES with {per_statement} row(s) per statement"),
            took,
        );
    }
    println!();
    close(store).await;
}

// ---- 2. commit latency at a steady load --------------------------------------------------

async fn latency(stores: &mut Stores, backend: &str, pool: &Arc<Vec<Event>>) {
    println!("### commit latency at 5,000 events/s offered (open loop, 10 s per row)\n");
    println!("| load | achieved events/s | p50 | p90 | p99 | p99.9 | max | events/commit |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let store = stores.fresh(backend, "latency").await;
    for (batches_per_sec, batch) in [(500u32, 10usize), (50, 100)] {
        let (mut samples, achieved, per_commit) =
            latency_run(&store, pool, batches_per_sec, batch, 10).await;
        samples.sort();
        let q = |p: f64| {
            let i = ((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len()) - 1;
            ms(samples[i])
        };
        println!(
            "| {batches_per_sec} batches/s × {batch} events | {achieved:.0} | {} | {} | {} | {} | {} | {per_commit:.1} |",
            q(0.50),
            q(0.90),
            q(0.99),
            q(0.999),
            ms(*samples.last().unwrap()),
        );
    }
    println!();
    close(store).await;
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// One producer (like the engine task) queues a batch every `1/batches_per_sec` s without
/// waiting for earlier ones; each batch's latency is from its `try_append` to its `Ok`.
async fn latency_run(
    store: &Store,
    pool: &Arc<Vec<Event>>,
    batches_per_sec: u32,
    batch: usize,
    seconds: u32,
) -> (Vec<Duration>, f64, f64) {
    let durable = store.latest_seq().await.unwrap();
    let stats = Arc::new(WriterStats::default());
    let journal = JournalHandle::spawn(store.clone(), durable, stats.clone());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut ticker =
        tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(batches_per_sec)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut next = durable + 1;
    let started = Instant::now();
    let total = batches_per_sec * seconds;
    for n in 0..total {
        ticker.tick().await;
        let sent = Instant::now();
        let wait = journal
            .try_append(make_batch(pool, next, n as usize * batch, batch))
            .expect("the writer keeps up with 5,000 events/s");
        next += batch as Seq;
        let tx = tx.clone();
        tokio::spawn(async move {
            wait.await.unwrap().unwrap();
            let _ = tx.send(sent.elapsed());
        });
    }
    drop(tx);
    let mut samples = Vec::with_capacity(total as usize);
    while let Some(d) = rx.recv().await {
        samples.push(d);
    }
    let achieved = (total as usize * batch) as f64 / started.elapsed().as_secs_f64();
    let per_commit =
        stats.events.load(Ordering::Relaxed) as f64 / stats.commits.load(Ordering::Relaxed) as f64;
    (samples, achieved, per_commit)
}

#[derive(Debug)]
struct Args {
    backends: Vec<String>,
    database_url: String,
    seconds: f64,
    events: Seq,
    sections: Vec<String>,
}

impl Args {
    fn runs(&self, section: &str) -> bool {
        self.sections.iter().any(|s| s == section)
    }

    fn parse() -> Self {
        let mut args = Args {
            backends: vec!["sqlite".into(), "postgres".into()],
            database_url: std::env::var("GAVEL_TEST_DATABASE_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into()),
            seconds: 3.0,
            events: 1_000_000,
            sections: ["throughput", "insert", "latency", "recovery"]
                .map(String::from)
                .to_vec(),
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
            match flag.as_str() {
                "--backend" => {
                    args.backends = match value().as_str() {
                        "both" => vec!["sqlite".into(), "postgres".into()],
                        one => vec![one.to_owned()],
                    }
                }
                "--database-url" => args.database_url = value(),
                "--seconds" => args.seconds = value().parse().unwrap(),
                "--events" => args.events = value().parse().unwrap(),
                "--only" => args.sections = value().split(',').map(String::from).collect(),
                other => panic!("unknown argument {other}"),
            }
        }
        args
    }
}
