//! A task's history (`GET /v1/tasks/{id}/events`, contract §6): every event an admin
//! subscribed to `task:<id>` received, in order — while the task lives, after it is archived
//! (§9), in pages, after a restart, and whatever the journal's task index has reached.

mod common;
#[path = "archive_support/mod.rs"]
mod support;

use common::*;
use gavel_gateway::app::{Server, ServerOptions};
use gavel_protocol::Role;
use serde_json::{Value, json};
use support::{archiving, post, subscribe_task, until_archived};

/// `GET /v1/tasks/{id}/events` as an admin asks it.
async fn history_page(server: &Server, task: &str, query: &str) -> (u16, Value) {
    let admin = token("ops", Role::Admin);
    let path = format!("/v1/tasks/{task}/events{query}");
    http(server, "GET", &path, Some(&admin), None).await
}

/// A task's history is every event an admin subscribed to `task:<id>` received, in order —
/// while the task lives, after it is archived, in pages, and after a restart.
async fn a_task_history_outlives_memory(options: ServerOptions) {
    let server = start_with(archiving(options.clone())).await;
    register_coach(&server, "c1", 4.0, false).await;
    let mut alice = Client::connect(&server, "alice", Role::Seeker).await;
    let mut c1 = Client::connect(&server, "c1", Role::Coach).await;
    let mut ops = Client::connect(&server, "ops", Role::Admin).await;
    alice.ok("p", post("kept")).await;
    let watching = subscribe_task(&mut ops, "kept", None).await;
    let from = watching["result"]["seq"].as_u64().unwrap();
    let bid = c1
        .ok(
            "b",
            json!({"type": "place_bid", "task_id": "kept", "amount": 2400, "eta_hours": 10}),
        )
        .await;
    let steps = [
        json!({"type": "accept_bid", "task_id": "kept", "bid_id": bid["bid_id"]}),
        json!({"type": "send_message", "task_id": "kept", "text": "on it"}),
    ];
    for (n, step) in steps.into_iter().enumerate() {
        alice.ok(&format!("a{n}"), step).await;
    }
    for (n, kind) in ["start_work", "submit_verification"]
        .into_iter()
        .enumerate()
    {
        c1.ok(&format!("c{n}"), json!({"type": kind, "task_id": "kept"}))
            .await;
    }
    alice
        .ok(
            "done",
            json!({"type": "accept_verification", "task_id": "kept", "rating": 5}),
        )
        .await;
    let live: Vec<Value> = ops.drain_events().await;
    let seen: Vec<(Value, Value)> = live
        .iter()
        .map(|f| (f["seq"].clone(), f["event"].clone()))
        .collect();
    assert!(seen.len() >= 9, "{seen:?}");
    let pairs = |body: &Value| -> Vec<(Value, Value)> {
        body["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["seq"].clone(), e["event"].clone()))
            .collect()
    };
    let check = |body: &Value| {
        let all = pairs(body);
        assert_eq!(all[0].1["kind"], "task.opened", "{body}");
        assert!(all[0].0.as_u64().unwrap() <= from);
        assert_eq!(all[1..], seen[..], "the history is what the subscriber saw");
        assert!(body["next"].is_null());
    };
    let (status, whole) = history_page(&server, "kept", "").await;
    assert_eq!(status, 200, "{whole}");
    check(&whole);
    until_archived(&mut alice, "kept").await;
    let (_, archived) = history_page(&server, "kept", "").await;
    check(&archived);
    // Pages of two, each continuing after the last: the same events, once each.
    let mut paged = Vec::new();
    let mut query = "?limit=2".to_owned();
    loop {
        let (status, page) = history_page(&server, "kept", &query).await;
        assert_eq!(status, 200, "{page}");
        paged.extend(pairs(&page));
        match page["next"].as_u64() {
            Some(next) => query = format!("?limit=2&after={next}"),
            None => break,
        }
    }
    assert_eq!(paged, pairs(&whole));
    let (status, missing) = history_page(&server, "never", "").await;
    assert_eq!(
        (status, &missing["error"]["code"]),
        (404, &json!("NOT_FOUND"))
    );
    for query in ["?limit=0", "?limit=x", "?limit=2&limit=3"] {
        let (status, bad) = history_page(&server, "kept", query).await;
        assert_eq!(
            (status, &bad["error"]["field"]),
            (400, &json!("limit")),
            "{query}"
        );
    }
    let seeker = token("alice", Role::Seeker);
    let (status, _) = http(&server, "GET", "/v1/tasks/kept/events", Some(&seeker), None).await;
    assert_eq!(status, 403);
    drop((alice, c1, ops));
    server.shutdown().await;

    let server = start_with(archiving(options)).await;
    let (_, after_restart) = history_page(&server, "kept", "").await;
    assert_eq!(pairs(&after_restart), pairs(&whole));
    server.shutdown().await;
}

#[tokio::test]
async fn a_task_history_outlives_memory_on_sqlite() {
    a_task_history_outlives_memory(options(fresh_dir("history"))).await;
}

#[tokio::test]
async fn a_task_history_outlives_memory_on_postgres() {
    let url = fresh_postgres("history").await;
    let mut o = options(fresh_dir("history-pg"));
    o.database_url = Some(url.clone());
    a_task_history_outlives_memory(o).await;
    drop_postgres(&url).await;
}

/// `task_history` pages the same events whatever the index has reached and wherever a page is
/// cut: for every index position `k` over a journal where two tasks interleave, and pages of
/// 1, 2, 3 and 1000, the pages put together are the task's events, each once, in order.
#[tokio::test]
async fn a_task_history_is_the_same_at_every_index_position_and_page_size() {
    let dir = fresh_dir("history-index");
    let server = start_with(archiving(options(dir.clone()))).await;
    register_coach(&server, "c1", 4.0, false).await;
    let mut alice = Client::connect(&server, "alice", Role::Seeker).await;
    let mut c1 = Client::connect(&server, "c1", Role::Coach).await;
    alice.ok("p1", post("one")).await;
    alice.ok("p2", post("two")).await;
    for (n, task) in ["one", "two", "one", "two", "one"].into_iter().enumerate() {
        let bid = json!({"type": "place_bid", "task_id": task, "amount": 2100 + n, "eta_hours": 3});
        c1.ok(&format!("b{n}"), bid).await;
    }
    drop((alice, c1));
    server.shutdown().await;

    let journal = gavel_storage::Store::open_sqlite(&dir).await.unwrap();
    let rows = journal.read_after(0, 10_000).await.unwrap();
    let end = rows.last().unwrap().seq;
    let of = |task: &str| -> Vec<u64> {
        rows.iter()
            .filter(|r| {
                gavel_gateway::history::task_event(r)
                    .unwrap()
                    .is_some_and(|(id, _)| id.as_str() == task)
            })
            .map(|r| r.seq)
            .collect()
    };
    let fresh = gavel_storage::Store::open_sqlite(&fresh_dir("history-index-copy"))
        .await
        .unwrap();
    fresh.append(&rows).await.unwrap();
    // The append indexed every row; dropped, the index is walked up one position at a time.
    fresh.task_index_reset().await.unwrap();
    for k in 0..=end {
        let upto = rows.iter().take_while(|r| r.seq <= k).count();
        fresh.index_rows(&rows[..upto], k).await.unwrap();
        for task in ["one", "two"] {
            let id = gavel_protocol::TaskId::new(task).unwrap();
            for limit in [1, 2, 3, 1000] {
                let (mut seen, mut after) = (Vec::new(), 0);
                loop {
                    let page =
                        gavel_gateway::history::task_history(&fresh, &id, after, limit, u64::MAX)
                            .await
                            .unwrap();
                    assert!(page.events.len() <= limit as usize);
                    assert_eq!(page.upto, end);
                    seen.extend(page.events.iter().map(|e| e.seq));
                    match page.next {
                        Some(next) => after = next,
                        None => break,
                    }
                }
                assert_eq!(
                    seen,
                    of(task),
                    "index at {k}, pages of {limit}, task {task}"
                );
            }
        }
    }
}
