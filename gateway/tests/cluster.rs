//! A cluster of three real `gavel serve` processes on one throwaway Postgres and Redis
//! (contract §12): events cross nodes in order, a killed leader is replaced and nothing
//! acknowledged is lost, a frozen leader is fenced and rejoins as a follower, Redis restarts
//! and dropped pub/sub messages are filled from the journal, and a Postgres restart is
//! survived. Shortened versions: the long ones (many kill rounds) are `--ignored`.

#[path = "cluster_support/mod.rs"]
mod support;

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use gavel_protocol::Role;
use serde_json::json;
use support::streams::*;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_task_posted_on_one_node_is_bid_on_from_two_others_and_everyone_sees_it_in_order() {
    let pg = ThrowawayPostgres::start();
    let redis = ThrowawayRedis::start();
    let cluster = Cluster::start(3, &pg, &redis, ClusterOptions::default()).await;
    let addr = |i: usize| cluster.node(i).addr();
    register_coach(addr(0), "ana", 4.8).await;
    register_coach(addr(2), "ben", 3.5).await;

    // An observer and a feed watcher on every node.
    let mut observers = Vec::new();
    let mut watchers = Vec::new();
    for i in 0..3 {
        observers.push(Observer::start(addr(i)).await);
        let mut w = NodeClient::connect(addr(i), &format!("dee{i}"), Role::Coach).await;
        w.ok("f", json!({"type": "subscribe", "topic": "feed"}))
            .await;
        watchers.push(w);
    }
    let start = observers[0].last;

    let mut ana = NodeClient::connect(addr(0), "ana", Role::Coach).await;
    let mut ben = NodeClient::connect(addr(2), "ben", Role::Coach).await;
    let mut seeker = NodeClient::connect(addr(1), "sally", Role::Seeker).await;
    // Her dashboard on a third node (contract §9): every node's replica routes seeker events.
    let mut dashboard = NodeClient::connect(addr(2), "sally", Role::Seeker).await;
    dashboard
        .ok("d", json!({"type": "subscribe", "topic": "seeker:sally"}))
        .await;
    let posted = seeker
        .ok(
            "post",
            json!({"type": "post_task", "resume_id": "cv-1", "urgency": "urgent"}),
        )
        .await;
    let task_id = posted["task_id"].as_str().expect("a task id").to_owned();
    let topic = format!("task:{task_id}");
    // Read your writes: the node that acknowledged the post serves the task at once.
    let watched = seeker
        .ok("watch", json!({"type": "subscribe", "topic": topic}))
        .await;
    assert_eq!(watched["snapshot"]["status"], "open", "{watched}");
    assert_eq!(watched["snapshot"]["owner"], "sally");

    let bid = |amount: u64| json!({"type": "place_bid", "task_id": task_id, "amount": amount, "eta_hours": 2});
    let ana_bid = ana.ok("bid", bid(6000)).await["bid_id"].clone();
    ben.ok("bid", bid(5000)).await;
    seeker.wait_event(&topic, "bid.placed", WAIT).await;
    seeker.wait_event(&topic, "bid.placed", WAIT).await;
    let accepted = seeker
        .ok(
            "accept",
            json!({"type": "accept_bid", "task_id": task_id, "bid_id": ana_bid}),
        )
        .await;
    assert_eq!(accepted["coach_id"], "ana", "{accepted}");
    // Read your writes again, over HTTP on the seeker's node.
    let (status, view) = http_get(
        addr(1),
        &format!("/v1/tasks/{task_id}"),
        Some(&admin_token()),
    )
    .await;
    assert_eq!(
        (status, view["status"].as_str()),
        (200, Some("assigned")),
        "{view}"
    );

    let end = seq_of(addr(1), "n2").await;
    let fallbacks: Vec<SocketAddr> = (0..3).map(addr).collect();
    let mut journals = Vec::new();
    for observer in &mut observers {
        observer.follow_to(end, &fallbacks).await;
        observer.assert_contiguous(start);
        journals.push(observer.seen.clone());
    }
    assert!(
        journals.windows(2).all(|w| w[0] == w[1]),
        "every node shows the same journal"
    );

    // The dashboard saw the task through to its assignment; every node lists and quotes it.
    dashboard
        .wait_event("seeker:sally", "task.assigned", WAIT)
        .await;
    for i in 0..3 {
        let mut c = NodeClient::connect(addr(i), "sally", Role::Seeker).await;
        let listed = c.ok("l", json!({"type": "list_tasks"})).await;
        assert_eq!(
            listed["tasks"][0]["task_id"],
            task_id.as_str(),
            "node {i}: {listed}"
        );
        assert_eq!(
            listed["tasks"][0]["status"], "assigned",
            "node {i}: {listed}"
        );
        let quote = c.ok("q", json!({"type": "quote"})).await;
        assert_eq!(
            quote["tiers"]["urgent"]["market"]["samples"], 1,
            "node {i}: {quote}"
        );
    }

    // A coach with no bid sees the same feed on every node: the task opened, then closed.
    let mut feeds = Vec::new();
    for w in &mut watchers {
        w.wait_event("feed", "task.opened", WAIT).await;
        let closed = w.wait_event("feed", "task.closed", WAIT).await;
        feeds.push(closed["seq"].clone());
    }
    assert!(feeds.windows(2).all(|f| f[0] == f[1]), "feeds: {feeds:?}");
    // The seeker's own topic: both bids and the accept, in seq order, no duplicate.
    let seqs: Vec<u64> = seeker
        .transcript()
        .iter()
        .filter(|f| f["type"] == "event" && f["topic"] == topic.as_str())
        .filter_map(|f| f["seq"].as_u64())
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "task topic seqs: {seqs:?}"
    );
}

/// Kills the leader while seekers post through all nodes at once (each retrying on the next
/// node until acknowledged); returns how long from the kill to the first acknowledgement after
/// it. The killed node is restarted (it rejoins as a follower).
async fn kill_the_leader_mid_stream(
    cluster: &Cluster,
    posters: &mut Vec<Poster>,
    round: usize,
) -> Duration {
    let leader = cluster.wait_for_leader(WAIT, None).await;
    let all: Vec<SocketAddr> = cluster.nodes().iter().map(GavelNode::addr).collect();
    let (acks, mut acked) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let streams: Vec<_> = std::mem::take(posters)
        .into_iter()
        .map(|mut p| {
            let (all, acks) = (all.clone(), acks.clone());
            tokio::spawn(async move {
                for k in 0..12 {
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
    cluster.node(leader).restart();
    cluster.node(leader).wait_ready(WAIT).await;
    failover.expect("an acknowledgement after the kill")
}

/// Every acknowledged post is there, and a retry of its id is answered with the original reply.
async fn assert_all_acknowledged_kept(addr: SocketAddr, posters: &[Poster]) {
    for p in posters {
        let mut client = NodeClient::connect(addr, &p.name, Role::Seeker).await;
        for (id, task) in &p.acked {
            let (status, view) =
                http_get(addr, &format!("/v1/tasks/{task}"), Some(&admin_token())).await;
            assert_eq!(status, 200, "acknowledged {id} ({task}) is gone: {view}");
            let frame = json!({"type": "post_task", "resume_id": format!("cv-{id}"), "urgency": "flexible"});
            let again = loop {
                let reply = client.request(id, frame.clone()).await;
                if reply["code"] != "RATE_LIMITED" {
                    break reply;
                }
                let wait = reply["retry_after_ms"].as_u64().unwrap_or(100);
                tokio::time::sleep(Duration::from_millis(wait)).await;
            };
            assert_eq!(again["type"], "ok", "retry of {id}: {again}");
            let task_again = again["result"]["task_id"].as_str();
            assert_eq!(task_again, Some(task.as_str()), "retry of {id}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_leader_is_replaced_within_seconds_and_nothing_acknowledged_is_lost() {
    let pg = ThrowawayPostgres::start();
    let redis = ThrowawayRedis::start();
    let cluster = Cluster::start(3, &pg, &redis, ClusterOptions::default()).await;
    let leader = cluster.wait_for_leader(WAIT, None).await;
    let follower = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let mut observer = Observer::start(cluster.node(follower).addr()).await;
    let start = observer.last;
    let mut posters = vec![Poster::new("sa"), Poster::new("sb"), Poster::new("sc")];
    let failover = kill_the_leader_mid_stream(&cluster, &mut posters, 0).await;
    assert!(
        failover < Duration::from_secs(5),
        "first ack after the kill took {failover:?}"
    );

    let leader_now = cluster.wait_for_leader(WAIT, None).await;
    let addr = cluster.node(leader_now).addr();
    assert_all_acknowledged_kept(addr, &posters).await;
    let end = seq_of(addr, cluster.node(leader_now).node_id()).await;
    let fallbacks = [cluster.node(follower).addr(), cluster.node(other).addr()];
    observer.follow_to(end, &fallbacks).await;
    observer.assert_contiguous(start);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "long: ten kill rounds (run with --ignored)"]
async fn ten_kill_rounds_lose_nothing() {
    let pg = ThrowawayPostgres::start();
    let redis = ThrowawayRedis::start();
    let cluster = Cluster::start(3, &pg, &redis, ClusterOptions::default()).await;
    let mut posters = vec![Poster::new("sa"), Poster::new("sb"), Poster::new("sc")];
    let mut failovers = Vec::new();
    for round in 0..10 {
        failovers.push(kill_the_leader_mid_stream(&cluster, &mut posters, round).await);
    }
    failovers.sort();
    let leader = cluster.wait_for_leader(WAIT, None).await;
    assert_all_acknowledged_kept(cluster.node(leader).addr(), &posters).await;
    let median = failovers[failovers.len() / 2];
    let max = failovers[failovers.len() - 1];
    assert!(max < Duration::from_secs(5), "failovers: {failovers:?}");
    // The numbers docs/benchmarks.md records.
    #[allow(clippy::print_stderr)]
    {
        eprintln!("failover to first ack over 10 rounds: median {median:?}, max {max:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_frozen_leader_is_fenced_writes_nothing_and_rejoins_as_a_follower() {
    let pg = ThrowawayPostgres::start();
    let redis = ThrowawayRedis::start();
    let cluster = Cluster::start(3, &pg, &redis, ClusterOptions::default()).await;
    let leader = cluster.wait_for_leader(WAIT, None).await;
    let frozen = cluster.node(leader);
    let mut on_frozen = NodeClient::connect(frozen.addr(), "fred", Role::Seeker).await;
    frozen.stop_signal();
    let stopped_at = Instant::now();
    // Sent while it is frozen: sits in its socket until it wakes.
    let post = json!({"type": "post_task", "resume_id": "cv-frozen", "urgency": "flexible", "id": "frozen"});
    on_frozen.send(post).await;

    let successor = cluster
        .wait_for_leader(Duration::from_secs(10), Some(leader))
        .await;
    assert!(
        stopped_at.elapsed() < Duration::from_secs(10),
        "leadership moved after {:?}",
        stopped_at.elapsed()
    );
    cluster.node(successor).wait_ready(WAIT).await;
    let mut elsewhere =
        NodeClient::connect(cluster.node(successor).addr(), "gil", Role::Seeker).await;
    elsewhere
        .ok(
            "p",
            json!({"type": "post_task", "resume_id": "cv-after", "urgency": "flexible"}),
        )
        .await;
    // One leader at every moment: every node that answers names the same one.
    while stopped_at.elapsed() < Duration::from_secs(15) {
        let mut named = BTreeSet::new();
        for i in (0..3).filter(|&i| i != leader) {
            if let Some(view) = cluster.try_fetch_cluster(i).await {
                named.insert(view["leader"].to_string());
            }
        }
        assert!(named.len() <= 1, "two leaders named at once: {named:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    frozen.cont();

    // The woken node never acknowledges what it decided while fenced…
    while let Some(frame) = on_frozen.next_within(Duration::from_secs(5)).await {
        if frame["id"] == "frozen" {
            assert_eq!(
                frame["type"], "error",
                "a fenced leader acknowledged: {frame}"
            );
            assert_eq!(frame["code"], "UNAVAILABLE");
        }
    }
    // …rejoins as a follower…
    frozen.wait_ready(WAIT).await;
    let deadline = Instant::now() + WAIT;
    while cluster.leaders(None).await != vec![successor] {
        assert!(
            Instant::now() < deadline,
            "the woken node did not settle as follower"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // …and wrote nothing.
    let pool = sqlx::PgPool::connect(&pg.url())
        .await
        .expect("connect to Postgres");
    let written: i64 =
        sqlx::query_scalar("SELECT count(*) FROM journal WHERE payload LIKE '%cv-frozen%'")
            .fetch_one(&pool)
            .await
            .expect("count");
    assert_eq!(written, 0, "the fenced leader wrote to the journal");
    let after: i64 =
        sqlx::query_scalar("SELECT count(*) FROM journal WHERE payload LIKE '%cv-after%'")
            .fetch_one(&pool)
            .await
            .expect("count");
    assert_eq!(after, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_restarts_and_dropped_messages_are_filled_from_the_journal() {
    let pg = ThrowawayPostgres::start();
    let redis = ThrowawayRedis::start();
    let options = ClusterOptions {
        extra_args: vec!["--fault-drop-replication-every".into(), "3".into()],
        ..ClusterOptions::default()
    };
    let cluster = Cluster::start(3, &pg, &redis, options).await;
    let leader = cluster.wait_for_leader(WAIT, None).await;
    let followers: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let mut observers = Vec::new();
    for &i in &followers {
        observers.push(Observer::start(cluster.node(i).addr()).await);
    }
    let start = observers[0].last;
    let mut poster = Poster::new("rita");
    let all: Vec<SocketAddr> = cluster.nodes().iter().map(GavelNode::addr).collect();
    for k in 0..10 {
        poster.post(k, &all).await;
    }
    redis.restart();
    for k in 10..20 {
        poster.post(k, &all).await;
    }
    let end = seq_of(cluster.node(leader).addr(), cluster.node(leader).node_id()).await;
    for observer in &mut observers {
        observer.follow_to(end, &[]).await;
        observer.assert_contiguous(start);
    }
    for &i in &followers {
        let fills = counter(cluster.node(i).addr(), "gavel_cluster_gap_fills_total").await;
        assert!(fills > 0, "node {i} filled no gap");
    }
    assert_eq!(poster.acked.len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgres_restart_answers_unavailable_then_recovers_with_nothing_lost() {
    let pg = ThrowawayPostgres::start();
    let redis = ThrowawayRedis::start();
    let cluster = Cluster::start(3, &pg, &redis, ClusterOptions::default()).await;
    let all: Vec<SocketAddr> = cluster.nodes().iter().map(GavelNode::addr).collect();
    let mut poster = Poster::new("pam");
    for k in 0..3 {
        poster.post(k, &all).await;
    }
    pg.stop();
    // The first command to reach the leader may be the one whose commit fails: whether it
    // landed is unknown until Postgres answers again, so its reply waits for that. Every
    // command after it is refused at once, on every node.
    let mut probe = NodeClient::connect(all[0], "pam", Role::Seeker).await;
    let frame =
        json!({"type": "post_task", "resume_id": "cv-probe", "urgency": "flexible", "id": "probe"});
    probe.send(frame).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut refused = HashMap::new();
    for (i, &addr) in all.iter().enumerate() {
        let mut client = NodeClient::connect(addr, "pam", Role::Seeker).await;
        let frame = json!({"type": "post_task", "resume_id": format!("cv-down-{i}"), "urgency": "flexible"});
        let reply = try_request(&mut client, &format!("down-{i}"), frame).await;
        refused.insert(i, reply.clone());
        let reply =
            reply.unwrap_or_else(|| panic!("node {i} did not answer while Postgres was down"));
        assert_eq!(reply["code"], "UNAVAILABLE", "node {i}: {reply}");
    }
    pg.start_again();
    let answer = probe.wait_reply("probe").await;
    assert!(
        answer["type"] == "ok" || answer["code"] == "UNAVAILABLE",
        "the probe: {answer}"
    );
    for k in 3..8 {
        poster.post(k, &all).await;
    }
    let leader = cluster.wait_for_leader(WAIT, None).await;
    assert_all_acknowledged_kept(cluster.node(leader).addr(), std::slice::from_ref(&poster)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_resume_from_a_position_the_follower_has_not_reached_waits_for_it_instead_of_resetting() {
    // Every node drops every Redis message: followers learn of each commit only from the
    // journal, every poll_ms — so right after a commit they are behind the leader.
    let pg = ThrowawayPostgres::start();
    let redis = ThrowawayRedis::start();
    let options = ClusterOptions {
        extra_args: vec!["--fault-drop-replication-every".into(), "1".into()],
        ..ClusterOptions::default()
    };
    let cluster = Cluster::start(3, &pg, &redis, options).await;
    let leader = cluster.wait_for_leader(WAIT, None).await;
    let follower = cluster.node((leader + 1) % 3).addr();
    let mut watcher = Observer::start(cluster.node(leader).addr()).await;
    let mut seeker = NodeClient::connect(cluster.node(leader).addr(), "rosa", Role::Seeker).await;
    let post = |k: u32| json!({"type": "post_task", "resume_id": format!("cv-{k}"), "urgency": "flexible"});
    for k in 0..3 {
        seeker.ok(&format!("p{k}"), post(k)).await;
        let opened = watcher
            .client
            .wait_event("admin", "task.opened", WAIT)
            .await;
        let seen = opened["seq"].as_u64().expect("a seq");
        // At once, on a follower that has most likely not polled the journal yet.
        let mut resumed = NodeClient::connect(follower, "root", Role::Admin).await;
        let frame =
            json!({"type": "subscribe", "topic": "admin", "since": seen, "epoch": watcher.epoch});
        let reply = resumed.ok("r", frame).await;
        assert_ne!(reply["reset"], true, "round {k}: {reply}");
        seeker.ok(&format!("q{k}"), post(100 + k)).await;
        let next = resumed.wait_event("admin", "task.opened", WAIT).await;
        assert!(next["seq"].as_u64() > Some(seen), "round {k}: {next}");
    }
}
