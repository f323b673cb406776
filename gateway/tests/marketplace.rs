//! The marketplace through a seeker's and a coach's eyes (contract §9–§11): the seeker's own
//! topic, reputation moving with every rating, quotes and market pricing — against a real
//! server over real WebSockets.

mod common;

use common::*;
use gavel_protocol::Role;
use serde_json::{Value, json};

/// Registers a verified coach with imported reputation.
async fn register(server: &gavel_gateway::app::Server, id: &str, stars: f64, ratings: u32) {
    let body = json!({"display_name": format!("Coach {id}"), "rating": stars,
        "ratings_count": ratings, "verified": true, "capacity": 50});
    let view = put_coach(server, id, body).await;
    assert_eq!(view["ratings_count"], ratings);
    assert_eq!(view["completed"], 0);
}

fn post(task_id: &str) -> Value {
    json!({"type": "post_task", "task_id": task_id, "resume_id": "r1", "urgency": "standard"})
}

fn bid(task_id: &str, amount: u64) -> Value {
    json!({"type": "place_bid", "task_id": task_id, "amount": amount, "eta_hours": 12})
}

/// `score` of contract §5 for a standard task at the default price (range 2500..5000, 24 h).
fn score(amount: u64, rating_centi: u64, eta: u64) -> u64 {
    let price_bp = (5000 - amount) * 10_000 / 2500;
    let rating_bp = rating_centi * 10_000 / 500;
    let eta_bp = (24 - eta) * 10_000 / 24;
    (5 * price_bp + 3 * rating_bp + 2 * eta_bp) / 10
}

#[tokio::test]
async fn a_seeker_watches_its_tasks_and_a_rating_moves_the_next_ranking() {
    let server = start_with(options_unlimited(fresh_dir("seeker-flow"))).await;
    register(&server, "c_pro", 4.2, 127).await;
    register(&server, "c_new", 4.0, 3).await;
    let mut alice = Client::connect(&server, "alice", Role::Seeker).await;
    let sub = alice
        .ok("s", json!({"type": "subscribe", "topic": "seeker:alice"}))
        .await;
    assert_eq!(sub["snapshot"], json!({"seeker_id": "alice", "tasks": []}));
    // Another seeker's dashboard is not hers to watch.
    let refused = alice
        .request("s2", json!({"type": "subscribe", "topic": "seeker:bob"}))
        .await;
    assert_eq!(refused["code"], "FORBIDDEN");

    for t in ["t1", "t2", "t3"] {
        alice.ok(t, post(t)).await;
        let opened = alice
            .wait_event(
                "seeker:alice",
                "task.opened",
                std::time::Duration::from_secs(5),
            )
            .await;
        assert_eq!(opened["event"]["task_id"], t);
        alice.drain_events().await;
    }
    let mut pro = Client::connect(&server, "c_pro", Role::Coach).await;
    let mut new = Client::connect(&server, "c_new", Role::Coach).await;
    pro.ok("b", bid("t1", 3000)).await;
    new.ok("b", bid("t1", 3000)).await;
    let placed: Vec<Value> = alice
        .drain_events()
        .await
        .into_iter()
        .filter(|f| f["event"]["kind"] == "bid.placed")
        .collect();
    assert_eq!(placed.len(), 2, "{placed:?}");
    assert_eq!(
        placed[0]["event"]["bid"]["coach"],
        json!({"display_name": "Coach c_pro", "rating": 420, "ratings_count": 127, "completed": 0})
    );
    // The dashboard's snapshot: newest first, t1's bids ranked with each coach's reputation.
    let mut again = Client::connect(&server, "alice", Role::Seeker).await;
    let snap = again
        .ok("s", json!({"type": "subscribe", "topic": "seeker:alice"}))
        .await["snapshot"]
        .clone();
    let ids: Vec<&str> = snap["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["task_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["t3", "t2", "t1"]);
    let t1 = &snap["tasks"][2];
    assert_eq!(t1["bids"][0]["coach_id"], "c_pro");
    assert_eq!(t1["bids"][0]["score"], score(3000, 420, 12));
    assert_eq!(t1["bids"][1]["coach"]["rating"], 400);
    assert_eq!(t1["bids"][1]["score"], score(3000, 400, 12));

    // On t2 the better-rated coach ranks first...
    pro.ok("b2", bid("t2", 3000)).await;
    new.ok("b2", bid("t2", 3000)).await;
    // ...alice hires the newcomer on t1, who delivers and gets five stars.
    let t1_new = t1["bids"][1]["bid_id"].clone();
    alice
        .ok(
            "a",
            json!({"type": "accept_bid", "task_id": "t1", "bid_id": t1_new}),
        )
        .await;
    new.ok("w", json!({"type": "start_work", "task_id": "t1"}))
        .await;
    new.ok("v", json!({"type": "submit_verification", "task_id": "t1"}))
        .await;
    alice
        .ok(
            "ok",
            json!({"type": "accept_verification", "task_id": "t1", "rating": 5}),
        )
        .await;
    // (400 × 3 + 100 × 5) / 4 = 425, in hundredths.
    let mut ops = Client::connect(&server, "ops", Role::Admin).await;
    let coach = ops
        .ok("c", json!({"type": "subscribe", "topic": "coach:c_new"}))
        .await["snapshot"]
        .clone();
    assert_eq!(
        (
            &coach["rating"],
            &coach["ratings_count"],
            &coach["completed"]
        ),
        (&json!(425), &json!(4), &json!(1))
    );
    // ...and now ranks first on t3 at the same amount and eta.
    pro.ok("b3", bid("t3", 3000)).await;
    new.ok("b3", bid("t3", 3000)).await;
    let t2 = task_view(&mut again, "t2").await;
    assert_eq!(t2["bids"][0]["coach_id"], "c_pro");
    let t3 = task_view(&mut again, "t3").await;
    assert_eq!(t3["bids"][0]["coach_id"], "c_new");
    assert_eq!(t3["bids"][0]["score"], score(3000, 425, 12));
    assert_eq!(
        t3["bids"][0]["coach"],
        json!({"display_name": "Coach c_new", "rating": 425, "ratings_count": 4, "completed": 1})
    );
    // Everything alice's task topics carried reached her dashboard too.
    let seen = alice.drain_events().await;
    assert!(
        seen.iter().all(|f| f["topic"] == "seeker:alice"),
        "{seen:?}"
    );
    let kinds: Vec<&str> = seen
        .iter()
        .map(|f| f["event"]["kind"].as_str().unwrap())
        .collect();
    for kind in [
        "bid.placed",
        "task.assigned",
        "payment.held",
        "task.completed",
        "payment.released",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    assert!(
        !kinds.contains(&"task.bid_count"),
        "feed-only events stay off: {kinds:?}"
    );
}

/// `GET /v1/coaches/{id}` and `GET /v1/coaches` show what the engine holds of each coach (the
/// admin console's coach list): reputation (§10) and load; an unknown coach is 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_api_lists_coaches_with_their_reputation() {
    let server = start(fresh_dir("http-coaches")).await;
    register(&server, "c_b", 4.5, 10).await;
    register(&server, "c_a", 3.0, 0).await;
    let admin = token("ops", Role::Admin);
    let (status, one) = http(&server, "GET", "/v1/coaches/c_b", Some(&admin), None).await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(
        (&one["rating"], &one["ratings_count"], &one["active"]),
        (&json!(450), &json!(10), &json!(0))
    );
    let (status, all) = http(&server, "GET", "/v1/coaches", Some(&admin), None).await;
    assert_eq!(status, 200, "{all}");
    let ids: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["coach_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["c_a", "c_b"]);
    let (status, missing) = http(&server, "GET", "/v1/coaches/nobody", Some(&admin), None).await;
    assert_eq!(
        (status, &missing["error"]["code"]),
        (404, &json!("NOT_FOUND"))
    );
    let seeker = token("sally", Role::Seeker);
    let (status, _) = http(&server, "GET", "/v1/coaches", Some(&seeker), None).await;
    assert_eq!(status, 403);
}

async fn task_view(client: &mut Client, task: &str) -> Value {
    let topic = format!("task:{task}");
    client
        .ok(&topic, json!({"type": "subscribe", "topic": topic}))
        .await["snapshot"]
        .clone()
}

fn quote_tier(q: &Value, tier: &str) -> Value {
    q["tiers"][tier].clone()
}

#[tokio::test]
async fn market_pricing_follows_the_median_of_accepted_bids_in_its_tier_only() {
    let mut options = options_unlimited(fresh_dir("market-pricing"));
    options.config.pricing.mode = gavel_engine::market::PricingMode::Market;
    let server = start_with(options).await;
    register(&server, "c1", 4.0, 0).await;
    let mut alice = Client::connect(&server, "alice", Role::Seeker).await;
    let q = alice.ok("q", json!({"type": "quote"})).await;
    assert_eq!(q["task_type"], "resume_review_full");
    for (tier, price) in [("urgent", 3750), ("standard", 2500), ("flexible", 2000)] {
        let t = quote_tier(&q, tier);
        assert_eq!(t["market"], Value::Null, "{tier}");
        assert_eq!(t["suggested_price"], price, "{tier}");
        assert_eq!(t["price_range"], json!([price, 2 * price]));
        assert_eq!(t["coaches_available"], 1);
    }
    // 25 standard tasks, all posted at the fixed price, then hired at 2500 + 40 i.
    for i in 0..25 {
        alice.ok(&format!("p{i}"), post(&format!("m{i}"))).await;
    }
    assert_eq!(
        quote_tier(&alice.ok("q", json!({"type": "quote"})).await, "standard")["open_tasks"],
        25
    );
    let mut coach = Client::connect(&server, "c1", Role::Coach).await;
    for i in 0..25u64 {
        let task = format!("m{i}");
        let placed = coach.ok(&format!("b{i}"), bid(&task, 2500 + 40 * i)).await;
        alice
            .ok(
                &format!("a{i}"),
                json!({"type": "accept_bid", "task_id": task, "bid_id": placed["bid_id"]}),
            )
            .await;
    }
    let q = alice.ok("q2", json!({"type": "quote"})).await;
    // Nearest rank of 25 samples: positions 7, 13 and 19.
    let standard = quote_tier(&q, "standard");
    assert_eq!(
        standard["market"],
        json!({"samples": 25, "p25": 2740, "median": 2980, "p75": 3220})
    );
    assert_eq!(standard["suggested_price"], 2980);
    assert_eq!(standard["open_tasks"], 0);
    assert_eq!(quote_tier(&q, "urgent")["market"], Value::Null);
    // A post sent now gets exactly the quoted price; the other tiers keep the fixed one, and
    // an explicit base_price keeps §5's price.
    let posted = alice.ok("n1", post("n1")).await;
    assert_eq!(posted["suggested_price"], 2980);
    assert_eq!(posted["price_range"], json!([2980, 5960]));
    let urgent = alice
        .ok(
            "n2",
            json!({"type": "post_task", "resume_id": "r", "urgency": "urgent"}),
        )
        .await;
    assert_eq!(urgent["suggested_price"], 3750);
    let explicit = alice
        .ok("n3", json!({"type": "post_task", "resume_id": "r", "urgency": "standard", "base_price": 2500}))
        .await;
    assert_eq!(explicit["suggested_price"], 2500);
    // Another task type has no market yet.
    let other = alice
        .ok("q3", json!({"type": "quote", "task_type": "cover_letter"}))
        .await;
    assert_eq!(quote_tier(&other, "standard")["market"], Value::Null);
    let bad = alice
        .request("q4", json!({"type": "quote", "base_price": 0}))
        .await;
    assert_eq!(
        (&bad["code"], &bad["field"]),
        (&json!("VALIDATION_ERROR"), &json!("base_price"))
    );
}

/// Posts one task of `urgency` at `base_price` per amount and hires `coach` on it at that
/// amount: one market sample each (contract §11).
async fn hire_at(
    alice: &mut Client,
    coach: &mut Client,
    urgency: &str,
    base_price: u64,
    amounts: &[u64],
) {
    let eta = if urgency == "urgent" { 1 } else { 12 };
    for amount in amounts {
        let task = format!("{urgency}-{amount}");
        let post = json!({"type": "post_task", "task_id": task, "resume_id": "r",
            "urgency": urgency, "base_price": base_price});
        alice.ok(&format!("p-{task}"), post).await;
        let placed = coach
            .ok(
                &format!("b-{task}"),
                json!({"type": "place_bid", "task_id": task, "amount": amount, "eta_hours": eta}),
            )
            .await;
        alice
            .ok(
                &format!("a-{task}"),
                json!({"type": "accept_bid", "task_id": task, "bid_id": placed["bid_id"]}),
            )
            .await;
    }
}

/// With `[pricing] mode = "market"` the median is clamped to `[fixed / 2, fixed × 2]`
/// (contract §11, integer division for the lower bound): a tier whose coaches were hired above
/// twice its fixed price is priced at exactly twice it, one hired below half at exactly half
/// — by `post_task`, and by `quote` just before it.
#[tokio::test]
async fn market_pricing_clamps_the_median_to_half_and_twice_the_fixed_price() {
    let mut options = options_unlimited(fresh_dir("market-clamp"));
    options.config.pricing.mode = gavel_engine::market::PricingMode::Market;
    options.config.pricing.min_samples = 5;
    // Standard at 101 %: its fixed price is 2525, odd, so half of it is 1262 (rounding would
    // say 1263); urgent keeps 150 %: 3750, twice that 7500.
    options.config.tiers.standard.multiplier_percent = 101;
    let server = start_with(options).await;
    register(&server, "c1", 4.0, 0).await;
    let mut alice = Client::connect(&server, "alice", Role::Seeker).await;
    let mut coach = Client::connect(&server, "c1", Role::Coach).await;
    // Urgent tasks posted at base_price 6000 (9000..18000), hired at 9000..9400: median 9200.
    hire_at(
        &mut alice,
        &mut coach,
        "urgent",
        6000,
        &[9000, 9100, 9200, 9300],
    )
    .await;
    let q = alice.ok("q1", json!({"type": "quote"})).await;
    let urgent = quote_tier(&q, "urgent");
    assert_eq!(urgent["market"]["samples"], 4);
    assert_eq!(urgent["suggested_price"], 3750, "below min_samples: fixed");
    hire_at(&mut alice, &mut coach, "urgent", 6000, &[9400]).await;
    // Standard tasks posted at base_price 1000 (1010..2020), hired at 1010..1050: median 1030.
    let low = [1010, 1020, 1030, 1040, 1050];
    hire_at(&mut alice, &mut coach, "standard", 1000, &low).await;

    let q = alice.ok("q2", json!({"type": "quote"})).await;
    let urgent = quote_tier(&q, "urgent");
    assert_eq!(
        urgent["market"],
        json!({"samples": 5, "p25": 9100, "median": 9200, "p75": 9300})
    );
    assert_eq!(
        (&urgent["suggested_price"], &urgent["price_range"]),
        (&json!(7500), &json!([7500, 15000])),
        "9200 clamped to 2 × 3750"
    );
    let standard = quote_tier(&q, "standard");
    assert_eq!(
        standard["market"],
        json!({"samples": 5, "p25": 1020, "median": 1030, "p75": 1040})
    );
    assert_eq!(
        (&standard["suggested_price"], &standard["price_range"]),
        (&json!(1262), &json!([1262, 2524])),
        "1030 clamped to 2525 / 2"
    );
    let flexible = quote_tier(&q, "flexible");
    assert_eq!(
        (&flexible["market"], &flexible["suggested_price"]),
        (&Value::Null, &json!(2000))
    );

    for (tier, price) in [("urgent", 7500), ("standard", 1262), ("flexible", 2000)] {
        let post = json!({"type": "post_task", "resume_id": "r", "urgency": tier});
        let posted = alice.ok(&format!("n-{tier}"), post).await;
        assert_eq!(posted["suggested_price"], price, "{tier}");
        assert_eq!(posted["price_range"], json!([price, 2 * price]), "{tier}");
        assert_eq!(
            quote_tier(&q, tier)["suggested_price"],
            price,
            "quote agrees"
        );
    }
}
