//! Test harness for the engine's rule tests and scenario tables: a [`Market`] wraps an
//! [`Engine`] with a simulated clock, records every applied event (its journal), and checks
//! the engine's invariants after every step, so no test can forget to.
//!
//! Time is only ever an argument to the engine, so days of deadlines run in microseconds:
//! [`Market::advance`] moves the clock, [`Market::fire_until`] moves it and fires whatever fell
//! due, and [`Market::run`] executes a command at the current time (firing due deadlines first,
//! as the engine always does).

// Each test crate uses a different subset of the helpers.
#![allow(dead_code)]

use gavel_engine::state::{Coach, Task};
use gavel_engine::{Actor, Command, Engine, EngineConfig, Event, EventKind, Outcome, Reply};
use gavel_engine::{Rejection, Request, Snapshot};
use gavel_protocol::command as wire;
use gavel_protocol::http::CoachUpsert;
use gavel_protocol::views::TaskView;
use gavel_protocol::{
    Award, BidId, Cents, DisputeOutcome, ErrorCode, Millis, RequestId, Role, Seq, TaskId, Urgency,
    UserId,
};

/// A millisecond, a minute, an hour, a day.
pub const MS: Millis = 1;
pub const MIN: Millis = 60_000;
pub const HOUR: Millis = 60 * MIN;
pub const DAY: Millis = 24 * HOUR;

/// Where every simulated clock starts (2025-11-24T16:00:00Z): a realistic epoch time, so any
/// confusion of absolute times with durations shows.
pub const T0: Millis = 1_764_000_000_000;

pub fn user(id: &str) -> UserId {
    UserId::new(id).expect("valid user id")
}

pub fn tid(id: &str) -> TaskId {
    TaskId::new(id).expect("valid task id")
}

pub fn bid(id: &str) -> BidId {
    BidId::new(id).expect("valid bid id")
}

pub fn seeker(id: &str) -> Actor {
    Actor::new(user(id), Role::Seeker)
}

pub fn coach(id: &str) -> Actor {
    Actor::new(user(id), Role::Coach)
}

pub fn admin() -> Actor {
    Actor::new(user("ops"), Role::Admin)
}

/// The snake-case tag of an event kind, as the journal spells it (`bid_placed`, …).
pub fn kind_name(kind: &EventKind) -> String {
    let value = serde_json::to_value(kind).expect("event kinds serialize");
    value["kind"]
        .as_str()
        .expect("event kinds are tagged with `kind`")
        .to_owned()
}

/// The kind names of applied events, in order.
pub fn kinds(events: &[(Seq, Event)]) -> Vec<String> {
    events.iter().map(|(_, e)| kind_name(&e.kind)).collect()
}

/// A coach profile as `PUT /v1/coaches/{id}` would carry it: verified, not on call, capacity 3.
pub fn profile(rating: f64) -> CoachUpsert {
    CoachUpsert {
        ratings_count: 0,
        display_name: "Coach".to_owned(),
        rating,
        verified: true,
        on_call: false,
        capacity: 3,
        suspended: false,
    }
}

/// An on-call profile (verified, capacity 3).
pub fn on_call_profile(rating: f64) -> CoachUpsert {
    CoachUpsert {
        ratings_count: 0,
        on_call: true,
        ..profile(rating)
    }
}

// Command builders, named after the wire `type`.

pub fn upsert(coach_id: &str, p: CoachUpsert) -> Command {
    Command::UpsertCoach {
        coach_id: user(coach_id),
        profile: p,
    }
}

pub fn post(task_id: &str, urgency: Urgency, award: Award) -> Command {
    Command::PostTask(wire::PostTask {
        resume_id: "resume-1".to_owned(),
        task_type: None,
        urgency,
        base_price: None,
        award: Some(award),
        task_id: Some(tid(task_id)),
        owner: None,
    })
}

/// `post_task` with every optional field absent (server-chosen id, defaults).
pub fn post_defaults(urgency: Urgency) -> Command {
    Command::PostTask(wire::PostTask {
        resume_id: "resume-1".to_owned(),
        task_type: None,
        urgency,
        base_price: None,
        award: None,
        task_id: None,
        owner: None,
    })
}

pub fn place_bid(task_id: &str, amount: Cents, eta_hours: u32) -> Command {
    Command::PlaceBid(wire::PlaceBid {
        task_id: tid(task_id),
        amount,
        eta_hours,
    })
}

pub fn withdraw(bid_id: &str) -> Command {
    Command::WithdrawBid(wire::WithdrawBid {
        bid_id: bid(bid_id),
    })
}

pub fn accept(task_id: &str, bid_id: &str) -> Command {
    Command::AcceptBid(wire::AcceptBid {
        task_id: tid(task_id),
        bid_id: bid(bid_id),
    })
}

pub fn start(task_id: &str) -> Command {
    Command::StartWork(wire::StartWork {
        task_id: tid(task_id),
    })
}

pub fn submit(task_id: &str) -> Command {
    Command::SubmitVerification(wire::SubmitVerification {
        task_id: tid(task_id),
        notes: Some("done".to_owned()),
    })
}

pub fn accept_verification(task_id: &str, rating: u8) -> Command {
    Command::AcceptVerification(wire::AcceptVerification {
        task_id: tid(task_id),
        rating,
    })
}

pub fn request_changes(task_id: &str) -> Command {
    Command::RequestChanges(wire::RequestChanges {
        task_id: tid(task_id),
        reason: "more detail please".to_owned(),
    })
}

pub fn cancel(task_id: &str) -> Command {
    Command::CancelTask(wire::CancelTask {
        task_id: tid(task_id),
        reason: Some("changed my mind".to_owned()),
    })
}

pub fn resolve(task_id: &str, outcome: DisputeOutcome) -> Command {
    Command::ResolveDispute(wire::ResolveDispute {
        task_id: tid(task_id),
        outcome,
    })
}

pub fn message(task_id: &str, text: &str) -> Command {
    Command::SendMessage(wire::SendMessage {
        task_id: tid(task_id),
        text: text.to_owned(),
    })
}

pub fn payment_failed(task_id: &str) -> Command {
    Command::PaymentFailed {
        task_id: tid(task_id),
    }
}

/// An engine with a simulated clock and a journal of every event it applied.
#[derive(Debug)]
pub struct Market {
    pub engine: Engine,
    /// The simulated time, in milliseconds since the epoch.
    pub now: Millis,
    /// Every applied event, in `seq` order (what the server would have journaled).
    pub journal: Vec<(Seq, Event)>,
}

impl Default for Market {
    fn default() -> Self {
        Market::new()
    }
}

impl Market {
    /// An empty marketplace with the contract's default tiers, at [`T0`].
    pub fn new() -> Self {
        Market::with_config(EngineConfig::default())
    }

    pub fn with_config(config: EngineConfig) -> Self {
        Market {
            engine: Engine::new(config),
            now: T0,
            journal: Vec::new(),
        }
    }

    /// Moves the clock forward by `ms` without driving timers (the next command fires them).
    pub fn advance(&mut self, ms: Millis) {
        self.now += ms;
    }

    /// Moves the clock to `t` (never backwards) without driving timers.
    pub fn advance_to(&mut self, t: Millis) {
        assert!(t >= self.now, "the clock never runs backwards");
        self.now = t;
    }

    /// Moves the clock to `t` and fires every deadline due by then.
    pub fn fire_until(&mut self, t: Millis) -> Vec<(Seq, Event)> {
        self.advance_to(t);
        let fired = self.engine.fire(self.now);
        self.record(&fired, "fire");
        fired
    }

    /// Moves the clock forward by `ms` and fires every deadline due by then.
    pub fn tick(&mut self, ms: Millis) -> Vec<(Seq, Event)> {
        self.fire_until(self.now + ms)
    }

    /// Executes `command` from `actor` at the current time (no request id).
    pub fn run(&mut self, actor: &Actor, command: Command) -> Outcome {
        self.execute(Request {
            actor: actor.clone(),
            request_id: None,
            command,
        })
    }

    /// Executes `command` from `actor` with the request id `id` (the idempotency key).
    pub fn run_with_id(&mut self, actor: &Actor, id: &str, command: Command) -> Outcome {
        self.execute(Request {
            actor: actor.clone(),
            request_id: Some(RequestId::new(id).expect("valid request id")),
            command,
        })
    }

    /// Executes a request at the current time and checks the invariants.
    pub fn execute(&mut self, request: Request) -> Outcome {
        let before = self.engine.seq();
        let outcome = self.engine.execute(&request, self.now);
        self.record(&outcome.events, request.command.name());
        if outcome.reply.is_err() {
            // A refusal applies nothing of its own (deadlines may still have fired first).
            assert_eq!(
                self.engine.seq(),
                before + outcome.events.len() as Seq,
                "a rejected {} applied events",
                request.command.name()
            );
        }
        outcome
    }

    /// Executes and expects success; returns the reply.
    pub fn ok(&mut self, actor: &Actor, command: Command) -> Reply {
        let name = command.name();
        match self.run(actor, command).reply {
            Ok(reply) => reply,
            Err(r) => panic!("{name} by {} was refused: {r}", actor.user),
        }
    }

    /// Executes and expects success; returns the events it applied.
    pub fn ok_events(&mut self, actor: &Actor, command: Command) -> Vec<String> {
        let name = command.name();
        let outcome = self.run(actor, command);
        if let Err(r) = &outcome.reply {
            panic!("{name} by {} was refused: {r}", actor.user);
        }
        kinds(&outcome.events)
    }

    /// Executes and expects a refusal; returns it.
    pub fn refused(&mut self, actor: &Actor, command: Command) -> Rejection {
        let name = command.name();
        match self.run(actor, command).reply {
            Ok(reply) => panic!("{name} by {} was accepted: {reply:?}", actor.user),
            Err(r) => r,
        }
    }

    /// Executes and expects a refusal with `code`; returns it.
    pub fn refused_with(&mut self, actor: &Actor, command: Command, code: ErrorCode) -> Rejection {
        let r = self.refused(actor, command);
        assert_eq!(r.code, code, "refused with the wrong code: {r}");
        r
    }

    /// Registers (or updates) a coach, as an admin would.
    pub fn upsert_coach(&mut self, coach_id: &str, p: CoachUpsert) {
        self.ok(&admin(), upsert(coach_id, p));
    }

    /// Registers a verified coach with `rating` (0.0 = unrated), not on call.
    pub fn register_coach(&mut self, coach_id: &str, rating: f64) {
        self.upsert_coach(coach_id, profile(rating));
    }

    /// Registers a verified on-call coach with `rating`.
    pub fn register_on_call(&mut self, coach_id: &str, rating: f64) {
        self.upsert_coach(coach_id, on_call_profile(rating));
    }

    /// `owner` posts task `task_id` with the default base price.
    pub fn post_task(&mut self, owner: &str, task_id: &str, urgency: Urgency, award: Award) {
        self.ok(&seeker(owner), post(task_id, urgency, award));
    }

    /// `coach_id` bids; returns the bid's id.
    pub fn bid(&mut self, coach_id: &str, task_id: &str, amount: Cents, eta_hours: u32) -> BidId {
        match self.ok(&coach(coach_id), place_bid(task_id, amount, eta_hours)) {
            Reply::PlaceBid(r) => r.bid_id,
            other => panic!("place_bid replied {other:?}"),
        }
    }

    /// The owner accepts `bid_id`; returns the delivery deadline.
    pub fn accept(&mut self, owner: &str, task_id: &str, bid_id: &BidId) -> Millis {
        match self.ok(&seeker(owner), accept(task_id, bid_id.as_str())) {
            Reply::AcceptBid(r) => r.deadline,
            other => panic!("accept_bid replied {other:?}"),
        }
    }

    /// A task of the state (panics if missing).
    pub fn task(&self, task_id: &str) -> &Task {
        self.engine
            .state()
            .tasks
            .get(&tid(task_id))
            .unwrap_or_else(|| panic!("task {task_id} exists"))
    }

    /// A registered coach (panics if missing).
    pub fn coach(&self, coach_id: &str) -> &Coach {
        self.engine
            .state()
            .coaches
            .get(&user(coach_id))
            .unwrap_or_else(|| panic!("coach {coach_id} is registered"))
    }

    /// The admin's view of a task.
    pub fn view(&self, task_id: &str) -> TaskView {
        self.engine
            .task_view(&tid(task_id), &admin())
            .expect("admins see every task")
    }

    fn record(&mut self, events: &[(Seq, Event)], step: &str) {
        if let Err(broken) = self.engine.check_invariants() {
            panic!(
                "invariant broken after {step} at {}: {broken}",
                self.now - T0
            );
        }
        for (seq, event) in events {
            let last = self.journal.last().map_or(0, |(s, _)| *s);
            assert_eq!(*seq, last + 1, "seq is gapless and strictly increasing");
            self.journal.push((*seq, event.clone()));
        }
        assert_eq!(
            self.engine.seq(),
            self.journal.len() as Seq,
            "every event is reported"
        );
    }

    /// Replays the whole journal into a fresh engine and checks it reaches the live state;
    /// round-trips the snapshot through JSON and restores from it. Returns the replayed engine.
    pub fn check_replay_and_snapshot(&self) -> Engine {
        let mut replayed = Engine::new(self.engine.config().clone());
        for (seq, event) in &self.journal {
            assert_eq!(replayed.evolve(event), *seq, "replay assigns the same seq");
        }
        if let Err(broken) = replayed.check_invariants() {
            panic!("invariant broken after replay: {broken}");
        }
        assert!(
            replayed.state() == self.engine.state(),
            "replaying the journal gives a different state"
        );

        let snapshot = self.engine.snapshot();
        let json = serde_json::to_string(&snapshot).expect("the snapshot serializes to JSON");
        let back: Snapshot = serde_json::from_str(&json).expect("the snapshot deserializes");
        assert!(back == snapshot, "the snapshot changes through JSON");
        let restored = Engine::restore(self.engine.config().clone(), back).expect("restores");
        if let Err(broken) = restored.check_invariants() {
            panic!("invariant broken after restore: {broken}");
        }
        assert!(
            restored.state() == self.engine.state(),
            "the restored state differs"
        );
        // The deadline index is rebuilt, not serialized: the restored and replayed engines
        // must fire exactly what the live one would, for days to come.
        let far = self.now + 30 * DAY;
        let live_future = self.engine.clone().fire(far);
        assert_eq!(
            restored.clone().fire(far),
            live_future,
            "the restored engine fires different deadlines"
        );
        assert_eq!(
            replayed.clone().fire(far),
            live_future,
            "the replayed engine fires different deadlines"
        );
        replayed
    }
}
