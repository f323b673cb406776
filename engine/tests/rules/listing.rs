//! Contract §9 in the engine: a coach's listing of the tasks it was ever assigned, the last
//! assigned coach of a task assigned twice, and the seeker's snapshot.

use gavel_engine::ArchivedTask;
use gavel_protocol::command::ListTasks;
use gavel_protocol::{Award, Urgency};

use crate::common::*;

fn listed(m: &Market, who: &gavel_engine::Actor) -> Vec<gavel_protocol::views::TaskView> {
    let all = ListTasks {
        status: None,
        before: None,
        limit: None,
        owner: None,
        coach_id: None,
    };
    let q = m
        .engine
        .list_query(who, &all)
        .expect("a listing of one's own tasks");
    m.engine.list_live(&q).into_iter().map(|(_, v)| v).collect()
}

#[test]
fn a_former_coach_lists_the_task_without_its_successor_and_the_last_coach_is_the_latest() {
    let mut m = Market::new();
    m.register_coach("a", 4.0);
    m.register_coach("b", 4.0);
    m.post_task("alice", "t", Urgency::Standard, Award::Manual);
    let first = m.bid("a", "t", 3000, 10);
    m.accept("alice", "t", &first);
    m.ok(&admin(), payment_failed("t"));
    let second = m.bid("b", "t", 4000, 10);
    m.accept("alice", "t", &second);
    // a once held the task: it lists it, but not who holds it now nor for how much.
    let a_view = &listed(&m, &coach("a"))[0];
    assert_eq!(a_view.task_id.as_str(), "t");
    assert_eq!((a_view.assigned.is_none(), a_view.escrow.held), (true, 0));
    let b_view = &listed(&m, &coach("b"))[0];
    assert_eq!(b_view.assigned.as_ref().map(|x| x.amount), Some(4000));
    // b's payment fails too, and a is hired again: a is the last assigned coach.
    m.ok(&admin(), payment_failed("t"));
    let third = m.bid("a", "t", 3500, 10);
    m.accept("alice", "t", &third);
    assert_eq!(m.task("t").coaches_ever, [user("b"), user("a")]);
    assert_eq!(ArchivedTask::of(m.task("t")).last_coach(), Some(&user("a")));
    // The owner's dashboard lists its tasks newest first.
    m.post_task("alice", "u", Urgency::Urgent, Award::Manual);
    let ids: Vec<String> = m
        .engine
        .seeker_snapshot(&user("alice"))
        .tasks
        .iter()
        .map(|t| t.task_id.to_string())
        .collect();
    assert_eq!(ids, ["u", "t"]);
    m.check_replay_and_snapshot();
}
