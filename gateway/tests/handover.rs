//! The seam between a resume's replay and live delivery (contract §2, §13), on the `admin`
//! topic — it carries every journaled event, so a stream with no gap and no duplicate is
//! exactly a contiguous run of `seq`. A workload posts as fast as it can while the resume is
//! served, so live events pile up at the handover (and overflow what is held there).

mod common;

use std::time::Duration;

use common::*;
use gavel_gateway::app::{Server, ServerOptions};
use gavel_protocol::Role;
use serde_json::{Value, json};

const JOURNALED: usize = 20_000;

async fn server(name: &str) -> Server {
    let dir = fresh_dir(name);
    populate(&dir, JOURNALED).await;
    Server::start(resume_options(dir)).await.unwrap()
}

fn resume_options(dir: std::path::PathBuf) -> ServerOptions {
    let mut opts: ServerOptions = options_unlimited(dir);
    opts.history = 100;
    opts.snapshot_every_events = 1_000_000;
    opts
}

/// Posts tasks back to back until `stop`; returns how many.
async fn workload(server: &Server, stop: tokio::sync::watch::Receiver<bool>) -> usize {
    let mut seeker = Client::connect(server, "wendy", Role::Seeker).await;
    let mut n = 0;
    while !*stop.borrow() {
        let post = json!({"type": "post_task", "resume_id": format!("w{n}"), "urgency": "urgent"});
        seeker.ok(&format!("w{n}"), post).await;
        n += 1;
    }
    n
}

fn seq(frame: &Value) -> u64 {
    frame["seq"].as_u64().unwrap()
}

/// Reads admin events (not `stats`) until one with `seq >= upto`; every `seq` must follow
/// the last by one.
async fn read_contiguous(client: &mut Client, mut last: u64, upto: u64) -> u64 {
    while last < upto {
        let frame = client.event_within(Duration::from_secs(30)).await;
        assert_eq!(seq(&frame), last + 1, "no gap, no duplicate: {frame}");
        last = seq(&frame);
    }
    last
}

/// The end of the journal now, through the pipeline (an admin `post_task`'s own event).
async fn journal_end(server: &Server) -> u64 {
    let mut admin = Client::connect(server, "ops-end", Role::Admin).await;
    let sub = admin
        .ok("s", json!({"type": "subscribe", "topic": "admin"}))
        .await;
    sub["seq"].as_u64().unwrap()
}

/// A resume of `admin` from 0 over 20,000 journaled events while tasks are posted back to back:
/// the stream is 1, 2, 3, … up to the live end — across the replay, the handover and live
/// events — with no 4008.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_hands_over_to_live_events_with_no_gap_and_no_duplicate_under_load() {
    let server = server("handover-load").await;
    resume_under_load(&server).await;
    server.shutdown().await;
}

/// The same on Postgres (the journal pages, the writer and the catch-up share its pool).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_hands_over_exactly_on_postgres() {
    let url = fresh_postgres("handover_pg").await;
    let store = gavel_storage::Store::open_postgres(&url).await.unwrap();
    populate_store(&store, JOURNALED).await;
    if let gavel_storage::Store::Postgres(pool) = store {
        pool.close().await;
    }
    let mut opts = resume_options(fresh_dir("handover-pg"));
    opts.database_url = Some(url.clone());
    let server = Server::start(opts).await.unwrap();
    resume_under_load(&server).await;
    server.shutdown().await;
    drop_postgres(&url).await;
}

async fn resume_under_load(server: &Server) {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let load = workload(server, stop_rx);
    let resume = async {
        let mut ops = Client::connect(server, "ops", Role::Admin).await;
        let resume =
            json!({"type": "subscribe", "topic": "admin", "since": 0, "epoch": server.epoch});
        let ok = ops.ok("r", resume).await;
        assert_eq!(ok["seq"], 0);
        let last = read_contiguous(&mut ops, 0, JOURNALED as u64 + 200).await;
        stop_tx.send(true).unwrap();
        (ops, last)
    };
    let (posted, (mut ops, last)) = tokio::join!(load, resume);
    assert!(posted > 0);
    // The workload's last events, live.
    let end = journal_end(server).await;
    read_contiguous(&mut ops, last, end).await;
}

/// A second subscribe of the topic while the first one's replay runs supersedes it: the first
/// gets exactly one reply (`ok`, or `CONFLICT` when superseded before it was answered), and
/// after the second's `ok` only the second's stream follows — contiguous from its `since`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resubscribe_during_a_replay_supersedes_it_exactly() {
    let server = server("handover-supersede").await;
    let mut ops = Client::connect(&server, "ops", Role::Admin).await;
    let first = json!({"type": "subscribe", "id": "a", "topic": "admin", "since": 0, "epoch": server.epoch});
    ops.send(first).await;
    let since = JOURNALED as u64 - 5_000;
    let second = json!({"type": "subscribe", "id": "b", "topic": "admin", "since": since, "epoch": server.epoch});
    ops.send(second).await;
    let mut replies_a = 0;
    let mut last = since;
    let mut after_b = false;
    loop {
        let frame = ops.next_within(Duration::from_secs(30)).await;
        match (frame["type"].as_str(), frame["id"].as_str()) {
            (Some("ok" | "error"), Some("a")) => {
                replies_a += 1;
                if frame["type"] == "error" {
                    assert_eq!(frame["code"], "CONFLICT", "{frame}");
                }
            }
            (Some("ok"), Some("b")) => {
                assert!(!after_b, "one reply to b");
                assert_eq!(frame["result"]["seq"], since);
                after_b = true;
            }
            (Some("event"), _) if frame["event"]["kind"] == "stats" => {}
            (Some("event"), _) if after_b => {
                assert_eq!(
                    seq(&frame),
                    last + 1,
                    "only b's stream after its ok: {frame}"
                );
                last = seq(&frame);
                if last == JOURNALED as u64 {
                    break;
                }
            }
            (Some("event"), _) => {} // a's replay, before it was superseded
            _ => panic!("unexpected frame {frame}"),
        }
    }
    // a's reply may come after b's events began (its reader ends on its own time): wait for
    // it through the pipeline.
    let barrier = ops
        .request(
            "bar",
            json!({"type": "unsubscribe", "topic": "coach:zz-barrier"}),
        )
        .await;
    assert_eq!(barrier["type"], "ok");
    replies_a += ops.backlog.iter().filter(|f| f["id"] == "a").count();
    assert_eq!(
        replies_a, 1,
        "exactly one reply to the superseded subscribe"
    );
    server.shutdown().await;
}

/// An unsubscribe while the replay runs ends it: after the unsubscribe's `ok`, nothing of the
/// topic arrives, and the subscribe got exactly one reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsubscribe_during_a_replay_ends_it() {
    let server = server("handover-unsub").await;
    let mut ops = Client::connect(&server, "ops", Role::Admin).await;
    let resume = json!({"type": "subscribe", "id": "a", "topic": "admin", "since": 0, "epoch": server.epoch});
    ops.send(resume).await;
    ops.send(json!({"type": "unsubscribe", "id": "u", "topic": "admin"}))
        .await;
    let mut replies_a = 0;
    loop {
        let frame = ops.next_within(Duration::from_secs(30)).await;
        if frame["id"] == "a" {
            replies_a += 1;
        }
        if frame["id"] == "u" {
            assert_eq!(frame["type"], "ok");
            break;
        }
    }
    let mut seeker = Client::connect(&server, "sally", Role::Seeker).await;
    seeker
        .ok(
            "p",
            json!({"type": "post_task", "resume_id": "after", "urgency": "urgent"}),
        )
        .await;
    let barrier = ops
        .request(
            "bar",
            json!({"type": "unsubscribe", "topic": "coach:zz-barrier"}),
        )
        .await;
    assert_eq!(barrier["type"], "ok");
    for frame in &ops.backlog {
        if frame["id"] == "a" {
            replies_a += 1;
        } else {
            assert_ne!(
                frame["type"], "event",
                "nothing after the unsubscribe: {frame}"
            );
        }
    }
    assert_eq!(replies_a, 1, "exactly one reply to the subscribe");
    server.shutdown().await;
}

/// A coach resuming `task:<id>` through a catch-up reader loses the task (its payment fails)
/// while the replay runs: it hears `payment.failed` and then nothing more of the task — not
/// the next coach's assignment, whether the replay or the live router meets the event first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coach_whose_resume_outlives_its_task_sees_nothing_of_the_next_coach() {
    let mut opts = options_unlimited(fresh_dir("handover-lost"));
    opts.history = 10;
    let server = Server::start(opts).await.unwrap();
    register_coach(&server, "coach_ana", 4.0, false).await;
    register_coach(&server, "coach_ben", 4.0, false).await;
    let mut seeker = Client::connect(&server, "sally", Role::Seeker).await;
    let task = seeker
        .ok(
            "p",
            json!({"type": "post_task", "resume_id": "cv", "urgency": "standard"}),
        )
        .await["task_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let topic = format!("task:{task}");
    let mut ana = Client::connect(&server, "coach_ana", Role::Coach).await;
    let bid = json!({"type": "place_bid", "task_id": task, "amount": 4111, "eta_hours": 10});
    let ana_bid = ana.ok("b", bid).await["bid_id"].clone();
    seeker
        .ok(
            "a",
            json!({"type": "accept_bid", "task_id": task, "bid_id": ana_bid}),
        )
        .await;
    let watched = ana
        .ok("w", json!({"type": "subscribe", "topic": topic}))
        .await;
    let since = watched["seq"].as_u64().unwrap();
    drop(ana);
    // Other tasks push the resume past the ring and the direct replay: a catch-up reader.
    for i in 0..400 {
        let post = json!({"type": "post_task", "resume_id": format!("o{i}"), "urgency": "urgent"});
        seeker.ok(&format!("o{i}"), post).await;
    }
    let mut ana = Client::connect(&server, "coach_ana", Role::Coach).await;
    let resume =
        json!({"type": "subscribe", "topic": topic, "since": since, "epoch": server.epoch});
    ana.ok("r", resume).await;
    let (status, _) = http(
        &server,
        "POST",
        &format!("/v1/tasks/{task}/payment_failed"),
        Some(&token("ops", Role::Admin)),
        None,
    )
    .await;
    assert_eq!(status, 200);
    // The replay may hold the event until it hands over: wait for it, not for a barrier
    // (a barrier on another topic does not order a catch-up's frames).
    ana.wait_event(&topic, "payment.failed", Duration::from_secs(10))
        .await;
    let mut ben = Client::connect(&server, "coach_ben", Role::Coach).await;
    let bid = json!({"type": "place_bid", "task_id": task, "amount": 4999, "eta_hours": 7});
    let ben_bid = ben.ok("b", bid).await["bid_id"].clone();
    seeker
        .ok(
            "a2",
            json!({"type": "accept_bid", "task_id": task, "bid_id": ben_bid}),
        )
        .await;
    let events = ana.drain_events().await;
    assert!(
        events.iter().all(|f| !f.to_string().contains("coach_ben")),
        "the old coach saw the new one: {events:?}"
    );
    assert_eq!(
        events.last().map(|f| f["event"]["kind"].clone()),
        Some(json!("payment.failed")),
        "{events:?}"
    );
    server.shutdown().await;
}
