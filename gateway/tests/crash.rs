//! Crash safety of the real binary: clients stream `post_task` and `place_bid` commands with
//! ids while `gavel serve` is killed with SIGKILL at a random moment; the server starts again
//! on the same data directory, and every command that was acknowledged before the kill has its
//! effect (checked through `GET /v1/tasks/{id}`), and retrying its id gets the very same reply
//! (idempotency across the restart). Several rounds, each checking every round so far.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::fresh_dir;
use futures_util::{SinkExt, StreamExt};
use gavel_gateway::ingress::auth::JwtKeys;
use gavel_protocol::{Role, UserId};
use rand::Rng;
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};
use tokio_tungstenite::tungstenite::Message;

const GAVEL: &str = env!("CARGO_BIN_EXE_gavel");
const SECRET: &str = "crash-test-secret-0123456789";
const SEEKERS: [&str; 2] = ["sam", "sue"];
const COACHES: [&str; 2] = ["ana", "bob"];
/// Commands each client keeps in flight.
const WINDOW: usize = 8;
/// How long any one step may take before the test fails.
const STEP: Duration = Duration::from_secs(20);

fn token(sub: &str, role: Role) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    JwtKeys::new(SECRET.as_bytes()).mint(
        &UserId::new(sub).unwrap(),
        role,
        Duration::from_secs(3600),
        now,
    )
}

/// A running `gavel serve`; its stderr is drained on a thread (and kept for diagnostics).
struct Gavel {
    child: Child,
    addr: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Gavel {
    fn start(data_dir: &Path, config: &Path) -> Gavel {
        let mut child = Command::new(GAVEL)
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--jwt-secret")
            .arg(SECRET)
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info")
            .env_remove("GAVEL_DATABASE_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("gavel serve starts");
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let kept = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                let entry: Value = serde_json::from_str(&line).unwrap_or_default();
                if entry["message"] == "listening" {
                    let _ = tx.send(entry["addr"].as_str().unwrap_or_default().to_owned());
                }
                kept.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => addr
                .parse()
                .expect("the listening line carries the address"),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "gavel serve did not log `listening`:\n{}",
                    logs.lock().unwrap().join("\n")
                );
            }
        };
        Gavel { child, addr, logs }
    }

    /// SIGKILL: no shutdown, no flush, nothing.
    fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        let status = self.child.wait().unwrap();
        assert!(!status.success(), "killed, not exited: {status}");
    }

    /// SIGTERM, and a clean exit.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let status = self.child.wait().unwrap();
        assert!(
            status.success(),
            "clean exit on SIGTERM: {status}\n{}",
            self.logs.lock().unwrap().join("\n")
        );
    }
}

/// A test that fails midway leaves no server behind.
impl Drop for Gavel {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// An acknowledged command: who sent it, the frame, and the `ok` result.
#[derive(Debug, Clone)]
struct Acked {
    user: &'static str,
    role: Role,
    frame: Value,
    result: Value,
}

/// What the streaming clients share.
struct Shared {
    acked: Mutex<Vec<Acked>>,
    /// Acknowledged tasks, for the coaches to bid on.
    tasks: Mutex<Vec<String>>,
    new_task: Notify,
    /// How many commands were acknowledged so far.
    acks: watch::Sender<usize>,
    killed: AtomicBool,
}

impl Shared {
    fn ack(&self, acked: Acked) {
        self.acked.lock().unwrap().push(acked);
        self.acks.send_modify(|n| *n += 1);
    }
}

/// Streams commands made by `next` (`None`: nothing to send right now) with up to [`WINDOW`]
/// in flight, recording every `ok`, until the connection dies.
async fn stream(
    addr: SocketAddr,
    user: &'static str,
    role: Role,
    shared: Arc<Shared>,
    mut next: impl FnMut(&Shared) -> Option<Value>,
) {
    let url = format!("ws://{addr}/v1/ws?token={}", token(user, role));
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket connects");
    let mut in_flight: HashMap<String, Value> = HashMap::new();
    loop {
        while in_flight.len() < WINDOW {
            let Some(frame) = next(&shared) else { break };
            let id = frame["id"].as_str().unwrap().to_owned();
            if ws.send(Message::text(frame.to_string())).await.is_err() {
                return;
            }
            in_flight.insert(id, frame);
        }
        if in_flight.is_empty() {
            // Nothing to send yet (a coach waiting for tasks).
            if shared.killed.load(Ordering::SeqCst) {
                return;
            }
            let _ =
                tokio::time::timeout(Duration::from_millis(50), shared.new_task.notified()).await;
            continue;
        }
        let msg = match tokio::time::timeout(STEP, ws.next()).await {
            Ok(Some(Ok(msg))) => msg,
            Ok(_) => return, // the server died
            Err(_) => panic!("{user}: no reply within {STEP:?} while the server is up"),
        };
        let Message::Text(text) = msg else { continue };
        let reply: Value = serde_json::from_str(text.as_str()).unwrap();
        let id = reply["id"]
            .as_str()
            .expect("replies carry the id")
            .to_owned();
        let frame = in_flight.remove(&id).expect("a reply to a frame in flight");
        assert_eq!(reply["type"], "ok", "{user}: {frame} got {reply}");
        let result = reply["result"].clone();
        if frame["type"] == "post_task" {
            let task = result["task_id"].as_str().unwrap().to_owned();
            shared.tasks.lock().unwrap().push(task);
            shared.new_task.notify_waiters();
        }
        shared.ack(Acked {
            user,
            role,
            frame,
            result,
        });
    }
}

/// One round of streaming against `gavel`, killed once `kill_after` commands are acknowledged.
async fn crash_round(gavel: Gavel, round: usize, kill_after: usize) -> Vec<Acked> {
    let shared = Arc::new(Shared {
        acked: Mutex::default(),
        tasks: Mutex::default(),
        new_task: Notify::new(),
        acks: watch::channel(0).0,
        killed: AtomicBool::new(false),
    });
    let mut clients = Vec::new();
    for seeker in SEEKERS {
        let mut n = 0;
        let next = move |_: &Shared| {
            n += 1;
            Some(json!({
                "type": "post_task",
                "id": format!("post-{round}-{n}"),
                "resume_id": format!("{seeker}-{round}-{n}"),
                "urgency": "standard",
            }))
        };
        clients.push(tokio::spawn(stream(
            gavel.addr,
            seeker,
            Role::Seeker,
            shared.clone(),
            next,
        )));
    }
    for (c, coach) in COACHES.into_iter().enumerate() {
        let mut cursor = 0;
        let next = move |shared: &Shared| {
            let task = shared.tasks.lock().unwrap().get(cursor).cloned()?;
            cursor += 1;
            Some(json!({
                "type": "place_bid",
                "id": format!("bid-{round}-{cursor}"),
                "task_id": task,
                "amount": 2600 + (cursor % 200) * 10 + c,
                "eta_hours": 1 + cursor % 24,
            }))
        };
        clients.push(tokio::spawn(stream(
            gavel.addr,
            coach,
            Role::Coach,
            shared.clone(),
            next,
        )));
    }
    // Kill when enough is acknowledged (a random amount, so at a random point of the stream).
    let mut acks = shared.acks.subscribe();
    tokio::time::timeout(STEP * 3, acks.wait_for(|n| *n >= kill_after))
        .await
        .expect("commands are acknowledged")
        .unwrap();
    gavel.kill();
    shared.killed.store(true, Ordering::SeqCst);
    shared.new_task.notify_waiters();
    for client in clients {
        tokio::time::timeout(STEP, client)
            .await
            .expect("clients notice the kill")
            .expect("client tasks do not panic");
    }
    let acked = shared.acked.lock().unwrap().clone();
    assert!(acked.len() >= kill_after);
    acked
}

/// `GET path` with the admin token: (status, JSON body).
async fn get(addr: SocketAddr, path: &str) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {}\r\n\r\n",
        token("ops", Role::Admin)
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(STEP, stream.read_to_string(&mut response))
        .await
        .expect("an HTTP answer")
        .unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (status, body)
}

/// The admin view of `task`, fetched once per check.
async fn view_of(addr: SocketAddr, cache: &mut HashMap<String, Value>, task: &str) -> Value {
    if let Some(v) = cache.get(task) {
        return v.clone();
    }
    let (status, v) = get(addr, &format!("/v1/tasks/{task}")).await;
    assert_eq!(status, 200, "acknowledged task {task} exists: {v}");
    cache.insert(task.to_owned(), v.clone());
    v
}

/// Every acknowledged command's effect is in the restarted server's state; returns the views
/// of the tasks involved.
async fn check_effects(addr: SocketAddr, acked: &[Acked]) -> HashMap<String, Value> {
    let mut views = HashMap::new();
    for a in acked {
        match a.frame["type"].as_str().unwrap() {
            "post_task" => {
                let task = a.result["task_id"].as_str().unwrap();
                let v = view_of(addr, &mut views, task).await;
                assert_eq!(v["owner"], a.user, "{v}");
                assert_eq!(v["resume_id"], a.frame["resume_id"], "{v}");
                assert_eq!(v["status"], "open", "{v}");
                assert_eq!(v["suggested_price"], a.result["suggested_price"]);
                assert_eq!(v["bidding_closes_at"], a.result["bidding_closes_at"]);
            }
            "place_bid" => {
                let task = a.frame["task_id"].as_str().unwrap();
                let bid_id = &a.result["bid_id"];
                let v = view_of(addr, &mut views, task).await;
                let bid = v["bids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|b| b["bid_id"] == *bid_id)
                    .unwrap_or_else(|| panic!("acknowledged bid {bid_id} is on {task}: {v}"));
                assert_eq!(bid["coach_id"], a.user);
                assert_eq!(bid["amount"], a.frame["amount"]);
                assert_eq!(bid["eta_hours"], a.frame["eta_hours"]);
                assert_eq!(bid["status"], "pending");
            }
            other => panic!("unexpected command {other}"),
        }
    }
    views
}

/// The marketplace's counts, from an admin's `admin` snapshot.
async fn counts(addr: SocketAddr) -> Value {
    let url = format!("ws://{addr}/v1/ws?token={}", token("ops", Role::Admin));
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let frame = json!({"type": "subscribe", "id": "counts", "topic": "admin"});
    ws.send(Message::text(frame.to_string())).await.unwrap();
    loop {
        let msg = tokio::time::timeout(STEP, ws.next())
            .await
            .expect("a reply")
            .unwrap()
            .unwrap();
        let Message::Text(text) = msg else { continue };
        let reply: Value = serde_json::from_str(text.as_str()).unwrap();
        if reply["id"] == "counts" {
            assert_eq!(reply["type"], "ok", "{reply}");
            let snapshot = &reply["result"]["snapshot"];
            return json!([snapshot["open_tasks"], snapshot["tasks_by_status"]]);
        }
    }
}

/// Retrying every acknowledged id gets the original reply (and applies nothing again).
async fn check_retries(addr: SocketAddr, acked: &[Acked]) {
    let mut by_user: HashMap<&'static str, Vec<&Acked>> = HashMap::new();
    for a in acked {
        by_user.entry(a.user).or_default().push(a);
    }
    for (user, commands) in by_user {
        let url = format!("ws://{addr}/v1/ws?token={}", token(user, commands[0].role));
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        for chunk in commands.chunks(64) {
            for a in chunk {
                ws.send(Message::text(a.frame.to_string())).await.unwrap();
            }
            let mut expected: HashMap<&str, &Value> = chunk
                .iter()
                .map(|a| (a.frame["id"].as_str().unwrap(), &a.result))
                .collect();
            while !expected.is_empty() {
                let msg = tokio::time::timeout(STEP, ws.next())
                    .await
                    .expect("a reply")
                    .unwrap()
                    .unwrap();
                let Message::Text(text) = msg else { continue };
                let reply: Value = serde_json::from_str(text.as_str()).unwrap();
                let id = reply["id"].as_str().unwrap();
                let original = expected.remove(id).expect("a reply to a retried id");
                assert_eq!(reply["type"], "ok", "retry of {id} by {user}: {reply}");
                assert_eq!(
                    &reply["result"], original,
                    "retry of {id} by {user} gets the original reply"
                );
            }
        }
    }
}

fn config_file(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("crash.toml");
    std::fs::write(
        &path,
        "[limits]\ncommands_per_minute = 10000000\ncommand_burst = 1000000\n",
    )
    .unwrap();
    path
}

async fn register_coaches(addr: SocketAddr) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    for coach in COACHES {
        let body = json!({"display_name": coach, "rating": 4.5, "verified": true, "on_call": false, "capacity": 3}).to_string();
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "PUT /v1/coaches/{coach} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            token("ops", Role::Admin),
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_commands_survive_sigkill_and_retries_get_the_same_reply() {
    let data_dir = fresh_dir("crash");
    let config = config_file(&fresh_dir("crash-config"));
    let mut gavel = Gavel::start(&data_dir, &config);
    register_coaches(gavel.addr).await;

    let mut all: Vec<Acked> = Vec::new();
    let mut rng = rand::thread_rng();
    for round in 0..4 {
        let kill_after = rng.gen_range(20..400);
        let acked = crash_round(gavel, round, kill_after).await;
        assert!(
            acked.iter().any(|a| a.frame["type"] == "place_bid"),
            "round {round}: bids were acknowledged too"
        );
        all.extend(acked);

        gavel = Gavel::start(&data_dir, &config);
        let (status, _) = get(gavel.addr, "/readyz").await;
        assert_eq!(status, 200, "ready after recovery");
        let before = (
            check_effects(gavel.addr, &all).await,
            counts(gavel.addr).await,
        );
        check_retries(gavel.addr, &all).await;
        // The retries applied nothing new: no task, no bid, no change.
        let after = (
            check_effects(gavel.addr, &all).await,
            counts(gavel.addr).await,
        );
        assert!(before == after, "retries changed nothing");
    }
    gavel.stop();
    let _ = std::fs::remove_dir_all(&data_dir);
    let _ = std::fs::remove_dir_all(config.parent().unwrap());
}
