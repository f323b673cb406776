//! Resuming a subscription with `since` (+ `epoch`) after a disconnect (contract §2, §4): the
//! result carries no snapshot and `seq = since`, and exactly the missed events of the topic
//! follow — in order, before any live event, with no gap and no duplicate — whether they come
//! from the in-memory ring, from the journal, or from the journal of a restarted server.
//! Another epoch (or an impossible `since`) gets a fresh snapshot and `"reset": true`.
//!
//! Every case compares the resumed subscriber with a reference: a second connection of the
//! same user that stays subscribed to the same topic all along (same user, same view, so the
//! same frames). A workload runs while the resume is answered, so replay and live events race.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};

use common::*;
use gavel_gateway::app::{Server, ServerOptions};
use gavel_protocol::Role;
use serde_json::{Value, json};

/// Request ids, unique across the whole test binary (idempotency outlives restarts).
fn next_id(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}{}", N.fetch_add(1, Ordering::Relaxed))
}

/// What ends a phase: a message on the target task (for `task:<id>` subscribers) followed by
/// a new task (for `feed` subscribers). `task:<id>` and `feed` each see exactly one of the
/// two; `seeker:sally` sees both (every task is sally's), and a phase's reading stops at the
/// message, so the new task's `task.opened` opens the next phase.
#[derive(Debug, Clone)]
struct Marker {
    text: String,
    task_id: String,
}

impl Marker {
    fn hit(&self, frame: &Value) -> bool {
        let event = &frame["event"];
        (event["kind"] == "task.message" && event["text"] == self.text.as_str())
            || (event["kind"] == "task.opened" && event["task_id"] == self.task_id.as_str())
    }
}

/// A seeker (`sally`, the owner of the target task) and three coaches making events: new
/// tasks, bids on them, and bids on the target task — so every topic's events are interleaved
/// with other topics' (global `seq` has gaps relative to any one topic).
struct Workload {
    seeker: Client,
    coaches: Vec<Client>,
    target: String,
    rounds: u64,
}

const COACHES: [&str; 3] = ["ben", "cat", "dan"];

impl Workload {
    /// Registers the coaches and posts the target task.
    async fn setup(server: &Server) -> Workload {
        for coach in COACHES {
            register_coach(server, coach, 4.0, false).await;
        }
        let mut seeker = Client::connect(server, "sally", Role::Seeker).await;
        let target = seeker
            .ok(
                &next_id("p"),
                json!({"type": "post_task", "resume_id": "target", "urgency": "standard"}),
            )
            .await["task_id"]
            .as_str()
            .unwrap()
            .to_owned();
        Workload::connect(server, target).await
    }

    /// Fresh connections to `server` (e.g. after a restart).
    async fn connect(server: &Server, target: String) -> Workload {
        let seeker = Client::connect(server, "sally", Role::Seeker).await;
        let mut coaches = Vec::new();
        for coach in COACHES {
            coaches.push(Client::connect(server, coach, Role::Coach).await);
        }
        Workload {
            seeker,
            coaches,
            target,
            rounds: 0,
        }
    }

    /// One round: a new task, a bid on it, a bid (or bid update) on the target task.
    async fn round(&mut self) {
        let k = self.rounds;
        self.rounds += 1;
        let task = self
            .seeker
            .ok(
                &next_id("p"),
                json!({"type": "post_task", "resume_id": format!("r{k}"), "urgency": "standard"}),
            )
            .await["task_id"]
            .as_str()
            .unwrap()
            .to_owned();
        self.coaches[0]
            .ok(
                &next_id("b"),
                json!({"type": "place_bid", "task_id": task, "amount": 3000, "eta_hours": 5}),
            )
            .await;
        let amount = 2500 + (k % 250) * 10;
        let coach = 1 + (k as usize % 2);
        self.coaches[coach]
            .ok(
                &next_id("b"),
                json!({"type": "place_bid", "task_id": self.target, "amount": amount, "eta_hours": 6}),
            )
            .await;
    }

    /// Ends a phase (see [`Marker`]).
    async fn mark(&mut self) -> Marker {
        let text = next_id("marker-");
        self.seeker
            .ok(
                &next_id("m"),
                json!({"type": "send_message", "task_id": self.target, "text": text}),
            )
            .await;
        let task_id = self
            .seeker
            .ok(
                &next_id("p"),
                json!({"type": "post_task", "resume_id": "marker", "urgency": "flexible"}),
            )
            .await["task_id"]
            .as_str()
            .unwrap()
            .to_owned();
        Marker { text, task_id }
    }

    /// `n` rounds, then a marker.
    async fn phase(&mut self, n: usize) -> Marker {
        for _ in 0..n {
            self.round().await;
        }
        self.mark().await
    }
}

/// Event frames (no `stats`) up to and including the marker's.
async fn read_until(client: &mut Client, marker: &Marker) -> Vec<Value> {
    let mut events = Vec::new();
    loop {
        let frame = client.event().await;
        let done = marker.hit(&frame);
        events.push(frame);
        if done {
            return events;
        }
    }
}

fn seq(frame: &Value) -> u64 {
    frame["seq"].as_u64().expect("events carry a seq")
}

async fn subscribe(client: &mut Client, topic: &str) -> Value {
    let result = client
        .ok(&next_id("s"), json!({"type": "subscribe", "topic": topic}))
        .await;
    assert!(result["snapshot"].is_object(), "{result}");
    result
}

/// Asserts that `resumed` (what the resumed subscriber got after `since`) is exactly the
/// reference's events after `since`: same frames, same order, only the topic's.
fn assert_exact_resume(topic: &str, since: u64, reference: &[Value], resumed: &[Value]) {
    let expected: Vec<&Value> = reference.iter().filter(|f| seq(f) > since).collect();
    let got: Vec<&Value> = resumed.iter().collect();
    for pair in resumed.windows(2) {
        assert!(
            seq(&pair[0]) < seq(&pair[1]),
            "seq must strictly increase: {} then {}",
            pair[0],
            pair[1]
        );
    }
    for f in resumed {
        assert_eq!(f["topic"], topic, "only the topic's own events: {f}");
    }
    let expected_seqs: Vec<u64> = expected.iter().map(|f| seq(f)).collect();
    let got_seqs: Vec<u64> = got.iter().map(|f| seq(f)).collect();
    assert_eq!(
        got_seqs, expected_seqs,
        "the resumed subscriber gets exactly the reference's events after {since}"
    );
    assert_eq!(got, expected, "and the very same frames");
}

/// The shared scenario on one server: the subscriber `S` sees events up to `N` and goes away,
/// events happen, then `S` comes back with `since: N` while more events happen.
async fn resume_on_one_server(
    options: ServerOptions,
    topic_of: fn(&str) -> String,
    user: (&str, Role),
) {
    let data_dir = options.data_dir.clone();
    let server = Server::start(options).await.expect("server starts");
    let mut work = Workload::setup(&server).await;
    let topic = topic_of(&work.target);

    let mut reference = Client::connect(&server, user.0, user.1).await;
    let base = subscribe(&mut reference, &topic).await;
    assert_eq!(base["epoch"], server.epoch.as_str());
    let mut subscriber = Client::connect(&server, user.0, user.1).await;
    subscribe(&mut subscriber, &topic).await;

    // Phase A: both see it.
    let a = work.phase(4).await;
    let seen = read_until(&mut subscriber, &a).await;
    let since = seq(seen.last().unwrap());
    drop(subscriber);

    // Phase B: missed by the subscriber (more events than a small ring holds).
    let b = work.phase(12).await;

    // Phase C runs while the subscriber resumes.
    let live = tokio::spawn(async move {
        let c = work.phase(6).await;
        (work, c)
    });
    let mut resumed = Client::connect(&server, user.0, user.1).await;
    let result = resumed
        .ok(
            "resume",
            json!({"type": "subscribe", "topic": topic, "since": since, "epoch": server.epoch}),
        )
        .await;
    assert!(
        result.get("snapshot").is_none(),
        "a resume has no snapshot: {result}"
    );
    assert!(result.get("reset").is_none(), "{result}");
    assert_eq!(result["seq"], since, "{result}");
    assert_eq!(result["epoch"], server.epoch.as_str());
    assert_eq!(result["topic"], topic.as_str());
    assert!(
        resumed.backlog.is_empty(),
        "nothing arrives before the subscribe reply: {:?}",
        resumed.backlog
    );
    let (_work, c) = live.await.unwrap();

    let mut all = read_until(&mut reference, &a).await;
    all.extend(read_until(&mut reference, &b).await);
    let missed = all.iter().filter(|f| seq(f) > since).count();
    assert!(missed >= 12, "phase B made events on {topic}: {missed}");
    all.extend(read_until(&mut reference, &c).await);
    let got = read_until(&mut resumed, &c).await;
    assert_exact_resume(&topic, since, &all, &got);
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&data_dir);
}

fn feed(_: &str) -> String {
    "feed".into()
}

fn task_topic(target: &str) -> String {
    format!("task:{target}")
}

/// The dashboard of the workload's seeker, who owns every task (contract §9).
fn seeker_topic(_: &str) -> String {
    "seeker:sally".into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_resume_from_the_ring_gets_exactly_the_missed_events() {
    let options = options_unlimited(fresh_dir("resume-ring"));
    assert!(options.history >= 1000, "the ring holds the whole test");
    resume_on_one_server(options, feed, ("ana", Role::Coach)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_resume_from_the_ring_gets_exactly_the_missed_events() {
    let options = options_unlimited(fresh_dir("resume-ring-task"));
    resume_on_one_server(options, task_topic, ("sally", Role::Seeker)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_resume_older_than_the_ring_is_served_from_the_journal() {
    let mut options = options_unlimited(fresh_dir("resume-journal"));
    options.history = 5;
    resume_on_one_server(options, feed, ("ana", Role::Coach)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_resume_older_than_the_ring_is_served_from_the_journal() {
    let mut options = options_unlimited(fresh_dir("resume-journal-task"));
    options.history = 5;
    resume_on_one_server(options, task_topic, ("sally", Role::Seeker)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeker_resume_from_the_ring_gets_exactly_the_missed_events() {
    let options = options_unlimited(fresh_dir("resume-ring-seeker"));
    resume_on_one_server(options, seeker_topic, ("sally", Role::Seeker)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeker_resume_older_than_the_ring_is_served_from_the_journal() {
    let mut options = options_unlimited(fresh_dir("resume-journal-seeker"));
    options.history = 5;
    resume_on_one_server(options, seeker_topic, ("sally", Role::Seeker)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_without_a_ring_is_served_from_the_journal() {
    let mut options = options_unlimited(fresh_dir("resume-no-ring"));
    options.history = 0;
    resume_on_one_server(options, task_topic, ("sally", Role::Seeker)).await;
}

/// Another epoch, or a `since` the server never reached: a fresh snapshot, `"reset": true`,
/// and live events from the snapshot's `seq`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_from_another_epoch_or_an_unknown_position_is_a_reset() {
    let server = Server::start(options_unlimited(fresh_dir("resume-epoch")))
        .await
        .unwrap();
    let mut work = Workload::setup(&server).await;
    let mut reference = Client::connect(&server, "ana", Role::Coach).await;
    subscribe(&mut reference, "feed").await;
    let a = work.phase(3).await;
    let seen = read_until(&mut reference, &a).await;
    let since = seq(seen.last().unwrap());
    let b = work.phase(3).await;
    let after_b = seq(read_until(&mut reference, &b).await.last().unwrap());

    let other_epoch = if server.epoch == "0" { "1" } else { "0" };
    let cases = [
        json!({"type": "subscribe", "topic": "feed", "since": since, "epoch": other_epoch}),
        json!({"type": "subscribe", "topic": "feed", "since": after_b + 1_000_000, "epoch": server.epoch}),
    ];
    for (i, frame) in cases.into_iter().enumerate() {
        let mut client = Client::connect(&server, "ana", Role::Coach).await;
        let result = client.ok(&format!("reset{i}"), frame).await;
        assert_eq!(result["reset"], true, "{result}");
        assert_eq!(result["epoch"], server.epoch.as_str());
        let snapshot_seq = result["seq"].as_u64().unwrap();
        assert!(snapshot_seq >= after_b, "{result}");
        let tasks = result["snapshot"]["tasks"]
            .as_array()
            .expect("a feed snapshot");
        // The target, 3 + 3 rounds of tasks and two marker tasks (then 2 + 1 more per
        // earlier case): all open.
        assert_eq!(tasks.len(), 1 + 6 + 2 + 3 * i, "{result}");
        assert!(client.backlog.is_empty(), "no replay after a reset");

        // Live events follow from the snapshot's position, exactly as the reference sees them.
        let c = work.phase(2).await;
        let reference_events = read_until(&mut reference, &c).await;
        let got = read_until(&mut client, &c).await;
        assert_exact_resume("feed", snapshot_seq, &reference_events, &got);
        assert_eq!(got.len(), reference_events.len());
    }
    server.shutdown().await;
}

/// The subscriber saw up to `N` on one server; the server stops (more events happened before
/// it did) and starts again on the same storage; more events happen; the subscriber resumes
/// with the old epoch and `since: N` and gets every missed event once, in order.
async fn resume_across_a_restart(options: ServerOptions, topic_of: fn(&str) -> String) {
    let data_dir = options.data_dir.clone();
    let server = Server::start(options.clone()).await.expect("server starts");
    let epoch = server.epoch.clone();
    let mut work = Workload::setup(&server).await;
    let target = work.target.clone();
    let topic = topic_of(&target);
    let mut reference = Client::connect(&server, "sally", Role::Seeker).await;
    subscribe(&mut reference, &topic).await;
    let mut subscriber = Client::connect(&server, "sally", Role::Seeker).await;
    subscribe(&mut subscriber, &topic).await;

    let a = work.phase(3).await;
    let since = seq(read_until(&mut subscriber, &a).await.last().unwrap());
    drop(subscriber);
    let b = work.phase(8).await;
    let mut all = read_until(&mut reference, &a).await;
    all.extend(read_until(&mut reference, &b).await);
    // And whatever the topic got after the marker (on `seeker:<id>`, the marker task's
    // `task.opened`): after the restart the reference starts again from a snapshot.
    all.extend(reference.drain_events().await);
    let before_restart = seq(all.last().unwrap());
    drop(work);
    server.shutdown().await;

    let server = Server::start(options).await.expect("server restarts");
    assert_eq!(server.epoch, epoch, "the same storage keeps its epoch");
    let mut reference = Client::connect(&server, "sally", Role::Seeker).await;
    let snapshot = subscribe(&mut reference, &topic).await;
    assert!(
        snapshot["seq"].as_u64().unwrap() >= before_restart,
        "nothing acknowledged was lost: {snapshot}"
    );
    let mut work = Workload::connect(&server, target).await;
    work.rounds = 100;
    let c = work.phase(4).await;

    let live = tokio::spawn(async move {
        let d = work.phase(4).await;
        (work, d)
    });
    let mut resumed = Client::connect(&server, "sally", Role::Seeker).await;
    let result = resumed
        .ok(
            "resume",
            json!({"type": "subscribe", "topic": topic, "since": since, "epoch": epoch}),
        )
        .await;
    assert!(result.get("snapshot").is_none(), "{result}");
    assert!(result.get("reset").is_none(), "{result}");
    assert_eq!(result["seq"], since);
    let (_work, d) = live.await.unwrap();

    all.extend(read_until(&mut reference, &c).await);
    all.extend(read_until(&mut reference, &d).await);
    let got = read_until(&mut resumed, &d).await;
    assert!(
        got.iter().filter(|f| seq(f) <= before_restart).count() >= 8,
        "events from before the restart are replayed"
    );
    assert_exact_resume(&topic, since, &all, &got);
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&data_dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_across_a_restart_gets_every_missed_event_once_on_sqlite() {
    resume_across_a_restart(options_unlimited(fresh_dir("resume-restart")), task_topic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeker_resume_across_a_restart_gets_every_missed_event_once() {
    let options = options_unlimited(fresh_dir("resume-restart-seeker"));
    resume_across_a_restart(options, seeker_topic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_across_a_restart_gets_every_missed_event_once_on_postgres() {
    let url = fresh_postgres("resume_restart").await;
    let mut options = options_unlimited(fresh_dir("resume-restart-pg"));
    options.database_url = Some(url.clone());
    options.history = 50;
    resume_across_a_restart(options, task_topic).await;
    drop_postgres(&url).await;
}

/// The whole path on Postgres: post, bid, watch, accept — and the journal is there after a
/// restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_runs_on_postgres_end_to_end() {
    let url = fresh_postgres("e2e").await;
    let mut options = options(fresh_dir("e2e-pg"));
    options.database_url = Some(url.clone());
    let server = Server::start(options.clone())
        .await
        .expect("server starts on Postgres");
    register_coach(&server, "ana", 4.8, false).await;

    let mut seeker = Client::connect(&server, "sally", Role::Seeker).await;
    let posted = seeker
        .ok(
            "p1",
            json!({"type": "post_task", "resume_id": "r1", "urgency": "urgent"}),
        )
        .await;
    assert_eq!(posted["suggested_price"], 3750);
    let task_id = posted["task_id"].as_str().unwrap().to_owned();
    let sub = subscribe(&mut seeker, &format!("task:{task_id}")).await;
    assert_eq!(sub["snapshot"]["status"], "open");

    let mut coach = Client::connect(&server, "ana", Role::Coach).await;
    let feed = subscribe(&mut coach, "feed").await;
    assert_eq!(feed["snapshot"]["tasks"][0]["task_id"], task_id.as_str());
    let bid = coach
        .ok(
            "b1",
            json!({"type": "place_bid", "task_id": task_id, "amount": 4000, "eta_hours": 1}),
        )
        .await;
    let bid_id = bid["bid_id"].as_str().unwrap().to_owned();
    let placed = seeker.event().await;
    assert_eq!(placed["event"]["kind"], "bid.placed");
    assert_eq!(placed["event"]["bid"]["bid_id"], bid_id.as_str());
    assert_eq!(coach.event().await["event"]["kind"], "task.bid_count");

    let accepted = seeker
        .ok(
            "a1",
            json!({"type": "accept_bid", "task_id": task_id, "bid_id": bid_id}),
        )
        .await;
    assert_eq!(accepted["amount"], 4000);
    let mut kinds = Vec::new();
    for _ in 0..3 {
        kinds.push(
            seeker.event().await["event"]["kind"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(kinds, ["bid.accepted", "task.assigned", "payment.held"]);
    let (status, ready) = http_text(&server, "/readyz").await;
    assert_eq!((status, ready.as_str()), (200, "ready"));
    drop((seeker, coach));
    server.shutdown().await;

    let server = Server::start(options)
        .await
        .expect("server restarts on Postgres");
    let (status, view) = http(
        &server,
        "GET",
        &format!("/v1/tasks/{task_id}"),
        Some(&token("ops", Role::Admin)),
        None,
    )
    .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["status"], "assigned");
    assert_eq!(view["assigned"]["bid_id"], bid_id.as_str());
    assert_eq!(view["escrow"]["held"], 4000);
    // The idempotency table came back too: the same id gets the original reply.
    let mut seeker = Client::connect(&server, "sally", Role::Seeker).await;
    let again = seeker
        .ok(
            "p1",
            json!({"type": "post_task", "resume_id": "r1", "urgency": "urgent"}),
        )
        .await;
    assert_eq!(again, posted);
    drop(seeker);
    server.shutdown().await;
    drop_postgres(&url).await;
}

/// `GET path` as (status, body text).
async fn http_text(server: &Server, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}
