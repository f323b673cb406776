//! Talking to the server: where it is, WebSocket dialing (optionally from several local source
//! addresses), a minimal HTTP/1.1 client for the service API, and token minting.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use gavel_protocol::{Claims, Role, UserId};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// A client WebSocket.
pub type Ws = WebSocketStream<TcpStream>;

/// Where the server is: `ws://host:port[/path]` gives the WebSocket URL (`/v1/ws` when no
/// path is given) and the HTTP base (`host:port`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    /// `ws://host:port/v1/ws`.
    pub ws_url: String,
    /// `host:port`, for HTTP and the `Host` header.
    pub host_port: String,
    pub addr: SocketAddr,
    /// The baseline server rather than gavel.
    pub baseline: bool,
}

impl Target {
    pub fn parse(url: &str, baseline: bool) -> anyhow::Result<Target> {
        let rest = url
            .strip_prefix("ws://")
            .or_else(|| url.strip_prefix("http://"))
            .with_context(|| format!("`{url}`: only ws:// (or http://) URLs are supported"))?;
        let (host_port, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let path = if path.is_empty() || path == "/" {
            "/v1/ws"
        } else {
            path
        };
        let addr = host_port
            .to_socket_addrs()
            .with_context(|| format!("resolving {host_port}"))?
            .next()
            .with_context(|| format!("{host_port} resolves to no address"))?;
        Ok(Target {
            ws_url: format!("ws://{host_port}{path}"),
            host_port: host_port.to_owned(),
            addr,
            baseline,
        })
    }

    /// The WebSocket URL with another path (the baseline's `/pub`).
    pub fn ws_url_at(&self, path: &str) -> String {
        format!("ws://{}{path}", self.host_port)
    }
}

/// Why a connection could not be made; `key` is what the error tally counts.
#[derive(Debug)]
pub struct DialError {
    pub key: String,
    pub detail: String,
}

impl std::fmt::Display for DialError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.detail)
    }
}

/// Opens client WebSockets, binding each socket to the next source address in turn.
#[derive(Debug)]
pub struct Dialer {
    target: Target,
    sources: Vec<IpAddr>,
    next: AtomicUsize,
    /// Other nodes to dial, round robin with the target's address (`--spread-to`).
    spread: Vec<SocketAddr>,
    next_node: AtomicUsize,
    config: WebSocketConfig,
}

impl Dialer {
    pub fn new(target: Target, sources: Vec<IpAddr>) -> Self {
        // Small buffers: tens of thousands of mostly idle connections live in one process.
        let config = WebSocketConfig::default()
            .read_buffer_size(8 * 1024)
            .write_buffer_size(0)
            .max_write_buffer_size(1 << 20);
        Dialer {
            target,
            sources,
            next: AtomicUsize::new(0),
            spread: Vec::new(),
            next_node: AtomicUsize::new(0),
            config,
        }
    }

    /// Also dials `nodes`, round robin with the target (connections of a cluster's nodes).
    pub fn spread(mut self, nodes: Vec<SocketAddr>) -> Self {
        self.spread = nodes;
        self
    }

    /// The address of the next connection.
    fn next_addr(&self) -> SocketAddr {
        if self.spread.is_empty() {
            return self.target.addr;
        }
        match self.next_node.fetch_add(1, Ordering::Relaxed) % (self.spread.len() + 1) {
            0 => self.target.addr,
            i => self.spread[i - 1],
        }
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Connects to `path` (default: the target's WebSocket path) with an optional bearer token.
    pub async fn dial(&self, path: Option<&str>, token: Option<&str>) -> Result<Ws, DialError> {
        let err = |key: &str, detail: String| DialError {
            key: key.to_owned(),
            detail,
        };
        let addr = self.next_addr();
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(|e| err("socket", e.to_string()))?;
        if !self.sources.is_empty() {
            let i = self.next.fetch_add(1, Ordering::Relaxed) % self.sources.len();
            socket
                .bind(SocketAddr::new(self.sources[i], 0))
                .map_err(|e| err("bind", format!("{}: {e}", self.sources[i])))?;
        }
        let stream = socket
            .connect(addr)
            .await
            .map_err(|e| err(&format!("connect {:?}", e.kind()), e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let url = match path {
            Some(p) => self.target.ws_url_at(p),
            None => self.target.ws_url.clone(),
        };
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|e| err("request", e.to_string()))?;
        if let Some(token) = token {
            let value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|e| err("request", e.to_string()))?;
            request.headers_mut().insert("authorization", value);
        }
        match tokio_tungstenite::client_async_with_config(request, stream, Some(self.config)).await
        {
            Ok((ws, _)) => Ok(ws),
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(err(
                &format!("http {}", resp.status().as_u16()),
                "upgrade refused".into(),
            )),
            Err(e) => Err(err("handshake", e.to_string())),
        }
    }
}

/// Mints HS256 tokens `{sub, role, exp}` with the server's secret.
pub struct Minter {
    key: EncodingKey,
    exp: u64,
}

impl std::fmt::Debug for Minter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Minter { .. }")
    }
}

impl Minter {
    /// Tokens valid for `ttl` from now.
    pub fn new(secret: &str, ttl: Duration) -> Self {
        Minter {
            key: EncodingKey::from_secret(secret.as_bytes()),
            exp: unix_secs() + ttl.as_secs(),
        }
    }

    pub fn mint(&self, sub: &str, role: Role) -> anyhow::Result<String> {
        let claims = Claims {
            sub: UserId::new(sub).map_err(|e| anyhow::anyhow!("user id {sub}: {e}"))?,
            role,
            exp: self.exp,
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.key,
        )?)
    }
}

/// Seconds since the Unix epoch.
pub fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Microseconds since the Unix epoch: the clock every process of a run shares.
pub fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// A keep-alive HTTP/1.1 connection to the server's API (just enough HTTP for JSON calls).
#[derive(Debug)]
pub struct Http {
    addr: SocketAddr,
    host: String,
    conn: Option<BufReader<TcpStream>>,
}

/// An HTTP response: status and body.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Http {
    pub fn new(target: &Target) -> Self {
        Http {
            addr: target.addr,
            host: target.host_port.clone(),
            conn: None,
        }
    }

    /// Sends one request; on a reused connection that turns out closed, retries once on a
    /// fresh one (callers only send idempotent requests: PUT, GET, or POST with an
    /// `Idempotency-Key`).
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        extra_headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> anyhow::Result<HttpResponse> {
        for attempt in 0..2 {
            let reused = self.conn.is_some();
            if self.conn.is_none() {
                let stream = TcpStream::connect(self.addr)
                    .await
                    .with_context(|| format!("connecting to {}", self.addr))?;
                let _ = stream.set_nodelay(true);
                self.conn = Some(BufReader::new(stream));
            }
            match self
                .try_request(method, path, token, extra_headers, body)
                .await
            {
                Ok((resp, keep)) => {
                    if !keep {
                        self.conn = None;
                    }
                    return Ok(resp);
                }
                Err(e) => {
                    self.conn = None;
                    if !(reused && attempt == 0) {
                        return Err(e);
                    }
                }
            }
        }
        unreachable!("the second attempt returns")
    }

    async fn try_request(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        extra_headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> anyhow::Result<(HttpResponse, bool)> {
        let conn = self.conn.as_mut().expect("connected");
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.host);
        if let Some(token) = token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        for (k, v) in extra_headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        let body = body.unwrap_or_default();
        if !body.is_empty() || method != "GET" {
            head.push_str("Content-Type: application/json\r\n");
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        out.extend_from_slice(body);
        conn.get_mut().write_all(&out).await?;

        let mut line = String::new();
        if conn.read_line(&mut line).await? == 0 {
            bail!("connection closed before the response");
        }
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad status line {line:?}"))?;
        let mut length = None;
        let mut chunked = false;
        let mut keep = true;
        loop {
            line.clear();
            if conn.read_line(&mut line).await? == 0 {
                bail!("connection closed in the headers");
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
                match k.as_str() {
                    "content-length" => length = v.parse::<usize>().ok(),
                    "transfer-encoding" => chunked = v.eq_ignore_ascii_case("chunked"),
                    "connection" => keep = !v.eq_ignore_ascii_case("close"),
                    _ => {}
                }
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                conn.read_line(&mut line).await?;
                let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                    .with_context(|| format!("bad chunk size {line:?}"))?;
                let mut chunk = vec![0; size + 2];
                conn.read_exact(&mut chunk).await?;
                if size == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..size]);
            }
        } else if let Some(n) = length {
            body.resize(n, 0);
            conn.read_exact(&mut body).await?;
        } else {
            conn.read_to_end(&mut body).await?;
            keep = false;
        }
        Ok((HttpResponse { status, body }, keep))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_derive_the_websocket_path() {
        let t = Target::parse("ws://127.0.0.1:8080", false).unwrap();
        assert_eq!(t.ws_url, "ws://127.0.0.1:8080/v1/ws");
        assert_eq!(t.host_port, "127.0.0.1:8080");
        let t = Target::parse("ws://127.0.0.1:9/custom", false).unwrap();
        assert_eq!(t.ws_url, "ws://127.0.0.1:9/custom");
        assert_eq!(t.ws_url_at("/pub"), "ws://127.0.0.1:9/pub");
        assert!(Target::parse("wss://x:1", false).is_err());
    }
}
