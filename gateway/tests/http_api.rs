//! The service-to-service HTTP API (contract §6): coaches, tasks, failed payments, health,
//! readiness and metrics — with a real server and a plain HTTP/1.1 client.

mod common;

use common::*;
use gavel_protocol::Role;
use serde_json::{Value, json};

fn admin() -> String {
    token("ops", Role::Admin)
}

#[track_caller]
fn assert_http_error(status: u16, body: &Value, want_status: u16, code: &str, field: Option<&str>) {
    assert_eq!(status, want_status, "{body}");
    let e = &body["error"];
    assert_eq!(e["code"], code, "{body}");
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    match field {
        Some(f) => assert_eq!(e["field"], f, "{body}"),
        None => assert!(e.get("field").is_none_or(Value::is_null), "{body}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_coach_registers_and_updates_and_checks_its_body() {
    let server = start(fresh_dir("http-coach")).await;
    let body = json!({"display_name": "Ana", "rating": 4.87, "verified": true, "on_call": true, "capacity": 2, "suspended": false});
    let (status, view) = http(
        &server,
        "PUT",
        "/v1/coaches/ana",
        Some(&admin()),
        Some(body),
    )
    .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(
        view,
        json!({"coach_id": "ana", "display_name": "Ana", "rating_centi": 487, "rating": 487,
               "ratings_count": 0, "completed": 0, "verified": true,
               "on_call": true, "capacity": 2, "suspended": false, "strikes": 0, "active": 0})
    );
    // A full replacement: absent booleans are false, capacity defaults to 3, 0 = unrated.
    let (status, view) = http(
        &server,
        "PUT",
        "/v1/coaches/ana",
        Some(&admin()),
        Some(json!({"display_name": "Ana B."})),
    )
    .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["display_name"], "Ana B.");
    assert_eq!(view["verified"], false);
    assert_eq!(view["on_call"], false);
    assert_eq!(view["capacity"], 3);
    assert_eq!(view["rating_centi"], 0);

    // Bad bodies: 400 naming the field.
    for (body, field) in [
        (json!({"display_name": "Ana", "rating": 5.5}), "rating"),
        (json!({"display_name": "Ana", "rating": -1}), "rating"),
        (json!({"display_name": "Ana", "capacity": 0}), "capacity"),
        (
            json!({"display_name": "Ana", "verified": "yes"}),
            "verified",
        ),
        (json!({"rating": 4.0}), "display_name"),
    ] {
        let (status, resp) = http(
            &server,
            "PUT",
            "/v1/coaches/ana",
            Some(&admin()),
            Some(body.clone()),
        )
        .await;
        assert_http_error(status, &resp, 400, "VALIDATION_ERROR", Some(field));
    }
    let (status, resp) = http_raw(
        &server,
        "PUT",
        "/v1/coaches/ana",
        Some(&admin()),
        "{not json",
    )
    .await;
    assert_eq!(status, 400, "{resp}");
    assert!(resp["error"]["code"].is_string(), "{resp}");
    let (status, resp) = http(
        &server,
        "PUT",
        "/v1/coaches/bad%20id",
        Some(&admin()),
        Some(json!({"display_name": "X"})),
    )
    .await;
    assert_http_error(status, &resp, 400, "VALIDATION_ERROR", Some("id"));

    // Who may call it: admins only.
    let good = json!({"display_name": "Ben", "verified": true});
    let seeker = token("sally", Role::Seeker);
    let coach = token("ben", Role::Coach);
    for t in [&seeker, &coach] {
        let (status, resp) = http(
            &server,
            "PUT",
            "/v1/coaches/ben",
            Some(t),
            Some(good.clone()),
        )
        .await;
        assert_http_error(status, &resp, 403, "FORBIDDEN", None);
    }
    let (status, resp) = http(&server, "PUT", "/v1/coaches/ben", None, Some(good.clone())).await;
    assert_http_error(status, &resp, 401, "UNAUTHORIZED", None);
    let forged = token_signed(
        b"not-the-secret-0123456789",
        "ops",
        Role::Admin,
        std::time::Duration::from_secs(60),
        now_secs(),
    );
    let (status, resp) = http(
        &server,
        "PUT",
        "/v1/coaches/ben",
        Some(&forged),
        Some(good.clone()),
    )
    .await;
    assert_http_error(status, &resp, 401, "UNAUTHORIZED", None);
    // None of that registered ben: he cannot bid.
    let (_, task) = http(
        &server,
        "POST",
        "/v1/tasks",
        Some(&admin()),
        Some(json!({"owner": "sally", "resume_id": "cv", "urgency": "urgent"})),
    )
    .await;
    let mut ben = Client::connect(&server, "ben", Role::Coach).await;
    let reply = ben
        .request(
            "b",
            json!({"type": "place_bid", "task_id": task["task_id"], "amount": 4000, "eta_hours": 1}),
        )
        .await;
    assert_eq!(reply["code"], "FORBIDDEN", "{reply}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_and_get_tasks() {
    let server = start(fresh_dir("http-tasks")).await;
    register_coach(&server, "ana", 4.0, false).await;
    let (status, posted) = http(
        &server,
        "POST",
        "/v1/tasks",
        Some(&admin()),
        Some(json!({"owner": "sally", "resume_id": "cv-7", "urgency": "flexible", "base_price": 3001, "task_type": "cover_letter", "award": "manual"})),
    )
    .await;
    assert_eq!(status, 201, "{posted}");
    // round(3001 × 0.8) = round(2400.8) = 2401.
    assert_eq!(posted["suggested_price"], 2401);
    assert_eq!(posted["price_range"], json!([2401, 4802]));
    let task_id = posted["task_id"].as_str().unwrap().to_owned();
    assert!(posted["bidding_closes_at"].is_u64());
    assert_eq!(posted.as_object().unwrap().len(), 4, "{posted}");

    let (status, resp) = http(
        &server,
        "POST",
        "/v1/tasks",
        Some(&admin()),
        Some(json!({"resume_id": "cv", "urgency": "urgent"})),
    )
    .await;
    assert_http_error(status, &resp, 400, "VALIDATION_ERROR", Some("owner"));
    let (status, resp) = http(
        &server,
        "POST",
        "/v1/tasks",
        Some(&admin()),
        Some(json!({"owner": "sally", "resume_id": "cv", "urgency": "soon"})),
    )
    .await;
    assert_http_error(status, &resp, 400, "VALIDATION_ERROR", Some("urgency"));
    let (status, resp) = http(
        &server,
        "POST",
        "/v1/tasks",
        Some(&token("sally", Role::Seeker)),
        Some(json!({"owner": "sally", "resume_id": "cv", "urgency": "urgent"})),
    )
    .await;
    assert_http_error(status, &resp, 403, "FORBIDDEN", None);
    // An explicit task id that is taken: 409.
    let (status, resp) = http(
        &server,
        "POST",
        "/v1/tasks",
        Some(&admin()),
        Some(json!({"owner": "sam", "resume_id": "cv", "urgency": "urgent", "task_id": task_id})),
    )
    .await;
    assert_http_error(status, &resp, 409, "CONFLICT", None);

    // The owner sees it as its own; a coach bids on it.
    let mut sally = Client::connect(&server, "sally", Role::Seeker).await;
    let sub = sally
        .ok(
            "w",
            json!({"type": "subscribe", "topic": format!("task:{task_id}")}),
        )
        .await;
    assert_eq!(sub["snapshot"]["owner"], "sally");
    let mut ana = Client::connect(&server, "ana", Role::Coach).await;
    let bid = ana
        .ok(
            "b",
            json!({"type": "place_bid", "task_id": task_id, "amount": 3000, "eta_hours": 48}),
        )
        .await;

    // GET: the admin view, with the bids.
    let (status, view) = http(
        &server,
        "GET",
        &format!("/v1/tasks/{task_id}"),
        Some(&admin()),
        None,
    )
    .await;
    assert_eq!(status, 200, "{view}");
    for (k, v) in [
        ("task_id", json!(task_id)),
        ("owner", json!("sally")),
        ("resume_id", json!("cv-7")),
        ("task_type", json!("cover_letter")),
        ("urgency", json!("flexible")),
        ("award", json!("manual")),
        ("status", json!("open")),
        ("suggested_price", json!(2401)),
        ("price_range", json!([2401, 4802])),
        ("bidding_closes_at", posted["bidding_closes_at"].clone()),
        ("bid_count", json!(1)),
        ("top3", json!([bid["bid_id"]])),
        ("assigned", Value::Null),
        ("escrow", json!({"held": 0, "released": 0, "refunded": 0})),
        ("revisions", json!(0)),
    ] {
        assert_eq!(view[k], v, "{k} of {view}");
    }
    assert!(view["created_at"].is_u64());
    assert_eq!(view["bids"][0]["coach_id"], "ana");
    assert_eq!(view["bids"][0]["amount"], 3000);

    let (status, resp) = http(&server, "GET", "/v1/tasks/t_missing", Some(&admin()), None).await;
    assert_http_error(status, &resp, 404, "NOT_FOUND", None);
    let (status, resp) = http(
        &server,
        "GET",
        &format!("/v1/tasks/{task_id}"),
        Some(&token("sally", Role::Seeker)),
        None,
    )
    .await;
    assert_http_error(status, &resp, 403, "FORBIDDEN", None);
    let (status, resp) = http(&server, "GET", &format!("/v1/tasks/{task_id}"), None, None).await;
    assert_http_error(status, &resp, 401, "UNAUTHORIZED", None);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payment_failed_reopens_an_assigned_task() {
    let server = start(fresh_dir("http-payfail")).await;
    register_coach(&server, "ana", 4.0, false).await;
    register_coach(&server, "ben", 3.0, false).await;
    let mut sally = Client::connect(&server, "sally", Role::Seeker).await;
    let task_id = sally
        .ok(
            "p",
            json!({"type": "post_task", "resume_id": "cv", "urgency": "urgent"}),
        )
        .await["task_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let topic = format!("task:{task_id}");
    let path = format!("/v1/tasks/{task_id}/payment_failed");

    // Only while assigned.
    let (status, resp) = http(&server, "POST", &path, Some(&admin()), None).await;
    assert_http_error(status, &resp, 409, "CONFLICT", None);
    let (status, resp) = http(
        &server,
        "POST",
        "/v1/tasks/t_missing/payment_failed",
        Some(&admin()),
        None,
    )
    .await;
    assert_http_error(status, &resp, 404, "NOT_FOUND", None);

    let mut ana = Client::connect(&server, "ana", Role::Coach).await;
    ana.ok("c", json!({"type": "subscribe", "topic": "coach:ana"}))
        .await;
    let mut ben = Client::connect(&server, "ben", Role::Coach).await;
    ben.ok("f", json!({"type": "subscribe", "topic": "feed"}))
        .await;
    let ana_bid = ana
        .ok(
            "b",
            json!({"type": "place_bid", "task_id": task_id, "amount": 4000, "eta_hours": 1}),
        )
        .await["bid_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ben_bid = ben
        .ok(
            "b",
            json!({"type": "place_bid", "task_id": task_id, "amount": 5000, "eta_hours": 1}),
        )
        .await["bid_id"]
        .as_str()
        .unwrap()
        .to_owned();
    sally
        .ok(
            "a",
            json!({"type": "accept_bid", "task_id": task_id, "bid_id": ana_bid}),
        )
        .await;
    let before = sally
        .ok("w", json!({"type": "subscribe", "topic": topic}))
        .await["snapshot"]
        .clone();
    assert_eq!(before["escrow"]["held"], 4000);
    // Drop what came before.
    ana.drain_events().await;
    ben.drain_events().await;

    let (status, resp) = http(
        &server,
        "POST",
        &path,
        Some(&token("sally", Role::Seeker)),
        None,
    )
    .await;
    assert_http_error(status, &resp, 403, "FORBIDDEN", None);
    let (status, resp) = http(&server, "POST", &path, Some(&admin()), None).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp, json!({}));
    // Once is enough: it is open now.
    let (status, resp) = http(&server, "POST", &path, Some(&admin()), None).await;
    assert_http_error(status, &resp, 409, "CONFLICT", None);

    let events = sally.drain_events().await;
    assert_kinds(&events, &["payment.failed", "bid.rejected", "task.opened"]);
    assert_event(
        &events[0],
        &topic,
        "payment.failed",
        json!({"task_id": task_id}),
    );
    assert_event(
        &events[1],
        &topic,
        "bid.rejected",
        json!({"bid_id": ana_bid, "coach_id": "ana"}),
    );
    assert_event(
        &events[2],
        &topic,
        "task.opened",
        json!({"task": {"task_id": task_id, "task_type": "resume_review_full", "urgency": "urgent",
                        "suggested_price": 3750, "price_range": [3750, 7500], "bid_count": 0,
                        "bidding_closes_at": events[2]["event"]["task"]["bidding_closes_at"],
                        "created_at": before["created_at"], "my_bid": null}}),
    );
    let reopened_closes = events[2]["event"]["task"]["bidding_closes_at"]
        .as_u64()
        .unwrap();
    assert!(
        reopened_closes >= before["bidding_closes_at"].as_u64().unwrap(),
        "a new window"
    );
    assert_eq!(
        reopened_closes - events[2]["event"]["at"].as_u64().unwrap(),
        10 * 60_000
    );
    let seqs: Vec<u64> = events.iter().map(|f| f["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [seqs[0], seqs[0] + 1, seqs[0] + 2]);
    let ana_events = ana.drain_events().await;
    assert_kinds(&ana_events, &["bid.rejected"]);
    assert_eq!(ana_events[0]["topic"], "coach:ana");
    let ben_events = ben.drain_events().await;
    assert_kinds(&ben_events, &["task.opened"]);
    assert_eq!(ben_events[0]["topic"], "feed");
    assert_eq!(ben_events[0]["seq"], events[2]["seq"]);

    // The view: open again, nobody assigned, the failed hold reversed, the losing bid gone.
    let (_, view) = http(
        &server,
        "GET",
        &format!("/v1/tasks/{task_id}"),
        Some(&admin()),
        None,
    )
    .await;
    assert_eq!(view["status"], "open");
    assert_eq!(view["assigned"], Value::Null);
    assert_eq!(view["bid_count"], 0);
    assert_eq!(view["bids"], json!([]));
    assert_eq!(
        view["escrow"],
        json!({"held": 0, "released": 0, "refunded": 0})
    );
    assert_eq!(view["bidding_closes_at"], reopened_closes);
    // ben's earlier bid was rejected with the award; the task takes bids again.
    let reply = sally
        .request(
            "a2",
            json!({"type": "accept_bid", "task_id": task_id, "bid_id": ben_bid}),
        )
        .await;
    assert_eq!(reply["code"], "CONFLICT", "{reply}");
    let again = ben
        .ok(
            "b2",
            json!({"type": "place_bid", "task_id": task_id, "amount": 4500, "eta_hours": 2}),
        )
        .await;
    let accepted = sally
        .ok(
            "a3",
            json!({"type": "accept_bid", "task_id": task_id, "bid_id": again["bid_id"]}),
        )
        .await;
    assert_eq!(accepted["amount"], 4500);
    let (_, view) = http(
        &server,
        "GET",
        &format!("/v1/tasks/{task_id}"),
        Some(&admin()),
        None,
    )
    .await;
    assert_eq!(view["escrow"]["held"], 4500);
    assert_eq!(view["assigned"]["coach_id"], "ben");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_metrics_and_console() {
    let server = start(fresh_dir("http-ops")).await;
    let (status, _) = http_text(&server, "GET", "/healthz", None).await;
    assert_eq!(status, 200);
    let (status, body) = http_text(&server, "GET", "/readyz", None).await;
    assert_eq!(status, 200, "{body}");

    // Some traffic, so that the counters have samples.
    let mut sally = Client::connect(&server, "sally", Role::Seeker).await;
    sally
        .ok(
            "p",
            json!({"type": "post_task", "resume_id": "cv", "urgency": "urgent"}),
        )
        .await;
    let (status, metrics) = http_text(&server, "GET", "/metrics", None).await;
    assert_eq!(status, 200);
    let sample = |name: &str| -> Vec<&str> {
        metrics
            .lines()
            .filter(|l| !l.starts_with('#') && l.starts_with(name))
            .collect()
    };
    let connections = sample("gavel_connections");
    assert!(
        connections.iter().any(|l| l.trim_end().ends_with(" 1")),
        "one connection open: {connections:?}\n{metrics}"
    );
    let commands = sample("gavel_commands_total");
    assert!(
        commands
            .iter()
            .any(|l| l.contains("post_task") && l.contains("ok") && l.trim_end().ends_with(" 1")),
        "{commands:?}\n{metrics}"
    );
    assert!(
        metrics.contains("# TYPE gavel_connections gauge"),
        "{metrics}"
    );
    assert!(
        metrics.contains("# TYPE gavel_commands_total counter"),
        "{metrics}"
    );

    let (status, page) = http_text(&server, "GET", "/admin", None).await;
    assert_eq!(status, 200);
    assert!(page.to_lowercase().contains("<html"), "{page}");
    for asset in ["/admin/console.js", "/admin/console.css"] {
        let (status, body) = http_text(&server, "GET", asset, None).await;
        assert_eq!(status, 200, "{asset}");
        assert!(!body.is_empty(), "{asset} is embedded");
    }
    server.shutdown().await;
}

/// A final task leaves memory once `[retention] final_task_minutes` of engine time have passed:
/// it is then served from the archive (`archived: true`, contract §9), and its id stays taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_task_is_archived_after_its_retention() {
    let mut opts = options(fresh_dir("http-archive"));
    opts.config.retention.final_task_minutes = 1;
    // One minute of engine time is 100 ms of wall time.
    opts.time_scale = 600.0;
    let server = start_with(opts).await;
    let post =
        json!({"owner": "sally", "resume_id": "cv", "urgency": "urgent", "task_id": "t_arch"});
    let (status, _) = http(
        &server,
        "POST",
        "/v1/tasks",
        Some(&admin()),
        Some(post.clone()),
    )
    .await;
    assert_eq!(status, 201);
    let mut sally = Client::connect(&server, "sally", Role::Seeker).await;
    sally
        .ok("s1", json!({"type": "subscribe", "topic": "task:t_arch"}))
        .await;
    sally
        .ok("c1", json!({"type": "cancel_task", "task_id": "t_arch"}))
        .await;
    let (status, view) = http(&server, "GET", "/v1/tasks/t_arch", Some(&admin()), None).await;
    assert_eq!((status, view["status"].as_str()), (200, Some("canceled")));
    assert!(view.get("archived").is_none(), "{view}");

    // Archived within a few engine minutes (the engine wakes for it like for any deadline).
    let mut archived = Value::Null;
    for _ in 0..100 {
        let (status, view) = http(&server, "GET", "/v1/tasks/t_arch", Some(&admin()), None).await;
        assert_eq!(status, 200, "{view}");
        if view["archived"] == true {
            archived = view;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        archived["status"], "canceled",
        "the canceled task is still in memory after 5 s (50 engine minutes)"
    );
    let reply = sally
        .request("s2", json!({"type": "subscribe", "topic": "task:t_arch"}))
        .await;
    assert_eq!(reply["result"]["snapshot"], archived, "{reply}");
    let mut other = Client::connect(&server, "sam", Role::Seeker).await;
    let reply = other
        .request("s3", json!({"type": "subscribe", "topic": "task:t_arch"}))
        .await;
    assert_eq!(reply["code"], "FORBIDDEN", "{reply}");
    let (status, body) = http(&server, "POST", "/v1/tasks", Some(&admin()), Some(post)).await;
    assert_http_error(status, &body, 409, "CONFLICT", None);
    server.shutdown().await;
}
