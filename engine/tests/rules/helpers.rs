//! Helpers shared by the rule modules: command builders with a chosen price, reply and journal
//! accessors, and tasks driven to a given state (assigned, disputed).

use gavel_engine::{Command, EventKind, Reply, Request};
use gavel_protocol::command as wire_cmd;
use gavel_protocol::views::PostTaskResult;
use gavel_protocol::{Award, Cents, Millis, TaskStatus, Urgency};

use crate::common::*;

pub(crate) fn post_priced(task_id: &str, urgency: Urgency, base_price: Cents) -> Command {
    Command::PostTask(wire_cmd::PostTask {
        resume_id: "resume-1".to_owned(),
        task_type: None,
        urgency,
        base_price: Some(base_price),
        award: None,
        task_id: Some(tid(task_id)),
        owner: None,
    })
}

pub(crate) fn posted(reply: Reply) -> PostTaskResult {
    match reply {
        Reply::PostTask(r) => r,
        other => panic!("post_task replied {other:?}"),
    }
}

/// The events applied since journal position `from`.
pub(crate) fn since(m: &Market, from: usize) -> Vec<EventKind> {
    m.journal[from..]
        .iter()
        .map(|(_, e)| e.kind.clone())
        .collect()
}

pub(crate) fn names(events: &[EventKind]) -> Vec<String> {
    events.iter().map(kind_name).collect()
}

/// A task posted by `alice` with one accepted bid from `coach_id`; returns the deadline.
pub(crate) fn assigned_task(
    m: &mut Market,
    task_id: &str,
    urgency: Urgency,
    coach_id: &str,
    amount: Cents,
    eta_hours: u32,
) -> Millis {
    m.post_task("alice", task_id, urgency, Award::Manual);
    let b = m.bid(coach_id, task_id, amount, eta_hours);
    m.accept("alice", task_id, &b)
}

pub(crate) fn request(actor: &gavel_engine::Actor, command: Command) -> Request {
    Request {
        actor: actor.clone(),
        request_id: None,
        command,
    }
}

/// Drives task `t` (owner alice, coach c1, `amount`) into `disputed`.
pub(crate) fn disputed_task(m: &mut Market, t: &str, amount: Cents) {
    assigned_task(m, t, Urgency::Urgent, "c1", amount, 2);
    m.ok(&coach("c1"), start(t));
    for _ in 0..3 {
        m.ok(&coach("c1"), submit(t));
        m.ok(&seeker("alice"), request_changes(t));
    }
    assert_eq!(m.view(t).status, TaskStatus::Disputed);
}
