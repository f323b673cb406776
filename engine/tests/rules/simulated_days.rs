//! Days of deadlines: thousands of tasks over three simulated days, driven straight through
//! the engine, keep its invariants — simulated on the engine's clock, no waiting (how fast the
//! engine is, is for the benchmarks, never a test).

use std::collections::{BTreeMap, BTreeSet};

use gavel_engine::{Command, Engine, EngineConfig, Event, EventKind, Reply};
use gavel_protocol::http::CoachUpsert;
use gavel_protocol::{Award, DisputeOutcome, Millis, Seq, Urgency};

use crate::common::*;
use crate::helpers::request;

/// A tiny deterministic generator (no dependency, same run every time).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// An engine driven directly (no per-step invariant check, which would make a long run
/// quadratic), with a journal.
struct Driven {
    engine: Engine,
    journal: Vec<(Seq, Event)>,
}

impl Driven {
    fn execute(
        &mut self,
        actor: gavel_engine::Actor,
        command: Command,
        now: Millis,
    ) -> gavel_engine::Outcome {
        let request = request(&actor, command);
        let out = self.engine.execute(&request, now);
        self.journal.extend(out.events.iter().cloned());
        out
    }

    fn fire(&mut self, now: Millis) -> Vec<(Seq, Event)> {
        let fired = self.engine.fire(now);
        self.journal.extend(fired.iter().cloned());
        fired
    }
}

/// Thousands of tasks over three simulated days — bids, awards, reminders, late coaches,
/// strikes, suspensions, on-call takeovers, refunds, changes, disputes — driven straight
/// through `Engine`, with the invariants checked every six simulated hours and at the end.
#[test]
fn days_of_deadlines_for_thousands_of_tasks_run_on_the_engine_clock() {
    let mut sim = Driven {
        engine: Engine::new(EngineConfig::default()),
        journal: Vec::new(),
    };
    let mut rng = Lcg(42);
    let mut now = T0;
    // 40 bidders (five of them unreliable), 10 on-call coaches.
    let coaches: Vec<String> = (0..40).map(|i| format!("c{i:02}")).collect();
    for (i, c) in coaches.iter().enumerate() {
        let p = CoachUpsert {
            ratings_count: 0,
            rating: 3.0 + (i % 5) as f64 * 0.5,
            capacity: 50,
            ..profile(0.0)
        };
        assert!(sim.execute(admin(), upsert(c, p), now).reply.is_ok());
    }
    for i in 0..10 {
        let p = CoachUpsert {
            ratings_count: 0,
            capacity: 20,
            ..on_call_profile(4.0)
        };
        let out = sim.execute(admin(), upsert(&format!("oc{i}"), p), now);
        assert!(out.reply.is_ok());
    }
    let unreliable = |c: &str| c < "c05";

    // What the participants will do later: (when, order, what).
    #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
    enum Act {
        Accept(String, String),
        Start(String, String),
        Submit(String, String),
        Verify(String),
    }
    let mut agenda: BTreeSet<(Millis, u64, Act)> = BTreeSet::new();
    let mut n_act = 0u64;
    let end = T0 + 3 * DAY;
    let mut posted = 0u64;
    let mut next_post = T0;
    let mut next_check = T0 + 6 * HOUR;
    let mut refusals = 0u64;
    while now < end {
        // The next thing to happen: a post, a scheduled action, or a deadline.
        let next_act = agenda.first().map_or(Millis::MAX, |(t, _, _)| *t);
        let next_deadline = sim.engine.next_due().unwrap_or(Millis::MAX);
        now = next_post.min(next_act).min(next_deadline).min(end).max(now);
        let mut applied = sim.fire(now);
        if now == next_post {
            let i = posted;
            posted += 1;
            next_post += 60_000 + rng.next(30_000); // a task every ~75 s
            let urgency =
                [Urgency::Urgent, Urgency::Standard, Urgency::Flexible][rng.next(3) as usize];
            let award = if rng.next(2) == 0 {
                Award::Auto
            } else {
                Award::Manual
            };
            let t = format!("t{i}");
            let owner = format!("s{}", i % 200);
            let out = sim.execute(seeker(&owner), post(&t, urgency, award), now);
            let Ok(Reply::PostTask(p)) = out.reply else {
                panic!("{:?}", out.reply)
            };
            applied.extend(out.events);
            let window_h = sim.engine.config().tiers.get(urgency).delivery_hours;
            // 0–3 bids: a quarter of the tasks get none and go on call.
            for _ in 0..rng.next(4) {
                let c = &coaches[rng.next(40) as usize];
                let [min, max] = p.price_range;
                let amount = min + rng.next(max - min + 1);
                let eta = 1 + rng.next(u64::from(window_h)) as u32;
                let out = sim.execute(coach(c), place_bid(&t, amount, eta), now);
                refusals += u64::from(out.reply.is_err());
                applied.extend(out.events);
            }
            if award == Award::Manual {
                // The owner comes back after the window and takes the top bid.
                let at = p.bidding_closes_at + rng.next(20 * MIN);
                n_act += 1;
                agenda.insert((at, n_act, Act::Accept(owner, t.clone())));
            }
        }
        while agenda.first().is_some_and(|(at, _, _)| *at <= now) {
            let (_, _, act) = agenda.pop_first().expect("first exists");
            let out = match act {
                Act::Accept(s, t) => {
                    let view = sim.engine.task_view(&tid(&t), &seeker(&s));
                    let Some(b) = view.ok().and_then(|v| v.top3.first().cloned()) else {
                        continue;
                    };
                    sim.execute(seeker(&s), accept(&t, b.as_str()), now)
                }
                Act::Start(c, t) => sim.execute(coach(&c), start(&t), now),
                Act::Submit(c, t) => sim.execute(coach(&c), submit(&t), now),
                Act::Verify(t) => {
                    let s = sim.engine.state().tasks[&tid(&t)].spec.owner.clone();
                    let command = if rng.next(4) == 0 {
                        request_changes(&t)
                    } else {
                        accept_verification(&t, 5)
                    };
                    sim.execute(seeker(s.as_str()), command, now)
                }
            };
            // Refused: e.g. the coach was late and the task went to someone else.
            refusals += u64::from(out.reply.is_err());
            applied.extend(out.events);
        }
        // React to what happened: assigned coaches work (unreliable ones often never
        // deliver); submissions are verified by their owners; disputes are resolved.
        let mut disputed = Vec::new();
        for (_, e) in &applied {
            match &e.kind {
                EventKind::TaskAssigned {
                    task_id,
                    coach_id,
                    deadline,
                    ..
                } => {
                    let (t, c) = (task_id.as_str().to_owned(), coach_id.as_str().to_owned());
                    if unreliable(&c) && rng.next(2) == 0 {
                        continue; // will be late
                    }
                    let span = deadline - now;
                    let submit_at = now + span / 2 + rng.next(span / 3);
                    n_act += 1;
                    agenda.insert((now + span / 10, n_act, Act::Start(c.clone(), t.clone())));
                    n_act += 1;
                    agenda.insert((submit_at, n_act, Act::Submit(c, t)));
                }
                EventKind::TaskSubmitted { task_id, .. } => {
                    n_act += 1;
                    let t = task_id.as_str().to_owned();
                    agenda.insert((now + 10 * MIN, n_act, Act::Verify(t)));
                }
                EventKind::ChangesRequested {
                    task_id, coach_id, ..
                } => {
                    n_act += 1;
                    let (t, c) = (task_id.as_str().to_owned(), coach_id.as_str().to_owned());
                    agenda.insert((now + 30 * MIN, n_act, Act::Submit(c, t)));
                }
                EventKind::TaskDisputed { task_id } => disputed.push(task_id.as_str().to_owned()),
                _ => {}
            }
        }
        for t in disputed {
            let outcome = if rng.next(2) == 0 {
                DisputeOutcome::Release
            } else {
                DisputeOutcome::Refund
            };
            assert!(
                sim.execute(admin(), resolve(&t, outcome), now)
                    .reply
                    .is_ok()
            );
        }
        if now >= next_check {
            next_check += 6 * HOUR;
            if let Err(broken) = sim.engine.check_invariants() {
                panic!("at +{}ms: {broken}", now - T0);
            }
        }
    }
    let Driven {
        engine, journal, ..
    } = sim;
    engine.check_invariants().unwrap();

    // It really was days of everything.
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for (_, e) in &journal {
        *count.entry(kind_name(&e.kind)).or_default() += 1;
    }
    let count = |kind: &str| count.get(kind).copied().unwrap_or(0);
    assert!(posted >= 3000, "posted {posted}");
    assert!(
        count("task_completed") >= 1000,
        "{}",
        count("task_completed")
    );
    for kind in [
        "task_reminder",
        "task_reassigned",
        "bidding_closed",
        "bid_updated",
        "payment_refunded",
        "changes_requested",
        "task_disputed",
    ] {
        assert!(count(kind) > 0, "no {kind}");
    }
    let on_call = journal
        .iter()
        .filter(|(_, e)| matches!(e.kind, EventKind::TaskAssigned { on_call: true, .. }))
        .count();
    assert!(on_call > 100, "on call {on_call}");
    let suspended = engine
        .state()
        .coaches
        .values()
        .filter(|c| c.profile.suspended);
    assert!(suspended.count() > 0, "late coaches were suspended");
    assert!(refusals > 0, "suspended coaches were refused");
    for (i, (seq, _)) in journal.iter().enumerate() {
        assert_eq!(*seq, i as Seq + 1);
    }
    // Money is conserved per task; the journal rebuilds the same state.
    for task in engine.state().tasks.values() {
        let e = task.escrow;
        assert!(e.held >= e.released + e.refunded);
        if task.status.is_final() {
            assert_eq!(e.held, e.released + e.refunded, "{}", task.spec.task_id);
        }
    }
    let mut replayed = Engine::new(EngineConfig::default());
    for (_, e) in &journal {
        replayed.evolve(e);
    }
    assert!(replayed.state() == engine.state());
}
