//! The stream generator: abstract steps (clock jumps, operations, request ids) and the
//! strategies that produce them. Steps name tasks and bids by index, not id; [`crate::resolve`]
//! turns them into requests against the live engine.

use gavel_protocol::Millis;
use proptest::prelude::*;

use crate::cast::REGISTRABLE;

const HOUR: Millis = 3_600_000;

/// How the clock moves before a step.
#[derive(Debug, Clone)]
pub(crate) enum Jump {
    /// Forward by this many milliseconds.
    Ms(u64),
    /// To the next deadline the engine knows of, plus this offset (ms; -2..=2): crosses
    /// bidding windows, reminders and overdue points exactly at and around their edge.
    ToDue(i64),
    /// The request carries a time this far in the past (the clock itself does not move):
    /// engine time must not run backwards.
    Back(u64),
}

/// Who sends a task command: the natural sender (owner, assigned coach, the bid's coach)
/// most of the time, or anyone at all.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Who(pub(crate) u8);

/// A task to act on: by index into the tasks that suit the command (or all tasks), or an id
/// that does not exist.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pick(pub(crate) u16);

#[derive(Debug, Clone)]
pub(crate) enum Op {
    Post {
        who: Who,
        urgency: u8,
        base_price: Option<u64>,
        award: Option<bool>,
        explicit_id: Option<u8>,
    },
    Bid {
        who: Who,
        task: Pick,
        amount: u16,
        eta: u8,
    },
    Withdraw {
        who: Who,
        bid: Pick,
    },
    Accept {
        who: Who,
        task: Pick,
        bid: Pick,
    },
    Start {
        who: Who,
        task: Pick,
    },
    Submit {
        who: Who,
        task: Pick,
        notes: bool,
    },
    AcceptVerification {
        who: Who,
        task: Pick,
        rating: u8,
    },
    RequestChanges {
        who: Who,
        task: Pick,
    },
    Cancel {
        who: Who,
        task: Pick,
        by_admin: bool,
    },
    Resolve {
        who: Who,
        task: Pick,
        release: bool,
    },
    Message {
        who: Who,
        task: Pick,
    },
    Upsert {
        who: Who,
        coach: u8,
        rating_tenths: u8,
        verified: bool,
        on_call: bool,
        capacity: u32,
        suspended: bool,
    },
    PaymentFailed {
        who: Who,
        task: Pick,
    },
    /// Drive the timers directly (`Engine::fire`), as the server's timer loop does.
    Fire,
}

/// Whether (and how) the request carries an id.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Rid {
    None,
    Fresh,
    /// Send an earlier request with an id again, exactly (a client retry).
    Retry(u16),
    /// This command, but with an id used before (by whoever): if the same user used it
    /// within ten minutes, the original reply comes back.
    Reuse(u16),
}

#[derive(Debug, Clone)]
pub(crate) struct Step {
    pub(crate) jump: Jump,
    pub(crate) op: Op,
    pub(crate) rid: Rid,
}

fn jump() -> impl Strategy<Value = Jump> {
    prop_oneof![
        8 => Just(Jump::Ms(0)),
        14 => (1u64..2_000).prop_map(Jump::Ms),
        6 => (1u64..600).prop_map(|s| Jump::Ms(s * 1000)),
        2 => (-2i64..=2).prop_map(Jump::ToDue),
        // Past delivery deadlines (reminders, overdue reassignments, strikes), rarely days.
        2 => prop_oneof![
            3 => (1u64..=80).prop_map(|h| Jump::Ms(h * HOUR)),
            1 => (0u64..=4 * 24 * HOUR).prop_map(Jump::Ms),
        ],
        1 => (1u64..=HOUR).prop_map(Jump::Back),
    ]
}

fn who() -> impl Strategy<Value = Who> {
    any::<u8>().prop_map(Who)
}

fn pick() -> impl Strategy<Value = Pick> {
    any::<u16>().prop_map(Pick)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (who(), 0u8..3, prop::option::weighted(0.3, 1u64..10_000), prop::option::of(any::<bool>()),
              prop::option::weighted(0.15, 0u8..40))
            .prop_map(|(who, urgency, base_price, award, explicit_id)| Op::Post {
                who, urgency, base_price, award, explicit_id,
            }),
        14 => (who(), pick(), any::<u16>(), any::<u8>())
            .prop_map(|(who, task, amount, eta)| Op::Bid { who, task, amount, eta }),
        2 => (who(), pick()).prop_map(|(who, bid)| Op::Withdraw { who, bid }),
        4 => (who(), pick(), pick()).prop_map(|(who, task, bid)| Op::Accept { who, task, bid }),
        3 => (who(), pick()).prop_map(|(who, task)| Op::Start { who, task }),
        4 => (who(), pick(), any::<bool>()).prop_map(|(who, task, notes)| Op::Submit { who, task, notes }),
        2 => (who(), pick(), 1u8..=5)
            .prop_map(|(who, task, rating)| Op::AcceptVerification { who, task, rating }),
        4 => (who(), pick()).prop_map(|(who, task)| Op::RequestChanges { who, task }),
        1 => (who(), pick(), any::<bool>())
            .prop_map(|(who, task, by_admin)| Op::Cancel { who, task, by_admin }),
        1 => (who(), pick(), any::<bool>())
            .prop_map(|(who, task, release)| Op::Resolve { who, task, release }),
        1 => (who(), pick()).prop_map(|(who, task)| Op::Message { who, task }),
        3 => (who(), any::<u8>(), 0u8..=50, prop::bool::weighted(0.85), any::<bool>(), 1u32..=3,
              prop::bool::weighted(0.1))
            .prop_map(|(who, coach, rating_tenths, verified, on_call, capacity, suspended)| {
                Op::Upsert { who, coach, rating_tenths, verified, on_call, capacity, suspended }
            }),
        1 => (who(), pick()).prop_map(|(who, task)| Op::PaymentFailed { who, task }),
        1 => Just(Op::Fire),
    ]
}

fn rid() -> impl Strategy<Value = Rid> {
    prop_oneof![
        5 => Just(Rid::None),
        3 => Just(Rid::Fresh),
        1 => any::<u16>().prop_map(Rid::Retry),
        1 => any::<u16>().prop_map(Rid::Reuse),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    (jump(), op(), rid()).prop_map(|(jump, op, rid)| Step { jump, op, rid })
}

/// Every registrable coach registered first, with random profiles (so bids and on-call
/// assignments happen early), then the stream.
pub(crate) fn stream() -> impl Strategy<Value = (Vec<Op>, Vec<Step>)> {
    let setup = prop::collection::vec(
        (
            0u8..=50,
            prop::bool::weighted(0.85),
            prop::bool::weighted(0.5),
            1u32..=3,
        ),
        REGISTRABLE.len(),
    )
    .prop_map(|profiles| {
        profiles
            .into_iter()
            .enumerate()
            .map(
                |(i, (rating_tenths, verified, on_call, capacity))| Op::Upsert {
                    who: Who(0),
                    coach: i as u8,
                    rating_tenths,
                    verified,
                    on_call,
                    capacity,
                    suspended: false,
                },
            )
            .collect()
    });
    (setup, prop::collection::vec(step(), 1..200))
}
