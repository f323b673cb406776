//! Property tests of the engine: random streams of commands from random actors, with random
//! clock jumps, must keep every invariant, and the state must always be exactly what replaying
//! the journal (or restoring a snapshot) gives.
//!
//! Streams are generated abstractly (indices, fractions, choices) and resolved against the live
//! engine at each step, so most commands name tasks and bids that exist and are in a state the
//! command can act on, and their senders are mostly the right actors; the rest are wrong on
//! purpose (unknown ids, wrong sender, wrong state, out-of-range amounts) and must be refused
//! without changing anything but the deadlines that fired.
//!
//! After every step:
//! - `check_invariants()` holds;
//! - the `seq`s handed out so far are exactly `1..=n`, event times never go backwards;
//! - an engine fed the same events one by one (the journal replayed live) equals the live one,
//!   and every 25 steps and at the end so does one built from scratch from the whole journal;
//! - replaying the journal from any snapshot (one before the first event, then one every 10
//!   steps, each restored and given the rest of the journal with `evolve`) gives the same
//!   ratings, market windows, whole state and archive rows as replaying it from empty;
//! - the snapshot round-trips through JSON, and `Engine::restore` of it equals the live state;
//! - a twin engine, restored from a snapshot every 16 steps, answers every request exactly as
//!   the live one does (so the rebuilt deadline index behaves like the live one);
//! - a request id seen (from the same user) within ten minutes gets the original reply and
//!   applies nothing; a fresh successful command journals its reply on its last event.
//!
//! `PROPTEST_CASES` overrides the number of cases (default 128).
//!
//! # Modules
//! - [`cast`] — the users a stream acts as, with their roles.
//! - [`stream`] — abstract steps and the strategies that generate streams of them.
//! - [`resolve`] — abstract steps resolved against the live engine into requests.
//! - [`checks`] — replay, journal, snapshot and view checks.
//! - [`driver`] — [`driver::run`]: one stream through a live engine, a follower and a twin,
//!   every property checked after every step.
//! - This file — the case count and the `proptest!` entry point.

mod cast;
mod checks;
mod driver;
mod resolve;
mod stream;

use proptest::prelude::*;

use crate::driver::run;
use crate::stream::stream;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(128)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        max_shrink_iters: 4096,
        // Integration tests have no lib.rs for proptest to find its regression file by; a
        // failure prints the minimal stream, which is what a fix needs.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_streams_keep_invariants_and_replay_exactly((setup, steps) in stream()) {
        run(setup, steps)?;
    }
}
