//! Test fixtures: a real server on 127.0.0.1:0 and real WebSocket clients.
#![allow(dead_code)]

mod journal;
// Shared by every test binary; each uses only some of it (as `dead_code` above).
#[allow(unused_imports)]
pub use journal::{populate, populate_store};

use std::path::PathBuf;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use gavel_gateway::app::{Server, ServerOptions};
use gavel_gateway::cli::config::ServerConfig;
use gavel_gateway::ingress::auth::JwtKeys;
use gavel_protocol::{Role, UserId};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const SECRET: &[u8] = b"test-secret-0123456789abcdef";

/// A fresh data directory.
pub fn fresh_dir(name: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "gavel-gw-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Options for a SQLite-backed server in `dir`.
pub fn options(dir: PathBuf) -> ServerOptions {
    ServerOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir,
        database_url: None,
        config: ServerConfig::default(),
        jwt_secret: SECRET.to_vec(),
        time_scale: 1.0,
        history: 1000,
        snapshot_every_events: 50,
        snapshot_interval: Duration::from_secs(300),
        faults: Default::default(),
        cluster: None,
    }
}

pub async fn start(dir: PathBuf) -> Server {
    Server::start(options(dir)).await.expect("server starts")
}

pub fn token(sub: &str, role: Role) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    JwtKeys::new(SECRET).mint(
        &UserId::new(sub).unwrap(),
        role,
        Duration::from_secs(3600),
        now,
    )
}

/// A WebSocket client speaking JSON frames.
pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Frames read while waiting for something else.
    pub backlog: Vec<Value>,
}

impl Client {
    pub async fn connect(server: &Server, sub: &str, role: Role) -> Client {
        Self::connect_to(server.addr, sub, role).await
    }

    /// [`Client::connect`] to a server at `addr` (one running as a child process, say).
    pub async fn connect_to(addr: std::net::SocketAddr, sub: &str, role: Role) -> Client {
        let url = format!("ws://{addr}/v1/ws?token={}", token(sub, role));
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket connects");
        Client {
            ws,
            backlog: Vec::new(),
        }
    }

    pub async fn send(&mut self, frame: Value) {
        self.ws
            .send(Message::text(frame.to_string()))
            .await
            .unwrap();
    }

    /// The next JSON frame (5 s timeout).
    pub async fn next(&mut self) -> Value {
        if !self.backlog.is_empty() {
            return self.backlog.remove(0);
        }
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(5), self.ws.next())
                .await
                .expect("a frame within 5 s")
                .expect("connection open")
                .expect("no websocket error");
            match msg {
                Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected message {other:?}"),
            }
        }
    }

    /// Sends a frame with `id` and returns its reply (events that arrive first are kept).
    pub async fn request(&mut self, id: &str, mut frame: Value) -> Value {
        frame["id"] = json!(id);
        self.send(frame).await;
        loop {
            let f = self.next_raw().await;
            if (f["type"] == "ok" || f["type"] == "error") && f["id"] == json!(id) {
                return f;
            }
            self.backlog.push(f);
        }
    }

    async fn next_raw(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(5), self.ws.next())
                .await
                .expect("a frame within 5 s")
                .expect("connection open")
                .expect("no websocket error");
            if let Message::Text(t) = msg {
                return serde_json::from_str(t.as_str()).unwrap();
            }
        }
    }

    /// The `result` of a successful request (panics on an error reply).
    pub async fn ok(&mut self, id: &str, frame: Value) -> Value {
        let reply = self.request(id, frame).await;
        assert_eq!(reply["type"], "ok", "{reply}");
        reply["result"].clone()
    }

    /// The next event frame (skipping `stats`).
    pub async fn event(&mut self) -> Value {
        loop {
            let f = self.next().await;
            if f["type"] == "event" && f["event"]["kind"] != "stats" {
                return f;
            }
        }
    }
}

/// Registers a verified coach through the HTTP API.
pub async fn register_coach(server: &Server, id: &str, rating: f64, on_call: bool) {
    let body = json!({"display_name": id, "rating": rating, "verified": true, "on_call": on_call, "capacity": 3});
    put_coach(server, id, body).await;
}

/// `PUT /v1/coaches/{id}` with `body` as an admin; the coach view it answers (200 asserted).
pub async fn put_coach(server: &Server, id: &str, body: Value) -> Value {
    let (status, view) = http(
        server,
        "PUT",
        &format!("/v1/coaches/{id}"),
        Some(&token("ops", Role::Admin)),
        Some(body),
    )
    .await;
    assert_eq!(status, 200, "{view}");
    view
}

/// A minimal HTTP/1.1 client: (status, JSON body or Null).
pub async fn http(
    server: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status: u16 = response[9..12].parse().unwrap();
    let json = response
        .split("\r\n\r\n")
        .nth(1)
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (status, json)
}

// ---- resume / crash / fan-out / shutdown helpers -------------------------------------------

/// [`options`] with command rate limits out of the way (for tests that stream many commands).
pub fn options_unlimited(dir: PathBuf) -> ServerOptions {
    let mut o = options(dir);
    o.config.limits.commands_per_minute = 10_000_000;
    o.config.limits.command_burst = 1_000_000;
    o
}

/// The Postgres the tests use: `GAVEL_TEST_DATABASE_URL`, or the local default.
pub fn database_url() -> String {
    std::env::var("GAVEL_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A fresh, empty Postgres database; returns its URL. Fails (never skips) when Postgres does
/// not answer at [`database_url`].
pub async fn fresh_postgres(name: &str) -> String {
    use sqlx::Connection;
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let base = database_url();
    let mut admin = sqlx::PgConnection::connect(&base)
        .await
        .unwrap_or_else(|e| {
            panic!("Postgres at {base} (GAVEL_TEST_DATABASE_URL) does not answer: {e}")
        });
    let db = format!(
        "gavel_gw_{name}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let (prefix, _) = base
        .rsplit_once('/')
        .expect("database URL ends in /<database>");
    format!("{prefix}/{db}")
}

/// Drops a database made by [`fresh_postgres`] (disconnecting whoever is still on it).
pub async fn drop_postgres(url: &str) {
    use sqlx::Connection;
    let (_, db) = url
        .rsplit_once('/')
        .expect("database URL ends in /<database>");
    let mut admin = sqlx::PgConnection::connect(&database_url()).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
}

impl Client {
    /// Reads (and keeps in `backlog`) frames until the server's close frame; returns its code
    /// (`None`: the connection ended without a close frame).
    pub async fn close_code(&mut self, within: Duration) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .expect("the server closes the connection in time");
            match msg {
                Some(Ok(Message::Text(t))) => {
                    self.backlog.push(serde_json::from_str(t.as_str()).unwrap());
                }
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return None,
            }
        }
    }
}

// ---- Helpers for the seed-flow, visibility, bad-input and HTTP API tests. ----

/// A server started with `options` (e.g. a `time_scale` or limits of its own).
pub async fn start_with(options: ServerOptions) -> Server {
    Server::start(options).await.expect("server starts")
}

/// Seconds since the Unix epoch, now.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A token valid for `ttl` from `now_secs`, signed with `secret`.
pub fn token_signed(secret: &[u8], sub: &str, role: Role, ttl: Duration, now_secs: u64) -> String {
    JwtKeys::new(secret).mint(&UserId::new(sub).unwrap(), role, ttl, now_secs)
}

/// How a WebSocket upgrade attempt ended.
pub enum Upgrade {
    Connected(Box<Client>),
    /// Refused with this HTTP status before the upgrade.
    Refused(u16),
}

/// The registered coach's body for `PUT /v1/coaches/{id}`.
pub fn coach_body(id: &str, rating: f64, on_call: bool) -> Value {
    json!({"display_name": id, "rating": rating, "verified": true, "on_call": on_call, "capacity": 3})
}

impl Client {
    /// Connects with an explicit `?token=` (or none) and reports an HTTP refusal instead of
    /// panicking.
    pub async fn try_connect(server: &Server, token: Option<&str>) -> Upgrade {
        let url = match token {
            Some(t) => format!("ws://{}/v1/ws?token={t}", server.addr),
            None => format!("ws://{}/v1/ws", server.addr),
        };
        Self::try_connect_request(url).await
    }

    /// Connects with `Authorization: Bearer <token>` on the upgrade request.
    pub async fn try_connect_bearer(server: &Server, token: &str) -> Upgrade {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = format!("ws://{}/v1/ws", server.addr)
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("Authorization", format!("Bearer {token}").parse().unwrap());
        Self::try_connect_request(request).await
    }

    async fn try_connect_request(
        request: impl tokio_tungstenite::tungstenite::client::IntoClientRequest + Unpin,
    ) -> Upgrade {
        use tokio_tungstenite::tungstenite::Error;
        match tokio_tungstenite::connect_async(request).await {
            Ok((ws, _)) => Upgrade::Connected(Box::new(Client {
                ws,
                backlog: Vec::new(),
            })),
            Err(Error::Http(response)) => Upgrade::Refused(response.status().as_u16()),
            Err(other) => panic!("unexpected upgrade error: {other}"),
        }
    }

    /// Connects with a given token (panics unless it is accepted).
    pub async fn connect_with_token(server: &Server, token: &str) -> Client {
        match Self::try_connect(server, Some(token)).await {
            Upgrade::Connected(c) => *c,
            Upgrade::Refused(status) => panic!("upgrade refused with {status}"),
        }
    }

    /// Sends raw WebSocket message (binary, oversized text, …).
    pub async fn send_message(&mut self, message: Message) {
        self.ws.send(message).await.unwrap();
    }

    /// Like [`Client::next`], waiting up to `timeout` (for deadlines driven by `time_scale`).
    pub async fn next_within(&mut self, timeout: Duration) -> Value {
        if !self.backlog.is_empty() {
            return self.backlog.remove(0);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("a frame within {timeout:?}"))
                .expect("connection open")
                .expect("no websocket error");
            match msg {
                Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected message {other:?}"),
            }
        }
    }

    /// The next event frame other than `stats`, waiting up to `timeout`.
    pub async fn event_within(&mut self, timeout: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let f = self.next_within(left).await;
            if f["type"] == "event" && f["event"]["kind"] != "stats" {
                return f;
            }
        }
    }

    /// Waits up to `timeout` for an event of `kind` on `topic` and returns a copy of it; it
    /// and every frame before it stay in `backlog`, in order (for [`Client::drain_events`]).
    pub async fn wait_event(&mut self, topic: &str, kind: &str, timeout: Duration) -> Value {
        let is_it =
            |f: &Value| f["type"] == "event" && f["topic"] == topic && f["event"]["kind"] == kind;
        if let Some(f) = self.backlog.iter().find(|f| is_it(f)) {
            return f.clone();
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("a {kind} on {topic} within {timeout:?}"))
                .expect("connection open")
                .expect("no websocket error");
            if let Message::Text(t) = msg {
                let f: Value = serde_json::from_str(t.as_str()).unwrap();
                let found = is_it(&f);
                self.backlog.push(f.clone());
                if found {
                    return f;
                }
            }
        }
    }

    /// Every event frame (not `stats`) published before a barrier sent now — that is, every
    /// event of every batch the engine decided before it. Panics on any other frame.
    ///
    /// The barrier is an `unsubscribe` of a topic this connection never had: it travels the
    /// same path as events (engine task → durable → publisher), so its reply is queued after
    /// every event already decided. A `ping` would not do: the session answers it at once,
    /// ahead of events still in the pipeline.
    pub async fn drain_events(&mut self) -> Vec<Value> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let id = format!("drain-{}", N.fetch_add(1, Ordering::Relaxed));
        let barrier = json!({"type": "unsubscribe", "topic": "coach:zz-drain-barrier"});
        let reply = self.request(&id, barrier).await;
        assert_eq!(reply["type"], "ok", "{reply}");
        let frames = std::mem::take(&mut self.backlog);
        frames
            .into_iter()
            .filter(|f| {
                assert_eq!(f["type"], "event", "only events were queued: {f}");
                f["event"]["kind"] != "stats"
            })
            .collect()
    }
}

/// A minimal HTTP/1.1 request returning the status and the raw body text.
pub async fn http_text(
    server: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}Content-Length: 0\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status: u16 = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// An HTTP request with a raw (possibly invalid) body: (status, JSON body or Null).
pub async fn http_raw(
    server: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status: u16 = response[9..12].parse().unwrap();
    let json = response
        .split("\r\n\r\n")
        .nth(1)
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (status, json)
}

/// Asserts that `frame` is an event on `topic` of `kind` whose payload has (at least) every
/// field of `fields` with exactly that value.
#[track_caller]
pub fn assert_event(frame: &Value, topic: &str, kind: &str, fields: Value) {
    assert_eq!(frame["type"], "event", "{frame}");
    assert_eq!(frame["topic"], topic, "{frame}");
    assert_eq!(frame["event"]["kind"], kind, "{frame}");
    assert!(frame["seq"].is_u64(), "{frame}");
    assert!(frame["event"]["at"].is_u64(), "{frame}");
    for (k, v) in fields.as_object().expect("fields is an object") {
        assert_eq!(&frame["event"][k], v, "field {k} of {frame}");
    }
}

/// Asserts the kinds of `frames`, in order.
#[track_caller]
pub fn assert_kinds(frames: &[Value], kinds: &[&str]) {
    let got: Vec<&str> = frames
        .iter()
        .map(|f| f["event"]["kind"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(got, kinds, "{frames:#?}");
}

/// Asserts that `frames` (one subscriber's events on one topic) have strictly increasing
/// `seq`s, and that each is the very event `reference` (an `admin` subscriber's frames, which
/// carry every event) has at that `seq` — so the topic's events are a gap-free subsequence of
/// the journal.
#[track_caller]
pub fn assert_subsequence_of(frames: &[Value], reference: &[Value]) {
    let by_seq: std::collections::HashMap<u64, &Value> = reference
        .iter()
        .map(|f| (f["seq"].as_u64().unwrap(), &f["event"]))
        .collect();
    let mut last = 0;
    for f in frames {
        let seq = f["seq"].as_u64().expect("seq is a u64");
        assert!(seq > last, "seq {seq} after {last}: {frames:#?}");
        last = seq;
        assert_eq!(by_seq.get(&seq), Some(&&f["event"]), "event at seq {seq}");
    }
}

/// Whether `value` mentions `needle` anywhere: as a string containing it, or as a number equal
/// to it (for amounts).
pub fn mentions(value: &Value, needle: &Value) -> bool {
    match (value, needle) {
        (Value::String(s), Value::String(n)) => s.contains(n.as_str()),
        (Value::Number(_), Value::Number(_)) => value == needle,
        (Value::Array(items), _) => items.iter().any(|v| mentions(v, needle)),
        (Value::Object(map), _) => map.iter().any(|(k, v)| {
            matches!(needle, Value::String(n) if k.contains(n.as_str())) || mentions(v, needle)
        }),
        _ => false,
    }
}
