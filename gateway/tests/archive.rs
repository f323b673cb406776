//! History that outlives memory (contract §9): final tasks leave the engine after
//! `[retention] final_task_minutes` and are served from the archive — to their owner, their
//! last coach and admins only — by `subscribe`, `GET /v1/tasks/{id}` and `list_tasks`, the same
//! after a restart and after `gavel archive rebuild`. On SQLite and on Postgres. (A task's
//! event history, archived or not, is `archive_history.rs`.)

mod common;
#[path = "archive_support/mod.rs"]
mod support;

use common::*;
use gavel_gateway::app::{Server, ServerOptions};
use gavel_protocol::Role;
use serde_json::{Value, json};
use support::{archiving, ids, list_all, list_page, post, subscribe_task, until_archived};

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

/// The tasks that end in [`history`] and are archived, newest first.
const ARCHIVED: [&str; 2] = ["gone", "done"];

/// What the archive must read as at every point of the test, learnt at the first.
struct Expected {
    /// Every task, newest first: alice's and bob's `bobs`.
    all: Vec<String>,
    /// The owner's final view of `done`, as first served.
    done: Option<Value>,
    /// The admin's listing of the archived tasks, as first served.
    archived: Option<Vec<Value>>,
}

impl Expected {
    fn new() -> Self {
        let all = ["bobs", "live2", "live1", "gone", "done"];
        Expected {
            all: all.map(String::from).to_vec(),
            done: None,
            archived: None,
        }
    }

    fn alices(&self) -> Vec<&str> {
        self.all
            .iter()
            .map(String::as_str)
            .filter(|t| *t != "bobs")
            .collect()
    }

    /// `value` is what was seen the first time (and is kept as such then).
    fn same(slot: &mut Option<Value>, value: &Value, what: &str) {
        match slot {
            None => *slot = Some(value.clone()),
            Some(first) => assert_eq!(value, first, "{what}: the same as first served"),
        }
    }
}

/// Everything issue 11 asks of the archive, checked once the tasks are archived, after a
/// restart and after `gavel archive rebuild` (`point` names which).
async fn the_archive_reads_the_same(server: &Server, expected: &mut Expected, point: &str) {
    the_owner_and_the_last_coach_read_the_final_view(server, expected, point).await;
    nobody_else_reads_it(server).await;
    pages_cross_live_and_archived_tasks_while_tasks_are_posted(server, expected, point).await;
    listings_filter_and_refuse(server, expected).await;
    let mut ops = Client::connect(server, "ops", Role::Admin).await;
    let archived: Vec<Value> = list_all(&mut ops, json!({}), 100)
        .await
        .into_iter()
        .filter(|t| t["archived"] == true)
        .collect();
    assert_eq!(ids(&archived), ARCHIVED, "{point}");
    match &expected.archived {
        None => expected.archived = Some(archived),
        Some(first) => assert_eq!(&archived, first, "{point}: the same archived rows"),
    }
}

/// The owner subscribes and gets the final view with `archived: true` (a resume: the same,
/// with `reset`); the admin's `GET` is that view; the last coach sees its own bid only; the
/// seeker's dashboard holds only what is still in memory.
async fn the_owner_and_the_last_coach_read_the_final_view(
    server: &Server,
    expected: &mut Expected,
    point: &str,
) {
    let mut alice = Client::connect(server, "alice", Role::Seeker).await;
    let done = subscribe_task(&mut alice, "done", None).await;
    assert_eq!(done["type"], "ok", "{point}: {done}");
    let view = &done["result"]["snapshot"];
    assert_eq!(
        (&view["archived"], &view["status"], &view["escrow"]),
        (
            &json!(true),
            &json!("completed"),
            &json!({"held": 2400, "released": 2400, "refunded": 0})
        ),
        "{point}"
    );
    assert!(done["result"].get("reset").is_none());
    Expected::same(&mut expected.done, view, point);
    let resumed = subscribe_task(&mut alice, "done", Some(3)).await;
    assert_eq!(resumed["result"]["reset"], true, "{point}: {resumed}");
    assert_eq!(&resumed["result"]["snapshot"], view);
    let gone = subscribe_task(&mut alice, "gone", None).await;
    let gone = &gone["result"]["snapshot"];
    assert_eq!(
        (&gone["archived"], &gone["status"]),
        (&json!(true), &json!("canceled"))
    );
    let dashboard = alice
        .ok(
            "dash",
            json!({"type": "subscribe", "topic": "seeker:alice"}),
        )
        .await;
    let in_memory: Vec<&str> = expected
        .alices()
        .into_iter()
        .filter(|t| !ARCHIVED.contains(t))
        .collect();
    let tasks = dashboard["snapshot"]["tasks"].as_array().unwrap();
    assert_eq!(ids(tasks), in_memory, "{point}: the dashboard");

    let admin = token("ops", Role::Admin);
    let (status, body) = http(server, "GET", "/v1/tasks/done", Some(&admin), None).await;
    assert_eq!((status, &body), (200, view), "{point}");
    let (status, _) = http(server, "GET", "/v1/tasks/never", Some(&admin), None).await;
    assert_eq!(status, 404);

    let mut c1 = Client::connect(server, "c1", Role::Coach).await;
    let coach_view = subscribe_task(&mut c1, "done", None).await;
    let bids = coach_view["result"]["snapshot"]["bids"].as_array().unwrap();
    assert_eq!(bids.len(), 1, "{point}: {coach_view}");
    assert_eq!(
        (&bids[0]["coach_id"], &bids[0]["status"]),
        (&json!("c1"), &json!("accepted"))
    );
}

/// The rules of §3 hold for archived tasks: another seeker or coach is refused exactly as for
/// a task that never existed, and only admins hear NOT_FOUND.
async fn nobody_else_reads_it(server: &Server) {
    for (who, role) in [("bob", Role::Seeker), ("c2", Role::Coach)] {
        let mut other = Client::connect(server, who, role).await;
        let refused = subscribe_task(&mut other, "done", None).await;
        assert_eq!(refused["code"], "FORBIDDEN", "{who}: {refused}");
        let missing = subscribe_task(&mut other, "never", None).await;
        assert_eq!(missing["code"], "FORBIDDEN", "{who}: {missing}");
    }
    let mut ops = Client::connect(server, "ops", Role::Admin).await;
    let gone = subscribe_task(&mut ops, "gone", None).await;
    assert_eq!(gone["result"]["snapshot"]["status"], "canceled");
    let never = subscribe_task(&mut ops, "never", None).await;
    assert_eq!(never["code"], "NOT_FOUND");
}

/// Alice pages her tasks one at a time and posts a task after every page: the pages visit
/// every task she had when she started exactly once, newest first, archived ones flagged.
async fn pages_cross_live_and_archived_tasks_while_tasks_are_posted(
    server: &Server,
    expected: &mut Expected,
    point: &str,
) {
    let mut alice = Client::connect(server, "alice", Role::Seeker).await;
    let (mut seen, mut posted, mut before) = (Vec::new(), Vec::new(), Value::Null);
    for page in 0.. {
        assert!(page <= expected.all.len(), "{point}: the paging never ends");
        let id = format!("{point}-l{page}");
        let (tasks, next) = list_page(&mut alice, &id, &json!({}), 1, &before).await;
        seen.extend(tasks);
        let task = format!("{point}-new{page}");
        alice.ok(&format!("{point}-n{page}"), post(&task)).await;
        posted.insert(0, task);
        before = next;
        if before.is_null() {
            break;
        }
    }
    assert_eq!(ids(&seen), expected.alices(), "{point}: each task once");
    for task in &seen {
        let archived = ARCHIVED.contains(&task["task_id"].as_str().unwrap());
        let flag = if archived { json!(true) } else { Value::Null };
        assert_eq!(task["archived"], flag, "{point}: {task}");
    }
    posted.append(&mut expected.all);
    expected.all = posted;
}

/// Filters by status, owner and coach reach into the archive; refusals are the same.
async fn listings_filter_and_refuse(server: &Server, expected: &Expected) {
    let mut alice = Client::connect(server, "alice", Role::Seeker).await;
    let completed = list_all(&mut alice, json!({"status": "completed"}), 20).await;
    assert_eq!(ids(&completed), ["done"]);
    let ended = list_all(&mut alice, json!({"status": ["canceled", "completed"]}), 20).await;
    assert_eq!(ids(&ended), ARCHIVED);
    let mut c1 = Client::connect(server, "c1", Role::Coach).await;
    let coach_list = list_all(&mut c1, json!({}), 20).await;
    assert_eq!(ids(&coach_list), ["done"]);
    assert_eq!(coach_list[0]["bids"][0]["coach_id"], "c1");
    let mut ops = Client::connect(server, "ops", Role::Admin).await;
    let bobs = list_all(&mut ops, json!({"owner": "bob"}), 20).await;
    assert_eq!(ids(&bobs), ["bobs"]);
    let by_coach = list_all(&mut ops, json!({"coach_id": "c1"}), 20).await;
    assert_eq!(ids(&by_coach), ["done"]);
    let everything = list_all(&mut ops, json!({}), 3).await;
    assert_eq!(ids(&everything), expected.all);
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
}

/// `gavel archive rebuild` on the stopped server's storage.
fn rebuild_archive(options: &ServerOptions) {
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
}

async fn archived_tasks_stay_readable(options: ServerOptions) {
    let server = start_with(archiving(options.clone())).await;
    history(&server).await;
    let mut expected = Expected::new();
    the_archive_reads_the_same(&server, &mut expected, "archived").await;
    server.shutdown().await;

    let server = start_with(archiving(options.clone())).await;
    the_archive_reads_the_same(&server, &mut expected, "restarted").await;
    server.shutdown().await;

    rebuild_archive(&options);
    let server = start_with(archiving(options)).await;
    the_archive_reads_the_same(&server, &mut expected, "rebuilt").await;
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

/// Paging with `next` visits every task that existed at the first page exactly once, even
/// while tasks are archived between pages (protocol.md §9): a task archived after its page
/// was read does not come back; one archived before its page is read comes from the archive,
/// in its place; a task posted meanwhile is not in the pages.
async fn pages_hold_while_tasks_are_archived(options: ServerOptions) {
    let server = start_with(archiving(options)).await;
    let mut alice = Client::connect(&server, "alice", Role::Seeker).await;
    for n in 0..6 {
        alice.ok(&format!("p{n}"), post(&format!("t{n}"))).await;
    }
    let end = async |alice: &mut Client, task: &str| {
        let cancel = json!({"type": "cancel_task", "task_id": task});
        alice.ok(&format!("cancel-{task}"), cancel).await;
        until_archived(alice, task).await;
    };
    let (mut seen, next) = list_page(&mut alice, "l0", &json!({}), 2, &Value::Null).await;
    end(&mut alice, "t4").await;
    end(&mut alice, "t2").await;
    let (page, next) = list_page(&mut alice, "l1", &json!({}), 2, &next).await;
    seen.extend(page);
    end(&mut alice, "t1").await;
    alice.ok("p6", post("t6")).await;
    let (page, next) = list_page(&mut alice, "l2", &json!({}), 2, &next).await;
    seen.extend(page);
    assert_eq!(next, Value::Null, "the last page");
    assert_eq!(ids(&seen), ["t5", "t4", "t3", "t2", "t1", "t0"]);
    let flags: Vec<&Value> = seen.iter().map(|t| &t["archived"]).collect();
    let (live, archived) = (&Value::Null, &json!(true));
    assert_eq!(flags, [live, live, live, archived, archived, live]);
    drop(alice);
    server.shutdown().await;
}

#[tokio::test]
async fn pages_hold_while_tasks_are_archived_on_sqlite() {
    pages_hold_while_tasks_are_archived(options(fresh_dir("archive-paging"))).await;
}

#[tokio::test]
async fn pages_hold_while_tasks_are_archived_on_postgres() {
    let url = fresh_postgres("archive_paging").await;
    let mut o = options(fresh_dir("archive-paging-pg"));
    o.database_url = Some(url.clone());
    pages_hold_while_tasks_are_archived(o).await;
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
