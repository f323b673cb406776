//! Graceful shutdown (design: "stop accepting, drain the pipeline, close clients with 1001"):
//! every connected client — subscribed or not — gets close code 1001; every command
//! acknowledged before the shutdown is durable (a restart on the same storage has it); and the
//! server no longer answers HTTP afterwards.

mod common;

use std::time::Duration;

use common::*;
use gavel_gateway::app::Server;
use gavel_protocol::Role;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `true` when something at `addr` still answers `GET /healthz` with 200.
async fn healthz_answers(addr: std::net::SocketAddr) -> bool {
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    let request = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut response = String::new();
    match tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut response)).await {
        Ok(Ok(_)) => response.starts_with("HTTP/1.1 200"),
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_every_client_with_1001_and_keeps_what_was_acknowledged() {
    let dir = fresh_dir("shutdown");
    let server = Server::start(options_unlimited(dir.clone())).await.unwrap();
    let addr = server.addr;
    assert!(healthz_answers(addr).await);
    register_coach(&server, "ana", 4.5, false).await;

    // Subscribed clients of every kind, and one that subscribed to nothing.
    let mut seeker = Client::connect(&server, "sally", Role::Seeker).await;
    let posted = seeker
        .ok(
            "p0",
            json!({"type": "post_task", "resume_id": "r0", "urgency": "standard"}),
        )
        .await;
    let task_id = posted["task_id"].as_str().unwrap().to_owned();
    seeker
        .ok(
            "s0",
            json!({"type": "subscribe", "topic": format!("task:{task_id}")}),
        )
        .await;
    let mut coach = Client::connect(&server, "ana", Role::Coach).await;
    coach
        .ok("f0", json!({"type": "subscribe", "topic": "feed"}))
        .await;
    coach
        .ok("c0", json!({"type": "subscribe", "topic": "coach:ana"}))
        .await;
    let mut admin = Client::connect(&server, "ops", Role::Admin).await;
    admin
        .ok("a0", json!({"type": "subscribe", "topic": "admin"}))
        .await;
    let mut idle = Client::connect(&server, "ben", Role::Coach).await;
    idle.ok("ping", json!({"type": "ping"})).await;

    // Acknowledged before the shutdown: a bid, and tasks.
    let bid = coach
        .ok(
            "b0",
            json!({"type": "place_bid", "task_id": task_id, "amount": 3000, "eta_hours": 4}),
        )
        .await;
    let mut acked_tasks = vec![(task_id.clone(), "r0".to_owned())];
    for i in 1..5 {
        let r = seeker
            .ok(
                &format!("p{i}"),
                json!({"type": "post_task", "resume_id": format!("r{i}"), "urgency": "urgent"}),
            )
            .await;
        acked_tasks.push((r["task_id"].as_str().unwrap().to_owned(), format!("r{i}")));
    }

    // A burst still in flight when the shutdown starts: whatever gets an `ok` must be durable.
    let mut poster = Client::connect(&server, "sue", Role::Seeker).await;
    for i in 0..200 {
        poster
            .send(json!({"type": "post_task", "id": format!("q{i}"), "resume_id": format!("q{i}"), "urgency": "flexible"}))
            .await;
    }
    // The first replies are in before the shutdown starts; the rest race with it.
    let mut burst_acked = Vec::new();
    for _ in 0..20 {
        let reply = poster.next().await;
        assert_eq!(reply["type"], "ok", "{reply}");
        burst_acked.push(reply);
    }
    let stopping = tokio::spawn(server.shutdown());

    for (name, client) in [
        ("seeker", &mut seeker),
        ("coach", &mut coach),
        ("admin", &mut admin),
        ("idle", &mut idle),
        ("poster", &mut poster),
    ] {
        let code = client.close_code(Duration::from_secs(10)).await;
        assert_eq!(code, Some(1001), "{name} is closed with 1001 (going away)");
    }
    tokio::time::timeout(Duration::from_secs(30), stopping)
        .await
        .expect("shutdown completes")
        .unwrap();
    assert!(!healthz_answers(addr).await, "/healthz no longer answers");

    for frame in std::mem::take(&mut poster.backlog) {
        // Nothing but replies was asked for; an error could only be a refusal.
        assert!(
            frame["type"] == "ok" || frame["code"] == "UNAVAILABLE",
            "{frame}"
        );
        if frame["type"] == "ok" {
            burst_acked.push(frame);
        }
    }
    for reply in &burst_acked {
        let task = reply["result"]["task_id"].as_str().unwrap().to_owned();
        acked_tasks.push((task, reply["id"].as_str().unwrap().to_owned()));
    }

    // Restart on the same storage: everything acknowledged is there.
    let server = Server::start(options_unlimited(dir.clone())).await.unwrap();
    let admin_token = token("ops", Role::Admin);
    for (task, resume_id) in &acked_tasks {
        let (status, view) = http(
            &server,
            "GET",
            &format!("/v1/tasks/{task}"),
            Some(&admin_token),
            None,
        )
        .await;
        assert_eq!(
            status, 200,
            "acknowledged task {task} survived the shutdown: {view}"
        );
        assert_eq!(view["resume_id"], resume_id.as_str());
    }
    let (_, view) = http(
        &server,
        "GET",
        &format!("/v1/tasks/{task_id}"),
        Some(&admin_token),
        None,
    )
    .await;
    let bids: &Vec<Value> = view["bids"].as_array().unwrap();
    assert_eq!(bids.len(), 1, "{view}");
    assert_eq!(bids[0]["bid_id"], bid["bid_id"]);
    assert_eq!(bids[0]["coach_id"], "ana");

    // And a retried id is recognised (nothing applied twice).
    let mut seeker = Client::connect(&server, "sally", Role::Seeker).await;
    let again = seeker
        .ok(
            "p0",
            json!({"type": "post_task", "resume_id": "r0", "urgency": "standard"}),
        )
        .await;
    assert_eq!(again, posted);
    drop(seeker);

    // Retrying the whole burst: the acknowledged ids get their original replies, and no task
    // exists twice (5 of sally's, 200 of sue's).
    let mut poster = Client::connect(&server, "sue", Role::Seeker).await;
    for i in 0..200 {
        let id = format!("q{i}");
        let result = poster
            .ok(
                &id,
                json!({"type": "post_task", "resume_id": id, "urgency": "flexible"}),
            )
            .await;
        if let Some(original) = burst_acked.iter().find(|r| r["id"] == id.as_str()) {
            assert_eq!(result, original["result"], "retry of {id}");
        }
    }
    let mut admin = Client::connect(&server, "ops", Role::Admin).await;
    let counts = admin
        .ok("a", json!({"type": "subscribe", "topic": "admin"}))
        .await;
    assert_eq!(counts["snapshot"]["open_tasks"], 205, "{counts}");
    drop((poster, admin));
    server.shutdown().await;

    // The binary snapshots written on the way export as the engine's JSON state.
    let out = dir.join("snapshot.json");
    let export = std::process::Command::new(env!("CARGO_BIN_EXE_gavel"))
        .args(["snapshot", "export", "--data-dir"])
        .arg(&dir)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("gavel snapshot export runs");
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    let exported: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(exported["version"], gavel_engine::SNAPSHOT_VERSION);
    let seq = exported["state"]["seq"].as_u64().unwrap();
    assert!(seq >= 50, "a snapshot every 50 events: {seq}");
    assert!(
        exported["state"]["tasks"]
            .as_object()
            .unwrap()
            .values()
            .any(|t| t["spec"]["owner"] == "sally"),
        "sally's tasks are in the export"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn exporting_a_store_without_snapshots_says_so() {
    let dir = fresh_dir("export-empty");
    std::fs::create_dir_all(&dir).unwrap();
    let export = std::process::Command::new(env!("CARGO_BIN_EXE_gavel"))
        .args(["snapshot", "export", "--data-dir"])
        .arg(&dir)
        .output()
        .expect("gavel snapshot export runs");
    assert!(!export.status.success());
    let stderr = String::from_utf8_lossy(&export.stderr);
    assert!(stderr.contains("no snapshot yet"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Shutting down with nobody connected is quick and complete, and the storage reopens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_server_shuts_down_and_reopens() {
    let dir = fresh_dir("shutdown-idle");
    let server = Server::start(options(dir.clone())).await.unwrap();
    let addr = server.addr;
    let epoch = server.epoch.clone();
    let (status, body) = http(
        &server,
        "POST",
        "/v1/tasks",
        Some(&token("ops", Role::Admin)),
        Some(json!({"owner": "sally", "resume_id": "r", "urgency": "standard"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    tokio::time::timeout(Duration::from_secs(30), server.shutdown())
        .await
        .expect("shutdown completes");
    assert!(!healthz_answers(addr).await);
    let server = Server::start(options(dir.clone())).await.unwrap();
    assert_eq!(server.epoch, epoch);
    let (status, view) = http(
        &server,
        "GET",
        &format!("/v1/tasks/{}", body["task_id"].as_str().unwrap()),
        Some(&token("ops", Role::Admin)),
        None,
    )
    .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["owner"], "sally");
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
