//! A resume on a sparse topic over a long journal (docs/benchmarks.md, "A resume on a sparse
//! topic"): a SQLite journal of `--events` tasks posted by one seeker with, spread evenly
//! through it, `--sparse` tasks of another (`bob`); then a server on it, and `--resumes`
//! resumes of `--topic` (`seeker`: `seeker:bob`; `task`: `task:` of bob's first task) with
//! `since: 1`, each timed from the `subscribe` to its last replayed event, with the journal
//! rows the resumes read (`catch_up_rows_read_total`, where the server exports it).
//!
//! With `--posted-hours-ago H` the tasks were posted `H` hours before the server starts, as
//! after an outage: every bidding window has closed unbid (no coach is on call), and the start
//! fires them all; the report then says how many events that made, and the first resume's
//! time is how long a command waited behind them.
//!
//! ```text
//! cargo run --release -p gavel-gateway --example resume_bench -- [--events N] [--sparse S] \
//!     [--resumes R] [--posted-hours-ago H] [--topic seeker|task]
//! ```
#![allow(clippy::print_stdout)] // a benchmark program reports on stdout

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use gavel_gateway::app::{Server, ServerOptions};
use gavel_gateway::ingress::auth::JwtKeys;
use gavel_protocol::{Role, UserId};
use gavel_storage::{Store, StoredEvent};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

const SECRET: &[u8] = b"resume-bench-secret-of-32-bytes!";

/// The topic to resume: `seeker:bob`, or with `--topic task` the topic of bob's first task.
fn topic_arg(first_task: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    let topic = args
        .iter()
        .position(|a| a == "--topic")
        .and_then(|i| args.get(i + 1));
    match topic.map(String::as_str) {
        None | Some("seeker") => "seeker:bob".into(),
        Some("task") => format!("task:{first_task}"),
        Some(other) => panic!("--topic seeker|task, not {other}"),
    }
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect("a number"))
}

/// Journals `events` tasks of `sally` with `sparse` of `bob`'s among them, the last posted
/// `ago` ms back; answers the topic to resume and how many events reach it.
async fn populate(store: &Store, events: usize, sparse: usize, ago: u64) -> (String, usize) {
    let mut engine = gavel_engine::Engine::new(gavel_engine::EngineConfig::default());
    let (sally, bob) = (UserId::new("sally").unwrap(), UserId::new("bob").unwrap());
    let every = events / sparse.max(1);
    // One a millisecond, the last `ago` back (by default just now: no deadline falls due
    // while the benchmark runs).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        - events as u64
        - ago;
    let first_task = format!("t_{}", every / 2);
    let topic = topic_arg(&first_task);
    let (mut rows, mut bobs) = (Vec::<StoredEvent>::new(), 0);
    for i in 0..events {
        let owner = if i % every == every / 2 { &bob } else { &sally };
        let request = gavel_engine::Request {
            actor: gavel_engine::Actor::new(owner.clone(), Role::Seeker),
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
        let outcome = engine.execute(&request, now + i as u64);
        for (seq, event) in &outcome.events {
            let to_bob = gavel_engine::routing::deliveries(event)
                .iter()
                .any(|d| d.topic.to_string() == topic);
            bobs += usize::from(to_bob);
            rows.push(StoredEvent::encode(*seq, event));
        }
        if rows.len() >= 5_000 {
            store.append(&rows).await.unwrap();
            rows.clear();
        }
    }
    store.append(&rows).await.unwrap();
    (topic, bobs)
}

/// The server's `catch_up_rows_read_total`, if it exports it.
async fn rows_read(server: &Server) -> Option<u64> {
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET /metrics HTTP/1.0\r\nHost: bench\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    tcp.read_to_string(&mut text).await.unwrap();
    text.lines().find_map(|line| {
        line.strip_prefix("gavel_catch_up_rows_read_total ")?
            .parse()
            .ok()
    })
}

/// One resume of `topic` from `since: 1` as bob, timed to its `expected`-th event.
async fn resume(server: &Server, topic: &str, expected: usize) -> Duration {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = JwtKeys::new(SECRET).mint(
        &UserId::new("bob").unwrap(),
        Role::Seeker,
        Duration::from_secs(3600),
        now,
    );
    let url = format!("ws://{}/v1/ws?token={token}", server.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let subscribe =
        json!({"type": "subscribe", "id": "r", "topic": topic, "since": 1, "epoch": server.epoch});
    let started = Instant::now();
    ws.send(Message::text(subscribe.to_string())).await.unwrap();
    let mut events = 0;
    while events < expected {
        let text = match ws.next().await {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(_)) => continue,
            other => panic!("the connection ended: {other:?}"),
        };
        let frame: Value = serde_json::from_str(&text).unwrap();
        match frame["type"].as_str() {
            Some("event") => events += 1,
            Some("ok") => assert!(frame["result"].get("reset").is_none(), "{frame}"),
            _ => panic!("unexpected {frame}"),
        }
    }
    started.elapsed()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let events = arg("--events", 200_000);
    let sparse = arg("--sparse", 10);
    let resumes = arg("--resumes", 10);
    let ago = arg("--posted-hours-ago", 0) as u64 * 3_600_000;
    let dir = std::env::temp_dir().join(format!("gavel-resume-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = Store::open_sqlite(&dir).await.unwrap();
    let (topic, expected) = populate(&store, events, sparse, ago).await;
    let end = store.latest_seq().await.unwrap();
    println!("journal: {end} rows, {expected} of them on {topic}");

    let mut options = ServerOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.clone(),
        database_url: None,
        config: Default::default(),
        jwt_secret: SECRET.to_vec(),
        time_scale: 1.0,
        history: 1000,
        snapshot_every_events: 10_000_000,
        snapshot_interval: Duration::from_secs(3600),
        faults: Default::default(),
        cluster: None,
    };
    options.config.limits.subscribes_per_minute = 1_000_000;
    let server = Server::start(options).await.unwrap();
    let before = rows_read(&server).await;
    let mut times = Vec::with_capacity(resumes);
    for _ in 0..resumes {
        times.push(resume(&server, &topic, expected).await);
    }
    let after = rows_read(&server).await;
    // The start's fires may still be going on in batches: wait for the journal to settle.
    let mut last = 0;
    while store.latest_seq().await.unwrap() != last {
        last = store.latest_seq().await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    println!(
        "first resume (the first command after the start): {:.1?}; the start journaled {} events",
        times[0],
        store.latest_seq().await.unwrap() - end
    );
    drop(store);
    times.sort_unstable();
    println!(
        "{resumes} resumes of {topic} from since 1: p50 {:.1?}, max {:.1?}; rows read per resume: {}",
        times[times.len() / 2],
        times[times.len() - 1],
        match (before, after) {
            (Some(b), Some(a)) => ((a - b) / resumes as u64).to_string(),
            _ => "not exported".into(),
        }
    );
    server.shutdown().await;
    std::fs::remove_dir_all(&dir).unwrap();
}
