//! Failover scenarios shared by the cluster tests: kill the leader while seekers on every node
//! post, check that every acknowledged post survived (and that a retry of its id, on any node,
//! is answered with the original reply), and check the leadership that every node reports.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use gavel_protocol::Role;
use serde_json::json;

use super::client::{NodeClient, admin_token, http_get};
use super::nodes::{Cluster, GavelNode};
use super::streams::{Poster, WAIT, try_request};

/// Posts each poster makes per kill round.
pub const POSTS_PER_ROUND: usize = 12;

/// Kills the leader while seekers post through all nodes at once (each starting on its own
/// node, retrying on the next node until acknowledged); returns how long from the kill to
/// the first acknowledgement after it. The killed node is restarted (it rejoins as a
/// follower) unless `restart` is false.
pub async fn kill_the_leader_mid_stream(
    cluster: &Cluster,
    posters: &mut Vec<Poster>,
    round: usize,
    restart: bool,
) -> Duration {
    let leader = cluster.wait_for_leader(WAIT, None).await;
    let all: Vec<SocketAddr> = cluster.nodes().iter().map(GavelNode::addr).collect();
    let (acks, mut acked) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let streams: Vec<_> = std::mem::take(posters)
        .into_iter()
        .map(|mut p| {
            let (all, acks) = (all.clone(), acks.clone());
            tokio::spawn(async move {
                for k in 0..POSTS_PER_ROUND {
                    p.post(round * 100 + k, &all).await;
                    let _ = acks.send(Instant::now());
                }
                p
            })
        })
        .collect();
    drop(acks);
    // A few acknowledged first, then the kill in the middle of the stream.
    for _ in 0..6 {
        acked.recv().await.expect("the posters run");
    }
    cluster.node(leader).kill();
    let killed = Instant::now();
    let mut failover = None;
    while let Some(at) = acked.recv().await {
        if at > killed {
            failover = Some(at - killed);
            break;
        }
    }
    for stream in streams {
        posters.push(stream.await.expect("a poster task"));
    }
    let new_leader = cluster.wait_for_leader(WAIT, Some(leader)).await;
    assert_ne!(new_leader, leader);
    if restart {
        cluster.node(leader).restart();
        cluster.node(leader).wait_ready(WAIT).await;
    }
    failover.expect("an acknowledgement after the kill")
}

/// Every acknowledged post is there (asked of the first of `addrs`), and a retry of its id is
/// answered with the original reply: the ids are retried on the nodes of `addrs` in turn, so
/// every one of them answers some (each id is retried once: retries count toward the rate
/// limit too).
pub async fn assert_all_acknowledged_kept(addrs: &[SocketAddr], posters: &[Poster]) {
    for p in posters {
        for (id, task) in &p.acked {
            // addrs[0] may be a follower whose replica is still a moment behind the leader
            // that acknowledged the post: a 404 is asked again until a deadline.
            let deadline = tokio::time::Instant::now() + WAIT;
            loop {
                let (status, view) =
                    http_get(addrs[0], &format!("/v1/tasks/{task}"), Some(&admin_token())).await;
                if status == 200 {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "acknowledged {id} ({task}) is gone: {status} {view}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let mut clients: Vec<Option<NodeClient>> = addrs.iter().map(|_| None).collect();
        for (n, (id, task)) in p.acked.iter().enumerate() {
            let at = n % addrs.len();
            let addr = addrs[at];
            let frame = json!({"type": "post_task", "resume_id": format!("cv-{id}"), "urgency": "flexible"});
            let again = request_until_answered(&mut clients[at], addr, &p.name, id, frame).await;
            assert_eq!(again["type"], "ok", "retry of {id} on {addr}: {again}");
            let task_again = again["result"]["task_id"].as_str();
            assert_eq!(task_again, Some(task.as_str()), "retry of {id} on {addr}");
        }
    }
}

/// The answer to `frame` (sent as `id`) on `addr`, asked again while it is only "not now" —
/// on a new connection when the node closed or refused one: a node whose lease lapsed during
/// an outage may hand over once the database is back, closing its clients with 1001 and
/// listening again when its new pipeline is up (contract §13), and meanwhile a request may
/// be refused `UNAVAILABLE`, or `RATE_LIMITED` when retries come fast. Until [`WAIT`].
async fn request_until_answered(
    client: &mut Option<NodeClient>,
    addr: SocketAddr,
    user: &str,
    id: &str,
    frame: serde_json::Value,
) -> serde_json::Value {
    let deadline = Instant::now() + WAIT;
    loop {
        if client.as_ref().is_none_or(NodeClient::is_closed) {
            *client = NodeClient::try_connect(addr, user, Role::Seeker).await.ok();
        }
        let mut pause = Duration::from_millis(50);
        if let Some(open) = client.as_mut() {
            match try_request(open, id, frame.clone()).await {
                Some(reply) if reply["code"] == "RATE_LIMITED" => {
                    pause = Duration::from_millis(reply["retry_after_ms"].as_u64().unwrap_or(100));
                }
                Some(reply) if reply["code"] == "UNAVAILABLE" => {}
                Some(reply) => return reply,
                None => *client = None,
            }
        }
        assert!(
            Instant::now() < deadline,
            "no answer but \"not now\" to {id} from {addr} within {WAIT:?}"
        );
        // Not a barrier: the pause between two attempts (the server's `retry_after_ms` when
        // it gave one); the answer itself is what the loop waits for.
        tokio::time::sleep(pause).await;
    }
}

/// What every answering node (but the paused or dead ones) reports about leadership, asked
/// at once: in each answer at most one node is listed as leader and it is the one named;
/// across answers the same node leads; and when `expected` is given, the leader (if any) is
/// `expected`. Call it where no handover is under way (answers read a moment apart could
/// otherwise straddle one). Returns the leading node, if one is named.
pub async fn assert_at_most_one_leader(
    cluster: &Cluster,
    expected: Option<usize>,
) -> Option<usize> {
    let views = futures_util::future::join_all(
        (0..cluster.len()).map(|i| async move { (i, cluster.try_fetch_cluster(i).await) }),
    )
    .await;
    let mut leading = BTreeSet::new();
    for (i, view) in views.iter().filter_map(|(i, v)| Some((*i, v.as_ref()?))) {
        let listed: BTreeSet<&str> = view["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|n| n["role"] == "leader")
            .filter_map(|n| n["node_id"].as_str())
            .collect();
        let named: BTreeSet<&str> = view["leader"].as_str().into_iter().collect();
        assert!(
            listed.len() <= 1 && listed.is_subset(&named),
            "{} lists {listed:?} as leading but names {named:?}: {view}",
            cluster.node(i).node_id()
        );
        leading.extend(named.into_iter().map(str::to_owned));
    }
    assert!(leading.len() <= 1, "two leaders at once: {leading:?}");
    let leader = leading.first().map(|id| index_of(cluster, id));
    if let (Some(expected), Some(leader)) = (expected, leader) {
        assert_eq!(
            leader,
            expected,
            "{} leads, not {}",
            cluster.node(leader).node_id(),
            cluster.node(expected).node_id()
        );
    }
    leader
}

fn index_of(cluster: &Cluster, node_id: &str) -> usize {
    (0..cluster.len())
        .find(|&i| cluster.node(i).node_id() == node_id)
        .unwrap_or_else(|| panic!("no node {node_id} in the cluster"))
}
