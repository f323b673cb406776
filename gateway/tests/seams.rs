//! The pipeline's seams under faults (a fault-injecting journal writer of our own), the limits
//! of contract §13 at their bounds and one past, and crash-only on a pipeline panic.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use gavel_gateway::app::{Server, ServerOptions};
use gavel_protocol::Role;
use gavel_storage::{AppendFault, AppendFaults};
use serde_json::{Value, json};

fn post(i: usize) -> Value {
    json!({"type": "post_task", "resume_id": format!("cv-{i}"), "urgency": "standard"})
}

/// Every `seq` on the admin topic: the admin sees every journaled event, so its stream has no
/// hole exactly when the published stream has none.
fn seqs(frames: &[Value]) -> Vec<u64> {
    frames.iter().map(|f| f["seq"].as_u64().unwrap()).collect()
}

fn contiguous(seqs: &[u64]) -> bool {
    seqs.windows(2).all(|w| w[1] == w[0] + 1)
}

/// A commit that landed although the writer saw an error is published, not refused: the
/// sender gets `ok`, subscribers see its event, and a restart still has it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_that_landed_despite_an_error_is_published_and_acknowledged() {
    let dir = fresh_dir("seam-after");
    commit_landed_despite_an_error(|| options(dir.clone())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_that_landed_despite_an_error_is_published_and_acknowledged_on_postgres() {
    let url = fresh_postgres("seam_after_pg").await;
    let dir = fresh_dir("seam-after-pg");
    commit_landed_despite_an_error(|| ServerOptions {
        database_url: Some(url.clone()),
        ..options(dir.clone())
    })
    .await;
    drop_postgres(&url).await;
}

async fn commit_landed_despite_an_error(make: impl Fn() -> ServerOptions) {
    let faults = Arc::new(AppendFaults::default());
    let mut opts = make();
    opts.faults.appends = Some(faults.clone());
    let server = Server::start(opts).await.unwrap();
    let mut admin = Client::connect(&server, "ops", Role::Admin).await;
    let s0 = admin
        .ok("s", json!({"type": "subscribe", "topic": "admin"}))
        .await["seq"]
        .as_u64()
        .unwrap();
    let mut sally = Client::connect(&server, "sally", Role::Seeker).await;
    let a = sally.ok("a", post(0)).await;
    faults.push(AppendFault::FailAfterCommit);
    let b = sally.ok("b", post(1)).await;
    let c = sally.ok("c", post(2)).await;
    let events = admin.drain_events().await;
    let opened: Vec<&Value> = events.iter().map(|f| &f["event"]["task_id"]).collect();
    assert_eq!(opened, [&a["task_id"], &b["task_id"], &c["task_id"]]);
    let seen = seqs(&events);
    assert_eq!(seen.first(), Some(&(s0 + 1)));
    assert!(contiguous(&seen), "{seen:?}");
    server.shutdown().await;
    assert_kept_after_restart(make(), &[&a, &b, &c]).await;
}

/// A commit that did not land is refused (`UNAVAILABLE`), the engine rebuilds from the
/// journal, and the stream carries on at the next position: no hole, no duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_that_did_not_land_is_refused_and_the_stream_has_no_hole() {
    let dir = fresh_dir("seam-before");
    commit_that_did_not_land(|| options(dir.clone())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_that_did_not_land_is_refused_and_the_stream_has_no_hole_on_postgres() {
    let url = fresh_postgres("seam_before_pg").await;
    let dir = fresh_dir("seam-before-pg");
    commit_that_did_not_land(|| ServerOptions {
        database_url: Some(url.clone()),
        ..options(dir.clone())
    })
    .await;
    drop_postgres(&url).await;
}

async fn commit_that_did_not_land(make: impl Fn() -> ServerOptions) {
    let faults = Arc::new(AppendFaults::default());
    let mut opts = make();
    opts.faults.appends = Some(faults.clone());
    let server = Server::start(opts).await.unwrap();
    let mut admin = Client::connect(&server, "ops", Role::Admin).await;
    admin
        .ok("s", json!({"type": "subscribe", "topic": "admin"}))
        .await;
    let mut sally = Client::connect(&server, "sally", Role::Seeker).await;
    let a = sally.ok("a", post(0)).await;
    faults.push(AppendFault::FailBeforeCommit);
    let refused = sally.request("b", post(1)).await;
    assert_eq!(refused["code"], "UNAVAILABLE", "{refused}");
    let c = ok_once_rebuilt(&mut sally, post(2)).await;
    let events = admin.drain_events().await;
    let opened: Vec<&Value> = events.iter().map(|f| &f["event"]["task_id"]).collect();
    assert_eq!(opened, [&a["task_id"], &c["task_id"]]);
    assert!(contiguous(&seqs(&events)), "{events:?}");
    server.shutdown().await;
    assert_kept_after_restart(make(), &[&a, &c]).await;
}

/// The engine rebuilds after a refused commit; commands are refused (`UNAVAILABLE`) until it
/// has, then succeed: the result of the first `frame` that does.
async fn ok_once_rebuilt(client: &mut Client, frame: Value) -> Value {
    for attempt in 0..100 {
        let reply = client.request(&format!("r{attempt}"), frame.clone()).await;
        if reply["type"] == "ok" {
            return reply["result"].clone();
        }
        assert_eq!(reply["code"], "UNAVAILABLE", "{reply}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server did not recover");
}

/// Starts a server on `opts` (the same store) and checks every posted task in `tasks` is
/// there: acknowledged means durable.
async fn assert_kept_after_restart(opts: ServerOptions, tasks: &[&Value]) {
    let server = Server::start(opts).await.unwrap();
    let admin_token = token("ops", Role::Admin);
    for task in tasks {
        let id = task["task_id"].as_str().unwrap();
        let (status, _) = http(
            &server,
            "GET",
            &format!("/v1/tasks/{id}"),
            Some(&admin_token),
            None,
        )
        .await;
        assert_eq!(status, 200, "acknowledged {id} survived the restart");
    }
    server.shutdown().await;
}

/// A journal write that hangs on real Postgres (another session holds a lock on the journal)
/// fails at the statement timeout: its command is refused once the journal's end can be read
/// again (it did not land), the engine rebuilds, and the stream carries on with no hole and no
/// duplicate; what was acknowledged survives a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_write_that_times_out_is_refused_and_the_stream_has_no_hole_on_postgres() {
    use sqlx::Connection;
    let url = fresh_postgres("seam_timeout_pg").await;
    let make = || ServerOptions {
        database_url: Some(url.clone()),
        ..options(fresh_dir("seam-timeout-pg"))
    };
    let mut opts = make();
    opts.faults.postgres_statement_timeout = Some(Duration::from_millis(300));
    let server = Server::start(opts).await.unwrap();
    let mut admin = Client::connect(&server, "ops", Role::Admin).await;
    admin
        .ok("s", json!({"type": "subscribe", "topic": "admin"}))
        .await;
    let mut sally = Client::connect(&server, "sally", Role::Seeker).await;
    let a = sally.ok("a", post(0)).await;

    let mut watcher = sqlx::PgConnection::connect(&url).await.unwrap();
    let mut locker = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut locker).await.unwrap();
    sqlx::query("LOCK TABLE journal IN ACCESS EXCLUSIVE MODE")
        .execute(&mut locker)
        .await
        .unwrap();
    sally
        .send(json!({"type": "post_task", "id": "b", "resume_id": "cv-1", "urgency": "standard"}))
        .await;
    // Hold the lock until the append has failed at the timeout: the writer then reads the
    // journal's end, and that read waits on the lock, again and again, until it is released
    // (Postgres's own view of its sessions is the barrier; nothing else reads the end here).
    wait_for_end_read(&mut watcher).await;
    sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
    drop(locker);
    // The refusal comes once the journal's end can be read again: "b" did not land.
    let refused = sally.next().await;
    assert_eq!(refused["id"], "b", "{refused}");
    assert_eq!(refused["code"], "UNAVAILABLE", "{refused}");
    let c = ok_once_rebuilt(&mut sally, post(2)).await;
    let events = admin.drain_events().await;
    let opened: Vec<&Value> = events.iter().map(|f| &f["event"]["task_id"]).collect();
    assert_eq!(opened, [&a["task_id"], &c["task_id"]]);
    assert!(contiguous(&seqs(&events)), "{events:?}");
    server.shutdown().await;
    assert_kept_after_restart(make(), &[&a, &c]).await;
    drop_postgres(&url).await;
}

/// Waits until the journal writer's read of the journal's end waits on a lock.
async fn wait_for_end_read(conn: &mut sqlx::PgConnection) {
    let sql = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
               AND wait_event_type = 'Lock' AND query = 'SELECT MAX(seq) FROM journal'";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (n,): (i64,) = sqlx::query_as(sql).fetch_one(&mut *conn).await.unwrap();
        if n > 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the writer never read the journal's end after its append timed out"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn metric(server: &Server, name: &str) -> f64 {
    let (_, text) = http_text(server, "GET", "/metrics", None).await;
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} is exported"))
}

/// A stalled journal fills its queue (one batch here) while deadlines keep firing: the engine
/// waits for room instead of failing the batch, so nothing is refused, nothing rebuilt, and
/// every deadline event is published once, in order; a restart keeps every acknowledged post.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_journal_queue_with_deadline_events_waits_instead_of_failing() {
    let dir = fresh_dir("seam-full");
    full_queue_with_deadlines(|| options_unlimited(dir.clone())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_journal_queue_with_deadline_events_waits_instead_of_failing_on_postgres() {
    let url = fresh_postgres("seam_full_pg").await;
    let dir = fresh_dir("seam-full-pg");
    full_queue_with_deadlines(|| ServerOptions {
        database_url: Some(url.clone()),
        ..options_unlimited(dir.clone())
    })
    .await;
    drop_postgres(&url).await;
}

async fn full_queue_with_deadlines(make: impl Fn() -> ServerOptions) {
    let faults = Arc::new(AppendFaults::default());
    let mut opts = make();
    // 600×: a 30-minute bidding window closes after 3 s.
    opts.time_scale = 600.0;
    opts.faults.appends = Some(faults.clone());
    opts.faults.journal_queue = Some(1);
    let server = Server::start(opts).await.unwrap();
    let mut admin = Client::connect(&server, "ops", Role::Admin).await;
    admin
        .ok("s", json!({"type": "subscribe", "topic": "admin"}))
        .await;
    let mut sally = Client::connect(&server, "sally", Role::Seeker).await;
    let mut posted = Vec::new();
    for i in 0..5 {
        posted.push(sally.ok(&format!("p{i}"), post(i)).await);
    }
    // Every append stalls while the windows close: the queue of one is full at once.
    for _ in 0..20 {
        faults.push(AppendFault::Stall(Duration::from_millis(200)));
    }
    let mut frames = Vec::new();
    while frames
        .iter()
        .filter(|f: &&Value| f["event"]["kind"] == "task.unfilled")
        .count()
        < 5
    {
        frames.push(admin.event_within(Duration::from_secs(30)).await);
    }
    let reply = sally.request("after", post(9)).await;
    assert_eq!(reply["type"], "ok", "{reply}");
    posted.push(reply["result"].clone());
    frames.extend(admin.drain_events().await);
    assert!(contiguous(&seqs(&frames)), "{frames:?}");
    assert_eq!(
        metric(&server, "gavel_storage_errors_total").await,
        0.0,
        "no commit failed, no rebuild"
    );
    server.shutdown().await;
    assert_kept_after_restart(make(), &posted.iter().collect::<Vec<_>>()).await;
}

/// `max_subscriptions` topics per connection; one more is `CONFLICT` (renewing one held is
/// not "one more"; after an unsubscribe there is room again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_subscriptions_at_the_bound_and_one_past() {
    let mut opts = options(fresh_dir("lim-subs"));
    opts.config.limits.max_subscriptions = 3;
    let server = Server::start(opts).await.unwrap();
    let mut admin = Client::connect(&server, "ops", Role::Admin).await;
    for topic in ["feed", "admin", "coach:ana"] {
        admin
            .ok(topic, json!({"type": "subscribe", "topic": topic}))
            .await;
    }
    let over = admin
        .request("4th", json!({"type": "subscribe", "topic": "coach:bob"}))
        .await;
    assert_eq!(over["code"], "CONFLICT", "{over}");
    admin
        .ok("again", json!({"type": "subscribe", "topic": "feed"}))
        .await;
    admin
        .ok("u", json!({"type": "unsubscribe", "topic": "admin"}))
        .await;
    admin
        .ok("bob", json!({"type": "subscribe", "topic": "coach:bob"}))
        .await;
    server.shutdown().await;
}

/// `subscribe` frames have a per-user budget of their own: the burst passes, one more is
/// `RATE_LIMITED` with `retry_after_ms` — commands are not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribes_per_minute_at_the_bound_and_one_past() {
    let mut opts = options(fresh_dir("lim-rate"));
    opts.config.limits.subscribes_per_minute = 1;
    opts.config.limits.subscribe_burst = 4;
    let server = Server::start(opts).await.unwrap();
    let mut admin = Client::connect(&server, "ops", Role::Admin).await;
    for i in 0..4 {
        admin
            .ok(
                &format!("s{i}"),
                json!({"type": "subscribe", "topic": "feed"}),
            )
            .await;
    }
    let over = admin
        .request("s4", json!({"type": "subscribe", "topic": "feed"}))
        .await;
    assert_eq!(over["code"], "RATE_LIMITED", "{over}");
    assert!(over["retry_after_ms"].as_u64().unwrap() > 0);
    // A second connection of the same user shares the budget.
    let mut again = Client::connect(&server, "ops", Role::Admin).await;
    let shared = again
        .request("t", json!({"type": "subscribe", "topic": "admin"}))
        .await;
    assert_eq!(shared["code"], "RATE_LIMITED", "{shared}");
    let mut sally = Client::connect(&server, "sally", Role::Seeker).await;
    sally.ok("p", post(0)).await;
    server.shutdown().await;
}

/// `max_connections` per node: beyond it the upgrade is refused with HTTP 503; a closed
/// connection frees its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_at_the_bound_and_one_past() {
    let mut opts = options(fresh_dir("lim-conns"));
    opts.config.limits.max_connections = 3;
    let server = Server::start(opts).await.unwrap();
    let t = token("sally", Role::Seeker);
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(Client::connect_with_token(&server, &t).await);
    }
    match Client::try_connect(&server, Some(&t)).await {
        Upgrade::Refused(status) => assert_eq!(status, 503),
        Upgrade::Connected(_) => panic!("a 4th connection was accepted"),
    }
    let mut first = open.remove(0);
    first.ws.close(None).await.unwrap();
    assert_eq!(first.close_code(Duration::from_secs(5)).await, None);
    drop(first);
    let mut admitted = false;
    for _ in 0..100 {
        if let Upgrade::Connected(_) = Client::try_connect(&server, Some(&t)).await {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(admitted, "a closed connection frees its place");
    server.shutdown().await;
}

/// Child side of the panic test: a server whose engine panics on one command. Run only by
/// [`a_panic_in_the_engine_task_ends_the_process_and_a_restart_keeps_what_was_acknowledged`].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run as a child process by the panic test"]
async fn panic_child() {
    let Ok(dir) = std::env::var("GAVEL_PANIC_CHILD_DIR") else {
        return;
    };
    let mut opts = options(dir.into());
    opts.faults.before_command = Some(Arc::new(|request| {
        if let gavel_engine::Command::PostTask(p) = &request.command
            && p.resume_id == "boom"
        {
            panic!("injected engine bug");
        }
    }));
    let server = Server::start(opts).await.unwrap();
    let mut sally = Client::connect(&server, "sally", Role::Seeker).await;
    for i in 0..3 {
        sally.ok(&format!("p{i}"), post(i)).await;
    }
    sally
        .send(json!({"type": "post_task", "id": "boom", "resume_id": "boom", "urgency": "urgent"}))
        .await;
    // The process ends from the supervisor; this test never returns on its own.
    tokio::time::sleep(Duration::from_secs(30)).await;
    panic!("the process should have exited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_the_engine_task_ends_the_process_and_a_restart_keeps_what_was_acknowledged() {
    let dir = fresh_dir("panic");
    let child_dir = dir.clone();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "panic_child", "--ignored", "--nocapture"])
            .env("GAVEL_PANIC_CHILD_DIR", &child_dir)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(gavel_gateway::supervisor::EXIT_PIPELINE_PANIC),
        "{stderr}"
    );
    assert!(stderr.contains("injected engine bug"), "{stderr}");
    let server = Server::start(options(dir)).await.unwrap();
    let mut sally = Client::connect(&server, "sally", Role::Seeker).await;
    // The three acknowledged posts are there: retrying their ids answers the original reply.
    for i in 0..3 {
        let retry = sally.ok(&format!("p{i}"), post(i)).await;
        assert_eq!(retry["task_id"], format!("t_{i}"), "{retry}");
    }
    server.shutdown().await;
}

/// The admin topic's `stats` (contract §8): engine time in `at` — with `--time-scale 600` far
/// ahead of the wall clock, never behind the engine time of an event before it — and the
/// `seq` of the last event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_carry_engine_time_and_the_last_events_seq() {
    let mut opts = options(fresh_dir("stats-time"));
    opts.time_scale = 600.0;
    let server = Server::start(opts).await.unwrap();
    let mut admin = Client::connect(&server, "ops", Role::Admin).await;
    admin
        .ok("s", json!({"type": "subscribe", "topic": "admin"}))
        .await;
    // A first tick: the server has run at least a second (ten engine minutes).
    admin
        .wait_event("admin", "stats", Duration::from_secs(5))
        .await;
    admin.backlog.clear();
    let mut sally = Client::connect(&server, "sally", Role::Seeker).await;
    let posted = sally.ok("p", post(0)).await;
    // A standard bidding window is 30 minutes of engine time.
    let engine_at_post = posted["bidding_closes_at"].as_u64().unwrap() - 30 * 60_000;
    let opened = admin
        .wait_event("admin", "task.opened", Duration::from_secs(5))
        .await;
    // Everything up to the task.opened is read (a tick may have come before it).
    admin.backlog.clear();
    let stats = admin
        .wait_event("admin", "stats", Duration::from_secs(5))
        .await;
    let wall_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let at = stats["event"]["at"].as_u64().unwrap();
    assert!(
        at >= engine_at_post,
        "stats at {at} before the post's {engine_at_post}"
    );
    assert!(
        at > wall_ms + 5 * 60_000,
        "engine time, not wall time: {at} vs {wall_ms}"
    );
    assert_eq!(stats["seq"], opened["seq"], "the last event's seq");
    server.shutdown().await;
}
