//! `baseline-server`: the plainest broadcast over the same WebSocket stack gavel uses
//! (tokio + tungstenite 0.29, the same buffer settings, the same per-connection queue and
//! write batching) — and nothing else: no auth, no engine, no journal, no JSON parsing.
//!
//! - A connection to `/pub` is a publisher: each text frame it sends goes to every subscriber.
//! - Any other path is a subscriber: each text frame it sends is answered with
//!   `{"type":"ok","id":"sub","result":{}}` (so the harness's subscribe round trip has its
//!   counterpart), and it receives every published frame.
//!
//! A subscriber whose queue is full (4096 frames) is dropped, as gavel closes slow consumers.
//! With `--write-per-frame` each frame is written and flushed on its own (one write per
//! message): the plainest server, the one issue 12 measures gavel's per-event cost against.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Message};

/// Frames a subscriber may have queued (as gavel's `QUEUE_FRAMES`).
const QUEUE_FRAMES: usize = 4096;
/// Frames written per flush at most (as gavel's session).
const MAX_FRAMES_PER_FLUSH: usize = 256;

#[derive(Debug, Default)]
struct Registry {
    next: AtomicU64,
    subs: Mutex<HashMap<u64, mpsc::Sender<Utf8Bytes>>>,
}

/// Serves until the process is stopped.
pub async fn serve(listen: SocketAddr, read_buffer: usize, per_frame: bool) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    // The same shape as gavel's `--log-format json` line, so one reader finds both.
    let line =
        serde_json::json!({"level": "INFO", "message": "listening", "addr": addr.to_string()});
    {
        use std::io::Write;
        let mut err = std::io::stderr();
        let _ = writeln!(err, "{line}");
        let _ = err.flush();
    }
    let registry = Arc::new(Registry::default());
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(x) => x,
            Err(_) => {
                // Out of file descriptors and the like: back off briefly.
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(stream, registry.clone(), read_buffer, per_frame));
    }
}

async fn connection(
    stream: TcpStream,
    registry: Arc<Registry>,
    read_buffer: usize,
    per_frame: bool,
) {
    let config = WebSocketConfig::default()
        .read_buffer_size(read_buffer.max(64))
        .write_buffer_size(16 * 1024)
        .max_write_buffer_size(64 * 1024 * 4)
        .max_message_size(Some(64 * 1024))
        .max_frame_size(Some(64 * 1024));
    let mut path = String::new();
    // The callback's error type is tungstenite's (a whole HTTP response); it never errs here.
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, resp: Response| {
        path = req.uri().path().to_owned();
        Ok(resp)
    };
    let Ok(mut ws) =
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)).await
    else {
        return;
    };
    if path == "/pub" {
        while let Some(Ok(msg)) = ws.next().await {
            match msg {
                Message::Text(text) => broadcast(&registry, text),
                Message::Close(_) => break,
                _ => {}
            }
        }
        return;
    }
    let id = registry.next.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::channel::<Utf8Bytes>(QUEUE_FRAMES);
    registry.subs.lock().expect("registry lock").insert(id, tx);
    let ok = Utf8Bytes::from_static(r#"{"type":"ok","id":"sub","result":{}}"#);
    loop {
        tokio::select! {
            biased;
            frame = rx.recv() => match frame {
                Some(first) if per_frame => {
                    if ws.send(Message::Text(first)).await.is_err() {
                        break;
                    }
                }
                Some(first) => {
                    let mut result = ws.feed(Message::Text(first)).await;
                    for _ in 1..MAX_FRAMES_PER_FLUSH {
                        if result.is_err() {
                            break;
                        }
                        match rx.try_recv() {
                            Ok(f) => result = ws.feed(Message::Text(f)).await,
                            Err(_) => break,
                        }
                    }
                    if result.is_err() || ws.flush().await.is_err() {
                        break;
                    }
                }
                None => {
                    // Dropped as a slow consumer.
                    let frame = CloseFrame { code: CloseCode::from(4008), reason: "slow consumer".into() };
                    let _ = ws.send(Message::Close(Some(frame))).await;
                    break;
                }
            },
            incoming = ws.next() => match incoming {
                Some(Ok(Message::Text(_))) => {
                    if ws.send(Message::Text(ok.clone())).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            }
        }
    }
    registry.subs.lock().expect("registry lock").remove(&id);
}

fn broadcast(registry: &Registry, text: Utf8Bytes) {
    let mut subs = registry.subs.lock().expect("registry lock");
    let mut gone = Vec::new();
    for (id, tx) in subs.iter() {
        if tx.try_send(text.clone()).is_err() {
            gone.push(*id);
        }
    }
    for id in gone {
        // Dropping the sender ends the subscriber's queue: it closes with 4008.
        subs.remove(&id);
    }
}
