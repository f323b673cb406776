//! Retries: a request id seen before returns the original reply and applies nothing.

use gavel_engine::{Engine, EngineConfig, Reply, Request};
use gavel_protocol::{ErrorCode, RequestId, Urgency};

use crate::common::*;

#[test]
fn idempotent_retry_returns_original_reply_and_applies_nothing() {
    let mut m = Market::new();
    m.register_coach("c1", 4.0);
    let alice = seeker("alice");
    let first = m.run_with_id(&alice, "r1", post_defaults(Urgency::Standard));
    let original = first.reply.clone().expect("posted");
    assert_eq!(kinds(&first.events), ["task_opened"]);
    let posted_at = m.now;

    m.advance(5 * MIN);
    let seq = m.engine.seq();
    let retry = m.run_with_id(&alice, "r1", post_defaults(Urgency::Standard));
    assert_eq!(retry.reply, Ok(original.clone()), "the original reply");
    assert!(retry.events.is_empty(), "nothing applied");
    assert_eq!(m.engine.seq(), seq);
    assert_eq!(m.engine.state().tasks.len(), 1);
    // The key is the user's: another user's "r1" is a new request.
    let bobs = m.run_with_id(&seeker("bob"), "r1", post_defaults(Urgency::Standard));
    assert_ne!(bobs.reply, Ok(original.clone()));
    assert_eq!(m.engine.state().tasks.len(), 2);
    // A retried bid, even with other numbers, is the first bid.
    let b = m.run_with_id(&coach("c1"), "rb", place_bid("t_0", 3000, 5));
    let again = m.run_with_id(&coach("c1"), "rb", place_bid("t_0", 4000, 1));
    assert_eq!(again.reply, b.reply);
    assert!(again.events.is_empty());
    assert_eq!(m.view("t_0").bids[0].amount, 3000);

    // Across a restart: the journal replayed into a fresh engine, or a restored snapshot.
    let replayed = m.check_replay_and_snapshot();
    let retry_req = Request {
        actor: alice.clone(),
        request_id: Some(RequestId::new("r1").unwrap()),
        command: post_defaults(Urgency::Standard),
    };
    for mut engine in [
        replayed,
        Engine::restore(EngineConfig::default(), m.engine.snapshot()).unwrap(),
    ] {
        let out = engine.execute(&retry_req, m.now);
        assert_eq!(out.reply, Ok(original.clone()));
        assert!(out.events.is_empty());
        assert_eq!(engine.state().tasks.len(), 2);
    }

    // Remembered for ten minutes of engine time, then forgotten: the retry is new.
    m.advance_to(posted_at + 10 * MIN - 1);
    let out = m.run_with_id(&alice, "r1", post_defaults(Urgency::Standard));
    assert_eq!((out.reply, out.events.len()), (Ok(original.clone()), 0));
    m.advance_to(posted_at + 10 * MIN);
    let out = m.run_with_id(&alice, "r1", post_defaults(Urgency::Standard));
    assert_eq!(kinds(&out.events), ["task_opened"]);
    assert!(matches!(out.reply, Ok(Reply::PostTask(r)) if r.task_id == tid("t_2")));

    // A refusal is not remembered (nothing was applied): the same id may succeed later.
    let refused = m.run_with_id(&coach("c2"), "rx", place_bid("t_0", 3000, 5));
    assert_eq!(refused.reply.unwrap_err().code, ErrorCode::Forbidden);
    m.register_coach("c2", 4.0);
    let ok = m.run_with_id(&coach("c2"), "rx", place_bid("t_0", 3000, 5));
    assert!(ok.reply.is_ok());
    m.check_replay_and_snapshot();
}
