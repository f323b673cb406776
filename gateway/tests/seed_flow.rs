//! The seed flow end to end over real WebSockets (contract §3–§5, §8): a seeker posts an
//! urgent task, three coaches bid, the seeker accepts the best bid, the coach is reminded,
//! starts, submits, the seeker asks for changes three times, and an admin resolves the dispute
//! by releasing the escrow. Every subscriber's every event is checked, in order, with exact
//! amounts, and every topic's `seq`s are checked against the journal order the `admin` topic
//! shows. Also: a task nobody bids on goes on call when its window closes.
//!
//! Engine time runs faster than wall time (`time_scale`), so deadlines pass in seconds; the
//! tests wait for the deadline's event with a generous timeout rather than sleeping.

mod common;

use std::time::Duration;

use common::*;
use gavel_protocol::Role;
use serde_json::{Value, json};

/// How long to wait for an event a deadline produces (it is due within seconds).
const DEADLINE_WAIT: Duration = Duration::from_secs(60);

const HOUR_MS: u64 = 3_600_000;
const MINUTE_MS: u64 = 60_000;

/// Subscribes and returns the result.
async fn subscribe(client: &mut Client, id: &str, topic: &str) -> Value {
    client
        .ok(id, json!({"type": "subscribe", "topic": topic}))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn seed_flow_from_post_to_a_released_dispute() {
    // Engine time runs 600× wall time: the accepted bid's reminder (45 engine minutes after the
    // accept) comes 4.5 s later, and the coach has 30 engine minutes (3 s) after it to start and
    // submit before the overdue point. The urgent bidding window is kept long (a week of engine
    // time) so the bids never race its closing; prices and delivery windows — everything the
    // scores depend on — are the contract's defaults.
    let mut opts = options(fresh_dir("seed"));
    opts.time_scale = 600.0;
    opts.config.tiers.urgent.bidding_minutes = 7 * 24 * 60;
    let server = start_with(opts).await;

    register_coach(&server, "ana", 4.8, false).await;
    register_coach(&server, "ben", 3.5, false).await;
    register_coach(&server, "cy", 0.0, false).await; // unrated: counts as 2.50

    let mut admin = Client::connect(&server, "root", Role::Admin).await;
    let admin_sub = subscribe(&mut admin, "a-sub", "admin").await;
    assert_eq!(admin_sub["topic"], "admin");
    assert_eq!(admin_sub["epoch"], server.epoch.as_str());
    assert_eq!(admin_sub["snapshot"]["open_tasks"], 0);
    let s0 = admin_sub["seq"].as_u64().unwrap();

    async fn coach(server: &gavel_gateway::app::Server, name: &str) -> Client {
        let mut c = Client::connect(server, name, Role::Coach).await;
        let feed = subscribe(&mut c, "f", "feed").await;
        assert_eq!(feed["snapshot"], json!({"tasks": []}));
        let own = subscribe(&mut c, "c", &format!("coach:{name}")).await;
        let snapshot = &own["snapshot"];
        assert_eq!(
            (
                &snapshot["coach_id"],
                &snapshot["bids"],
                &snapshot["assignments"]
            ),
            (&json!(name), &json!([]), &json!([]))
        );
        assert_eq!(
            (&snapshot["ratings_count"], &snapshot["completed"]),
            (&json!(0), &json!(0))
        );
        c
    }
    let mut ana = coach(&server, "ana").await;
    let mut ben = coach(&server, "ben").await;
    let mut cy = coach(&server, "cy").await;

    // Post an urgent task: 2500 × 1.5.
    let mut seeker = Client::connect(&server, "sally", Role::Seeker).await;
    let posted = seeker
        .ok(
            "post",
            json!({"type": "post_task", "resume_id": "cv-1", "urgency": "urgent"}),
        )
        .await;
    assert_eq!(posted["suggested_price"], 3750);
    assert_eq!(posted["price_range"], json!([3750, 7500]));
    let task_id = posted["task_id"].as_str().unwrap().to_owned();
    let topic = format!("task:{task_id}");
    let watched = subscribe(&mut seeker, "watch", &topic).await;
    let snap = &watched["snapshot"];
    assert_eq!(snap["status"], "open");
    assert_eq!(snap["owner"], "sally");
    assert_eq!(snap["bids"], json!([]));
    assert_eq!(snap["bidding_closes_at"], posted["bidding_closes_at"]);
    assert_eq!(
        snap["bidding_closes_at"].as_u64().unwrap() - snap["created_at"].as_u64().unwrap(),
        7 * 24 * 60 * MINUTE_MS
    );
    let watched_at = watched["seq"].as_u64().unwrap();
    assert_eq!(watched_at, s0 + 1, "only the task.opened happened since");

    // Three bids. Scores by hand (contract §5), range [3750, 7500], window 2 h:
    // ana  6000, 2 h, 4.80: price (7500-6000)*10000/3750 = 4000, rating 480*10000/500 = 9600,
    //      eta 0 → (5*4000 + 3*9600 + 0) / 10 = 4880
    // ben  4321, 1 h, 3.50: price 3179*10000/3750 = 8477, rating 7000, eta 5000
    //      → (42385 + 21000 + 10000) / 10 = 7338
    // cy   5000, 2 h, unrated (250): price 2500*10000/3750 = 6666, rating 5000, eta 0
    //      → (33330 + 15000) / 10 = 4833
    let bids = [
        (&mut ana, "ana", 6000, 2, 4880),
        (&mut ben, "ben", 4321, 1, 7338),
        (&mut cy, "cy", 5000, 2, 4833),
    ];
    let mut bid_ids = Vec::new();
    for (client, name, amount, eta, _) in bids {
        let r = client
            .ok(
                "bid",
                json!({"type": "place_bid", "task_id": task_id, "amount": amount, "eta_hours": eta}),
            )
            .await;
        bid_ids.push((name, r["bid_id"].as_str().unwrap().to_owned()));
    }
    let bid_of = |name: &str| bid_ids.iter().find(|(n, _)| *n == name).unwrap().1.clone();
    let (ana_bid, ben_bid, cy_bid) = (bid_of("ana"), bid_of("ben"), bid_of("cy"));
    // Each bid carries its coach's reputation for the seeker's screen (contract §10).
    let expected_bid = |name: &str, amount: u64, eta: u64, score: u64, rating: u64| {
        json!({"bid_id": bid_of(name), "task_id": task_id, "coach_id": name, "amount": amount,
               "eta_hours": eta, "score": score, "status": "pending",
               "coach": {"display_name": name, "rating": rating, "ratings_count": 0, "completed": 0}})
    };
    let mut bid_views = [
        expected_bid("ana", 6000, 2, 4880, 480),
        expected_bid("ben", 4321, 1, 7338, 350),
        expected_bid("cy", 5000, 2, 4833, 0),
    ];

    // The seeker's view taken after the bids: ranked best first, with top3.
    let mut seeker2 = Client::connect(&server, "sally", Role::Seeker).await;
    let ranked = subscribe(&mut seeker2, "ranked", &topic).await;
    let snap = &ranked["snapshot"];
    assert_eq!(snap["bid_count"], 3);
    let ranked_bids = snap["bids"].as_array().unwrap();
    assert_eq!(ranked_bids.len(), 3);
    for (got, want) in ranked_bids
        .iter()
        .zip([&bid_views[1], &bid_views[0], &bid_views[2]])
    {
        for (k, v) in want.as_object().unwrap() {
            assert_eq!(&got[k], v, "{k} of {got}");
        }
    }
    assert_eq!(snap["top3"], json!([ben_bid, ana_bid, cy_bid]));
    // Each bid was placed at its own engine time (and the snapshot is exactly the bids).
    for (view, got) in bid_views
        .iter_mut()
        .zip([&ranked_bids[1], &ranked_bids[0], &ranked_bids[2]])
    {
        view["created_at"] = got["created_at"].clone();
        assert_eq!(view, got);
    }
    assert_eq!(ranked["seq"].as_u64().unwrap(), s0 + 7);
    seeker2
        .ok("bye", json!({"type": "unsubscribe", "topic": topic}))
        .await;

    // Accept ben's bid: held 4321, deadline now + 1 h.
    let accepted = seeker
        .ok(
            "accept",
            json!({"type": "accept_bid", "task_id": task_id, "bid_id": ben_bid}),
        )
        .await;
    assert_eq!(accepted["task_id"], task_id.as_str());
    assert_eq!(accepted["coach_id"], "ben");
    assert_eq!(accepted["amount"], 4321);
    let deadline = accepted["deadline"].as_u64().unwrap();

    // Ben, now assigned, watches the task: its own bid only, no top3.
    let ben_watch = subscribe(&mut ben, "watch", &topic).await;
    let snap = &ben_watch["snapshot"];
    assert_eq!(snap["status"], "assigned");
    assert_eq!(snap["top3"], json!([]));
    assert_eq!(snap["bids"].as_array().unwrap().len(), 1);
    assert_eq!(snap["bids"][0]["bid_id"], ben_bid.as_str());
    assert_eq!(snap["bids"][0]["status"], "accepted");
    assert_eq!(
        snap["assigned"],
        json!({"coach_id": "ben", "bid_id": ben_bid, "amount": 4321, "deadline": deadline, "on_call": false})
    );
    assert_eq!(ben_watch["seq"].as_u64().unwrap(), s0 + 13);
    let assigned_at = deadline - HOUR_MS;

    // The reminder: lead = min(2 h, 1 h / 4) = 15 min before the deadline.
    let reminder = ben.wait_event(&topic, "task.reminder", DEADLINE_WAIT).await;
    assert_event(
        &reminder,
        &topic,
        "task.reminder",
        json!({"task_id": task_id, "deadline": deadline, "at": deadline - 15 * MINUTE_MS}),
    );

    ben.ok("start", json!({"type": "start_work", "task_id": task_id}))
        .await;
    ben.ok(
        "submit-1",
        json!({"type": "submit_verification", "task_id": task_id, "notes": "first pass"}),
    )
    .await;
    for (round, notes) in [(1, "second pass"), (2, "third pass")] {
        let r = seeker
            .ok(
                &format!("changes-{round}"),
                json!({"type": "request_changes", "task_id": task_id, "reason": format!("round {round}")}),
            )
            .await;
        assert_eq!(r, json!({"revisions": round}));
        ben.ok(
            &format!("submit-{}", round + 1),
            json!({"type": "submit_verification", "task_id": task_id, "notes": notes}),
        )
        .await;
    }
    let r = seeker
        .ok(
            "changes-3",
            json!({"type": "request_changes", "task_id": task_id, "reason": "round 3"}),
        )
        .await;
    assert_eq!(r, json!({"revisions": 3}));
    // A disputed task is the admin's: the owner can no longer accept it.
    let refused = seeker
        .request(
            "too-late",
            json!({"type": "accept_verification", "task_id": task_id, "rating": 5}),
        )
        .await;
    assert_eq!(refused["code"], "CONFLICT", "{refused}");
    let resolved = admin
        .ok(
            "resolve",
            json!({"type": "resolve_dispute", "task_id": task_id, "outcome": "release"}),
        )
        .await;
    assert_eq!(resolved, json!({}));

    // 4321 × 85 / 100 = 3672 (integer division), fee 649.
    let released = json!({"coach_amount": 3672, "platform_fee": 649});
    let completed = json!({"coach_amount": 3672, "platform_fee": 649, "rating": null});

    // ---- admin: every event, gap-free from its subscription on.
    let all = admin.drain_events().await;
    let t = json!(task_id);
    let expected: Vec<(&str, Value)> = vec![
        (
            "task.opened",
            json!({"task": {"task_id": t, "task_type": "resume_review_full", "urgency": "urgent", "suggested_price": 3750, "price_range": [3750, 7500], "bid_count": 0, "bidding_closes_at": posted["bidding_closes_at"], "created_at": snap["created_at"], "my_bid": null}}),
        ),
        ("bid.placed", json!({"bid": bid_views[0]})),
        ("task.bid_count", json!({"bid_count": 1})),
        ("bid.placed", json!({"bid": bid_views[1]})),
        ("task.bid_count", json!({"bid_count": 2})),
        ("bid.placed", json!({"bid": bid_views[2]})),
        ("task.bid_count", json!({"bid_count": 3})),
        (
            "bid.accepted",
            json!({"bid_id": ben_bid, "coach_id": "ben"}),
        ),
        // The others, best first.
        (
            "bid.rejected",
            json!({"bid_id": ana_bid, "coach_id": "ana"}),
        ),
        ("bid.rejected", json!({"bid_id": cy_bid, "coach_id": "cy"})),
        (
            "task.assigned",
            json!({"coach_id": "ben", "bid_id": ben_bid, "amount": 4321, "deadline": deadline, "on_call": false, "at": assigned_at}),
        ),
        ("payment.held", json!({"amount": 4321})),
        ("task.closed", json!({"status": "assigned"})),
        ("task.reminder", json!({"deadline": deadline})),
        ("task.started", json!({})),
        ("task.submitted", json!({"notes": "first pass"})),
        (
            "task.changes_requested",
            json!({"reason": "round 1", "revisions": 1}),
        ),
        ("task.submitted", json!({"notes": "second pass"})),
        (
            "task.changes_requested",
            json!({"reason": "round 2", "revisions": 2}),
        ),
        ("task.submitted", json!({"notes": "third pass"})),
        (
            "task.changes_requested",
            json!({"reason": "round 3", "revisions": 3}),
        ),
        ("task.disputed", json!({})),
        ("payment.released", released.clone()),
        ("task.completed", completed.clone()),
    ];
    assert_eq!(all.len(), expected.len(), "{all:#?}");
    let mut last_at = 0;
    for (i, (frame, (kind, fields))) in all.iter().zip(&expected).enumerate() {
        assert_event(frame, "admin", kind, fields.clone());
        assert_eq!(frame["event"]["task_id"], t);
        assert_eq!(
            frame["seq"].as_u64().unwrap(),
            s0 + 1 + i as u64,
            "admin sees every seq"
        );
        let at = frame["event"]["at"].as_u64().unwrap();
        assert!(at >= last_at, "engine time never runs backwards");
        last_at = at;
    }
    let at_of = |i: usize| all[i]["event"]["at"].as_u64().unwrap();
    // Each command's events share its time.
    assert!((7..13).all(|i| at_of(i) == assigned_at));

    // The others: exactly their share of the journal, in order, at the same seqs.
    let pick = |indexes: &[usize], topic: &str| -> Vec<(String, &str, Value)> {
        indexes
            .iter()
            .map(|&i| (topic.to_owned(), expected[i].0, expected[i].1.clone()))
            .collect()
    };
    let check = |frames: &[Value], want: Vec<(String, &str, Value)>| {
        assert_eq!(frames.len(), want.len(), "{frames:#?}");
        for (frame, (topic, kind, fields)) in frames.iter().zip(want) {
            assert_event(frame, &topic, kind, fields);
        }
        assert_subsequence_of(frames, &all);
    };

    // The seeker (owner view): every event about the task but feed bookkeeping.
    let seeker_events = seeker.drain_events().await;
    check(
        &seeker_events,
        pick(
            &[
                1, 3, 5, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23,
            ],
            &topic,
        ),
    );
    // Ben on the task topic (assigned coach view): no payment.* and no bid.*.
    let mut ben_events = ben.drain_events().await;
    let ben_task: Vec<Value> = ben_events
        .iter()
        .filter(|f| f["topic"] == topic.as_str())
        .cloned()
        .collect();
    ben_events.retain(|f| f["topic"] != topic.as_str());
    check(
        &ben_task,
        pick(&[13, 14, 15, 16, 17, 18, 19, 20, 21, 23], &topic),
    );
    // Every coach's feed: the task opening, its bid count, its closing — and nothing else.
    let split = |frames: Vec<Value>, name: &str| {
        let (feed, own): (Vec<Value>, Vec<Value>) =
            frames.into_iter().partition(|f| f["topic"] == "feed");
        assert!(own.iter().all(|f| f["topic"] == format!("coach:{name}")));
        (feed, own)
    };
    let feed_share = [0, 2, 4, 6, 12];
    let (ben_feed, ben_own) = split(ben_events, "ben");
    check(&ben_feed, pick(&feed_share, "feed"));
    // Ben's own topic: its bid, the award, the reminder, changes, the release.
    check(
        &ben_own,
        pick(&[3, 7, 10, 13, 16, 18, 20, 22, 23], "coach:ben"),
    );
    let (ana_feed, ana_own) = split(ana.drain_events().await, "ana");
    check(&ana_feed, pick(&feed_share, "feed"));
    check(&ana_own, pick(&[1, 8], "coach:ana"));
    let (cy_feed, cy_own) = split(cy.drain_events().await, "cy");
    check(&cy_feed, pick(&feed_share, "feed"));
    check(&cy_own, pick(&[5, 9], "coach:cy"));
    // The second seeker connection unsubscribed before the accept.
    assert_eq!(seeker2.drain_events().await, Vec::<Value>::new());

    // The books: everything held was released, 85/15.
    let (status, view) = http(
        &server,
        "GET",
        &format!("/v1/tasks/{task_id}"),
        Some(&token("root", Role::Admin)),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(view["status"], "completed");
    assert_eq!(view["revisions"], 3);
    assert_eq!(
        view["escrow"],
        json!({"held": 4321, "released": 4321, "refunded": 0})
    );
    server.shutdown().await;
}

/// Contract §5: a window that closes with no bids goes on call — the on-call coach with the
/// fewest active tasks, then the highest rating, then the smallest id — at
/// `round(suggested × 1.2)` with the tier's delivery window as its eta.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unbid_task_goes_on_call_when_its_window_closes() {
    // 120×: the 10-minute urgent window closes 5 s after the post.
    let mut opts = options(fresh_dir("oncall"));
    opts.time_scale = 120.0;
    let server = start_with(opts).await;
    register_coach(&server, "zed", 5.0, false).await; // best rated, but not on call
    register_coach(&server, "bob_oc", 4.5, true).await;
    register_coach(&server, "amy_oc", 4.5, true).await; // ties with bob: smaller id wins
    register_coach(&server, "cat_oc", 4.0, true).await;

    let mut admin = Client::connect(&server, "root", Role::Admin).await;
    let s0 = subscribe(&mut admin, "a", "admin").await["seq"]
        .as_u64()
        .unwrap();
    let mut amy = Client::connect(&server, "amy_oc", Role::Coach).await;
    subscribe(&mut amy, "f", "feed").await;
    subscribe(&mut amy, "c", "coach:amy_oc").await;
    let mut bob = Client::connect(&server, "bob_oc", Role::Coach).await;
    subscribe(&mut bob, "c", "coach:bob_oc").await;

    // base 2002 → suggested round(3003.0) = 3003; on call round(3603.6) = 3604.
    let mut seeker = Client::connect(&server, "sally", Role::Seeker).await;
    let posted = seeker
        .ok(
            "post",
            json!({"type": "post_task", "resume_id": "cv-9", "urgency": "urgent", "base_price": 2002}),
        )
        .await;
    assert_eq!(posted["suggested_price"], 3003);
    let task_id = posted["task_id"].as_str().unwrap().to_owned();
    let closes_at = posted["bidding_closes_at"].as_u64().unwrap();
    let topic = format!("task:{task_id}");
    let watched = subscribe(&mut seeker, "w", &topic).await;
    assert_eq!(
        watched["snapshot"]["status"], "open",
        "subscribed well within the 5 s window"
    );

    let deadline = closes_at + 2 * HOUR_MS;
    let assigned = json!({"coach_id": "amy_oc", "bid_id": null, "amount": 3604, "deadline": deadline, "on_call": true, "at": closes_at});
    let first = seeker
        .wait_event(&topic, "task.assigned", DEADLINE_WAIT)
        .await;
    assert_event(&first, &topic, "task.assigned", assigned.clone());
    let seeker_events = seeker.drain_events().await;

    let all = admin.drain_events().await;
    assert_kinds(
        &all,
        &[
            "task.opened",
            "task.assigned",
            "payment.held",
            "task.closed",
        ],
    );
    for (i, f) in all.iter().enumerate() {
        assert_eq!(f["seq"].as_u64().unwrap(), s0 + 1 + i as u64);
    }
    assert_event(&all[1], "admin", "task.assigned", assigned.clone());
    assert_event(
        &all[2],
        "admin",
        "payment.held",
        json!({"amount": 3604, "at": closes_at}),
    );
    assert_event(
        &all[3],
        "admin",
        "task.closed",
        json!({"status": "assigned"}),
    );

    assert_eq!(seeker_events.len(), 2, "{seeker_events:#?}");
    assert_eq!(seeker_events[0], first);
    assert_event(
        &seeker_events[1],
        &topic,
        "payment.held",
        json!({"amount": 3604}),
    );
    assert_subsequence_of(&seeker_events, &all);

    let amy_events = amy.drain_events().await;
    let (feed, own): (Vec<Value>, Vec<Value>) =
        amy_events.into_iter().partition(|f| f["topic"] == "feed");
    assert_kinds(&feed, &["task.opened", "task.closed"]);
    assert_subsequence_of(&feed, &all);
    assert_eq!(own.len(), 1, "{own:#?}");
    assert_event(&own[0], "coach:amy_oc", "task.assigned", assigned);
    assert_subsequence_of(&own, &all);
    assert_eq!(bob.drain_events().await, Vec::<Value>::new());

    // Amy holds it now and can work on it.
    let amy_watch = subscribe(&mut amy, "w", &topic).await;
    assert_eq!(amy_watch["snapshot"]["assigned"]["coach_id"], "amy_oc");
    amy.ok("start", json!({"type": "start_work", "task_id": task_id}))
        .await;
    server.shutdown().await;
}

/// Contract §5: with no on-call coach free the task stays open for a new window and
/// `task.unfilled` goes to `admin` only; the next window finds the coach registered meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unbid_task_with_nobody_on_call_stays_open_and_tries_again() {
    let mut opts = options(fresh_dir("unfilled"));
    opts.time_scale = 120.0;
    let server = start_with(opts).await;
    let mut admin = Client::connect(&server, "root", Role::Admin).await;
    subscribe(&mut admin, "a", "admin").await;
    let mut seeker = Client::connect(&server, "sally", Role::Seeker).await;
    let posted = seeker
        .ok(
            "post",
            json!({"type": "post_task", "resume_id": "cv-3", "urgency": "urgent"}),
        )
        .await;
    let task_id = posted["task_id"].as_str().unwrap().to_owned();
    let closes_at = posted["bidding_closes_at"].as_u64().unwrap();
    let topic = format!("task:{task_id}");
    assert_eq!(
        subscribe(&mut seeker, "w", &topic).await["snapshot"]["status"],
        "open"
    );

    let opened = admin.event_within(DEADLINE_WAIT).await;
    assert_event(&opened, "admin", "task.opened", json!({"task_id": task_id}));
    let unfilled = admin.event_within(DEADLINE_WAIT).await;
    assert_event(
        &unfilled,
        "admin",
        "task.unfilled",
        json!({"task_id": task_id, "at": closes_at}),
    );
    // A coach goes on call before the next window (10 engine minutes = 5 s) closes.
    register_coach(&server, "olga", 4.0, true).await;
    let assigned = seeker
        .wait_event(&topic, "task.assigned", DEADLINE_WAIT)
        .await;
    let next_close = closes_at + 10 * MINUTE_MS;
    assert_event(
        &assigned,
        &topic,
        "task.assigned",
        json!({"coach_id": "olga", "amount": 4500, "on_call": true, "at": next_close, "deadline": next_close + 2 * HOUR_MS}),
    );
    // The seeker saw nothing of the unfilled window.
    let rest = seeker.drain_events().await;
    assert_kinds(&rest, &["task.assigned", "payment.held"]);
    server.shutdown().await;
}
