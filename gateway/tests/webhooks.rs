//! Webhooks (contract §14) against a real HTTP receiver that fails or stalls a third of its
//! requests and is restarted once, and a gavel that is restarted once: every matching event
//! arrives, in `seq` order, signed; the restarted gavel resumes at its durable cursor.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
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

/// A receiver on `addr`: request n answers 500 when n % 6 == 0, stalls past the webhook's
/// timeout when n % 6 == 3, and 200 otherwise (after recording it).
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
async fn market(server: &gavel_gateway::app::Server, from: usize, n: usize) {
    let mut seeker = Client::connect(server, "sally", Role::Seeker).await;
    let mut coach = Client::connect(server, "c1", Role::Coach).await;
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
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let got: BTreeSet<u64> = log.lock().unwrap().acked.iter().map(|r| r.seq).collect();
        if seqs.iter().all(|(s, _)| got.contains(s)) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not every event arrived: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn webhook_status(server: &gavel_gateway::app::Server) -> Value {
    let (status, body) = http(
        server,
        "GET",
        "/v1/webhooks",
        Some(&token("ops", Role::Admin)),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_matching_event_arrives_in_order_signed_across_receiver_and_gavel_restarts() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let port = addr.port();
    let log = Arc::new(Mutex::new(Log::default()));
    let mut rx = receiver(listener, log.clone()).await;
    let dir = fresh_dir("webhooks");
    let server = start_with(options_with_hook(dir.clone(), port)).await;
    let epoch = server.epoch.clone();
    register_coach(&server, "c1", 4.5, false).await;
    let mut admin = Client::connect(&server, "ops", Role::Admin).await;
    admin
        .ok("s", json!({"type": "subscribe", "topic": "admin"}))
        .await;

    market(&server, 0, 5).await;
    let mut expected = wanted(&mut admin).await;
    until_received(&log, &expected).await;

    // The receiver goes away: deliveries fail (and say so), then it comes back.
    rx.abort();
    let _ = (&mut rx).await;
    market(&server, 5, 3).await;
    let more = wanted(&mut admin).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while webhook_status(&server).await["last_error"].is_null() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the failures were never reported: {} (receiver saw {} requests)",
            webhook_status(&server).await,
            log.lock().unwrap().requests
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = webhook_status(&server).await;
    assert!(status["pending"].as_u64().unwrap() > 0, "{status}");
    // The same port again (the receiver restarts where gavel expects it).
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let _rx = receiver(listener, log.clone()).await;
    expected.extend(more);
    until_received(&log, &expected).await;

    // gavel restarts: it resumes after its durable cursor.
    drop(admin);
    server.shutdown().await;
    let store = gavel_storage::Store::open_sqlite(&dir).await.unwrap();
    let url = format!("http://127.0.0.1:{port}/hook");
    let cursor = store
        .webhook_cursor(&url)
        .await
        .unwrap()
        .expect("a durable cursor");
    drop(store);
    let before_restart = log.lock().unwrap().acked.len();
    let server = start_with(options_with_hook(dir, port)).await;
    let mut admin = Client::connect(&server, "ops", Role::Admin).await;
    admin
        .ok("s", json!({"type": "subscribe", "topic": "admin"}))
        .await;
    market(&server, 8, 3).await;
    let after = wanted(&mut admin).await;
    until_received(&log, &after).await;
    expected.extend(after);

    let log = std::mem::take(&mut *log.lock().unwrap());
    assert_eq!(log.bad_signatures, 0, "every signature verifies");
    assert!(
        log.requests > log.acked.len() as u64,
        "some requests failed or stalled"
    );
    // In order: each first delivery of a seq comes after every lower seq's.
    let mut firsts = Vec::new();
    for r in &log.acked {
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
    assert!(
        firsts.windows(2).all(|w| w[0] < w[1]),
        "in seq order: {firsts:?}"
    );
    let want: Vec<u64> = expected.iter().map(|(s, _)| *s).collect();
    assert_eq!(firsts, want, "every matching event, nothing else");
    // After the restart, nothing at or before the durable cursor was sent again.
    assert!(
        log.acked[before_restart..].iter().all(|r| r.seq > cursor),
        "resumed after the cursor {cursor}"
    );
    drop(admin);
    server.shutdown().await;
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
