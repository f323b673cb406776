//! Clients of one node, by address: a WebSocket client speaking JSON frames ([`NodeClient`]),
//! tokens signed with [`CLUSTER_SECRET`], and a minimal HTTP/1.1 client.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use gavel_gateway::ingress::auth::JwtKeys;
use gavel_protocol::{Role, UserId};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::CLUSTER_SECRET;

/// How long [`NodeClient::request`] waits for its reply, and the HTTP helpers for a response.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// An HS256 token for `sub` in `role`, valid for an hour, signed with [`CLUSTER_SECRET`]
/// (claims `sub`, `role`, `exp`, exactly as `gavel token` mints them).
pub fn token(sub: &str, role: Role) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs();
    let sub = UserId::new(sub).expect("a valid user id (1-64 of A-Z a-z 0-9 _ . : -)");
    JwtKeys::new(CLUSTER_SECRET.as_bytes()).mint(&sub, role, Duration::from_secs(3600), now)
}

/// A token of the admin `ops`.
pub fn admin_token() -> String {
    token("ops", Role::Admin)
}

/// A WebSocket connection to one node's `/v1/ws`, speaking JSON text frames.
///
/// Frames read while waiting for something else (a reply, a given event) are kept in a buffer,
/// in order; [`NodeClient::events`] drains it. Every frame ever read is also kept in
/// [`NodeClient::transcript`].
#[derive(Debug)]
pub struct NodeClient {
    addr: SocketAddr,
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    buffer: VecDeque<Value>,
    transcript: Vec<Value>,
    closed: bool,
}

impl NodeClient {
    /// Connects to `ws://ADDR/v1/ws?token=…` as `sub` in `role` (panics when refused).
    pub async fn connect(addr: SocketAddr, sub: &str, role: Role) -> Self {
        match Self::try_connect(addr, sub, role).await {
            Ok(client) => client,
            Err(e) => panic!("WebSocket connect to {addr} as {sub}: {e}"),
        }
    }

    /// Like [`NodeClient::connect`], reporting a failure (refused, dead node, 5 s timeout).
    pub async fn try_connect(addr: SocketAddr, sub: &str, role: Role) -> Result<Self, String> {
        let url = format!("ws://{addr}/v1/ws?token={}", token(sub, role));
        let connecting = tokio_tungstenite::connect_async(url);
        let (ws, _) = tokio::time::timeout(Duration::from_secs(5), connecting)
            .await
            .map_err(|_| "no upgrade within 5 s".to_owned())?
            .map_err(|e| e.to_string())?;
        Ok(NodeClient {
            addr,
            ws,
            buffer: VecDeque::new(),
            transcript: Vec::new(),
            closed: false,
        })
    }

    /// The node this client is connected to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether the connection has ended (close frame, error or EOF seen).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Every frame read so far, in order (including the ones handed out already).
    pub fn transcript(&self) -> &[Value] {
        &self.transcript
    }

    /// Sends `frame` as a text frame (panics when the connection is gone).
    pub async fn send(&mut self, frame: Value) {
        if let Err(e) = self.try_send(frame).await {
            panic!("send to {}: {e}", self.addr);
        }
    }

    /// Sends `frame` as a text frame, reporting a failure.
    pub async fn try_send(&mut self, frame: Value) -> Result<(), String> {
        self.ws
            .send(Message::text(frame.to_string()))
            .await
            .map_err(|e| e.to_string())
    }

    /// The next frame (the oldest buffered one first), waiting up to `timeout`; `None` on
    /// timeout or when the connection has ended (see [`NodeClient::is_closed`]).
    pub async fn next_within(&mut self, timeout: Duration) -> Option<Value> {
        if let Some(frame) = self.buffer.pop_front() {
            return Some(frame);
        }
        self.read_frame(Instant::now() + timeout).await
    }

    /// Sends `frame` with `"id": id` and returns the `ok` or `error` frame with that id,
    /// waiting up to [`REPLY_TIMEOUT`]; other frames read meanwhile go to the buffer.
    pub async fn request(&mut self, id: &str, mut frame: Value) -> Value {
        frame["id"] = json!(id);
        self.send(frame).await;
        self.wait_reply_within(id, REPLY_TIMEOUT).await
    }

    /// The `ok` or `error` frame with `id` (sent earlier), waiting up to 30 s; other frames
    /// read meanwhile go to the buffer.
    pub async fn wait_reply(&mut self, id: &str) -> Value {
        self.wait_reply_within(id, Duration::from_secs(30)).await
    }

    async fn wait_reply_within(&mut self, id: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        if let Some(at) = self.buffer.iter().position(|f| is_reply_to(f, id)) {
            return self
                .buffer
                .remove(at)
                .expect("the position is in the buffer");
        }
        loop {
            let Some(f) = self.read_frame(deadline).await else {
                panic!(
                    "no reply to {id} from {} within {timeout:?} (closed: {})",
                    self.addr, self.closed
                );
            };
            if is_reply_to(&f, id) {
                return f;
            }
            self.buffer.push_back(f);
        }
    }

    /// The `result` of a successful [`NodeClient::request`] (panics on an error reply).
    pub async fn ok(&mut self, id: &str, frame: Value) -> Value {
        let reply = self.request(id, frame).await;
        assert_eq!(reply["type"], "ok", "reply from {}: {reply}", self.addr);
        reply["result"].clone()
    }

    /// Drains the buffer: frames read while waiting for something else, in order.
    pub fn events(&mut self) -> Vec<Value> {
        self.buffer.drain(..).collect()
    }

    /// Waits up to `timeout` for an event of `kind` on `topic` and returns it (taking it out
    /// of the buffer; frames before it stay there, in order). Panics on timeout.
    pub async fn wait_event(&mut self, topic: &str, kind: &str, timeout: Duration) -> Value {
        let is_it =
            |f: &Value| f["type"] == "event" && f["topic"] == topic && f["event"]["kind"] == kind;
        if let Some(at) = self.buffer.iter().position(is_it) {
            return self
                .buffer
                .remove(at)
                .expect("the position is in the buffer");
        }
        let deadline = Instant::now() + timeout;
        loop {
            let Some(f) = self.read_frame(deadline).await else {
                let kinds: Vec<String> = self.buffer.iter().map(describe).collect();
                panic!(
                    "no {kind} on {topic} from {} within {timeout:?} (closed: {}); buffered: {kinds:?}",
                    self.addr, self.closed
                );
            };
            if is_it(&f) {
                return f;
            }
            self.buffer.push_back(f);
        }
    }

    /// Sends a close frame (errors ignored: the node may be gone already).
    pub async fn close(&mut self) {
        let _ = self.ws.close(None).await;
        self.closed = true;
    }

    /// The next text frame from the socket, by `deadline`; pings, pongs and binary frames are
    /// skipped. `None` on timeout or end of the connection.
    async fn read_frame(&mut self, deadline: Instant) -> Option<Value> {
        if self.closed {
            return None;
        }
        loop {
            let msg = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()?;
            match msg {
                Some(Ok(Message::Text(text))) => {
                    let frame: Value = serde_json::from_str(text.as_str())
                        .unwrap_or_else(|e| panic!("a non-JSON text frame ({e}): {text}"));
                    self.transcript.push(frame.clone());
                    return Some(frame);
                }
                Some(Ok(Message::Close(_)) | Err(_)) | None => {
                    self.closed = true;
                    return None;
                }
                Some(Ok(_)) => {}
            }
        }
    }
}

fn is_reply_to(f: &Value, id: &str) -> bool {
    (f["type"] == "ok" || f["type"] == "error") && f["id"] == json!(id)
}

/// A frame in a few words, for panic messages: `type topic kind`.
fn describe(f: &Value) -> String {
    let part = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    format!(
        "{} {} {}",
        part(&f["type"]),
        part(&f["topic"]),
        part(&f["event"]["kind"])
    )
}

// ---- HTTP --------------------------------------------------------------------------------

/// `GET path` on the node at `addr`: (status, body). Panics when the node does not answer
/// within [`REPLY_TIMEOUT`].
pub async fn http_get(addr: SocketAddr, path: &str, bearer: Option<&str>) -> (u16, Value) {
    http_json(addr, "GET", path, bearer, None).await
}

/// `METHOD path` with a JSON `body` on the node at `addr`: (status, body). Panics when the
/// node does not answer within [`REPLY_TIMEOUT`].
pub async fn http_json(
    addr: SocketAddr,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    match try_http(addr, method, path, bearer, body.as_ref(), REPLY_TIMEOUT).await {
        Ok(response) => response,
        Err(e) => panic!("{method} {path} on {addr}: {e}"),
    }
}

/// `GET /v1/cluster` on the node at `addr` as an admin, within `timeout`: its body when it
/// answers 200 (`{leader, nodes: [{node_id, role, seq, lag_ms, connections, last_seen}]}`).
pub async fn fetch_cluster_view(addr: SocketAddr, timeout: Duration) -> Result<Value, String> {
    let token = admin_token();
    match try_http(addr, "GET", "/v1/cluster", Some(&token), None, timeout).await? {
        (200, view) => Ok(view),
        (status, body) => Err(format!("status {status}: {body}")),
    }
}

/// Whether a `/v1/cluster` answer lists `node_id` itself with `role: "leader"`.
pub fn claims_leadership(view: &Value, node_id: &str) -> bool {
    view["nodes"].as_array().is_some_and(|nodes| {
        nodes
            .iter()
            .any(|n| n["node_id"] == node_id && n["role"] == "leader")
    })
}

/// Whether `GET /readyz` on the node at `addr` answers 200 within 1 s.
pub async fn is_ready(addr: SocketAddr) -> bool {
    let probe = try_http(addr, "GET", "/readyz", None, None, Duration::from_secs(1));
    matches!(probe.await, Ok((200, _)))
}

/// One HTTP/1.1 request (`Connection: close`) within `timeout`: (status, body), the body as
/// JSON, or as a JSON string when it is not JSON, or `Null` when empty. `Err` when the node
/// refuses the connection, does not answer in time, or answers garbage.
pub async fn try_http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&Value>,
    timeout: Duration,
) -> Result<(u16, Value), String> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let body = body.map(Value::to_string).unwrap_or_default();
        let auth = bearer
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .await
            .map_err(|e| e.to_string())?;
        parse_response(&response)
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("no response within {timeout:?}"))?
}

/// (status, body) of a raw HTTP/1.1 response (with a chunked body decoded).
fn parse_response(raw: &[u8]) -> Result<(u16, Value), String> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no end of headers in {text:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    let chunked = head.lines().any(|line| {
        let line = line.to_ascii_lowercase();
        line.starts_with("transfer-encoding:") && line.contains("chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    let value = if body.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&body).unwrap_or(Value::String(body))
    };
    Ok((status, value))
}

/// The payload of a chunked body (`SIZE\r\nDATA\r\n…0\r\n\r\n`).
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = size.split(';').next().unwrap_or("").trim();
        let Ok(n) = usize::from_str_radix(size, 16) else {
            break;
        };
        let (Some(data), Some(after)) = (rest.get(..n), rest.get(n..)) else {
            break;
        };
        if n == 0 {
            break;
        }
        out.push_str(data);
        body = after.strip_prefix("\r\n").unwrap_or(after);
    }
    out
}

// ---- Redis -------------------------------------------------------------------------------

/// `PING` to the Redis at `addr` over raw TCP (RESP inline command); returns the first reply
/// line without its CRLF.
pub fn redis_ping(addr: SocketAddr) -> std::io::Result<String> {
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(b"PING\r\n")?;
    let mut reply = Vec::new();
    let mut byte = [0u8; 1];
    while !reply.ends_with(b"\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        reply.push(byte[0]);
    }
    reply.truncate(reply.len() - 2);
    Ok(String::from_utf8_lossy(&reply).into_owned())
}
