//! Posting a task and its prices: the suggested price and range follow the urgency tier, the
//! defaults fill in, and only seekers (for themselves) and admins (for someone) post.

use gavel_engine::Command;
use gavel_protocol::command as wire_cmd;
use gavel_protocol::{Award, ErrorCode, TaskStatus, Urgency};

use crate::common::*;
use crate::helpers::{post_priced, posted};

#[test]
fn suggested_price_is_base_times_tier_multiplier() {
    let mut m = Market::new();
    let alice = seeker("alice");
    // Defaults: base 2500 × 1.5 / 1.0 / 0.8; range [s, 2s]; windows 10 / 30 / 30 min.
    let cases = [
        ("t_u", Urgency::Urgent, 3750, 10 * MIN),
        ("t_s", Urgency::Standard, 2500, 30 * MIN),
        ("t_f", Urgency::Flexible, 2000, 30 * MIN),
    ];
    for (id, urgency, suggested, window) in cases {
        let r = posted(m.ok(&alice, post(id, urgency, Award::Manual)));
        assert_eq!(r.task_id, tid(id));
        assert_eq!(r.suggested_price, suggested, "{urgency}");
        assert_eq!(r.price_range, [suggested, 2 * suggested], "{urgency}");
        assert_eq!(r.bidding_closes_at, T0 + window, "{urgency}");
        assert_eq!(m.view(id).suggested_price, suggested);
    }
    // round(): 1999 × 1.5 = 2998.5 → 2999 (halves up); 1003 × 0.8 = 802.4 → 802.
    let r = posted(m.ok(&alice, post_priced("t_r1", Urgency::Urgent, 1999)));
    assert_eq!((r.suggested_price, r.price_range), (2999, [2999, 5998]));
    let r = posted(m.ok(&alice, post_priced("t_r2", Urgency::Flexible, 1003)));
    assert_eq!((r.suggested_price, r.price_range), (802, [802, 1604]));
    let r = posted(m.ok(&alice, post_priced("t_r3", Urgency::Standard, 1001)));
    assert_eq!((r.suggested_price, r.price_range), (1001, [1001, 2002]));
}

#[test]
fn post_task_fills_defaults_and_only_seekers_and_admins_post() {
    let mut m = Market::new();
    let r = posted(m.ok(&seeker("alice"), post_defaults(Urgency::Standard)));
    assert_eq!(r.task_id, tid("t_0"), "server-chosen ids are t_<n>");
    let v = m.view("t_0");
    assert_eq!(v.task_type, "resume_review_full");
    assert_eq!(v.award, Award::Manual);
    assert_eq!(v.owner, user("alice"));
    assert_eq!(
        (v.status, v.bid_count, v.revisions),
        (TaskStatus::Open, 0, 0)
    );
    let r = posted(m.ok(&seeker("bob"), post_defaults(Urgency::Standard)));
    assert_eq!(r.task_id, tid("t_1"));

    m.refused_with(
        &coach("c1"),
        post_defaults(Urgency::Urgent),
        ErrorCode::Forbidden,
    );
    // An admin posts on a seeker's behalf and must name the owner.
    let no_owner = m.refused_with(
        &admin(),
        post_defaults(Urgency::Urgent),
        ErrorCode::ValidationError,
    );
    assert_eq!(no_owner.field.as_deref(), Some("owner"));
    let mut on_behalf = wire_cmd::PostTask {
        resume_id: "r".to_owned(),
        task_type: Some("linkedin_review".to_owned()),
        urgency: Urgency::Flexible,
        base_price: None,
        award: Some(Award::Auto),
        task_id: Some(tid("t_x")),
        owner: Some(user("carol")),
    };
    m.ok(&admin(), Command::PostTask(on_behalf.clone()));
    let v = m.view("t_x");
    assert_eq!(
        (v.owner.as_str(), v.task_type.as_str()),
        ("carol", "linkedin_review")
    );
    // A seeker cannot post for someone else, and ids are unique.
    on_behalf.task_id = Some(tid("t_y"));
    m.refused_with(
        &seeker("alice"),
        Command::PostTask(on_behalf.clone()),
        ErrorCode::Forbidden,
    );
    on_behalf.task_id = Some(tid("t_x"));
    m.refused_with(&admin(), Command::PostTask(on_behalf), ErrorCode::Conflict);
}

#[test]
fn a_client_chosen_id_far_ahead_does_not_move_the_server_counter() {
    let mut m = Market::new();
    let alice = seeker("alice");
    let top = u64::MAX;
    for n in [top - 1, top] {
        let id = format!("t_{n}");
        let r = posted(m.ok(&alice, post_priced(&id, Urgency::Standard, 2000)));
        assert_eq!(r.task_id, tid(&id));
    }
    // Server-chosen ids carry on from the bottom, one per post (no walk, no overflow).
    for n in 0..3 {
        let r = posted(m.ok(&alice, post_defaults(Urgency::Standard)));
        assert_eq!(r.task_id, tid(&format!("t_{n}")));
    }
    // A client's id just ahead is skipped (and moves the counter past it).
    posted(m.ok(&alice, post_priced("t_4", Urgency::Standard, 2000)));
    let r = posted(m.ok(&alice, post_defaults(Urgency::Standard)));
    assert_eq!(r.task_id, tid("t_5"));
    // One beyond the reach is left where it is, and skipped when the counter gets there.
    let far = 6 + gavel_engine::state::TASK_NO_REACH;
    posted(m.ok(
        &alice,
        post_priced(&format!("t_{far}"), Urgency::Standard, 2000),
    ));
    let r = posted(m.ok(&alice, post_defaults(Urgency::Standard)));
    assert_eq!(r.task_id, tid("t_6"));
}
