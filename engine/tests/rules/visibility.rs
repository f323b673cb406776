//! Who sees what (contract §3, §8): subscriptions to tasks, what a coach's views show of other
//! coaches' bids, and a missing task being `NOT_FOUND` only to admins.

use gavel_engine::routing::{Audience, deliveries};
use gavel_protocol::views::Snapshot;
use gavel_protocol::{Award, DisputeOutcome, ErrorCode, Topic, Urgency};

use crate::common::*;

#[test]
fn seeker_cannot_subscribe_to_another_seekers_task() {
    let mut m = Market::new();
    m.register_coach("c1", 4.0);
    m.register_coach("c2", 4.0);
    m.post_task("alice", "t", Urgency::Urgent, Award::Manual);
    m.bid("c1", "t", 4000, 1);
    m.bid("c2", "t", 4000, 1);
    let e = &m.engine;
    let task = Topic::Task(tid("t"));
    let missing = Topic::Task(tid("t_missing"));
    let code = |actor, topic: &Topic| e.authorize_subscribe(&actor, topic).err().map(|r| r.code);
    assert_eq!(code(seeker("alice"), &task), None);
    assert_eq!(code(seeker("bob"), &task), Some(ErrorCode::Forbidden));
    assert_eq!(code(seeker("bob"), &missing), Some(ErrorCode::Forbidden));
    assert_eq!(
        code(seeker("alice"), &Topic::Feed),
        Some(ErrorCode::Forbidden)
    );
    assert_eq!(
        code(seeker("alice"), &Topic::Admin),
        Some(ErrorCode::Forbidden)
    );
    assert_eq!(
        code(seeker("alice"), &Topic::Coach(user("c1"))),
        Some(ErrorCode::Forbidden)
    );
    // A coach: the feed, its own topic, and tasks it is assigned to — not ones it bid on.
    assert_eq!(code(coach("c1"), &Topic::Feed), None);
    assert_eq!(code(coach("c1"), &Topic::Coach(user("c1"))), None);
    assert_eq!(
        code(coach("c1"), &Topic::Coach(user("c2"))),
        Some(ErrorCode::Forbidden)
    );
    assert_eq!(code(coach("c1"), &Topic::Admin), Some(ErrorCode::Forbidden));
    assert_eq!(code(coach("c1"), &task), Some(ErrorCode::Forbidden));
    assert_eq!(code(admin(), &task), None);
    assert_eq!(code(admin(), &missing), Some(ErrorCode::NotFound));
    let r = m.engine.snapshot_for(&seeker("bob"), &task, None, 0);
    assert_eq!(r.unwrap_err().code, ErrorCode::Forbidden);
    m.accept("alice", "t", &bid("b_0"));
    let e = &m.engine;
    assert!(e.authorize_subscribe(&coach("c1"), &task).is_ok());
    assert!(e.authorize_subscribe(&coach("c2"), &task).is_err());
}

#[test]
fn coach_views_never_show_other_coaches_bids() {
    let mut m = Market::new();
    for c in ["c1", "c2", "c3"] {
        m.register_coach(c, 4.0);
    }
    m.post_task("alice", "t", Urgency::Urgent, Award::Manual);
    m.post_task("alice", "t_other", Urgency::Urgent, Award::Manual);
    let b1 = m.bid("c1", "t", 4000, 1);
    m.bid("c2", "t", 4321, 2);
    m.bid("c2", "t_other", 5000, 1);
    m.bid("c2", "t", 4322, 2); // an update

    // Feed: bid_count, and only the subscriber's own bid.
    let feed = |m: &Market, c: &str| match m.engine.snapshot_for(&coach(c), &Topic::Feed, None, 0) {
        Ok(Snapshot::Feed(f)) => f,
        other => panic!("{other:?}"),
    };
    let f1 = feed(&m, "c1");
    let t = f1.tasks.iter().find(|t| t.task_id == tid("t")).unwrap();
    assert_eq!(t.bid_count, 2);
    assert_eq!(t.my_bid.as_ref().map(|b| &b.bid_id), Some(&b1));
    let json = serde_json::to_string(&f1).unwrap();
    assert!(!json.contains("c2") && !json.contains("4322"), "{json}");
    let f3 = feed(&m, "c3");
    assert!(f3.tasks.iter().all(|t| t.my_bid.is_none()));
    let json = serde_json::to_string(&f3).unwrap();
    assert!(
        !json.contains("\"c1\"") && !json.contains("\"c2\""),
        "{json}"
    );
    // The coach topic: its own bids only.
    match m
        .engine
        .snapshot_for(&coach("c1"), &Topic::Coach(user("c1")), None, 0)
    {
        Ok(Snapshot::Coach(s)) => {
            assert_eq!(s.bids.len(), 1);
            assert_eq!(s.bids[0].bid_id, b1);
        }
        other => panic!("{other:?}"),
    }

    // The assigned coach's task view: its own bid, no top3, nobody else.
    m.accept("alice", "t", &b1);
    match m
        .engine
        .snapshot_for(&coach("c1"), &Topic::Task(tid("t")), None, 0)
    {
        Ok(Snapshot::Task(v)) => {
            assert_eq!(v.bids.len(), 1);
            assert_eq!(v.bids[0].bid_id, b1);
            assert!(v.top3.is_empty());
            let json = serde_json::to_string(&v).unwrap();
            assert!(!json.contains("c2") && !json.contains("4322"), "{json}");
        }
        other => panic!("{other:?}"),
    }

    // Wire routing: bid.* and payment.* never reach a task topic's non-privileged audience,
    // the feed never carries bid events or coach ids, and a coach topic only its own bids.
    let mut checked = 0;
    for (_, event) in &m.journal {
        for d in deliveries(event) {
            let json = serde_json::to_value(&d.event).unwrap();
            let kind = json["kind"].as_str().unwrap().to_owned();
            let bid_coach = json
                .get("coach_id")
                .or_else(|| json.get("bid").map(|b| &b["coach_id"]));
            match &d.topic {
                Topic::Task(_) if kind.starts_with("bid.") || kind.starts_with("payment.") => {
                    assert_eq!(d.audience, Audience::Privileged, "{kind} on the task topic");
                    checked += 1;
                }
                Topic::Feed => {
                    assert!(!kind.starts_with("bid."), "{kind} on the feed");
                    let text = json.to_string();
                    assert!(
                        !text.contains("\"c1\"") && !text.contains("\"c2\""),
                        "{text}"
                    );
                }
                Topic::Coach(c) if kind.starts_with("bid.") => {
                    assert_eq!(
                        bid_coach.and_then(|v| v.as_str()),
                        Some(c.as_str()),
                        "{kind}"
                    );
                }
                _ => {}
            }
        }
    }
    assert!(checked >= 6, "bid events were routed ({checked})");
}

#[test]
fn missing_task_is_not_found_only_to_admins() {
    let mut m = Market::new();
    m.register_coach("c1", 4.0);
    let t = "t_missing";
    for (actor, command) in [
        (coach("c1"), place_bid(t, 4000, 1)),
        (coach("c1"), start(t)),
        (coach("c1"), submit(t)),
        (coach("c1"), message(t, "hi")),
        (seeker("alice"), accept(t, "b_0")),
        (seeker("alice"), accept_verification(t, 5)),
        (seeker("alice"), request_changes(t)),
        (seeker("alice"), cancel(t)),
        (seeker("alice"), message(t, "hi")),
    ] {
        let name = command.name();
        let r = m.refused(&actor, command);
        assert_eq!(r.code, ErrorCode::Forbidden, "{name} by {}", actor.user);
    }
    for command in [
        cancel(t),
        resolve(t, DisputeOutcome::Refund),
        payment_failed(t),
    ] {
        let name = command.name();
        assert_eq!(
            m.refused(&admin(), command).code,
            ErrorCode::NotFound,
            "{name}"
        );
    }
    assert_eq!(
        m.engine.task_view(&tid(t), &admin()).unwrap_err().code,
        ErrorCode::NotFound
    );
    assert_eq!(
        m.engine
            .task_view(&tid(t), &seeker("alice"))
            .unwrap_err()
            .code,
        ErrorCode::Forbidden
    );
    // An existing task someone else owns is just as forbidden: ids cannot be probed.
    m.post_task("alice", "t_real", Urgency::Urgent, Award::Manual);
    assert_eq!(
        m.refused(&seeker("bob"), cancel("t_real")).code,
        ErrorCode::Forbidden
    );
    assert_eq!(
        m.engine
            .task_view(&tid("t_real"), &seeker("bob"))
            .unwrap_err()
            .code,
        ErrorCode::Forbidden
    );
}
