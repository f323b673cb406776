//! Money: on every settlement path the journal's escrow movements add up, and releases split
//! 85/15.

use std::collections::BTreeMap;

use gavel_engine::EventKind;
use gavel_protocol::{Award, Cents, DisputeOutcome, TaskStatus, Urgency};

use crate::common::*;
use crate::helpers::{assigned_task, disputed_task};

/// Every `(task, coach_amount, platform_fee)` release in the journal.
fn releases(m: &Market) -> Vec<(String, Cents, Cents)> {
    m.journal
        .iter()
        .filter_map(|(_, e)| match &e.kind {
            EventKind::PaymentReleased {
                task_id,
                coach_amount,
                platform_fee,
                ..
            } => Some((task_id.as_str().to_owned(), *coach_amount, *platform_fee)),
            _ => None,
        })
        .collect()
}

/// Checks, for every task, that the journal's money movements add up: held (minus reversed
/// holds) = released + refunded + still held, with the still-held amount the assignment's in
/// a live state and zero in a final one; releases split 85/15.
fn assert_money_is_conserved(m: &Market) {
    #[derive(Default, Debug)]
    struct Ledger {
        held: Cents,
        released: Cents,
        refunded: Cents,
    }
    let mut ledgers: BTreeMap<String, Ledger> = BTreeMap::new();
    for (_, e) in &m.journal {
        let entry = |id: &gavel_protocol::TaskId| id.as_str().to_owned();
        match &e.kind {
            EventKind::PaymentHeld { task_id, amount } => {
                ledgers.entry(entry(task_id)).or_default().held += amount;
            }
            EventKind::PaymentFailed { task_id, amount } => {
                ledgers.entry(entry(task_id)).or_default().held -= amount;
            }
            EventKind::PaymentReleased {
                task_id,
                coach_amount,
                platform_fee,
                ..
            } => {
                let amount = coach_amount + platform_fee;
                assert_eq!(*coach_amount, amount * 85 / 100);
                ledgers.entry(entry(task_id)).or_default().released += amount;
            }
            EventKind::PaymentRefunded { task_id, amount } => {
                ledgers.entry(entry(task_id)).or_default().refunded += amount;
            }
            _ => {}
        }
    }
    for (id, task) in &m.engine.state().tasks {
        let l = ledgers.remove(id.as_str()).unwrap_or_default();
        let e = task.escrow;
        assert_eq!(
            (e.held, e.released, e.refunded),
            (l.held, l.released, l.refunded),
            "{id}"
        );
        let still = e.held - e.released - e.refunded;
        if task.status.is_final() || task.status == TaskStatus::Open {
            assert_eq!(still, 0, "{id} ({}) holds nothing", task.status);
        } else {
            assert_eq!(still, task.assigned.as_ref().unwrap().amount, "{id}");
        }
    }
    assert!(ledgers.is_empty());
}

#[test]
fn money_is_conserved_on_every_settlement_path() {
    let mut m = Market::new();
    m.register_coach("c1", 4.0);
    m.register_coach("c2", 3.5);
    // Accepted and released.
    assigned_task(&mut m, "t_done", Urgency::Urgent, "c1", 4999, 2);
    m.ok(&coach("c1"), start("t_done"));
    m.ok(&coach("c1"), submit("t_done"));
    m.ok(&seeker("alice"), accept_verification("t_done", 5));
    // Disputed, released and refunded.
    disputed_task(&mut m, "t_rel", 7499);
    m.ok(&admin(), resolve("t_rel", DisputeOutcome::Release));
    disputed_task(&mut m, "t_ref", 3751);
    m.ok(&admin(), resolve("t_ref", DisputeOutcome::Refund));
    // Canceled while assigned, and by an admin while submitted.
    assigned_task(&mut m, "t_can", Urgency::Urgent, "c2", 4444, 2);
    m.ok(&seeker("alice"), cancel("t_can"));
    assigned_task(&mut m, "t_adm", Urgency::Standard, "c2", 3333, 24);
    m.ok(&coach("c2"), start("t_adm"));
    m.ok(&coach("c2"), submit("t_adm"));
    m.ok(&admin(), cancel("t_adm"));
    // Payment failed, then awarded again and still held.
    assigned_task(&mut m, "t_pf", Urgency::Urgent, "c1", 4000, 2);
    m.ok(&admin(), payment_failed("t_pf"));
    let b = m.bid("c2", "t_pf", 4100, 2);
    m.accept("alice", "t_pf", &b);
    // Late with nobody on call (refund, reopen), then on call (reassigned at the same amount).
    assigned_task(&mut m, "t_late", Urgency::Urgent, "c1", 6000, 1);
    m.fire_until(m.now + HOUR + 15 * MIN);
    assert_eq!(m.view("t_late").status, TaskStatus::Open);
    let b = m.bid("c2", "t_late", 5000, 1);
    m.accept("alice", "t_late", &b);
    m.register_on_call("oc", 4.0);
    m.fire_until(m.now + HOUR + 15 * MIN);
    assert_eq!(m.view("t_late").assigned.unwrap().coach_id, user("oc"));
    // Unbid: on call at 4500.
    m.post_task("alice", "t_unbid", Urgency::Urgent, Award::Manual);
    m.fire_until(m.now + 10 * MIN);
    assert_eq!(m.view("t_unbid").escrow.held, 4500);

    assert_money_is_conserved(&m);
    let total_released: Cents = releases(&m).iter().map(|(_, c, f)| c + f).sum();
    assert_eq!(total_released, 4999 + 7499);
    m.check_replay_and_snapshot();
}
