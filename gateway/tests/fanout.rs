//! Slow consumer isolation (design: "a slow client never slows the others"): one `feed`
//! subscriber stops reading; once its kernel buffers and its bounded queue
//! ([`QUEUE_FRAMES`] frames / [`QUEUE_BYTES`] bytes) are full it is closed with 4008 — and
//! meanwhile 500 other `feed` subscribers receive every `task.opened`, in `seq` order.
//! Read afterwards, the slow client gets what was already on its way (a prefix of the same
//! events, in order) and then the close frame with code 4008.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use gavel_gateway::app::Server;
use gavel_gateway::fanout::outbox::{QUEUE_BYTES, QUEUE_FRAMES};
use gavel_protocol::Role;
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

/// Feed subscribers that keep reading.
const READERS: usize = 500;
/// Tasks posted per pipelined chunk.
const CHUNK: usize = 250;
/// How far (in events) the slowest reader may fall behind the poster. Kept well below
/// [`QUEUE_FRAMES`], so the readers themselves can never be slow consumers.
const MAX_LAG: usize = 1500;
/// The task type of the last task: readers stop when they see it.
const LAST: &str = "the_end";
/// One step may take this long before the test fails (it never waits this long when well).
const STEP: Duration = Duration::from_secs(60);

// `task.opened` frames are a few hundred bytes: the frame bound is hit before the byte bound.
const _: () = assert!(QUEUE_FRAMES * 500 < QUEUE_BYTES);

#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(default)]
    seq: u64,
    #[serde(borrow, default)]
    event: Option<EventPart<'a>>,
}

#[derive(Deserialize)]
struct EventPart<'a> {
    kind: &'a str,
    #[serde(borrow, default)]
    task: Option<TaskPart<'a>>,
}

#[derive(Deserialize)]
struct TaskPart<'a> {
    task_id: &'a str,
    task_type: &'a str,
}

/// A `task.opened` as a subscriber saw it: (seq, task id, whether it is the last task).
fn opened(text: &str) -> Option<(u64, String, bool)> {
    let frame: Frame = serde_json::from_str(text).expect("frames are JSON");
    let event = frame.event?;
    if frame.kind != "event" || event.kind != "task.opened" {
        return None;
    }
    let task = event.task.expect("task.opened carries the task");
    Some((frame.seq, task.task_id.to_owned(), task.task_type == LAST))
}

/// Reads `feed` events until the last task; counts progress for the poster's flow control.
async fn read_feed(
    mut client: Client,
    progress: Arc<AtomicUsize>,
    wake: Arc<Notify>,
) -> Vec<(u64, String)> {
    let mut seen = Vec::new();
    loop {
        let msg = match tokio::time::timeout(STEP, client.ws.next()).await {
            Ok(Some(Ok(msg))) => msg,
            Ok(other) => panic!(
                "a reader's connection ended after {} events: {other:?}",
                seen.len()
            ),
            Err(_) => panic!("a reader got nothing for {STEP:?}"),
        };
        let Message::Text(text) = msg else { continue };
        if let Some((seq, task, last)) = opened(text.as_str()) {
            seen.push((seq, task));
            if last {
                return seen;
            }
            if progress.fetch_add(1, Ordering::Relaxed) % 64 == 63 {
                wake.notify_one();
            }
        }
    }
}

/// A client whose socket takes little before it stops accepting (small receive buffer).
async fn slow_client(server: &Server) -> WebSocketStream<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(server.addr).await.unwrap();
    let url = format!(
        "ws://{}/v1/ws?token={}",
        server.addr,
        token("slowpoke", Role::Coach)
    );
    let (ws, _) = tokio_tungstenite::client_async(url, stream)
        .await
        .expect("websocket connects");
    ws
}

/// `gavel_slow_consumer_closes_total` from `/metrics`.
async fn slow_consumer_closes(server: &Server) -> u64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
        .lines()
        .find_map(|l| l.strip_prefix("gavel_slow_consumer_closes_total "))
        .expect("the metric is exported")
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_feed_subscriber_is_closed_with_4008_while_500_others_get_every_event() {
    // What is tested here is the queue's policy (full → 4008, with the close frame behind what
    // was queued). A write that stays stuck past `write_timeout_secs` drops the connection
    // without a close frame instead (tests/slow_clients.rs); on a loaded machine this test's
    // slow client can stay stuck that long, so the write timeout is put out of reach.
    let mut opts = options_unlimited(fresh_dir("fanout"));
    opts.config.limits.write_timeout_secs = 3_600;
    let server = Server::start(opts).await.unwrap();

    // The slow one subscribes, then never reads again.
    let mut slow = slow_client(&server).await;
    {
        use futures_util::SinkExt;
        let frame = json!({"type": "subscribe", "id": "s", "topic": "feed"});
        slow.send(Message::text(frame.to_string())).await.unwrap();
        let reply = tokio::time::timeout(STEP, slow.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let reply: serde_json::Value = serde_json::from_str(reply.to_text().unwrap()).unwrap();
        assert_eq!(reply["type"], "ok", "{reply}");
    }

    let progress: Arc<Vec<Arc<AtomicUsize>>> = Arc::new(
        (0..READERS)
            .map(|_| Arc::new(AtomicUsize::new(0)))
            .collect(),
    );
    let wake = Arc::new(Notify::new());
    let mut readers = Vec::new();
    for i in 0..READERS {
        let mut client = Client::connect(&server, &format!("coach{i}"), Role::Coach).await;
        let result = client
            .ok("s", json!({"type": "subscribe", "topic": "feed"}))
            .await;
        assert_eq!(result["snapshot"]["tasks"], json!([]));
        readers.push(tokio::spawn(read_feed(
            client,
            progress[i].clone(),
            wake.clone(),
        )));
    }

    // Post tasks in pipelined chunks, never more than MAX_LAG ahead of the slowest reader,
    // until the slow subscriber has been closed — then one chunk more, and the last task.
    let mut poster = Client::connect(&server, "sally", Role::Seeker).await;
    let mut posted: Vec<String> = Vec::new();
    let mut chunks_after_close = None;
    // QUEUE_FRAMES frames plus what the kernel and the writer hold: this is far more.
    let limit = 20 * QUEUE_FRAMES;
    while chunks_after_close != Some(1) {
        assert!(
            posted.len() < limit,
            "the slow subscriber was never closed after {} events",
            posted.len()
        );
        let slowest = || {
            progress
                .iter()
                .map(|p| p.load(Ordering::Relaxed))
                .min()
                .unwrap()
        };
        let deadline = tokio::time::Instant::now() + STEP;
        while slowest() + MAX_LAG < posted.len() + CHUNK {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the readers keep up"
            );
            // Woken as readers progress; the timeout only re-checks, it decides nothing.
            let _ = tokio::time::timeout(Duration::from_millis(100), wake.notified()).await;
        }
        let base = posted.len();
        for k in 0..CHUNK {
            let n = base + k;
            poster
                .send(json!({"type": "post_task", "id": format!("p{n}"), "resume_id": format!("resume-{n}"), "urgency": "standard"}))
                .await;
        }
        for k in 0..CHUNK {
            let reply = poster.next().await;
            assert_eq!(reply["type"], "ok", "{reply}");
            assert_eq!(
                reply["id"],
                format!("p{}", base + k),
                "replies come in order"
            );
            posted.push(reply["result"]["task_id"].as_str().unwrap().to_owned());
        }
        chunks_after_close = match chunks_after_close {
            Some(n) => Some(n + 1),
            None if slow_consumer_closes(&server).await > 0 => Some(0),
            None => None,
        };
    }
    let last = poster
        .ok(
            "last",
            json!({"type": "post_task", "resume_id": "last", "urgency": "standard", "task_type": LAST}),
        )
        .await;
    posted.push(last["task_id"].as_str().unwrap().to_owned());
    assert_eq!(slow_consumer_closes(&server).await, 1, "only the slow one");

    for reader in readers {
        let seen = tokio::time::timeout(STEP, reader)
            .await
            .expect("readers finish")
            .expect("readers do not fail");
        let ids: Vec<&String> = seen.iter().map(|(_, id)| id).collect();
        assert_eq!(ids.len(), posted.len(), "every task.opened arrived");
        assert!(
            ids.iter().zip(&posted).all(|(a, b)| *a == b),
            "in posting order"
        );
        assert!(
            seen.windows(2).all(|w| w[0].0 < w[1].0),
            "seq strictly increases"
        );
    }

    // Now the slow one reads: a prefix of the same events, then 4008.
    let mut got = Vec::new();
    let code = loop {
        let msg = tokio::time::timeout(STEP, slow.next())
            .await
            .expect("the slow client gets its frames and the close")
            .expect("a close frame before the end")
            .expect("no error before the close frame");
        match msg {
            Message::Text(text) => {
                let (seq, task, _) = opened(text.as_str()).expect("only feed events");
                got.push((seq, task));
            }
            Message::Close(frame) => break frame.map(|f| u16::from(f.code)),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(code, Some(4008), "closed as a slow consumer");
    assert!(
        got.len() < posted.len(),
        "it fell behind: {} of {}",
        got.len(),
        posted.len()
    );
    assert!(
        got.iter().zip(&posted).all(|((_, a), b)| a == b),
        "what it got is a prefix of the events, in order"
    );
    assert!(got.windows(2).all(|w| w[0].0 < w[1].0));
    drop(poster);
    server.shutdown().await;
}
