//! The row-level rules of contract §3, each over real WebSockets: who may subscribe to what,
//! what each viewer sees of other people's bids, and `feed` filters.

mod common;

use common::*;
use gavel_protocol::Role;
use serde_json::{Value, json};

async fn subscribe(client: &mut Client, id: &str, topic: &str) -> Value {
    client
        .ok(id, json!({"type": "subscribe", "topic": topic}))
        .await
}

/// The error code a subscription is refused with (panics if it is accepted).
async fn refused(client: &mut Client, id: &str, topic: &str) -> String {
    let reply = client
        .request(id, json!({"type": "subscribe", "topic": topic}))
        .await;
    assert_eq!(reply["type"], "error", "{topic}: {reply}");
    assert_eq!(reply["id"], id);
    reply["code"].as_str().unwrap().to_owned()
}

async fn post(seeker: &mut Client, id: &str, body: Value) -> String {
    let mut frame = body;
    frame["type"] = json!("post_task");
    frame["resume_id"] = json!("cv");
    seeker.ok(id, frame).await["task_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn bid(coach: &mut Client, id: &str, task_id: &str, amount: u64, eta: u64) -> String {
    coach
        .ok(
            id,
            json!({"type": "place_bid", "task_id": task_id, "amount": amount, "eta_hours": eta}),
        )
        .await["bid_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Asserts that nothing in `frames` names `coach` or carries one of `amounts`.
#[track_caller]
fn assert_never_mentioned(frames: &[Value], coach: &str, amounts: &[u64]) {
    for f in frames {
        assert!(!mentions(f, &json!(coach)), "{coach} leaked: {f}");
        for a in amounts {
            assert!(!mentions(f, &json!(a)), "amount {a} leaked: {f}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coach_never_sees_another_coachs_bid_on_feed_or_coach_topics() {
    let server = start(fresh_dir("vis-feed")).await;
    register_coach(&server, "coach_ana", 4.0, false).await;
    register_coach(&server, "coach_ben", 4.0, false).await;

    let mut ana = Client::connect(&server, "coach_ana", Role::Coach).await;
    let mut ben = Client::connect(&server, "coach_ben", Role::Coach).await;
    for (c, name) in [(&mut ana, "coach_ana"), (&mut ben, "coach_ben")] {
        subscribe(c, "feed", "feed").await;
        subscribe(c, "own", &format!("coach:{name}")).await;
    }
    let mut seeker = Client::connect(&server, "sally", Role::Seeker).await;
    let task = post(&mut seeker, "p", json!({"urgency": "standard"})).await; // [2500, 5000]
    let ana_bid = bid(&mut ana, "b1", &task, 4111, 10).await;
    let ben_bid = bid(&mut ben, "b1", &task, 4222, 20).await;
    // Bidding again updates the same bid.
    assert_eq!(bid(&mut ben, "b2", &task, 4333, 21).await, ben_bid);
    ana.ok("w", json!({"type": "withdraw_bid", "bid_id": ana_bid}))
        .await;
    let ana_bid2 = bid(&mut ana, "b3", &task, 4444, 9).await;
    assert_ne!(
        ana_bid2, ana_bid,
        "a withdrawn bid is gone; bidding again is a new bid"
    );

    // Fresh feed snapshots: the bid count, and only the subscriber's own bid.
    let mut ana2 = Client::connect(&server, "coach_ana", Role::Coach).await;
    let snap = subscribe(&mut ana2, "feed", "feed").await["snapshot"].clone();
    assert_eq!(snap["tasks"].as_array().unwrap().len(), 1);
    assert_eq!(snap["tasks"][0]["bid_count"], 2);
    assert_eq!(snap["tasks"][0]["my_bid"]["bid_id"], ana_bid2.as_str());
    assert_eq!(snap["tasks"][0]["my_bid"]["amount"], 4444);
    assert_eq!(snap["tasks"][0]["my_bid"]["coach_id"], "coach_ana");
    assert_never_mentioned(&[snap], "coach_ben", &[4222, 4333]);
    let mut ben2 = Client::connect(&server, "coach_ben", Role::Coach).await;
    let snap = subscribe(&mut ben2, "feed", "feed").await["snapshot"].clone();
    assert_eq!(snap["tasks"][0]["my_bid"]["bid_id"], ben_bid.as_str());
    assert_eq!(snap["tasks"][0]["my_bid"]["amount"], 4333);
    assert_eq!(snap["tasks"][0]["my_bid"]["eta_hours"], 21);
    assert_never_mentioned(&[snap], "coach_ana", &[4111, 4444]);
    // Own-topic snapshots: own live bids only.
    let own = subscribe(&mut ben2, "own", "coach:coach_ben").await["snapshot"].clone();
    assert_eq!(own["bids"].as_array().unwrap().len(), 1);
    assert_eq!(own["bids"][0]["bid_id"], ben_bid.as_str());
    assert_never_mentioned(&[own], "coach_ana", &[4111, 4444]);

    // The owner accepts ben's bid; ana's is rejected.
    seeker
        .ok(
            "a",
            json!({"type": "accept_bid", "task_id": task, "bid_id": ben_bid}),
        )
        .await;

    let ana_events = ana.drain_events().await;
    let (feed, own): (Vec<Value>, Vec<Value>) = ana_events
        .iter()
        .cloned()
        .partition(|f| f["topic"] == "feed");
    assert_kinds(
        &feed,
        &[
            "task.opened",
            "task.bid_count",
            "task.bid_count",
            "task.bid_count",
            "task.bid_count",
            "task.closed",
        ],
    );
    let counts: Vec<&Value> = feed[1..5]
        .iter()
        .map(|f| &f["event"]["bid_count"])
        .collect();
    assert_eq!(counts, [&json!(1), &json!(2), &json!(1), &json!(2)]);
    assert_eq!(feed[0]["event"]["task"]["my_bid"], Value::Null);
    assert_kinds(
        &own,
        &["bid.placed", "bid.withdrawn", "bid.placed", "bid.rejected"],
    );
    assert!(own.iter().all(|f| f["topic"] == "coach:coach_ana"));
    assert_never_mentioned(&ana_events, "coach_ben", &[4222, 4333]);

    let ben_events = ben.drain_events().await;
    let own: Vec<&Value> = ben_events
        .iter()
        .filter(|f| f["topic"] == "coach:coach_ben")
        .collect();
    let kinds: Vec<&Value> = own.iter().map(|f| &f["event"]["kind"]).collect();
    assert_eq!(
        kinds,
        ["bid.placed", "bid.updated", "bid.accepted", "task.assigned"]
    );
    assert_eq!(own[1]["event"]["bid"]["amount"], 4333);
    assert_never_mentioned(&ben_events, "coach_ana", &[4111, 4444]);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_assigned_coach_sees_no_bids_or_payments_on_the_task_topic() {
    let server = start(fresh_dir("vis-task")).await;
    register_coach(&server, "coach_ana", 4.0, false).await;
    register_coach(&server, "coach_ben", 4.0, false).await;
    let mut ana = Client::connect(&server, "coach_ana", Role::Coach).await;
    let mut ben = Client::connect(&server, "coach_ben", Role::Coach).await;
    let mut seeker = Client::connect(&server, "sally", Role::Seeker).await;
    let task = post(&mut seeker, "p", json!({"urgency": "standard"})).await;
    let topic = format!("task:{task}");
    let ana_bid = bid(&mut ana, "b", &task, 4111, 10).await;
    bid(&mut ben, "b", &task, 2777, 5).await;

    // Not assigned: no access, even while bidding.
    assert_eq!(refused(&mut ana, "early", &topic).await, "FORBIDDEN");
    seeker
        .ok(
            "a",
            json!({"type": "accept_bid", "task_id": task, "bid_id": ana_bid}),
        )
        .await;
    assert_eq!(refused(&mut ben, "loser", &topic).await, "FORBIDDEN");

    let snap = subscribe(&mut ana, "watch", &topic).await["snapshot"].clone();
    assert_eq!(snap["bid_count"], 0);
    assert_eq!(snap["top3"], json!([]));
    assert_eq!(snap["bids"].as_array().unwrap().len(), 1);
    assert_eq!(snap["bids"][0]["bid_id"], ana_bid.as_str());
    assert_never_mentioned(&[snap], "coach_ben", &[2777]);

    seeker
        .ok(
            "m",
            json!({"type": "send_message", "task_id": task, "text": "hello"}),
        )
        .await;
    ana.ok("s", json!({"type": "start_work", "task_id": task}))
        .await;
    for round in 1..=3 {
        ana.ok(
            &format!("v{round}"),
            json!({"type": "submit_verification", "task_id": task}),
        )
        .await;
        seeker
            .ok(
                &format!("c{round}"),
                json!({"type": "request_changes", "task_id": task, "reason": "more"}),
            )
            .await;
    }
    let mut admin = Client::connect(&server, "root", Role::Admin).await;
    admin
        .ok(
            "r",
            json!({"type": "resolve_dispute", "task_id": task, "outcome": "release"}),
        )
        .await;

    let events = ana.drain_events().await;
    assert!(events.iter().all(|f| f["topic"] == topic.as_str()));
    assert_kinds(
        &events,
        &[
            "task.message",
            "task.started",
            "task.submitted",
            "task.changes_requested",
            "task.submitted",
            "task.changes_requested",
            "task.submitted",
            "task.changes_requested",
            "task.disputed",
            "task.completed",
        ],
    );
    // The owner's view of the same topic has the payment (and, before, the bids).
    let mut owner = Client::connect(&server, "sally", Role::Seeker).await;
    let snap = subscribe(&mut owner, "w", &topic).await["snapshot"].clone();
    assert_eq!(
        snap["escrow"],
        json!({"held": 4111, "released": 4111, "refunded": 0})
    );
    server.shutdown().await;
}

/// A coach's view of `task:<id>` lasts as long as its assignment: once it loses the task
/// (payment failed, reassigned), it must not go on seeing who takes it over, and for how much.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coach_that_loses_the_task_sees_nothing_of_the_next_coach() {
    let server = start(fresh_dir("vis-lost")).await;
    register_coach(&server, "coach_ana", 4.0, false).await;
    register_coach(&server, "coach_ben", 4.0, false).await;
    let mut ana = Client::connect(&server, "coach_ana", Role::Coach).await;
    let mut ben = Client::connect(&server, "coach_ben", Role::Coach).await;
    let mut seeker = Client::connect(&server, "sally", Role::Seeker).await;
    let task = post(&mut seeker, "p", json!({"urgency": "standard"})).await;
    let topic = format!("task:{task}");
    let ana_bid = bid(&mut ana, "b", &task, 4111, 10).await;
    seeker
        .ok(
            "a",
            json!({"type": "accept_bid", "task_id": task, "bid_id": ana_bid}),
        )
        .await;
    subscribe(&mut ana, "watch", &topic).await;

    // The payment fails: the task reopens, ben wins it.
    let (status, _) = http(
        &server,
        "POST",
        &format!("/v1/tasks/{task}/payment_failed"),
        Some(&token("ops", Role::Admin)),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let ben_bid = bid(&mut ben, "b", &task, 4999, 7).await;
    seeker
        .ok(
            "a2",
            json!({"type": "accept_bid", "task_id": task, "bid_id": ben_bid}),
        )
        .await;
    seeker
        .ok(
            "m",
            json!({"type": "send_message", "task_id": task, "text": "welcome, ben"}),
        )
        .await;

    // Ana hears that the payment failed, and then nothing more of the task.
    let events = ana.drain_events().await;
    assert_kinds(&events, &["payment.failed"]);
    assert_eq!(events[0]["topic"], topic.as_str());
    // And it cannot come back.
    assert_eq!(refused(&mut ana, "again", &topic).await, "FORBIDDEN");
    // Ben, who holds it now, can watch it.
    subscribe(&mut ben, "watch", &topic).await;
    server.shutdown().await;
}

/// The same when a late coach's task is reassigned on call (contract §5): the late coach
/// hears of it on `coach:<id>` (which names both coaches, as the contract routes it), and its
/// `task:<id>` view ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_coach_stops_seeing_the_task_it_lost() {
    // 1200×: a 1 h eta's reminder comes 2.25 s after the accept, the overdue point 3.75 s.
    // The urgent bidding window is long so the bid never races it.
    let mut opts = options(fresh_dir("vis-late"));
    opts.time_scale = 1200.0;
    opts.config.tiers.urgent.bidding_minutes = 7 * 24 * 60;
    let server = start_with(opts).await;
    register_coach(&server, "coach_ana", 4.0, false).await;
    register_coach(&server, "coach_ben", 4.0, true).await;
    let mut ana = Client::connect(&server, "coach_ana", Role::Coach).await;
    subscribe(&mut ana, "own", "coach:coach_ana").await;
    let mut ben = Client::connect(&server, "coach_ben", Role::Coach).await;
    subscribe(&mut ben, "own", "coach:coach_ben").await;
    let mut seeker = Client::connect(&server, "sally", Role::Seeker).await;
    let task = post(&mut seeker, "p", json!({"urgency": "urgent"})).await;
    let topic = format!("task:{task}");
    let ana_bid = bid(&mut ana, "b", &task, 4111, 1).await;
    seeker
        .ok(
            "a",
            json!({"type": "accept_bid", "task_id": task, "bid_id": ana_bid}),
        )
        .await;
    subscribe(&mut ana, "watch", &topic).await;

    let wait = std::time::Duration::from_secs(60);
    ben.wait_event("coach:coach_ben", "task.assigned", wait)
        .await;
    seeker
        .ok(
            "m",
            json!({"type": "send_message", "task_id": task, "text": "welcome"}),
        )
        .await;

    let events = ana.drain_events().await;
    let (on_task, own): (Vec<Value>, Vec<Value>) = events
        .into_iter()
        .partition(|f| f["topic"] == topic.as_str());
    assert_kinds(&on_task, &["task.reminder"]);
    assert_kinds(
        &own,
        &[
            "bid.placed",
            "bid.accepted",
            "task.assigned",
            "task.reminder",
            "task.reassigned",
        ],
    );
    assert_event(
        &own[4],
        "coach:coach_ana",
        "task.reassigned",
        json!({"from_coach_id": "coach_ana", "to_coach_id": "coach_ben"}),
    );
    assert_eq!(refused(&mut ana, "again", &topic).await, "FORBIDDEN");

    let ben_events = ben.drain_events().await;
    assert_kinds(&ben_events, &["task.reassigned", "task.assigned"]);
    assert_event(
        &ben_events[1],
        "coach:coach_ben",
        "task.assigned",
        json!({"coach_id": "coach_ben", "bid_id": null, "amount": 4111, "on_call": true}),
    );
    let snap = subscribe(&mut ben, "watch", &topic).await["snapshot"].clone();
    assert_eq!(snap["assigned"]["coach_id"], "coach_ben");
    assert_eq!(snap["bids"], json!([]), "ben never bid");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_may_subscribe_to_what() {
    let server = start(fresh_dir("vis-auth")).await;
    register_coach(&server, "ana", 4.0, false).await;
    register_coach(&server, "ben", 4.0, false).await;
    let mut sally = Client::connect(&server, "sally", Role::Seeker).await;
    let mut sam = Client::connect(&server, "sam", Role::Seeker).await;
    let mut ana = Client::connect(&server, "ana", Role::Coach).await;
    let mut ben = Client::connect(&server, "ben", Role::Coach).await;
    let mut admin = Client::connect(&server, "root", Role::Admin).await;
    let task = post(&mut sally, "p", json!({"urgency": "urgent"})).await;
    let topic = format!("task:{task}");

    // A seeker: its own tasks only.
    subscribe(&mut sally, "own", &topic).await;
    for (i, t) in [topic.as_str(), "feed", "admin", "coach:ana", "coach:sam"]
        .iter()
        .enumerate()
    {
        assert_eq!(
            refused(&mut sam, &format!("s{i}"), t).await,
            "FORBIDDEN",
            "{t}"
        );
    }
    for (i, t) in ["feed", "admin", "coach:sally"].iter().enumerate() {
        assert_eq!(
            refused(&mut sally, &format!("s{i}"), t).await,
            "FORBIDDEN",
            "{t}"
        );
    }
    // A coach: feed, its own coach topic, tasks it is assigned.
    subscribe(&mut ana, "f", "feed").await;
    subscribe(&mut ana, "c", "coach:ana").await;
    for (i, t) in [topic.as_str(), "coach:ben", "admin"].iter().enumerate() {
        assert_eq!(
            refused(&mut ana, &format!("a{i}"), t).await,
            "FORBIDDEN",
            "{t}"
        );
    }
    let ana_bid = bid(&mut ana, "b", &task, 4000, 1).await;
    sally
        .ok(
            "acc",
            json!({"type": "accept_bid", "task_id": task, "bid_id": ana_bid}),
        )
        .await;
    subscribe(&mut ana, "t", &topic).await;
    assert_eq!(refused(&mut ben, "t", &topic).await, "FORBIDDEN");
    assert_eq!(refused(&mut sam, "t", &topic).await, "FORBIDDEN");

    // A task that does not exist: NOT_FOUND to an admin only, so ids cannot be probed.
    assert_eq!(refused(&mut admin, "x", "task:t_nope").await, "NOT_FOUND");
    assert_eq!(refused(&mut sally, "x", "task:t_nope").await, "FORBIDDEN");
    assert_eq!(refused(&mut ana, "x", "task:t_nope").await, "FORBIDDEN");
    // The same for commands naming it.
    let r = ana
        .request(
            "xb",
            json!({"type": "place_bid", "task_id": "t_nope", "amount": 4000, "eta_hours": 1}),
        )
        .await;
    assert_eq!(r["code"], "FORBIDDEN", "{r}");
    let r = admin
        .request("xc", json!({"type": "cancel_task", "task_id": "t_nope"}))
        .await;
    assert_eq!(r["code"], "NOT_FOUND", "{r}");

    // An admin: anything.
    for (i, t) in [topic.as_str(), "feed", "admin", "coach:ana", "coach:nobody"]
        .iter()
        .enumerate()
    {
        subscribe(&mut admin, &format!("a{i}"), t).await;
    }
    // Refusals leave the connection usable.
    sam.ok("ping", json!({"type": "ping"})).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_filters_deliver_only_matching_tasks() {
    let server = start(fresh_dir("vis-filter")).await;
    register_coach(&server, "ana", 4.0, false).await;
    let mut ana = Client::connect(&server, "ana", Role::Coach).await;

    let filters = [
        None,
        Some(json!({"urgency": ["urgent"]})),
        Some(json!({"task_type": ["linkedin_review"]})),
        Some(json!({"min_price": 3000})),
        Some(json!({"urgency": ["standard", "flexible"], "min_price": 2500})),
    ];
    let mut watchers = Vec::new();
    for (i, filter) in filters.iter().enumerate() {
        let mut c = Client::connect(&server, "ana", Role::Coach).await;
        let mut frame = json!({"type": "subscribe", "topic": "feed"});
        if let Some(f) = filter {
            frame["filter"] = f.clone();
        }
        let r = c.ok(&format!("f{i}"), frame).await;
        assert_eq!(r["snapshot"]["tasks"], json!([]));
        watchers.push(c);
    }

    let mut sally = Client::connect(&server, "sally", Role::Seeker).await;
    // t1 urgent, 3750; t2 standard linkedin_review, 2500; t3 flexible 5000×0.8 = 4000;
    // t4 standard 2000.
    let t1 = post(&mut sally, "p1", json!({"urgency": "urgent"})).await;
    let t2 = post(
        &mut sally,
        "p2",
        json!({"urgency": "standard", "task_type": "linkedin_review"}),
    )
    .await;
    let t3 = post(
        &mut sally,
        "p3",
        json!({"urgency": "flexible", "base_price": 5000}),
    )
    .await;
    let t4 = post(
        &mut sally,
        "p4",
        json!({"urgency": "standard", "base_price": 2000}),
    )
    .await;
    for (i, (t, amount)) in [(&t1, 3750), (&t2, 2500), (&t3, 4000), (&t4, 2000)]
        .into_iter()
        .enumerate()
    {
        bid(&mut ana, &format!("b{i}"), t, amount, 1).await;
    }
    // A filtered snapshot taken now: the open tasks that match, in any order.
    let mut late = Client::connect(&server, "ana", Role::Coach).await;
    let snap = late
        .ok(
            "late",
            json!({"type": "subscribe", "topic": "feed", "filter": {"min_price": 3000}}),
        )
        .await["snapshot"]
        .clone();
    let mut ids: Vec<&str> = snap["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["task_id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    let mut want = vec![t1.as_str(), t3.as_str()];
    want.sort_unstable();
    assert_eq!(ids, want);
    assert!(
        snap["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["bid_count"] == 1 && t["my_bid"]["coach_id"] == "ana")
    );

    for (i, t) in [&t1, &t2, &t3, &t4].into_iter().enumerate() {
        sally
            .ok(
                &format!("x{i}"),
                json!({"type": "cancel_task", "task_id": t, "reason": "found someone"}),
            )
            .await;
    }

    let matching: [Vec<&String>; 5] = [
        vec![&t1, &t2, &t3, &t4],
        vec![&t1],
        vec![&t2],
        vec![&t1, &t3],
        vec![&t2, &t3],
    ];
    let mut all = Vec::new();
    for (i, (watcher, tasks)) in watchers.iter_mut().zip(matching).enumerate() {
        let events = watcher.drain_events().await;
        if i == 0 {
            all = events.clone();
        }
        assert_subsequence_of(&events, &all);
        // Per matching task: opened, bid count 1, closed (canceled) — in posting order for
        // the openings, then the bids, then the cancels.
        let mut want = Vec::new();
        for t in &tasks {
            want.push(("task.opened", (*t).clone()));
        }
        for t in &tasks {
            want.push(("task.bid_count", (*t).clone()));
        }
        for t in &tasks {
            want.push(("task.closed", (*t).clone()));
        }
        let got: Vec<(&str, String)> = events
            .iter()
            .map(|f| {
                assert_eq!(f["topic"], "feed");
                (
                    f["event"]["kind"].as_str().unwrap(),
                    f["event"]["task_id"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(got, want, "filter {:?}", filters[i]);
        for f in &events {
            match f["event"]["kind"].as_str().unwrap() {
                "task.bid_count" => assert_eq!(f["event"]["bid_count"], 1),
                "task.closed" => assert_eq!(f["event"]["status"], "canceled"),
                _ => {}
            }
        }
    }
    server.shutdown().await;
}
