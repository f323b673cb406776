//! The marketplace's rules hold across a cluster of three real `gavel serve` processes on a
//! throwaway Postgres and Redis (contract §1, §5, §12): a deadline fires exactly once, also
//! when the leader that armed it dies before it is due; and one user's commands and reads share
//! one rate budget whichever nodes they reach.

#[path = "cluster_support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use gavel_protocol::Role;
use serde_json::{Value, json};
use support::streams::*;
use support::*;

/// The `urgent` tier's bidding window (contract §5), in engine milliseconds.
const URGENT_BIDDING_MS: u64 = 10 * 60 * 1000;

/// `--time-scale` for the deadline test: the urgent bidding window lasts one wall second.
const TIME_SCALE: f64 = 600.0;

/// The `task.unfilled` events of `task` among `frames`, in order.
fn unfilled_of<'a>(frames: &'a [Value], task: &str) -> Vec<&'a Value> {
    frames
        .iter()
        .filter(|f| f["event"]["kind"] == "task.unfilled" && f["event"]["task_id"] == task)
        .collect()
}

/// The highest `seq` in the journal (read from Postgres itself).
async fn journal_tip(pool: &sqlx::PgPool) -> u64 {
    let tip: Option<i64> = sqlx::query_scalar("SELECT max(seq) FROM journal")
        .fetch_one(pool)
        .await
        .expect("read the journal's tip");
    tip.map_or(0, |t| t as u64)
}

/// Each closed window must have fired once: a window closing with no bid and no on-call coach
/// emits one `task.unfilled` at (or after) its close and opens the next window from that
/// moment, so one task's `task.unfilled` events are at least a whole window apart, the first a
/// whole window after the post, and the task's current window closes one window after the last.
async fn assert_each_window_fired_once(addr: SocketAddr, task: &str, unfilled: &[&Value]) {
    let (status, view) = http_get(addr, &format!("/v1/tasks/{task}"), Some(&admin_token())).await;
    assert_eq!(status, 200, "{view}");
    let created = view["created_at"].as_u64().expect("created_at");
    let mut at: Vec<u64> = vec![created];
    at.extend(
        unfilled
            .iter()
            .map(|f| f["event"]["at"].as_u64().expect("at")),
    );
    for pair in at.windows(2) {
        assert!(
            pair[1] >= pair[0] + URGENT_BIDDING_MS,
            "{task}: a window fired twice or early (times {at:?})"
        );
    }
    let closes = view["bidding_closes_at"]
        .as_u64()
        .expect("bidding_closes_at");
    let last = *at.last().expect("one at least");
    // The view may already show a window that closed and fired after the events we read.
    assert!(
        closes >= last + URGENT_BIDDING_MS,
        "{task}: the open window closes at {closes}, the last fired at {last}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bidding_window_that_spans_the_leaders_kill_closes_exactly_once() {
    let pg = ThrowawayPostgres::start();
    let redis = ThrowawayRedis::start();
    let options = ClusterOptions {
        time_scale: TIME_SCALE,
        ..ClusterOptions::default()
    };
    let cluster = Cluster::start(3, &pg, &redis, options).await;
    let addr = |i: usize| cluster.node(i).addr();
    let leader = cluster.wait_for_leader(WAIT, None).await;
    let survivors: Vec<SocketAddr> = (0..3).filter(|&i| i != leader).map(addr).collect();
    let mut observer = Observer::start(survivors[0]).await;
    let start = observer.last;
    // No coach is on call: every window that closes without a bid reopens with `task.unfilled`.
    let mut tasks = Vec::new();
    for i in 0..3 {
        let mut seeker = NodeClient::connect(addr(i), &format!("w{i}"), Role::Seeker).await;
        let frame =
            json!({"type": "post_task", "resume_id": format!("cv-w{i}"), "urgency": "urgent"});
        let posted = seeker.ok("post", frame).await;
        tasks.push(posted["task_id"].as_str().expect("a task id").to_owned());
    }
    let each_has = |n: usize, after: u64| {
        let tasks = tasks.clone();
        move |frames: &[Value]| {
            tasks.iter().all(|t| {
                let fired = unfilled_of(frames, t);
                fired
                    .iter()
                    .filter(|f| f["seq"].as_u64() > Some(after))
                    .count()
                    >= n
            })
        }
    };
    observer
        .follow_until(WAIT, &survivors, each_has(1, 0))
        .await;

    // Every task has a window open when the leader dies; the new leader must close it once.
    cluster.node(leader).kill();
    let pool = sqlx::PgPool::connect(&pg.url())
        .await
        .expect("connect to Postgres");
    let tip_at_kill = journal_tip(&pool).await;
    let successor = cluster.wait_for_leader(WAIT, Some(leader)).await;
    observer
        .follow_until(WAIT * 2, &survivors, each_has(2, tip_at_kill))
        .await;
    let end = journal_tip(&pool).await;
    observer.follow_to(end, &survivors).await;
    observer.assert_contiguous(start);
    for task in &tasks {
        let unfilled = unfilled_of(&observer.frames, task);
        assert_each_window_fired_once(addr(successor), task, &unfilled).await;
    }
}

/// Sends `count` commands made by `command` (from their id) as `user` to each of `nodes` at
/// once (interleaved, without waiting) and returns every reply by node, and how long from the
/// first send to the last reply.
async fn burst(
    user: &str,
    nodes: &[SocketAddr],
    count: usize,
    command: impl Fn(&str) -> Value,
) -> (Vec<Vec<Value>>, Duration) {
    let mut clients = Vec::new();
    for &addr in nodes {
        clients.push(NodeClient::connect(addr, user, Role::Seeker).await);
    }
    let started = Instant::now();
    for k in 0..count {
        for (n, client) in clients.iter_mut().enumerate() {
            let id = format!("{user}-{n}-{k}");
            let mut frame = command(&id);
            frame["id"] = json!(id);
            client.send(frame).await;
        }
    }
    let mut replies = Vec::new();
    for (n, client) in clients.iter_mut().enumerate() {
        let mut mine = Vec::new();
        for k in 0..count {
            mine.push(client.wait_reply(&format!("{user}-{n}-{k}")).await);
        }
        replies.push(mine);
    }
    (replies, started.elapsed())
}

/// Contract §1 defaults: 100 commands a minute per user, bursts of 20.
const BURST: usize = 20;
const PER_MINUTE: f64 = 100.0;

/// Counts the replies of a [`burst`] of `2 * BURST` over two nodes and asserts that they
/// were held to one budget — a budget per node would let all of them through: every reply
/// `ok` or `RATE_LIMITED` (with `retry_after_ms`), and `BURST` accepted plus what the bucket
/// refilled while the burst was under way. Returns how many were accepted.
fn assert_one_budget(replies: &[Vec<Value>], elapsed: Duration) -> usize {
    let mut outcomes: HashMap<&str, usize> = HashMap::new();
    for reply in replies.iter().flatten() {
        let outcome = match (reply["type"].as_str(), reply["code"].as_str()) {
            (Some("ok"), _) => "ok",
            (_, Some("RATE_LIMITED")) => {
                let wait = reply["retry_after_ms"].as_u64();
                assert!(wait.is_some_and(|ms| ms > 0), "{reply}");
                "RATE_LIMITED"
            }
            _ => panic!("neither ok nor RATE_LIMITED: {reply}"),
        };
        *outcomes.entry(outcome).or_default() += 1;
    }
    let ok = outcomes.get("ok").copied().unwrap_or(0);
    let refill = (elapsed.as_secs_f64() * PER_MINUTE / 60.0).ceil() as usize;
    assert!(
        (BURST..=BURST + refill).contains(&ok),
        "{ok} of {} accepted in {elapsed:?} (one budget allows {BURST} + {refill}): {outcomes:?}",
        2 * BURST
    );
    ok
}

/// The two followers of a fresh three-node cluster (and the Postgres it runs on).
async fn two_followers(
    pg: &ThrowawayPostgres,
    redis: &ThrowawayRedis,
) -> (Cluster, Vec<SocketAddr>) {
    let cluster = Cluster::start(3, pg, redis, ClusterOptions::default()).await;
    let leader = cluster.wait_for_leader(WAIT, None).await;
    let followers = (0..3)
        .filter(|&i| i != leader)
        .map(|i| cluster.node(i).addr())
        .collect();
    (cluster, followers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_users_commands_through_two_followers_share_one_rate_budget() {
    let pg = ThrowawayPostgres::start();
    let redis = ThrowawayRedis::start();
    let (_cluster, followers) = two_followers(&pg, &redis).await;
    let post = |id: &str| json!({"type": "post_task", "resume_id": format!("cv-{id}"), "urgency": "flexible"});
    let (replies, elapsed) = burst("bo", &followers, BURST, post).await;
    let ok = assert_one_budget(&replies, elapsed);
    // Nothing refused was applied.
    let pool = sqlx::PgPool::connect(&pg.url())
        .await
        .expect("connect to Postgres");
    // (A task's resume id is in its `task.opened` row only.)
    let opened: i64 =
        sqlx::query_scalar("SELECT count(*) FROM journal WHERE payload LIKE '%cv-bo-%'")
            .fetch_one(&pool)
            .await
            .expect("count");
    assert_eq!(opened as usize, ok, "tasks opened by the burst");
}

/// Reads are served by the follower they reach, but charged to the leader's one limiter
/// (contract §1 counts them, §12 makes the limit cluster-wide): a budget per node would let
/// the whole burst through.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_users_reads_through_two_followers_share_one_rate_budget() {
    let pg = ThrowawayPostgres::start();
    let redis = ThrowawayRedis::start();
    let (_cluster, followers) = two_followers(&pg, &redis).await;
    // Both reads, alternating (ids end in their index `k`).
    let read = |id: &str| {
        if id.ends_with(['0', '2', '4', '6', '8']) {
            json!({"type": "quote"})
        } else {
            json!({"type": "list_tasks"})
        }
    };
    let (replies, elapsed) = burst("bea", &followers, BURST, read).await;
    assert_one_budget(&replies, elapsed);
}
