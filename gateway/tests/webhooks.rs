//! Webhooks (contract §14) against a real HTTP receiver that fails or stalls a third of its
//! requests: every matching event arrives, in `seq` order, signed, across a restart of the
//! receiver, and across a `gavel serve` killed with SIGKILL while its receiver refused
//! everything — the restarted process delivers the backlog from its durable cursor.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine as _;
use common::*;
use gavel_gateway::webhooks::WebhookConfig;
use gavel_protocol::Role;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

const GAVEL: &str = env!("CARGO_BIN_EXE_gavel");
const SECRET: &str = "webhook-secret-of-at-least-24-bytes";
const KINDS: [&str; 3] = ["task.opened", "bid.placed", "payment.held"];

/// One request the receiver answered 2xx.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    seq: u64,
    kind: String,
}

/// What the receiver saw: every acknowledged delivery in arrival order, and its request count.
#[derive(Debug, Default)]
struct Log {
    acked: Vec<Received>,
    requests: u64,
    bad_signatures: u64,
    /// While set, every request is answered 503 (and counted in `refused` only).
    refusing: bool,
    refused: u64,
}

fn verify(headers: &HeaderMap, body: &[u8]) -> bool {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{}.{}.", get("webhook-id"), get("webhook-timestamp")).as_bytes());
    mac.update(body);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    get("webhook-signature") == format!("v1,{expected}")
}

/// A receiver on `addr`: unless refusing, request n answers 500 when n % 6 == 0, stalls past
/// the webhook's timeout when n % 6 == 3, and 200 otherwise (after recording it).
async fn receiver(
    listener: tokio::net::TcpListener,
    log: Arc<Mutex<Log>>,
) -> tokio::task::JoinHandle<()> {
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| {
            let log = log.clone();
            async move {
                let n = {
                    let mut l = log.lock().unwrap();
                    if l.refusing {
                        l.refused += 1;
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                    l.requests += 1;
                    l.requests
                };
                if n % 6 == 0 {
                    return StatusCode::INTERNAL_SERVER_ERROR;
                }
                if n % 6 == 3 {
                    tokio::time::sleep(Duration::from_millis(600)).await;
                    return StatusCode::OK;
                }
                let frame: Value = serde_json::from_slice(&body).unwrap();
                let mut l = log.lock().unwrap();
                if !verify(&headers, &body) {
                    l.bad_signatures += 1;
                }
                l.acked.push(Received {
                    id: headers["webhook-id"].to_str().unwrap().to_owned(),
                    seq: frame["seq"].as_u64().unwrap(),
                    kind: frame["event"]["kind"].as_str().unwrap().to_owned(),
                });
                StatusCode::OK
            }
        }),
    );
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    })
}

fn options_with_hook(dir: std::path::PathBuf, port: u16) -> gavel_gateway::app::ServerOptions {
    let mut o = options_unlimited(dir);
    o.config.webhooks = vec![WebhookConfig {
        url: format!("http://127.0.0.1:{port}/hook"),
        secret: SECRET.into(),
        kinds: Some(KINDS.iter().map(|k| (*k).to_owned()).collect()),
        timeout_ms: Some(300),
        retry_ms: Some(20),
        ca_file: None,
    }];
    o
}

/// Posts `n` tasks from `from`, a bid on each and accepts it: task.opened, bid.placed and
/// payment.held for every one (and events the webhook does not want).
async fn market(addr: SocketAddr, from: usize, n: usize) {
    let mut seeker = Client::connect_to(addr, "sally", Role::Seeker).await;
    let mut coach = Client::connect_to(addr, "c1", Role::Coach).await;
    for i in from..from + n {
        let task = format!("t{i}");
        // Distinct request ids: a repeated one is a retry (answered, not applied again).
        seeker
            .ok(&format!("p{i}"), json!({"type": "post_task", "task_id": task, "resume_id": "r", "urgency": "standard"}))
            .await;
        let bid = coach
            .ok(
                &format!("b{i}"),
                json!({"type": "place_bid", "task_id": task, "amount": 3000, "eta_hours": 5}),
            )
            .await;
        seeker
            .ok(
                &format!("a{i}"),
                json!({"type": "accept_bid", "task_id": task, "bid_id": bid["bid_id"]}),
            )
            .await;
    }
}

/// The (seq, kind) of every event of the wanted kinds, from the admin topic.
async fn wanted(admin: &mut Client) -> Vec<(u64, String)> {
    admin
        .drain_events()
        .await
        .iter()
        .map(|f| {
            (
                f["seq"].as_u64().unwrap(),
                f["event"]["kind"].as_str().unwrap().to_owned(),
            )
        })
        .filter(|(_, kind)| KINDS.contains(&kind.as_str()))
        .collect()
}

async fn until_received(log: &Arc<Mutex<Log>>, seqs: &[(u64, String)]) {
    until("every event to arrive", async || {
        let got: BTreeSet<u64> = log.lock().unwrap().acked.iter().map(|r| r.seq).collect();
        seqs.iter().all(|(s, _)| got.contains(s))
    })
    .await;
}

/// Waits (polling) until `done`; fails after 60 s — a bound for a broken build, not a barrier.
async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !done().await {
        assert!(tokio::time::Instant::now() < deadline, "waited for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An admin subscribed to the `admin` topic (every event, with its `seq`).
async fn admin(addr: SocketAddr) -> Client {
    let mut admin = Client::connect_to(addr, "ops", Role::Admin).await;
    admin
        .ok("s", json!({"type": "subscribe", "topic": "admin"}))
        .await;
    admin
}

/// One HTTP/1.1 request to `addr` with an admin token: (status, body text).
async fn http_at(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        token("ops", Role::Admin),
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_owned())
}

/// The one webhook's entry of `GET /v1/webhooks`.
async fn webhook_status(addr: SocketAddr) -> Value {
    let (status, body) = http_at(addr, "GET", "/v1/webhooks", None).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<Value>(&body).unwrap()[0].clone()
}

/// `gavel_webhook_pending` of the webhook on `port`, from `/metrics` (`None`: no series).
async fn pending_gauge(addr: SocketAddr, port: u16) -> Option<u64> {
    let (status, text) = http_at(addr, "GET", "/metrics", None).await;
    assert_eq!(status, 200);
    let series = format!("gavel_webhook_pending{{webhook=\"http://127.0.0.1:{port}/hook\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .map(|v| v.trim().parse().unwrap())
}

/// Checks what the receiver acknowledged: every signature verifies, each `webhook-id` is
/// `<epoch>-<seq>`, only the kinds asked for, and the first delivery of each `seq` in order
/// and exactly `want` (later copies are at-least-once's, allowed).
fn assert_delivered(log: &Log, acked: &[Received], epoch: &str, want: &[(u64, String)]) {
    assert_eq!(log.bad_signatures, 0, "every signature verifies");
    let mut firsts = Vec::new();
    for r in acked {
        assert_eq!(
            r.id,
            format!("{epoch}-{}", r.seq),
            "webhook-id is <epoch>-<seq>"
        );
        assert!(
            KINDS.contains(&r.kind.as_str()),
            "only the kinds asked for: {}",
            r.kind
        );
        if !firsts.contains(&r.seq) {
            firsts.push(r.seq);
        }
    }
    let want: Vec<u64> = want.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        firsts, want,
        "every matching event once, in seq order, nothing else"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_matching_event_arrives_in_order_signed_across_a_receiver_restart() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let log = Arc::new(Mutex::new(Log::default()));
    let mut rx = receiver(listener, log.clone()).await;
    let server = start_with(options_with_hook(fresh_dir("webhooks"), addr.port())).await;
    register_coach(&server, "c1", 4.5, false).await;
    let mut admin = admin(server.addr).await;

    market(server.addr, 0, 5).await;
    let mut expected = wanted(&mut admin).await;
    until_received(&log, &expected).await;

    // The receiver goes away: deliveries fail (and say so), then it comes back.
    rx.abort();
    let _ = (&mut rx).await;
    market(server.addr, 5, 3).await;
    expected.extend(wanted(&mut admin).await);
    let mut status = Value::Null;
    until("the failures to be reported", async || {
        status = webhook_status(server.addr).await;
        !status["last_error"].is_null()
    })
    .await;
    assert!(status["pending"].as_u64().unwrap() > 0, "{status}");
    // The same port again (the receiver restarts where gavel expects it).
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let _rx = receiver(listener, log.clone()).await;
    until_received(&log, &expected).await;

    let log = std::mem::take(&mut *log.lock().unwrap());
    assert!(
        log.requests > log.acked.len() as u64,
        "some requests failed or stalled"
    );
    assert_delivered(&log, &log.acked, &server.epoch, &expected);
    drop(admin);
    server.shutdown().await;
}

/// A running `gavel serve` (the real binary), so it can be killed with SIGKILL.
struct Gavel {
    child: Child,
    addr: SocketAddr,
}

impl Gavel {
    /// Starts `gavel serve` on `dir` with `config`; returns once it logs `listening`.
    async fn start(dir: &Path, config: &Path) -> Gavel {
        let mut child = Command::new(GAVEL)
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .arg("--data-dir")
            .arg(dir)
            .arg("--jwt-secret")
            .arg(std::str::from_utf8(common::SECRET).unwrap())
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
        let (tx, rx) = tokio::sync::oneshot::channel();
        // Drained to the end (a full pipe would stall gavel); the `listening` line gives the port.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let entry: Value = serde_json::from_str(&line).unwrap_or_default();
                if entry["message"] == "listening"
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(entry["addr"].as_str().unwrap_or_default().to_owned());
                }
            }
        });
        let addr = tokio::time::timeout(Duration::from_secs(60), rx)
            .await
            .expect("gavel serve logs `listening`")
            .expect("gavel serve runs until it listens");
        let addr = addr
            .parse()
            .expect("the listening line carries the address");
        Gavel { child, addr }
    }

    /// SIGKILL: no shutdown, no flush, no last cursor save.
    fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        let status = self.child.wait().unwrap();
        assert!(!status.success(), "killed, not exited: {status}");
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

/// A config file for `gavel serve` with the webhook on `port` (as [`options_with_hook`]).
fn config_with_hook(dir: &Path, port: u16) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("gavel.toml");
    let kinds = KINDS.map(|k| format!("\"{k}\"")).join(", ");
    std::fs::write(
        &path,
        format!(
            "[limits]\ncommands_per_minute = 1000000\ncommand_burst = 100000\n\n\
             [[webhooks]]\nurl = \"http://127.0.0.1:{port}/hook\"\nsecret = \"{SECRET}\"\n\
             kinds = [{kinds}]\ntimeout_ms = 300\nretry_ms = 20\n"
        ),
    )
    .unwrap();
    path
}

/// The backlog survives a SIGKILL. The receiver refuses everything (503) while matching events
/// are made, gavel is killed, restarted on the same data directory, more events are made, and
/// only then does the receiver accept: the whole backlog — from before the kill and after the
/// restart — arrives, in `seq` order, signed, under the same `webhook-id`s; the backlog gauge
/// shows it and empties.
///
/// At least once, stated: the cursor is saved after each 2xx and before the next POST, so a
/// kill re-sends at most the one event acknowledged but not yet saved. Here the last 2xx before
/// the kill came while the receiver still accepted and the cursor read after the kill covers
/// it, so nothing at or before the cursor may arrive again; copies after it (a 2xx answered
/// after gavel's 300 ms timeout by the stalling receiver) are allowed, and only first
/// deliveries are compared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_gavel_delivers_the_backlog_from_its_durable_cursor() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let log = Arc::new(Mutex::new(Log::default()));
    let _rx = receiver(listener, log.clone()).await;
    let dir = fresh_dir("webhooks-kill");
    let config = config_with_hook(&dir, port);
    let gavel = Gavel::start(&dir, &config).await;
    let coach = json!({"display_name": "c1", "rating": 4.5, "verified": true, "capacity": 3});
    let (status, body) = http_at(gavel.addr, "PUT", "/v1/coaches/c1", Some(coach)).await;
    assert_eq!(status, 200, "{body}");
    let mut watcher = admin(gavel.addr).await;
    market(gavel.addr, 0, 2).await;
    let delivered = wanted(&mut watcher).await;
    until_received(&log, &delivered).await;
    // ... and acknowledged durably (a 2xx that came after gavel's timeout would be sent again).
    let last = delivered.last().unwrap().0;
    until("the cursor to cover what arrived", async || {
        webhook_status(gavel.addr).await["cursor_seq"].as_u64() >= Some(last)
    })
    .await;

    log.lock().unwrap().refusing = true;
    market(gavel.addr, 2, 2).await;
    let mut backlog = wanted(&mut watcher).await;
    // gavel tried the backlog and was refused: it holds it rather than skipping it.
    until("a refused attempt", async || {
        log.lock().unwrap().refused > 0
    })
    .await;
    drop(watcher);
    gavel.kill();
    let acked_before_kill = log.lock().unwrap().acked.len();

    let store = gavel_storage::Store::open_sqlite(&dir).await.unwrap();
    let url = format!("http://127.0.0.1:{port}/hook");
    let cursor = store.webhook_cursor(&url).await.unwrap().expect("a cursor");
    let epoch = store.epoch().await.unwrap();
    drop(store);
    assert!(
        cursor >= last && cursor < backlog[0].0,
        "the durable cursor {cursor} is past what was acknowledged, before the backlog {backlog:?}"
    );

    let gavel = Gavel::start(&dir, &config).await;
    let mut watcher = admin(gavel.addr).await;
    market(gavel.addr, 4, 2).await;
    backlog.extend(wanted(&mut watcher).await);
    // The restarted gavel resumes at the cursor (not the journal's end) and is being refused.
    let mut status = Value::Null;
    until("the restarted gavel to report its failures", async || {
        status = webhook_status(gavel.addr).await;
        !status["last_error"].is_null()
    })
    .await;
    assert_eq!(status["cursor_seq"], cursor, "{status}");
    until("the backlog gauge to show it", async || {
        pending_gauge(gavel.addr, port).await.is_some_and(|g| g > 0)
    })
    .await;

    log.lock().unwrap().refusing = false;
    until_received(&log, &backlog).await;
    until("the backlog gauge to empty", async || {
        pending_gauge(gavel.addr, port).await == Some(0)
    })
    .await;
    let log = std::mem::take(&mut *log.lock().unwrap());
    let after = &log.acked[acked_before_kill..];
    assert!(
        after.iter().all(|r| r.seq > cursor),
        "nothing at or before the cursor {cursor} again: {after:?}"
    );
    assert_delivered(&log, after, &epoch, &backlog);
    drop(watcher);
    gavel.kill();
}

#[tokio::test]
async fn a_bad_webhook_config_is_refused_with_the_reason() {
    let check = |toml: &str| {
        gavel_gateway::cli::config::ServerConfig::parse(toml)
            .unwrap_err()
            .to_string()
    };
    let short = check("[[webhooks]]\nurl = \"http://127.0.0.1:9/x\"\nsecret = \"short\"\n");
    assert!(short.contains("at least 24 bytes"), "{short}");
    let kind = check(&format!(
        "[[webhooks]]\nurl = \"http://127.0.0.1:9/x\"\nsecret = \"{SECRET}\"\nkinds = [\"payment.sent\"]\n"
    ));
    assert!(kind.contains("payment.sent"), "{kind}");
    let scheme = check(&format!(
        "[[webhooks]]\nurl = \"ftp://x/y\"\nsecret = \"{SECRET}\"\n"
    ));
    assert!(scheme.contains("https://"), "{scheme}");
    let twice = check(&format!(
        "[[webhooks]]\nurl = \"http://h/a\"\nsecret = \"{SECRET}\"\n[[webhooks]]\nurl = \"http://h/a\"\nsecret = \"{SECRET}\"\n"
    ));
    assert!(twice.contains("twice"), "{twice}");
}

/// An `https://` webhook: gavel verifies the receiver's certificate (here against the test CA
/// given as `ca_file`) and delivers over TLS. The fixtures are a throwaway CA and a certificate
/// for 127.0.0.1 made for this test only (the CA's key was never kept).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_webhook_is_delivered_over_verified_tls() {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let certs: Vec<CertificateDer> =
        CertificateDer::pem_file_iter(format!("{fixtures}/webhook-test-cert.pem"))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_file(format!("{fixtures}/webhook-test-key.pem")).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (got_tx, mut got_rx) = tokio::sync::mpsc::unbounded_channel::<(bool, Value)>();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            let got_tx = got_tx.clone();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let got_tx = got_tx.clone();
                        async move {
                            use http_body_util::BodyExt;
                            let headers = req.headers().clone();
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let _ = got_tx.send((
                                verify(&headers, &body),
                                serde_json::from_slice(&body).unwrap(),
                            ));
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(
                                http_body_util::Full::new(Bytes::new()),
                            ))
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });

    let mut o = options_unlimited(fresh_dir("webhooks-tls"));
    o.config.webhooks = vec![WebhookConfig {
        url: format!("https://127.0.0.1:{port}/hook"),
        secret: SECRET.into(),
        kinds: Some(vec!["task.opened".into()]),
        timeout_ms: Some(2_000),
        retry_ms: Some(20),
        ca_file: Some(format!("{fixtures}/webhook-test-ca.pem")),
    }];
    let server = start_with(o).await;
    let mut seeker = Client::connect(&server, "sally", Role::Seeker).await;
    seeker
        .ok(
            "p",
            json!({"type": "post_task", "task_id": "tls1", "resume_id": "r", "urgency": "urgent"}),
        )
        .await;
    let (signed, frame) = tokio::time::timeout(Duration::from_secs(10), got_rx.recv())
        .await
        .expect("the event arrives over TLS")
        .unwrap();
    assert!(signed, "the signature verifies");
    assert_eq!(frame["event"]["kind"], "task.opened");
    assert_eq!(frame["event"]["task_id"], "tls1");
    drop(seeker);
    server.shutdown().await;
}

#[tokio::test]
async fn an_https_webhook_with_an_unreadable_ca_file_is_refused() {
    let err = gavel_gateway::cli::config::ServerConfig::parse(&format!(
        "[[webhooks]]\nurl = \"https://127.0.0.1:9/x\"\nsecret = \"{SECRET}\"\nca_file = \"/nonexistent/ca.pem\"\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(err.contains("ca_file"), "{err}");
}
