//! History that outlives memory (contract §9): final tasks leave the engine after
//! `[retention] final_task_minutes` and are served from the archive — to their owner, their
//! last coach and admins only — by `subscribe`, `GET /v1/tasks/{id}` and `list_tasks`, the same
//! after a restart and after `gavel archive rebuild`. On SQLite and on Postgres.

mod common;

use std::time::Duration;

use common::*;
use gavel_gateway::app::{Server, ServerOptions};
use gavel_protocol::Role;
use serde_json::{Value, json};

/// 600× engine time: a retention of one minute passes in 0.1 s.
fn archiving(mut options: ServerOptions) -> ServerOptions {
    options.config.limits.commands_per_minute = 10_000_000;
    options.config.limits.command_burst = 1_000_000;
    options.config.limits.subscribes_per_minute = 1_000_000;
    options.config.retention.final_task_minutes = 1;
    options.time_scale = 600.0;
    options
}

fn post(task_id: &str) -> Value {
    json!({"type": "post_task", "task_id": task_id, "resume_id": "r", "urgency": "flexible"})
}

/// Every page of `list_tasks` with `filter`, `limit` at a time; `between` runs after each page.
async fn list_all(client: &mut Client, filter: Value, limit: u32) -> Vec<Value> {
    let mut tasks = Vec::new();
    let mut before = Value::Null;
    for page in 0.. {
        let mut frame = filter.clone();
        frame["type"] = json!("list_tasks");
        frame["limit"] = json!(limit);
        if !before.is_null() {
            frame["before"] = before.clone();
        }
        let result = client.ok(&format!("page-{page}"), frame).await;
        tasks.extend(result["tasks"].as_array().unwrap().iter().cloned());
        before = result["next"].clone();
        if before.is_null() {
            return tasks;
        }
    }
    unreachable!()
}

fn ids(tasks: &[Value]) -> Vec<&str> {
    tasks
        .iter()
        .map(|t| t["task_id"].as_str().unwrap())
        .collect()
}

/// Waits until the owner's listing shows `task` archived (the engine archives on its own
/// clock; the listing is where it becomes visible).
async fn until_archived(client: &mut Client, task: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let listed = list_all(client, json!({}), 100).await;
        if listed
            .iter()
            .any(|t| t["task_id"] == task && t["archived"] == true)
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{task} was never archived"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn subscribe_task(client: &mut Client, task: &str, since: Option<u64>) -> Value {
    let mut frame = json!({"type": "subscribe", "topic": format!("task:{task}")});
    if let Some(since) = since {
        frame["since"] = json!(since);
    }
    client.request("sub", frame).await
}

/// Builds the market: alice's `done` (completed by c1) and `gone` (canceled) end and are
/// archived; `live1`, `live2` stay; bob has `bobs`.
async fn history(server: &Server) {
    register_coach(server, "c1", 4.0, false).await;
    register_coach(server, "c2", 4.0, false).await;
    let mut alice = Client::connect(server, "alice", Role::Seeker).await;
    let mut c1 = Client::connect(server, "c1", Role::Coach).await;
    alice.ok("p1", post("done")).await;
    let bid = c1
        .ok(
            "b",
            json!({"type": "place_bid", "task_id": "done", "amount": 2400, "eta_hours": 10}),
        )
        .await;
    alice
        .ok(
            "a",
            json!({"type": "accept_bid", "task_id": "done", "bid_id": bid["bid_id"]}),
        )
        .await;
    c1.ok("s", json!({"type": "start_work", "task_id": "done"}))
        .await;
    c1.ok(
        "v",
        json!({"type": "submit_verification", "task_id": "done"}),
    )
    .await;
    alice
        .ok(
            "ok",
            json!({"type": "accept_verification", "task_id": "done", "rating": 4}),
        )
        .await;
    alice.ok("p2", post("gone")).await;
    alice
        .ok("c", json!({"type": "cancel_task", "task_id": "gone"}))
        .await;
    alice.ok("p3", post("live1")).await;
    alice.ok("p4", post("live2")).await;
    let mut bob = Client::connect(server, "bob", Role::Seeker).await;
    bob.ok("p", post("bobs")).await;
    until_archived(&mut alice, "done").await;
    until_archived(&mut alice, "gone").await;
}

async fn archived_tasks_stay_readable(options: ServerOptions) {
    let server = start_with(archiving(options.clone())).await;
    history(&server).await;
    let mut alice = Client::connect(&server, "alice", Role::Seeker).await;
    let done = subscribe_task(&mut alice, "done", None).await;
    assert_eq!(done["type"], "ok", "{done}");
    let view = &done["result"]["snapshot"];
    assert_eq!(
        (&view["archived"], &view["status"], &view["escrow"]),
        (
            &json!(true),
            &json!("completed"),
            &json!({"held": 2400, "released": 2400, "refunded": 0})
        )
    );
    assert!(done["result"].get("reset").is_none());
    let resumed = subscribe_task(&mut alice, "done", Some(3)).await;
    assert_eq!(resumed["result"]["reset"], true, "{resumed}");
    // The rules of §3 hold for archived tasks: the last coach sees its own view, nobody else
    // but admins sees anything, and only admins hear NOT_FOUND.
    let mut c1 = Client::connect(&server, "c1", Role::Coach).await;
    let coach_view = subscribe_task(&mut c1, "done", None).await;
    let bids = coach_view["result"]["snapshot"]["bids"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(bids.len(), 1, "{coach_view}");
    assert_eq!(
        (&bids[0]["coach_id"], &bids[0]["status"]),
        (&json!("c1"), &json!("accepted"))
    );
    for (who, role) in [("bob", Role::Seeker), ("c2", Role::Coach)] {
        let mut other = Client::connect(&server, who, role).await;
        let refused = subscribe_task(&mut other, "done", None).await;
        assert_eq!(refused["code"], "FORBIDDEN", "{who}: {refused}");
        let missing = subscribe_task(&mut other, "never", None).await;
        assert_eq!(missing["code"], "FORBIDDEN", "{who}: {missing}");
    }
    let mut ops = Client::connect(&server, "ops", Role::Admin).await;
    assert_eq!(
        subscribe_task(&mut ops, "gone", None).await["result"]["snapshot"]["status"],
        "canceled"
    );
    assert_eq!(
        subscribe_task(&mut ops, "never", None).await["code"],
        "NOT_FOUND"
    );
    let admin = token("ops", Role::Admin);
    let (status, body) = http(&server, "GET", "/v1/tasks/done", Some(&admin), None).await;
    assert_eq!((status, &body["archived"]), (200, &json!(true)), "{body}");
    assert_eq!(
        http(&server, "GET", "/v1/tasks/never", Some(&admin), None)
            .await
            .0,
        404
    );

    // Paging visits every task exactly once, newest first, while new tasks are posted.
    let mut tasks = Vec::new();
    let mut before = Value::Null;
    for page in 0..10 {
        let mut frame = json!({"type": "list_tasks", "limit": 1});
        if !before.is_null() {
            frame["before"] = before.clone();
        }
        let result = alice.ok(&format!("l{page}"), frame).await;
        tasks.extend(result["tasks"].as_array().unwrap().iter().cloned());
        alice
            .ok(&format!("n{page}"), post(&format!("new{page}")))
            .await;
        before = result["next"].clone();
        if before.is_null() {
            break;
        }
    }
    assert_eq!(ids(&tasks), ["live2", "live1", "gone", "done"]);
    let flags: Vec<&Value> = tasks.iter().map(|t| &t["archived"]).collect();
    assert_eq!(
        flags,
        [&Value::Null, &Value::Null, &json!(true), &json!(true)]
    );
    let completed = list_all(&mut alice, json!({"status": "completed"}), 20).await;
    assert_eq!(ids(&completed), ["done"]);
    let ended = list_all(&mut alice, json!({"status": ["canceled", "completed"]}), 20).await;
    assert_eq!(ids(&ended), ["gone", "done"]);
    let coach_list = list_all(&mut c1, json!({}), 20).await;
    assert_eq!(ids(&coach_list), ["done"]);
    assert_eq!(coach_list[0]["bids"][0]["coach_id"], "c1");
    let bobs = list_all(&mut ops, json!({"owner": "bob"}), 20).await;
    assert_eq!(ids(&bobs), ["bobs"]);
    let by_coach = list_all(&mut ops, json!({"coach_id": "c1"}), 20).await;
    assert_eq!(ids(&by_coach), ["done"]);
    let everything = list_all(&mut ops, json!({}), 3).await;
    assert_eq!(everything.len(), 5 + tasks.len(), "{:?}", ids(&everything));
    let refused = alice
        .request("x", json!({"type": "list_tasks", "owner": "bob"}))
        .await;
    assert_eq!(refused["code"], "FORBIDDEN");
    let bad = alice
        .request("y", json!({"type": "list_tasks", "before": "garbage"}))
        .await;
    assert_eq!(
        (&bad["code"], &bad["field"]),
        (&json!("VALIDATION_ERROR"), &json!("before"))
    );

    let archived_of = |tasks: &[Value]| -> Vec<Value> {
        tasks
            .iter()
            .filter(|t| t["archived"] == true)
            .cloned()
            .collect()
    };
    let before_restart = archived_of(&list_all(&mut ops, json!({}), 100).await);
    assert_eq!(ids(&before_restart), ["gone", "done"]);
    drop((alice, c1, ops));
    server.shutdown().await;

    // After a restart, and after the archive is rebuilt from the journal: the same rows.
    let server = start_with(archiving(options.clone())).await;
    let mut ops = Client::connect(&server, "ops", Role::Admin).await;
    assert_eq!(
        archived_of(&list_all(&mut ops, json!({}), 100).await),
        before_restart
    );
    drop(ops);
    server.shutdown().await;
    let mut rebuild = std::process::Command::new(env!("CARGO_BIN_EXE_gavel"));
    rebuild
        .args(["archive", "rebuild", "--data-dir"])
        .arg(&options.data_dir);
    if let Some(url) = &options.database_url {
        rebuild.args(["--database-url", url]);
    }
    let out = rebuild.output().expect("gavel archive rebuild runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 archived tasks"));
    let server = start_with(archiving(options)).await;
    let mut ops = Client::connect(&server, "ops", Role::Admin).await;
    assert_eq!(
        archived_of(&list_all(&mut ops, json!({}), 100).await),
        before_restart
    );
    let mut alice = Client::connect(&server, "alice", Role::Seeker).await;
    assert_eq!(
        subscribe_task(&mut alice, "done", None).await["result"]["snapshot"],
        *view
    );
    drop((ops, alice));
    server.shutdown().await;
}

#[tokio::test]
async fn archived_tasks_stay_readable_on_sqlite() {
    archived_tasks_stay_readable(options(fresh_dir("archive"))).await;
}

#[tokio::test]
async fn archived_tasks_stay_readable_on_postgres() {
    let url = fresh_postgres("archive").await;
    let mut o = options(fresh_dir("archive-pg"));
    o.database_url = Some(url.clone());
    archived_tasks_stay_readable(o).await;
    drop_postgres(&url).await;
}

/// A journal written before the archive existed (its `tasks_archived` events carry no rows)
/// gets its archive rebuilt when the server starts: the old task is served as archived.
#[tokio::test]
async fn a_journal_from_before_the_archive_is_backfilled_at_start() {
    use gavel_engine::{Actor, Command, Engine, EngineConfig, EventKind, Request};
    use gavel_protocol::command::{CancelTask, PostTask};
    use gavel_protocol::{TaskId, Urgency, UserId};

    let dir = fresh_dir("archive-legacy");
    let store = gavel_storage::Store::open_sqlite(&dir).await.unwrap();
    let mut engine = Engine::new(EngineConfig {
        archive_after: Some(60_000),
        ..EngineConfig::default()
    });
    let alice = Actor::new(UserId::new("alice").unwrap(), Role::Seeker);
    let now = now_secs() * 1000;
    let run = |engine: &mut Engine, command| {
        let request = Request {
            actor: alice.clone(),
            request_id: None,
            command,
        };
        let outcome = engine.execute(&request, now);
        assert!(outcome.reply.is_ok(), "{:?}", outcome.reply);
        outcome.events
    };
    let mut events = run(
        &mut engine,
        Command::PostTask(PostTask {
            resume_id: "r".into(),
            task_type: None,
            urgency: Urgency::Flexible,
            base_price: None,
            award: None,
            task_id: Some(TaskId::new("old").unwrap()),
            owner: None,
        }),
    );
    events.extend(run(
        &mut engine,
        Command::CancelTask(CancelTask {
            task_id: TaskId::new("old").unwrap(),
            reason: None,
        }),
    ));
    events.extend(engine.fire(now + 120_000));
    let mut legacy = 0;
    for (_, event) in &mut events {
        if let EventKind::TasksArchived { archived, .. } = &mut event.kind {
            archived.clear();
            legacy += 1;
        }
    }
    assert_eq!(legacy, 1, "the task was archived");
    let rows: Vec<_> = events
        .iter()
        .map(|(seq, e)| gavel_storage::StoredEvent::encode(*seq, e))
        .collect();
    store.append(&rows).await.unwrap();
    assert_eq!(store.archive_count().await.unwrap(), 0);
    drop(store);

    let server = start_with(archiving(options(dir))).await;
    let (status, view) = http(
        &server,
        "GET",
        "/v1/tasks/old",
        Some(&token("ops", Role::Admin)),
        None,
    )
    .await;
    assert_eq!(
        (status, &view["archived"], &view["status"]),
        (200, &json!(true), &json!("canceled")),
        "{view}"
    );
    let mut owner = Client::connect(&server, "alice", Role::Seeker).await;
    let listed = list_all(&mut owner, json!({}), 20).await;
    assert_eq!(ids(&listed), ["old"]);
    drop(owner);
    server.shutdown().await;
}

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
    for k in 0..=end {
        let indexed: Vec<(String, u64)> = rows
            .iter()
            .filter(|r| r.seq <= k)
            .filter_map(|r| {
                let (id, _) = gavel_gateway::history::task_event(r).unwrap()?;
                Some((id.to_string(), r.seq))
            })
            .collect();
        fresh.index_task_events(&indexed, k).await.unwrap();
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
