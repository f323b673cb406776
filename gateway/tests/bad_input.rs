//! Bad input over real WebSockets (contract §1, §2, §7): malformed frames, oversized frames,
//! floods of bad frames, bad and expiring tokens, the command rate limit, idempotent retries.

mod common;

use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use gavel_protocol::Role;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// Sends a raw text frame and returns the next frame.
async fn send_text(client: &mut Client, text: &str) -> Value {
    client.send_message(Message::text(text.to_owned())).await;
    client.next().await
}

#[track_caller]
fn assert_error(reply: &Value, code: &str, id: Option<&str>, field: Option<&str>) {
    assert_eq!(reply["type"], "error", "{reply}");
    assert_eq!(reply["code"], code, "{reply}");
    assert!(
        reply["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{reply}"
    );
    match id {
        Some(id) => assert_eq!(reply["id"], id, "{reply}"),
        None => assert!(reply.get("id").is_none_or(Value::is_null), "{reply}"),
    }
    match field {
        Some(field) => assert_eq!(reply["field"], field, "{reply}"),
        None => assert!(reply.get("field").is_none_or(Value::is_null), "{reply}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_are_bad_requests_and_the_connection_stays_usable() {
    let server = start(fresh_dir("bad-frames")).await;
    let mut c = Client::connect(&server, "sally", Role::Seeker).await;
    for text in [
        "this is not json",
        "{\"type\": \"ping\"",
        "[1, 2, 3]",
        "\"ping\"",
        "42",
        "{}",
        "{\"type\": 7}",
        "{\"type\": \"frobnicate\"}",
    ] {
        let reply = send_text(&mut c, text).await;
        assert_error(&reply, "BAD_REQUEST", None, None);
    }
    // An unknown type with an id: still BAD_REQUEST, and the id is echoed.
    let reply = send_text(&mut c, r#"{"type": "frobnicate", "id": "f1"}"#).await;
    assert_error(&reply, "BAD_REQUEST", Some("f1"), None);
    // A binary frame.
    c.send_message(Message::binary(b"{\"type\":\"ping\"}".to_vec()))
        .await;
    assert_error(&c.next().await, "BAD_REQUEST", None, None);
    // Still usable.
    assert_eq!(c.ok("p1", json!({"type": "ping"})).await, json!({}));
    let posted = c
        .ok(
            "post",
            json!({"type": "post_task", "resume_id": "cv", "urgency": "urgent"}),
        )
        .await;
    assert!(posted["task_id"].is_string());
    // A frame without an id gets no reply when it succeeds.
    c.send(json!({"type": "ping"})).await;
    assert_eq!(c.ok("p2", json!({"type": "ping"})).await, json!({}));
    assert!(c.backlog.is_empty(), "{:?}", c.backlog);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_errors_name_the_field() {
    let server = start(fresh_dir("bad-fields")).await;
    register_coach(&server, "ana", 4.0, false).await;
    let mut sally = Client::connect(&server, "sally", Role::Seeker).await;
    let mut ana = Client::connect(&server, "ana", Role::Coach).await;
    let task = sally
        .ok(
            "post",
            json!({"type": "post_task", "resume_id": "cv", "urgency": "urgent"}),
        )
        .await["task_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // (who: seeker or coach, frame, the field named)
    let cases: Vec<(bool, Value, &str)> = vec![
        (
            true,
            json!({"type": "post_task", "urgency": "urgent"}),
            "resume_id",
        ),
        (
            true,
            json!({"type": "post_task", "resume_id": "cv", "urgency": "asap"}),
            "urgency",
        ),
        (
            true,
            json!({"type": "post_task", "resume_id": "cv", "urgency": "urgent", "base_price": 40.5}),
            "base_price",
        ),
        (true, json!({"type": "subscribe"}), "topic"),
        (
            true,
            json!({"type": "subscribe", "topic": "admin", "filter": {}}),
            "filter",
        ),
        (
            true,
            json!({"type": "accept_verification", "task_id": task, "rating": 6}),
            "rating",
        ),
        (
            false,
            json!({"type": "place_bid", "task_id": task, "amount": "4000", "eta_hours": 1}),
            "amount",
        ),
        (
            false,
            json!({"type": "place_bid", "task_id": task, "amount": 4000}),
            "eta_hours",
        ),
        // In range for the decoder, out of the task's price range / the tier's window.
        (
            false,
            json!({"type": "place_bid", "task_id": task, "amount": 3749, "eta_hours": 1}),
            "amount",
        ),
        (
            false,
            json!({"type": "place_bid", "task_id": task, "amount": 7501, "eta_hours": 1}),
            "amount",
        ),
        (
            false,
            json!({"type": "place_bid", "task_id": task, "amount": 4000, "eta_hours": 3}),
            "eta_hours",
        ),
    ];
    for (i, (seeker, frame, field)) in cases.into_iter().enumerate() {
        let id = format!("v{i}");
        let client = if seeker { &mut sally } else { &mut ana };
        let reply = client.request(&id, frame.clone()).await;
        assert_error(&reply, "VALIDATION_ERROR", Some(&id), Some(field));
    }
    let reply = ana
        .request(
            "range",
            json!({"type": "place_bid", "task_id": task, "amount": 100, "eta_hours": 1}),
        )
        .await;
    assert_eq!(reply["message"], "amount must be within 3750..7500");
    // An id that is not a 1–64 character string.
    let reply = send_text(&mut sally, r#"{"type": "ping", "id": ""}"#).await;
    assert_error(&reply, "VALIDATION_ERROR", None, Some("id"));
    let long = "x".repeat(65);
    let reply = send_text(
        &mut sally,
        &format!(r#"{{"type": "ping", "id": "{long}"}}"#),
    )
    .await;
    assert_error(&reply, "VALIDATION_ERROR", None, Some("id"));
    // Nothing was applied: no bid exists.
    let mut admin = Client::connect(&server, "root", Role::Admin).await;
    let snap = admin
        .ok(
            "w",
            json!({"type": "subscribe", "topic": format!("task:{task}")}),
        )
        .await;
    assert_eq!(snap["snapshot"]["bid_count"], 0);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_over_64_kib_closes_with_1009() {
    let server = start(fresh_dir("bad-big")).await;
    let mut c = Client::connect(&server, "sally", Role::Seeker).await;
    // Just under the limit is fine (unknown fields are ignored).
    let pad = "x".repeat(60 * 1024);
    let reply = c.request("near", json!({"type": "ping", "pad": pad})).await;
    assert_eq!(reply["type"], "ok", "{reply}");
    let pad = "x".repeat(64 * 1024);
    c.send(json!({"type": "ping", "id": "big", "pad": pad}))
        .await;
    assert_eq!(c.close_code(Duration::from_secs(10)).await, Some(1009));
    assert!(
        c.backlog.is_empty(),
        "no reply to the oversized frame: {:?}",
        c.backlog
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_bad_frames_within_ten_seconds_close_with_1008() {
    let server = start(fresh_dir("bad-flood")).await;
    let mut c = Client::connect(&server, "sally", Role::Seeker).await;
    for _ in 0..19 {
        let reply = send_text(&mut c, "nope").await;
        assert_error(&reply, "BAD_REQUEST", None, None);
    }
    // Good frames do not count; 19 bad ones are tolerated.
    assert_eq!(c.ok("p", json!({"type": "ping"})).await, json!({}));
    // A validation error is a bad frame too: the 20th closes the connection.
    c.send(json!({"type": "subscribe", "id": "s"})).await;
    assert_eq!(c.close_code(Duration::from_secs(10)).await, Some(1008));
    for f in &c.backlog {
        assert_eq!(f["type"], "error", "{f}");
    }
    // Other connections of the same user are not affected.
    let mut d = Client::connect(&server, "sally", Role::Seeker).await;
    assert_eq!(d.ok("p", json!({"type": "ping"})).await, json!({}));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_without_a_valid_token_are_refused_with_401() {
    let server = start(fresh_dir("bad-token")).await;
    let now = now_secs();
    let hour = Duration::from_secs(3600);
    let good = token_signed(SECRET, "sally", Role::Seeker, hour, now);
    let forged = token_signed(
        b"some-other-secret-0123456789",
        "sally",
        Role::Seeker,
        hour,
        now,
    );
    let expired = token_signed(
        SECRET,
        "sally",
        Role::Seeker,
        Duration::from_secs(60),
        now - 120,
    );
    let mut tampered: Vec<&str> = good.split('.').collect();
    let admin = token_signed(SECRET, "sally", Role::Admin, hour, now);
    tampered[1] = admin.split('.').nth(1).unwrap();
    let tampered = tampered.join(".");

    let refused = |u: Upgrade| match u {
        Upgrade::Refused(status) => status,
        Upgrade::Connected(_) => panic!("the upgrade was accepted"),
    };
    assert_eq!(refused(Client::try_connect(&server, None).await), 401);
    for bad in ["", "garbage", "a.b.c", &forged, &expired, &tampered] {
        assert_eq!(
            refused(Client::try_connect(&server, Some(bad)).await),
            401,
            "{bad}"
        );
    }
    for bad in ["garbage", &forged, &expired] {
        assert_eq!(
            refused(Client::try_connect_bearer(&server, bad).await),
            401,
            "{bad}"
        );
    }
    // A good token works either way.
    for upgrade in [
        Client::try_connect(&server, Some(&good)).await,
        Client::try_connect_bearer(&server, &good).await,
    ] {
        let Upgrade::Connected(mut c) = upgrade else {
            panic!("a good token is accepted");
        };
        assert_eq!(c.ok("p", json!({"type": "ping"})).await, json!({}));
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_that_expires_while_connected_closes_with_4001() {
    let server = start(fresh_dir("bad-expiry")).await;
    let short = token_signed(
        SECRET,
        "sally",
        Role::Seeker,
        Duration::from_secs(2),
        now_secs(),
    );
    let mut c = Client::connect_with_token(&server, &short).await;
    assert_eq!(c.ok("p", json!({"type": "ping"})).await, json!({}));
    assert_eq!(c.close_code(Duration::from_secs(15)).await, Some(4001));
    // It cannot reconnect with it either.
    let Upgrade::Refused(status) = Client::try_connect(&server, Some(&short)).await else {
        panic!("an expired token is refused");
    };
    assert_eq!(status, 401);
    server.shutdown().await;
}

/// A token that never expires (`exp` saturated at u64::MAX: `gavel token --ttl` with a huge
/// value) is a connection like any other: working out when it expires once panicked the
/// connection's task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_expiring_at_the_end_of_time_connects_and_works() {
    let server = start(fresh_dir("bad-far-expiry")).await;
    let forever = Duration::from_secs(u64::MAX);
    let token = token_signed(SECRET, "sally", Role::Seeker, forever, now_secs());
    let mut c = Client::connect_with_token(&server, &token).await;
    assert_eq!(c.ok("p", json!({"type": "ping"})).await, json!({}));
    server.shutdown().await;
}

/// The server pings every `ping_interval_secs` and closes (1000, "idle") a client not heard
/// from within `idle_timeout_secs`: a client that reads answers the pings (its WebSocket
/// library pongs) and stays; one that never reads sends no pong and is let go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_keep_a_reading_client_and_a_silent_one_is_closed_idle() {
    let mut opts = options(fresh_dir("bad-idle"));
    opts.config.limits.ping_interval_secs = 1;
    opts.config.limits.idle_timeout_secs = 2;
    let server = start_with(opts).await;
    // Connected first: its pings (and so its idle check) come before the reader's.
    let mut silent = Client::connect(&server, "sam", Role::Seeker).await;
    let mut reader = Client::connect(&server, "rita", Role::Seeker).await;
    // Four pings: past the silent client's idle check at its third ping (3 s > 2 s).
    let mut pings = 0;
    while pings < 4 {
        let msg = tokio::time::timeout(Duration::from_secs(5), reader.ws.next())
            .await
            .expect("a ping within 5 s")
            .expect("connection open")
            .expect("no websocket error");
        if matches!(msg, Message::Ping(_)) {
            pings += 1;
        }
    }
    // The reader answered every ping and is still served.
    assert_eq!(reader.ok("p", json!({"type": "ping"})).await, json!({}));
    // The silent one was closed as idle (its pings are read first, then the close frame).
    assert_eq!(silent.close_code(Duration::from_secs(10)).await, Some(1000));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_over_the_burst_are_rate_limited_and_not_applied() {
    // The contract's burst of 20; the sustained rate is slowed to 1 a minute so that the bucket
    // cannot refill while the test runs (with 100 a minute it gains one every 600 ms).
    let mut opts = options(fresh_dir("bad-rate"));
    opts.config.limits.commands_per_minute = 1;
    assert_eq!(opts.config.limits.command_burst, 20);
    let server = start_with(opts).await;
    let mut sally = Client::connect(&server, "sally", Role::Seeker).await;
    const N: usize = 30;
    for i in 0..N {
        sally
            .send(
                json!({"type": "post_task", "id": format!("r{i}"), "task_id": format!("rl_{i}"),
                         "resume_id": "cv", "urgency": "standard"}),
            )
            .await;
    }
    let mut replies = std::collections::HashMap::new();
    while replies.len() < N {
        let f = sally.next().await;
        assert!(f["type"] == "ok" || f["type"] == "error", "{f}");
        replies.insert(f["id"].as_str().unwrap().to_owned(), f);
    }
    for i in 0..N {
        let reply = &replies[&format!("r{i}")];
        if i < 20 {
            assert_eq!(reply["type"], "ok", "{reply}");
            assert_eq!(reply["result"]["task_id"], format!("rl_{i}"));
        } else {
            assert_error(reply, "RATE_LIMITED", Some(&format!("r{i}")), None);
            let wait = reply["retry_after_ms"].as_u64().expect("retry_after_ms");
            assert!(wait > 0 && wait <= 60_000, "{reply}");
        }
    }
    // The limit is per user, over all its connections; others are not affected.
    let mut sally2 = Client::connect(&server, "sally", Role::Seeker).await;
    let reply = sally2
        .request("again", json!({"type": "cancel_task", "task_id": "rl_0"}))
        .await;
    assert_error(&reply, "RATE_LIMITED", Some("again"), None);
    let mut sam = Client::connect(&server, "sam", Role::Seeker).await;
    sam.ok(
        "p",
        json!({"type": "post_task", "resume_id": "cv", "urgency": "standard"}),
    )
    .await;
    // Subscriptions and pings are not limited.
    for i in 0..25 {
        sally.ok(&format!("ping{i}"), json!({"type": "ping"})).await;
        sally
            .ok(
                &format!("sub{i}"),
                json!({"type": "subscribe", "topic": "task:rl_0"}),
            )
            .await;
    }
    // Nothing was applied for the refused ones: rl_0 is still open, rl_20.. do not exist.
    let admin = token("root", Role::Admin);
    for i in 0..N {
        let (status, body) = http(
            &server,
            "GET",
            &format!("/v1/tasks/rl_{i}"),
            Some(&admin),
            None,
        )
        .await;
        if i < 20 {
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["status"], "open");
        } else {
            assert_eq!(status, 404, "{body}");
        }
    }
    let mut watcher = Client::connect(&server, "root", Role::Admin).await;
    let snap = watcher
        .ok("a", json!({"type": "subscribe", "topic": "admin"}))
        .await;
    assert_eq!(
        snap["snapshot"]["open_tasks"], 21,
        "sally's 20 and sam's one"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_id_from_the_same_user_is_applied_once() {
    let server = start(fresh_dir("bad-idem")).await;
    register_coach(&server, "ana", 4.0, false).await;
    let post = json!({"type": "post_task", "resume_id": "cv", "urgency": "urgent"});
    let mut sally = Client::connect(&server, "sally", Role::Seeker).await;
    let first = sally.request("same", post.clone()).await;
    assert_eq!(first["type"], "ok", "{first}");
    let again = sally.request("same", post.clone()).await;
    assert_eq!(again, first, "the original reply");
    // Also from another connection of the same user, and whatever the frame now says.
    let mut sally2 = Client::connect(&server, "sally", Role::Seeker).await;
    let other = json!({"type": "post_task", "resume_id": "cv2", "urgency": "flexible"});
    assert_eq!(sally2.request("same", other).await, first);
    // Another user's "same" is its own.
    let mut sam = Client::connect(&server, "sam", Role::Seeker).await;
    let sams = sam.request("same", post.clone()).await;
    assert_eq!(sams["type"], "ok");
    assert_ne!(sams["result"]["task_id"], first["result"]["task_id"]);
    let task = first["result"]["task_id"].as_str().unwrap().to_owned();

    let mut admin = Client::connect(&server, "root", Role::Admin).await;
    let snap = admin
        .ok("a", json!({"type": "subscribe", "topic": "admin"}))
        .await;
    assert_eq!(snap["snapshot"]["open_tasks"], 2, "one task each");

    // A bid retried: one bid, one bid.placed, one bid count.
    let topic = format!("task:{task}");
    sally
        .ok("w", json!({"type": "subscribe", "topic": topic}))
        .await;
    let mut ana = Client::connect(&server, "ana", Role::Coach).await;
    let bid = json!({"type": "place_bid", "task_id": task, "amount": 4000, "eta_hours": 1});
    let b1 = ana.request("bid", bid.clone()).await;
    assert_eq!(b1["type"], "ok", "{b1}");
    assert_eq!(ana.request("bid", bid).await, b1);
    let changed = json!({"type": "place_bid", "task_id": task, "amount": 5000, "eta_hours": 2});
    assert_eq!(
        ana.request("bid", changed).await,
        b1,
        "not applied as an update either"
    );
    let events = sally.drain_events().await;
    assert_kinds(&events, &["bid.placed"]);
    assert_eq!(events[0]["event"]["bid"]["amount"], 4000);
    let view = sally
        .ok("w2", json!({"type": "subscribe", "topic": topic}))
        .await;
    assert_eq!(view["snapshot"]["bid_count"], 1);
    assert_eq!(view["snapshot"]["bids"][0]["amount"], 4000);

    // A refused command is not remembered (gavel): the same id may be retried once it can
    // succeed, and that success is what is remembered.
    let bid_id = b1["result"]["bid_id"].as_str().unwrap().to_owned();
    let accept = json!({"type": "accept_bid", "task_id": task, "bid_id": bid_id});
    let wrong = json!({"type": "accept_bid", "task_id": task, "bid_id": "b_999"});
    let denied = sally.request("acc", wrong).await;
    assert_eq!(denied["code"], "NOT_FOUND", "{denied}");
    let ok = sally.request("acc", accept.clone()).await;
    assert_eq!(ok["type"], "ok", "{ok}");
    assert_eq!(sally.request("acc", accept).await, ok);
    let events = sally.drain_events().await;
    assert_kinds(&events, &["bid.accepted", "task.assigned", "payment.held"]);
    server.shutdown().await;
}

/// A bid id that spells an existing bid's number another way (`b_00` for `b_0`) is a bid that
/// does not exist: it once found the task by the number and then panicked the engine (and with
/// it the server) looking for the bid by the id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bid_number_spelled_another_way_is_not_found_and_the_server_lives_on() {
    let server = start(fresh_dir("bad-bid-spelling")).await;
    register_coach(&server, "ana", 4.0, false).await;
    let mut sally = Client::connect(&server, "sally", Role::Seeker).await;
    let post = json!({"type": "post_task", "resume_id": "cv", "urgency": "urgent"});
    let task = sally.ok("p", post).await["task_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut ana = Client::connect(&server, "ana", Role::Coach).await;
    let bid = json!({"type": "place_bid", "task_id": task, "amount": 4000, "eta_hours": 1});
    let bid_id = ana.ok("b", bid).await["bid_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let number = bid_id.strip_prefix("b_").unwrap();
    for (i, other) in [format!("b_0{number}"), format!("b_{number}x")]
        .iter()
        .enumerate()
    {
        let id = format!("w{i}");
        let reply = ana
            .request(&id, json!({"type": "withdraw_bid", "bid_id": other}))
            .await;
        assert_error(&reply, "NOT_FOUND", Some(&id), None);
        let accept = json!({"type": "accept_bid", "task_id": task, "bid_id": other});
        let reply = sally.request(&format!("a{i}"), accept).await;
        assert_error(&reply, "NOT_FOUND", Some(&format!("a{i}")), None);
    }
    ana.ok("w", json!({"type": "withdraw_bid", "bid_id": bid_id}))
        .await;
    server.shutdown().await;
}
