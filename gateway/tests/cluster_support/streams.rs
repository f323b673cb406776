//! What the cluster tests do with clients: an `admin` observer that resumes across nodes, a
//! seeker that posts with retries on the next node, and small HTTP helpers.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use gavel_protocol::Role;
use serde_json::{Value, json};

use super::client::{NodeClient, REPLY_TIMEOUT, admin_token, http_get, http_json, try_http};

/// How long a cluster test waits for what it expects.
pub const WAIT: Duration = Duration::from_secs(20);

pub async fn register_coach(addr: SocketAddr, id: &str, rating: f64) {
    let body = json!({"display_name": id, "rating": rating, "verified": true});
    let (status, reply) = http_json(
        addr,
        "PUT",
        &format!("/v1/coaches/{id}"),
        Some(&admin_token()),
        Some(body),
    )
    .await;
    assert_eq!(status, 200, "registering {id}: {reply}");
}

/// The journal's events as one `admin` subscriber saw them, across reconnects: it resumes with
/// `since`/`epoch` on the next node whenever its node goes away.
pub struct Observer {
    pub client: NodeClient,
    pub epoch: String,
    pub last: u64,
    /// (seq, kind) of every event, in arrival order.
    pub seen: Vec<(u64, String)>,
    /// Every event frame (`{seq, topic, event}`), in arrival order.
    pub frames: Vec<Value>,
    /// The nodes it resumed on, in order.
    pub resumed_on: Vec<SocketAddr>,
}

impl Observer {
    pub async fn start(addr: SocketAddr) -> Self {
        let mut client = NodeClient::connect(addr, "root", Role::Admin).await;
        let sub = client
            .ok("obs", json!({"type": "subscribe", "topic": "admin"}))
            .await;
        Observer {
            client,
            epoch: sub["epoch"].as_str().expect("an epoch").to_owned(),
            last: sub["seq"].as_u64().expect("a seq"),
            seen: Vec::new(),
            frames: Vec::new(),
            resumed_on: Vec::new(),
        }
    }

    fn take(&mut self, frame: &Value) {
        if frame["type"] == "event" && frame["event"]["kind"] != "stats" {
            let seq = frame["seq"].as_u64().expect("events carry a seq");
            self.last = seq;
            let kind = frame["event"]["kind"].as_str().unwrap_or("").to_owned();
            self.seen.push((seq, kind));
            self.frames.push(frame.clone());
        }
    }

    /// Reads what has arrived so far (without waiting for more).
    pub fn drain(&mut self) {
        for frame in self.client.events() {
            self.take(&frame);
        }
    }

    /// Reads until `until` seq has been seen, resuming on `fallbacks` when disconnected.
    pub async fn follow_to(&mut self, until: u64, fallbacks: &[SocketAddr]) {
        let deadline = Instant::now() + WAIT * 3;
        while self.last < until {
            assert!(
                Instant::now() < deadline,
                "observer stuck at {} (wanted {until})",
                self.last
            );
            self.read_a_little(fallbacks).await;
        }
    }

    /// Reads until `done` holds for the frames seen so far, resuming on `fallbacks` when
    /// disconnected; panics after `timeout`.
    pub async fn follow_until(
        &mut self,
        timeout: Duration,
        fallbacks: &[SocketAddr],
        done: impl Fn(&[Value]) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        while !done(&self.frames) {
            assert!(
                Instant::now() < deadline,
                "observer (at {}) did not see what it waited for within {timeout:?}",
                self.last
            );
            self.read_a_little(fallbacks).await;
        }
    }

    async fn read_a_little(&mut self, fallbacks: &[SocketAddr]) {
        self.drain();
        match self.client.next_within(Duration::from_millis(500)).await {
            Some(frame) => self.take(&frame),
            None if self.client.is_closed() => self.resume(fallbacks).await,
            None => {}
        }
    }

    /// Leaves its node on purpose and resumes with `since`/`epoch` on `addr` (which may be
    /// the same node).
    pub async fn reconnect_to(&mut self, addr: SocketAddr) {
        self.drain();
        self.client.close().await;
        self.resume(&[addr]).await;
    }

    async fn resume(&mut self, fallbacks: &[SocketAddr]) {
        assert!(!fallbacks.is_empty(), "disconnected with nowhere to resume");
        let deadline = Instant::now() + WAIT;
        loop {
            for &addr in fallbacks {
                let Ok(mut client) = NodeClient::try_connect(addr, "root", Role::Admin).await
                else {
                    continue;
                };
                let frame = json!({"type": "subscribe", "topic": "admin",
                                   "since": self.last, "epoch": self.epoch});
                let reply = client.request("resume", frame).await;
                if reply["type"] == "ok" {
                    assert_ne!(
                        reply["result"]["reset"], true,
                        "a resume on another node must not reset: {reply}"
                    );
                    self.client = client;
                    self.resumed_on.push(addr);
                    return;
                }
            }
            assert!(Instant::now() < deadline, "no node took the resume");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Every event exactly once, in order, with no gap.
    pub fn assert_contiguous(&self, from: u64) {
        let seqs: Vec<u64> = self.seen.iter().map(|(s, _)| *s).collect();
        let expected: Vec<u64> = (from + 1..=self.last).collect();
        assert_eq!(seqs, expected, "events seen by the observer");
    }
}

/// The highest `seq` the node at `addr` has applied (from `/v1/cluster`).
pub async fn seq_of(addr: SocketAddr, node_id: &str) -> u64 {
    let (_, view) = http_get(addr, "/v1/cluster", Some(&admin_token())).await;
    view["nodes"]
        .as_array()
        .and_then(|nodes| nodes.iter().find(|n| n["node_id"] == node_id))
        .and_then(|n| n["seq"].as_u64())
        .unwrap_or(0)
}

/// A seeker posting tasks through `addr`s in turn: starts on its home node, and retries each
/// post with the same id on the next node until it is acknowledged.
pub struct Poster {
    pub name: String,
    client: Option<NodeClient>,
    /// The index (mod the nodes given to `post`) of the node it connects to next.
    next: usize,
    /// (request id, task id) of every acknowledged post.
    pub acked: Vec<(String, String)>,
    /// Every node it connected to, in order.
    pub connected_to: Vec<SocketAddr>,
}

impl Poster {
    /// A poster whose first connection goes to node `home` (mod the number of nodes).
    pub fn new(name: &str, home: usize) -> Self {
        Poster {
            name: name.to_owned(),
            client: None,
            next: home,
            acked: Vec::new(),
            connected_to: Vec::new(),
        }
    }

    pub async fn post(&mut self, k: usize, nodes: &[SocketAddr]) {
        let id = format!("{}-{k}", self.name);
        let frame =
            json!({"type": "post_task", "resume_id": format!("cv-{id}"), "urgency": "flexible"});
        let deadline = Instant::now() + WAIT;
        loop {
            assert!(Instant::now() < deadline, "{id} was never acknowledged");
            if self.client.as_ref().is_none_or(NodeClient::is_closed) {
                let addr = nodes[self.next % nodes.len()];
                self.next += 1;
                self.client = NodeClient::try_connect(addr, &self.name, Role::Seeker)
                    .await
                    .ok();
                self.connected_to
                    .extend(self.client.as_ref().map(NodeClient::addr));
                if self.client.is_none() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            }
            let client = self.client.as_mut().expect("connected above");
            match try_request(client, &id, frame.clone()).await {
                Some(reply) if reply["type"] == "ok" => {
                    let task = reply["result"]["task_id"].as_str().expect("a task id");
                    self.acked.push((id, task.to_owned()));
                    return;
                }
                Some(reply) if reply["code"] == "RATE_LIMITED" => {
                    let wait = reply["retry_after_ms"].as_u64().unwrap_or(100);
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                }
                Some(reply) => {
                    assert_eq!(reply["code"], "UNAVAILABLE", "{reply}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                None => self.client = None,
            }
        }
    }
}

/// A request whose reply may never come (the node died): `None` then.
pub async fn try_request(client: &mut NodeClient, id: &str, mut frame: Value) -> Option<Value> {
    frame["id"] = json!(id);
    client.try_send(frame).await.ok()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let f = client.next_within(Duration::from_millis(200)).await;
        match f {
            Some(f) if (f["type"] == "ok" || f["type"] == "error") && f["id"] == json!(id) => {
                return Some(f);
            }
            Some(_) => {}
            None if client.is_closed() => return None,
            None => {}
        }
    }
    None
}

/// `name`'s counter on the node at `addr` (0 when it has none).
pub async fn counter(addr: SocketAddr, name: &str) -> u64 {
    metric(addr, name).await.map_or(0, |v| v as u64)
}

/// The value of the unlabelled metric `name` on the node at `addr`; `None` when it exports
/// none, or does not answer (a node restarting its pipeline refuses connections for a moment).
pub async fn metric(addr: SocketAddr, name: &str) -> Option<f64> {
    let answer = try_http(addr, "GET", "/metrics", None, None, REPLY_TIMEOUT).await;
    let (_, body) = answer.ok()?;
    let text = body.as_str().unwrap_or("").to_owned();
    text.lines().find_map(|l| {
        l.strip_prefix(name)
            .and_then(|v| v.trim().parse::<f64>().ok())
    })
}
