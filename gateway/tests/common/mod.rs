//! Test fixtures: a real server on 127.0.0.1:0 and real WebSocket clients.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use gavel_gateway::app::{Server, ServerOptions};
use gavel_gateway::auth::JwtKeys;
use gavel_gateway::config::ServerConfig;
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
        let url = format!("ws://{}/v1/ws?token={}", server.addr, token(sub, role));
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
    let (status, _) = http(
        server,
        "PUT",
        &format!("/v1/coaches/{id}"),
        Some(&token("ops", Role::Admin)),
        Some(body),
    )
    .await;
    assert_eq!(status, 200);
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
