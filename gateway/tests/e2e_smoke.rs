//! The shortest real path through the server: post, bid, watch, accept — over WebSockets.

mod common;

use common::*;
use gavel_protocol::Role;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bid_reaches_the_watching_seeker_after_it_is_durable() {
    let server = start(fresh_dir("smoke")).await;
    register_coach(&server, "ana", 4.8, false).await;

    let mut seeker = Client::connect(&server, "sally", Role::Seeker).await;
    let posted = seeker
        .ok(
            "p1",
            json!({"type": "post_task", "resume_id": "r1", "urgency": "urgent"}),
        )
        .await;
    assert_eq!(posted["suggested_price"], 3750);
    let task_id = posted["task_id"].as_str().unwrap().to_owned();
    let sub = seeker
        .ok(
            "s1",
            json!({"type": "subscribe", "topic": format!("task:{task_id}")}),
        )
        .await;
    assert_eq!(sub["snapshot"]["status"], "open");

    let mut coach = Client::connect(&server, "ana", Role::Coach).await;
    let feed = coach
        .ok("f1", json!({"type": "subscribe", "topic": "feed"}))
        .await;
    assert_eq!(feed["snapshot"]["tasks"][0]["task_id"], task_id.as_str());
    let bid = coach
        .ok(
            "b1",
            json!({"type": "place_bid", "task_id": task_id, "amount": 4000, "eta_hours": 1}),
        )
        .await;
    let bid_id = bid["bid_id"].as_str().unwrap().to_owned();

    let placed = seeker.event().await;
    assert_eq!(placed["event"]["kind"], "bid.placed");
    assert_eq!(placed["event"]["bid"]["bid_id"], bid_id.as_str());
    let count = coach.event().await;
    assert_eq!(count["event"]["kind"], "task.bid_count");

    let accepted = seeker
        .ok(
            "a1",
            json!({"type": "accept_bid", "task_id": task_id, "bid_id": bid_id}),
        )
        .await;
    assert_eq!(accepted["amount"], 4000);
    let mut kinds = Vec::new();
    for _ in 0..3 {
        kinds.push(
            seeker.event().await["event"]["kind"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(kinds, ["bid.accepted", "task.assigned", "payment.held"]);
    server.shutdown().await;
}
