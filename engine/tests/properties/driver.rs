//! The driver: runs one stream against a live engine, a follower fed its events, and a twin
//! restored from snapshots, checking every property after every step.

use std::collections::HashMap;

use gavel_engine::idempotency::IDEMPOTENCY_TTL_MS;
use gavel_engine::{Engine, EngineConfig, Event, Reply, Request};
use gavel_protocol::{Millis, RequestId, Seq, UserId};
use proptest::prelude::*;

use crate::checks::{
    TakenSnapshot, check_journal, check_replay_from_snapshots, check_snapshot, render_views, replay,
};
use crate::resolve::resolve;
use crate::stream::{Jump, Op, Rid, Step};

/// Engine time at the start of every stream (2025-11-25, an arbitrary realistic epoch).
const T0: Millis = 1_764_000_000_000;

/// The replies remembered per (user, request id): when, and what.
type Remembered = HashMap<(UserId, RequestId), (Millis, Reply)>;

pub(crate) fn run(setup: Vec<Op>, steps: Vec<Step>) -> Result<(), TestCaseError> {
    // Final tasks are archived 20 minutes after they end: the streams' clock jumps (seconds
    // to days) archive some and not others, so archiving meets every other rule.
    let config = EngineConfig {
        archive_after: Some(20 * 60 * 1000),
        // Market pricing with a small window: posts priced by the median after two samples,
        // samples leaving the window after five, all rebuilt by replay.
        pricing: gavel_engine::market::PricingConfig {
            mode: gavel_engine::market::PricingMode::Market,
            window: 5,
            min_samples: 2,
        },
        ..EngineConfig::default()
    };
    let mut live = Engine::new(config.clone());
    let mut follower = Engine::new(config.clone());
    let mut twin = live.clone();
    let mut journal: Vec<(Seq, Event)> = Vec::new();
    let mut clock = T0;
    let mut remembered: Remembered = HashMap::new();
    let mut with_ids: Vec<Request> = Vec::new();
    let mut next_rid = 0u32;
    // Snapshots taken along the stream (before the first event, then every 10 steps), each
    // replayed to the end at the close.
    let mut taken = vec![TakenSnapshot::of(&live, 0)];

    let setup = setup.into_iter().map(|op| Step {
        jump: Jump::Ms(0),
        op,
        rid: Rid::None,
    });
    for (i, step) in setup.chain(steps).enumerate() {
        if i % 16 == 0 {
            twin = check_snapshot(&live)?;
        }
        // Move the clock.
        let mut now = clock;
        match step.jump {
            Jump::Ms(ms) => {
                clock += ms;
                now = clock;
            }
            Jump::ToDue(offset) => {
                if let Some(due) = live.next_due() {
                    let target = due.saturating_add_signed(offset);
                    if target > clock {
                        clock = target;
                    }
                }
                now = clock;
            }
            Jump::Back(ms) => now -= ms,
        }

        let events = match resolve(&live, &step.op, now) {
            None => {
                let fired = live.fire(now);
                prop_assert_eq!(&twin.fire(now), &fired, "twin fires the same");
                fired
            }
            Some((actor, command)) => {
                let request = match step.rid {
                    Rid::Retry(k) if !with_ids.is_empty() => {
                        with_ids[usize::from(k) % with_ids.len()].clone()
                    }
                    Rid::None => Request {
                        actor,
                        request_id: None,
                        command,
                    },
                    Rid::Reuse(k) if !with_ids.is_empty() => Request {
                        request_id: with_ids[usize::from(k) % with_ids.len()].request_id.clone(),
                        actor,
                        command,
                    },
                    _ => {
                        next_rid += 1;
                        Request {
                            actor,
                            request_id: Some(RequestId::new(&format!("r{next_rid}")).unwrap()),
                            command,
                        }
                    }
                };
                let effective = now.max(live.state().now);
                let seq_before = live.seq();
                let outcome = live.execute(&request, now);
                prop_assert_eq!(
                    &twin.execute(&request, now),
                    &outcome,
                    "twin answers the same"
                );
                for (_, event) in &outcome.events {
                    prop_assert!(event.at <= effective, "no event from the future");
                }
                if let Some(rid) = &request.request_id {
                    let key = (request.actor.user.clone(), rid.clone());
                    let fresh = remembered
                        .get(&key)
                        .filter(|(at, _)| effective < at + IDEMPOTENCY_TTL_MS)
                        .map(|(_, reply)| reply.clone());
                    match (&fresh, &outcome.reply) {
                        (Some(original), reply) => {
                            prop_assert_eq!(
                                reply,
                                &Ok(original.clone()),
                                "a retry gets the original reply"
                            );
                            prop_assert!(
                                outcome.events.iter().all(|(_, e)| e.origin.is_none()),
                                "a retry applies nothing"
                            );
                        }
                        (None, Ok(reply)) => {
                            let last = &outcome.events.last().expect("a success journals events").1;
                            let origin = last
                                .origin
                                .as_ref()
                                .expect("the last event carries the reply");
                            prop_assert_eq!(&origin.reply, reply);
                            prop_assert_eq!(&origin.request_id, rid);
                            prop_assert_eq!(&origin.user, &request.actor.user);
                            remembered.insert(key, (effective, reply.clone()));
                        }
                        (None, Err(_)) => {}
                    }
                    if with_ids.len() < 64 {
                        with_ids.push(request.clone());
                    }
                } else {
                    prop_assert!(outcome.events.iter().all(|(_, e)| e.origin.is_none()));
                }
                if outcome.reply.is_err() {
                    // A refusal applies nothing of its own: only deadlines that fired.
                    prop_assert!(outcome.events.iter().all(|(_, e)| e.origin.is_none()));
                }
                let applied = outcome.events.len() as Seq;
                prop_assert_eq!(live.seq(), seq_before + applied);
                outcome.events
            }
        };

        for (seq, event) in &events {
            prop_assert_eq!(
                follower.evolve(event),
                *seq,
                "the follower assigns the same seq"
            );
        }
        journal.extend(events);

        if let Err(broken) = live.check_invariants() {
            return Err(TestCaseError::fail(format!("step {i}: {broken}")));
        }
        check_journal(&journal)?;
        prop_assert_eq!(live.seq(), journal.len() as Seq);
        prop_assert!(
            follower.state() == live.state(),
            "step {}: the follower equals live",
            i
        );
        prop_assert!(
            twin.state() == live.state(),
            "step {}: the twin equals live",
            i
        );
        check_snapshot(&live)?;
        if i % 10 == 9 {
            taken.push(TakenSnapshot::of(&live, journal.len()));
        }
        if i % 25 == 0 {
            prop_assert!(
                replay(&config, &journal).state() == live.state(),
                "step {}: replay",
                i
            );
        }
    }
    prop_assert!(
        replay(&config, &journal).state() == live.state(),
        "final replay"
    );
    check_replay_from_snapshots(&config, &journal, &taken)?;
    render_views(&live);
    for (_, event) in &journal {
        let delivered = gavel_engine::routing::deliveries(event);
        // The journal's task index (`task_topic`) agrees with what `task:<id>` receives.
        let task = delivered.iter().find_map(|d| match &d.topic {
            gavel_protocol::Topic::Task(id) => Some(id.clone()),
            _ => None,
        });
        prop_assert_eq!(gavel_engine::routing::task_topic(event), task);
    }
    Ok(())
}
