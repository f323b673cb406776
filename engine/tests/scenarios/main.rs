//! Scenario tables for the seed flows: each row is `(at, actor, command, expect)` — at `at`
//! (milliseconds after [`T0`]) the clock moves forward, and either a command runs (firing every
//! deadline due by then first) or, for a [`Step::Tick`] row, only the deadlines fire. `expect`
//! is the exact list of event kinds the step applied, in order (deadline events included), or
//! the code the command was refused with (then nothing may have been applied: a deadline due
//! before a refused command gets its own `Tick` row).
//!
//! After every scenario the whole journal is replayed into a fresh engine (same state), and
//! the snapshot round-trips through JSON and restores.
//!
//! # Modules
//! - [`common`] — the shared harness (`Market`: engine, simulated clock, journal, invariants
//!   checked after every step) and command builders.
//! - This file — the row types ([`Step`], [`Expect`], [`Row`]) and the runner, [`run_table`].
//! - One table per seed flow: [`urgent_task_to_dispute`], [`unbid_tasks`], [`late_coach`],
//!   [`suspended_coach`].

#[path = "../common/mod.rs"]
mod common;

mod late_coach;
mod suspended_coach;
mod unbid_tasks;
mod urgent_task_to_dispute;

use common::*;
use gavel_engine::{Actor, Command};
use gavel_protocol::{ErrorCode, Millis};

/// What a row does.
#[derive(Debug)]
enum Step {
    /// Run a command.
    Do(Command),
    /// Only move the clock and fire the deadlines due.
    Tick,
}

use Step::{Do, Tick};

/// What a row must produce.
#[derive(Debug)]
enum Expect {
    /// Exactly these event kinds, in order.
    Events(&'static [&'static str]),
    /// A refusal with this code, and no event at all.
    Rejected(ErrorCode),
}

use Expect::{Events, Rejected};

/// `(at (ms after T0), actor, step, expect)`.
type Row = (Millis, Actor, Step, Expect);

/// Who "does" a tick (only a label: ticks are the clock's).
fn clock() -> Actor {
    admin()
}

/// Runs the rows in order, asserting each one.
fn run_table(m: &mut Market, rows: Vec<Row>) {
    for (i, (at, actor, step, expect)) in rows.into_iter().enumerate() {
        let at = T0 + at;
        assert!(at >= m.now, "row {i}: rows must be in time order");
        let (label, events, reply) = match step {
            Tick => (format!("tick at +{}ms", at - T0), m.fire_until(at), None),
            Do(command) => {
                m.advance_to(at);
                let label = format!("{} by {} at +{}ms", command.name(), actor.user, at - T0);
                let outcome = m.run(&actor, command);
                (label, outcome.events, Some(outcome.reply))
            }
        };
        let got = kinds(&events);
        match expect {
            Events(want) => {
                if let Some(Err(r)) = &reply {
                    panic!("row {i} ({label}): refused: {r}");
                }
                assert_eq!(got, want, "row {i} ({label}): events");
            }
            Rejected(code) => {
                match reply {
                    None => panic!("row {i} ({label}): a tick cannot be refused"),
                    Some(Ok(reply)) => panic!("row {i} ({label}): accepted: {reply:?}"),
                    Some(Err(r)) => assert_eq!(r.code, code, "row {i} ({label}): {r}"),
                }
                assert!(
                    got.is_empty(),
                    "row {i} ({label}): deadlines fired before the refusal: {got:?}"
                );
            }
        }
    }
}

const BID: &[&str] = &["bid_placed", "bid_count"];
const UPSERTED: &[&str] = &["coach_upserted"];
const OPENED: &[&str] = &["task_opened"];
const NOTHING: &[&str] = &[];
