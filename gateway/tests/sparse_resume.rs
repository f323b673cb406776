//! A resume on a topic few events reach — `task:<id>`, `seeker:<id>`, `coach:<id>` — after a
//! long journal of other events (contract §2, §13): it replays exactly the topic's events. A
//! `task:<id>` resume reads only the task's rows, through the journal's task index, not every
//! row since `since`; where the index does not reach (a journal an older binary wrote, being
//! indexed at start-up) it reads the journal itself, with the same answer. The bound of
//! `[limits] max_replay_events` counts the task's events in the index.

mod common;

use std::time::Duration;

use common::*;
use gavel_gateway::app::{Server, ServerOptions};
use gavel_protocol::{Role, Seq, Topic};
use gavel_storage::Store;
use serde_json::{Value, json};

/// Tasks another seeker journals before the server starts: the rows a resume must not read.
const OTHER_TASKS: usize = 3_000;

async fn metric(server: &Server, name: &str) -> u64 {
    let (_, text) = http_text(server, "GET", "/metrics", None).await;
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} is exported"))
}

const ROWS_READ: &str = "gavel_catch_up_rows_read_total";

/// The journal's `seq`s that reach `topic`, worked out from the journal itself.
async fn journal_seqs_of(store: &Store, topic: &str) -> Vec<Seq> {
    let topic: Topic = topic.parse().unwrap();
    let rows = store.read_after(0, u32::MAX).await.unwrap();
    rows.iter()
        .filter(|r| {
            let event = r.decode().unwrap();
            gavel_engine::routing::deliveries(&event)
                .iter()
                .any(|d| d.topic == topic)
        })
        .map(|r| r.seq)
        .collect()
}

/// Resumes `topic` from `since = 1` as `user` and answers the replayed events' `seq`s, read
/// up to the last of `want` (the journal's).
async fn resume_from_the_start(
    server: &Server,
    topic: &str,
    user: (&str, Role),
    want: &[Seq],
) -> Vec<Seq> {
    let mut client = Client::connect(server, user.0, user.1).await;
    let result = client
        .ok(
            "resume",
            json!({"type": "subscribe", "topic": topic, "since": 1, "epoch": server.epoch}),
        )
        .await;
    assert!(
        result.get("reset").is_none() && result.get("snapshot").is_none(),
        "{topic}: a replay, not a reset: {result}"
    );
    let last = *want.last().expect("events to replay");
    let mut seqs = Vec::new();
    while seqs.last().is_none_or(|seq| seq < &last) {
        let frame: Value = client.event_within(Duration::from_secs(30)).await;
        assert_eq!(frame["topic"], topic, "{frame}");
        seqs.push(frame["seq"].as_u64().unwrap());
    }
    seqs
}

/// Which journal rows a resume reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reads {
    /// The topic's own, through the index.
    Own,
    /// The journal's, every row since `since`.
    Journal,
    /// Not checked (topics without an index).
    Unchecked,
}

/// Resumes `topic` as `user`, and checks it against the journal and the rows it read.
async fn assert_resume_reads(
    server: &Server,
    store: &Store,
    topic: &str,
    user: (&str, Role),
    reads: Reads,
) {
    let want = journal_seqs_of(store, topic).await;
    assert!(want.len() >= 2, "{topic}: {want:?}");
    let before = metric(server, ROWS_READ).await;
    let got = resume_from_the_start(server, topic, user, &want).await;
    assert_eq!(got, want, "{topic}: exactly its events, in order");
    let read = metric(server, ROWS_READ).await - before;
    match reads {
        Reads::Own => assert!(
            read <= 2 * want.len() as u64,
            "{topic}: {read} rows read for {} events",
            want.len()
        ),
        Reads::Journal => {
            assert!(
                read >= OTHER_TASKS as u64,
                "{topic}: the journal was read: {read}"
            )
        }
        Reads::Unchecked => {}
    }
}

fn options(dir: std::path::PathBuf) -> ServerOptions {
    let mut o = options_unlimited(dir);
    o.history = 5;
    o.config.limits.max_replay_events = 8;
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_resume_reads_its_own_rows_through_the_index() {
    let dir = fresh_dir("sparse-resume");
    populate(&dir, OTHER_TASKS).await;
    let server = Server::start(options(dir.clone())).await.unwrap();
    register_coach(&server, "ana", 4.0, false).await;
    let mut bob = Client::connect(&server, "bob", Role::Seeker).await;
    let task = bob
        .ok(
            "post",
            json!({"type": "post_task", "resume_id": "cv", "urgency": "standard"}),
        )
        .await["task_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut ana = Client::connect(&server, "ana", Role::Coach).await;
    for (n, amount) in [3000, 2900].into_iter().enumerate() {
        ana.ok(
            &format!("bid{n}"),
            json!({"type": "place_bid", "task_id": task, "amount": amount, "eta_hours": 5}),
        )
        .await;
    }
    bob.ok(
        "say",
        json!({"type": "send_message", "task_id": task, "text": "hello"}),
    )
    .await;
    let store = Store::open_sqlite(&dir).await.unwrap();
    let (seeker, topic) = (("bob", Role::Seeker), format!("task:{task}"));
    assert_resume_reads(&server, &store, &topic, seeker, Reads::Own).await;
    assert_resume_reads(&server, &store, "seeker:bob", seeker, Reads::Unchecked).await;
    let coach = ("ana", Role::Coach);
    assert_resume_reads(&server, &store, "coach:ana", coach, Reads::Unchecked).await;

    // Where the index does not reach (dropped: as a journal from before it), the same answer,
    // read from the journal itself.
    store.task_index_reset().await.unwrap();
    assert_resume_reads(&server, &store, &topic, seeker, Reads::Journal).await;
    server.shutdown().await;

    // The start-up's catch-up indexes it again; then the topic's rows only, again.
    let server = Server::start(options(dir.clone())).await.unwrap();
    let end = store.latest_seq().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while store.task_index_seq().await.unwrap() < end {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the index catches up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_resume_reads(&server, &store, &topic, seeker, Reads::Own).await;

    // More of the topic's events after `since` than `max_replay_events`, counted in the index:
    // a reset.
    let mut bob = Client::connect(&server, "bob", Role::Seeker).await;
    for n in 0..6 {
        bob.ok(
            &format!("more{n}"),
            json!({"type": "send_message", "task_id": task, "text": format!("more {n}")}),
        )
        .await;
    }
    let over = journal_seqs_of(&store, &topic).await.len();
    assert!(over > 8, "{over} events on {topic}");
    let mut late = Client::connect(&server, "bob", Role::Seeker).await;
    let result = late
        .ok(
            "late",
            json!({"type": "subscribe", "topic": topic, "since": 1, "epoch": server.epoch}),
        )
        .await;
    assert_eq!(
        result["reset"], true,
        "{over} events behind, the bound 8: {result}"
    );
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
