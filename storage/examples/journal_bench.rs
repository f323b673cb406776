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

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gavel_engine::{Actor, Command, Engine, EngineConfig, Event, Reply, Request};
use gavel_protocol::command::{
    AcceptBid, AcceptVerification, CancelTask, PlaceBid, PostTask, SendMessage, StartWork,
    SubmitVerification,
};
use gavel_protocol::http::CoachUpsert;
use gavel_protocol::{RequestId, Role, Seq, Urgency, UserId};
use gavel_storage::{
    JournalHandle, StorageError, Store, StoredEvent, StoredSnapshot, WriterStats, encode_snapshot,
    recover,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::Connection;

const COACHES: usize = 50;
const SEEKERS: usize = 500;

/// A marketplace driven through the real engine, producing realistic journal events.
struct Market {
    engine: Engine,
    rng: StdRng,
    now: u64,
    requests: u64,
    tasks: u64,
    rejected: u64,
    /// Events applied since the caller last took them.
    out: Vec<(Seq, Event)>,
}

impl Market {
    fn new(seed: u64) -> Self {
        let mut market = Market {
            engine: Engine::new(EngineConfig::default()),
            rng: StdRng::seed_from_u64(seed),
            now: 1_700_000_000_000,
            requests: 0,
            tasks: 0,
            rejected: 0,
            out: Vec::new(),
        };
        let admin = actor("ops", Role::Admin);
        for c in 0..COACHES {
            let profile = CoachUpsert {
                display_name: format!("Coach {c}"),
                rating: 3.5 + (c % 4) as f64 * 0.5,
                verified: true,
                on_call: c % 5 == 0,
                capacity: 20,
                suspended: false,
            };
            let coach_id = UserId::new(&format!("coach{c}")).unwrap();
            market.run(&admin, Command::UpsertCoach { coach_id, profile });
        }
        market
    }

    fn run(&mut self, actor: &Actor, command: Command) -> Option<Reply> {
        self.requests += 1;
        let request = Request {
            actor: actor.clone(),
            request_id: Some(RequestId::new(&format!("req-{}", self.requests)).unwrap()),
            command,
        };
        let outcome = self.engine.execute(&request, self.now);
        self.out.extend(outcome.events);
        match outcome.reply {
            Ok(reply) => Some(reply),
            Err(_) => {
                self.rejected += 1;
                None
            }
        }
    }

    /// One task's life: posted, bid on, then mostly accepted and delivered, some canceled,
    /// some left open (their bidding windows close later, as deadline events).
    fn step(&mut self) {
        self.now += self.rng.gen_range(200..2_000);
        let n = self.tasks;
        self.tasks += 1;
        let seeker = actor(
            &format!("seeker{}", self.rng.gen_range(0..SEEKERS)),
            Role::Seeker,
        );
        let urgency = Urgency::ALL[self.rng.gen_range(0..Urgency::ALL.len())];
        let post = PostTask {
            resume_id: format!("resume-{n}-v{}", self.rng.gen_range(1..5)),
            task_type: None,
            urgency,
            base_price: None,
            award: None,
            task_id: None,
            owner: None,
        };
        let Some(Reply::PostTask(posted)) = self.run(&seeker, Command::PostTask(post)) else {
            return;
        };
        let task_id = posted.task_id;
        let [min, max] = posted.price_range;
        let hours = self.engine.config().tiers.get(urgency).delivery_hours;
        let mut bids = Vec::new();
        let first = self.rng.gen_range(0..COACHES);
        for k in 0..3 {
            let coach = actor(&format!("coach{}", (first + k * 7) % COACHES), Role::Coach);
            let bid = PlaceBid {
                task_id: task_id.clone(),
                amount: self.rng.gen_range(min..=max),
                eta_hours: self.rng.gen_range(1..=hours),
            };
            self.now += self.rng.gen_range(10..500);
            if let Some(Reply::PlaceBid(placed)) = self.run(&coach, Command::PlaceBid(bid)) {
                bids.push((coach, placed.bid_id));
            }
        }
        let roll = self.rng.gen_range(0..100);
        if roll < 70 && !bids.is_empty() {
            let (coach, bid_id) = bids[self.rng.gen_range(0..bids.len())].clone();
            let accept = AcceptBid {
                task_id: task_id.clone(),
                bid_id,
            };
            if self.run(&seeker, Command::AcceptBid(accept)).is_none() {
                return;
            }
            self.now += self.rng.gen_range(1_000..60_000);
            let start = StartWork {
                task_id: task_id.clone(),
            };
            self.run(&coach, Command::StartWork(start));
            if roll < 20 {
                let message = SendMessage {
                    task_id: task_id.clone(),
                    text: "Could you focus on the summary section first?".into(),
                };
                self.run(&seeker, Command::SendMessage(message));
            }
            self.now += self.rng.gen_range(1_000..60_000);
            let submit = SubmitVerification {
                task_id: task_id.clone(),
                notes: Some(
                    "Reviewed: tightened the summary, fixed dates, reordered skills.".into(),
                ),
            };
            self.run(&coach, Command::SubmitVerification(submit));
            let done = AcceptVerification {
                task_id,
                rating: self.rng.gen_range(3..=5),
            };
            self.run(&seeker, Command::AcceptVerification(done));
        } else if roll < 80 {
            let cancel = CancelTask {
                task_id,
                reason: Some("no longer needed".into()),
            };
            self.run(&seeker, Command::CancelTask(cancel));
        }
    }

    /// Runs tasks until the engine has applied at least `events` events in total.
    fn run_until(&mut self, events: Seq) {
        while self.engine.seq() < events {
            self.step();
        }
    }
}

fn actor(user: &str, role: Role) -> Actor {
    Actor::new(UserId::new(user).unwrap(), role)
}

/// Real events to recycle (with new seqs) in the throughput and latency runs.
fn event_pool(n: usize) -> Vec<Event> {
    let mut market = Market::new(1);
    market.run_until(n as Seq);
    market.out.into_iter().map(|(_, e)| e).take(n).collect()
}

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

/// Why SQLite's group commit tops out where it does: the cost per row of `Store::append`
/// (one `INSERT` statement per row, in one transaction) against multi-row `INSERT … VALUES`
/// statements, for commits of 8,192 rows (the writer's cap), measured outside the writer.
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
    report("`Store::append`: one INSERT per row", took);

    for per_statement in [100usize, 1000] {
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
            &format!("multi-row INSERT, {per_statement} rows per statement"),
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

// ---- 3. recovery -------------------------------------------------------------------------

async fn recovery(stores: &mut Stores, backend: &str, events: Seq) {
    println!("### recovery of {events} journaled events\n");
    let store = stores.fresh(backend, "recovery").await;
    let generated = Instant::now();
    let mut market = Market::new(7);
    let snapshot_at = events / 10 * 9;
    let mut snapshot = None;
    let mut write = Duration::ZERO;
    while market.engine.seq() < events {
        market.step();
        if snapshot.is_none() && market.engine.seq() >= snapshot_at {
            let s = market.engine.snapshot();
            snapshot = Some(StoredSnapshot {
                seq: market.engine.seq(),
                at: s.state.now,
                state: encode_snapshot(&s),
            });
        }
        if market.out.len() >= 10_000 || market.engine.seq() >= events {
            let rows: Vec<StoredEvent> = market
                .out
                .drain(..)
                .map(|(seq, e)| StoredEvent::encode(seq, &e))
                .collect();
            let t = Instant::now();
            store.append(&rows).await.unwrap();
            write += t.elapsed();
        }
    }
    let journaled = market.engine.seq();
    let snapshot = snapshot.unwrap();
    let state = market.engine.state();
    println!(
        "journal: {journaled} events from {} tasks ({} commands refused by the engine); \
         generated and written in {:.1?} (of which DB writes {:.1?}); \
         {} tasks in the final state",
        market.tasks,
        market.rejected,
        generated.elapsed(),
        write,
        state.tasks.len(),
    );

    let (full, report) = recover(&store, EngineConfig::default()).await.unwrap();
    assert_eq!(report.replayed, journaled);
    let same_full = full.state() == state;
    drop(full);

    store.write_snapshot(&snapshot).await.unwrap();
    let (tail, tail_report) = recover(&store, EngineConfig::default()).await.unwrap();
    assert_eq!(tail_report.snapshot_seq, snapshot.seq);
    let same_tail = tail.state() == state;
    drop(tail);
    println!(
        "snapshot at seq {}: {:.1} MB of JSON\n",
        snapshot.seq,
        snapshot.state.len() as f64 / 1e6
    );
    println!("| recovery | events replayed | time | equals the live engine |");
    println!("|---|---:|---:|---|");
    println!(
        "| full replay (no snapshot) | {} | {:.2} s | {same_full} |",
        report.replayed,
        report.took.as_secs_f64()
    );
    println!(
        "| snapshot at {} + tail | {} | {:.2} s | {same_tail} |",
        tail_report.snapshot_seq,
        tail_report.replayed,
        tail_report.took.as_secs_f64()
    );
    println!();

    // Where the time goes: the same steps `recover` takes, timed one by one.
    let t = Instant::now();
    let mut rows = Vec::with_capacity(journaled as usize);
    let mut after = 0;
    loop {
        let page = store.read_after(after, 10_000).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.seq;
        rows.extend(page);
    }
    let read = t.elapsed();
    let t = Instant::now();
    let decoded: Vec<Event> = rows.iter().map(|r| r.decode().unwrap()).collect();
    let decode = t.elapsed();
    let t = Instant::now();
    let mut engine = Engine::new(EngineConfig::default());
    for event in &decoded {
        engine.evolve(event);
    }
    let evolve = t.elapsed();
    drop(engine);
    let t = Instant::now();
    let stored = store.latest_snapshot().await.unwrap().unwrap();
    let snapshot_read = t.elapsed();
    let t = Instant::now();
    let parsed: gavel_engine::Snapshot = serde_json::from_slice(&stored.state).unwrap();
    let snapshot_decode = t.elapsed();
    let t = Instant::now();
    let restored = Engine::restore(EngineConfig::default(), parsed).unwrap();
    let restore = t.elapsed();
    drop(restored);
    let tail_from = stored.seq as usize;
    let mut engine = Engine::restore(
        EngineConfig::default(),
        serde_json::from_slice(&stored.state).unwrap(),
    )
    .unwrap();
    let t = Instant::now();
    for event in &decoded[tail_from..] {
        engine.evolve(event);
    }
    let tail_evolve = t.elapsed();
    let per = |d: Duration, n: usize| format!("{:.2} µs/event", d.as_secs_f64() * 1e6 / n as f64);
    let n = rows.len();
    let tail_n = n - tail_from;
    println!("| step | time | per event |");
    println!("|---|---:|---:|");
    println!(
        "| DB read, all {n} rows (pages of 10,000) | {:.2} s | {} |",
        read.as_secs_f64(),
        per(read, n)
    );
    println!(
        "| JSON decode of {n} events | {:.2} s | {} |",
        decode.as_secs_f64(),
        per(decode, n)
    );
    println!(
        "| `evolve` of {n} events | {:.2} s | {} |",
        evolve.as_secs_f64(),
        per(evolve, n)
    );
    println!(
        "| snapshot row read | {:.2} s | |",
        snapshot_read.as_secs_f64()
    );
    println!(
        "| snapshot JSON decode | {:.2} s | |",
        snapshot_decode.as_secs_f64()
    );
    println!(
        "| `Engine::restore` (index rebuild) | {:.2} s | |",
        restore.as_secs_f64()
    );
    println!(
        "| `evolve` of the {tail_n}-event tail | {:.2} s | {} |",
        tail_evolve.as_secs_f64(),
        per(tail_evolve, tail_n.max(1))
    );
    println!();
    close(store).await;
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
