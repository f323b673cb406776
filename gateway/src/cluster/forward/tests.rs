//! The follower's side of a charge, against a stand-in leader (a bare WebSocket server) or
//! none at all: the read is served only once allowed, a refusal carries the leader's
//! `retry_after_ms`, and a read nobody can charge is refused `UNAVAILABLE`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use gavel_protocol::UserId;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

use super::frames::{ChargedFrame, ForwardFrame, HelloFrame};
use super::{Charge, FORWARD_PATIENCE, Forward, forward};
use crate::cluster::state::{ClusterState, LeaderInfo, NodeRole};
use crate::fanout::outbox::{Outbox, connection};
use crate::ingress::auth::JwtKeys;
use crate::ingress::rate_limit::UserRateLimiter;
use crate::metrics::Metrics;
use crate::sequencer::handle::EngineHandle;
use crate::sequencer::messages::EngineMsg;

/// A follower whose leader serves at `leader_addr`, with its forward task running.
struct Follower {
    queue: mpsc::Sender<Forward>,
    engine: mpsc::Receiver<EngineMsg>,
    _stop: watch::Sender<bool>,
}

fn follower(leader_addr: String) -> Follower {
    let cluster = ClusterState::new(
        "follower".into(),
        "127.0.0.1:1".into(),
        Default::default(),
        String::new(),
        NodeRole::Follower,
    );
    cluster.set_leader(Some(LeaderInfo {
        node_id: "leader".into(),
        addr: leader_addr,
        epoch: 1,
    }));
    let (engine, engine_rx) = EngineHandle::for_tests(16);
    let (queue, queue_rx) = mpsc::channel(16);
    let (stop, stopped) = watch::channel(false);
    let keys = JwtKeys::new(b"a secret for the tests");
    tokio::spawn(forward(Arc::new(cluster), engine, queue_rx, keys, stopped));
    Follower {
        queue,
        engine: engine_rx,
        _stop: stop,
    }
}

/// A read by `bea` (a marker query) and the outbox its refusal would reach; the follower's
/// own limiter allows one read.
fn charge(id: &str) -> (Forward, Outbox) {
    charge_with(id, Arc::new(UserRateLimiter::new(1, 1)))
}

fn charge_with(id: &str, local: Arc<UserRateLimiter>) -> (Forward, Outbox) {
    let user = UserId::new("bea").expect("a valid id");
    let (conn, outbox) = connection(1, user.clone(), Arc::new(Metrics::new()));
    let charge = Charge {
        user,
        read: EngineMsg::Query(Box::new(|_| {})),
        local,
        conn,
        id: Some(id.parse().expect("a valid id")),
        received: Instant::now(),
    };
    (Forward::Charge(charge), outbox)
}

async fn next_frame(outbox: &mut Outbox) -> Value {
    let frame = tokio::time::timeout(Duration::from_secs(5), outbox.recv())
        .await
        .expect("a frame in time")
        .expect("the connection is open");
    serde_json::from_str(frame.as_str()).expect("JSON")
}

#[tokio::test]
async fn a_charged_read_is_served_once_allowed_and_refused_with_the_leaders_wait() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address").to_string();
    // The stand-in leader refuses the first charge and allows the second.
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("the follower connects");
        let mut socket = tokio_tungstenite::accept_async(tcp).await.expect("upgrade");
        let hello = serde_json::to_string(&HelloFrame { charges: true }).expect("serializes");
        socket.send(Message::text(hello)).await.expect("send");
        for allowed in [false, true] {
            let Some(Ok(Message::Text(text))) = socket.next().await else {
                panic!("expected a charge");
            };
            let ForwardFrame::Charge { id, charge } =
                serde_json::from_str(text.as_str()).expect("a forward frame")
            else {
                panic!("expected a charge: {text}");
            };
            assert_eq!(charge.as_str(), "bea");
            let answer = ChargedFrame {
                id,
                allowed,
                retry_after_ms: (!allowed).then_some(700),
            };
            let text = serde_json::to_string(&answer).expect("serializes");
            socket.send(Message::text(text)).await.expect("send");
        }
        // Held open until the test ends.
        let _ = socket.next().await;
    });
    let mut node = follower(addr);

    let (refused, mut outbox) = charge("r1");
    node.queue.send(refused).await.expect("queued");
    let frame = next_frame(&mut outbox).await;
    assert_eq!(frame["code"], "RATE_LIMITED", "{frame}");
    assert_eq!(frame["id"], "r1", "{frame}");
    assert_eq!(frame["retry_after_ms"], 700, "{frame}");
    assert!(
        node.engine.try_recv().is_err(),
        "a refused read is not served"
    );

    let (allowed, _outbox) = charge("r2");
    node.queue.send(allowed).await.expect("queued");
    let served = tokio::time::timeout(Duration::from_secs(5), node.engine.recv()).await;
    let served = served.expect("served in time").expect("the engine queue");
    assert!(matches!(served, EngineMsg::Query(_)), "{served:?}");
}

#[tokio::test]
async fn a_read_that_cannot_be_charged_is_refused_unavailable_after_the_forward_patience() {
    // A port nothing listens on: the leader cannot be reached.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address").to_string();
    drop(listener);
    let mut node = follower(addr);

    let (read, mut outbox) = charge("r1");
    let sent = Instant::now();
    node.queue.send(read).await.expect("queued");
    let frame = next_frame(&mut outbox).await;
    assert_eq!(frame["code"], "UNAVAILABLE", "{frame}");
    assert_eq!(frame["id"], "r1", "{frame}");
    assert!(sent.elapsed() >= FORWARD_PATIENCE, "{:?}", sent.elapsed());
    assert!(
        node.engine.try_recv().is_err(),
        "an uncharged read is not served"
    );
}

/// A leader from before charges sends no hello and never answers one (here: it answers
/// nothing at all): the follower charges reads to its own limiter instead, so a rolling
/// upgrade does not stall reads.
#[tokio::test]
async fn a_leader_without_charges_leaves_reads_to_the_followers_own_limiter() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address").to_string();
    let (frames_tx, mut frames) = mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("the follower connects");
        let mut socket = tokio_tungstenite::accept_async(tcp).await.expect("upgrade");
        while let Some(Ok(Message::Text(text))) = socket.next().await {
            let _ = frames_tx.send(text.as_str().to_owned());
        }
    });
    let mut node = follower(addr);
    let local = Arc::new(UserRateLimiter::new(1, 1));

    let (first, _outbox) = charge_with("r1", local.clone());
    node.queue.send(first).await.expect("queued");
    let served = tokio::time::timeout(Duration::from_secs(5), node.engine.recv()).await;
    let served = served.expect("served in time").expect("the engine queue");
    assert!(matches!(served, EngineMsg::Query(_)), "{served:?}");

    let (second, mut outbox) = charge_with("r2", local);
    node.queue.send(second).await.expect("queued");
    let frame = next_frame(&mut outbox).await;
    assert_eq!(frame["code"], "RATE_LIMITED", "{frame}");
    assert_eq!(frame["id"], "r2", "{frame}");
    assert!(
        frames.try_recv().is_err(),
        "no charge went to a leader that cannot answer it"
    );
}
