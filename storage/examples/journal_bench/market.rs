//! The market the benchmark journals: coaches and seekers driven through the real engine
//! (post, bid, accept, start, submit, accept/cancel, messages), so every stored event is a real
//! one.

use gavel_engine::{Actor, Command, Engine, EngineConfig, Event, Reply, Request};
use gavel_protocol::command::{
    AcceptBid, AcceptVerification, CancelTask, PlaceBid, PostTask, SendMessage, StartWork,
    SubmitVerification,
};
use gavel_protocol::http::CoachUpsert;
use gavel_protocol::{RequestId, Role, Seq, Urgency, UserId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub(crate) const COACHES: usize = 50;
pub(crate) const SEEKERS: usize = 500;

/// A marketplace driven through the real engine, producing realistic journal events.
pub(crate) struct Market {
    pub engine: Engine,
    pub rng: StdRng,
    pub now: u64,
    pub requests: u64,
    pub tasks: u64,
    pub rejected: u64,
    /// Events applied since the caller last took them.
    pub out: Vec<(Seq, Event)>,
}

impl Market {
    pub(crate) fn new(seed: u64) -> Self {
        let mut market = Market {
            engine: Engine::new(EngineConfig::default()),
            rng: StdRng::seed_from_u64(seed),
            now: 1_700_000_000_000,
            requests: 0,
            tasks: 0,
            rejected: 0,
            out: Vec::new(),
        };
        let admin = actor("ops", Role::Admin);
        for c in 0..COACHES {
            let profile = CoachUpsert {
                ratings_count: 0,
                display_name: format!("Coach {c}"),
                rating: 3.5 + (c % 4) as f64 * 0.5,
                verified: true,
                on_call: c % 5 == 0,
                capacity: 20,
                suspended: false,
            };
            let coach_id = UserId::new(&format!("coach{c}")).unwrap();
            market.run(&admin, Command::UpsertCoach { coach_id, profile });
        }
        market
    }

    pub(crate) fn run(&mut self, actor: &Actor, command: Command) -> Option<Reply> {
        self.requests += 1;
        let request = Request {
            actor: actor.clone(),
            request_id: Some(RequestId::new(&format!("req-{}", self.requests)).unwrap()),
            command,
        };
        let outcome = self.engine.execute(&request, self.now);
        self.out.extend(outcome.events);
        match outcome.reply {
            Ok(reply) => Some(reply),
            Err(_) => {
                self.rejected += 1;
                None
            }
        }
    }

    /// One task's life: posted, bid on, then mostly accepted and delivered, some canceled,
    /// some left open (their bidding windows close later, as deadline events).
    pub(crate) fn step(&mut self) {
        self.now += self.rng.gen_range(200..2_000);
        let n = self.tasks;
        self.tasks += 1;
        let seeker = actor(
            &format!("seeker{}", self.rng.gen_range(0..SEEKERS)),
            Role::Seeker,
        );
        let urgency = Urgency::ALL[self.rng.gen_range(0..Urgency::ALL.len())];
        let post = PostTask {
            resume_id: format!("resume-{n}-v{}", self.rng.gen_range(1..5)),
            task_type: None,
            urgency,
            base_price: None,
            award: None,
            task_id: None,
            owner: None,
        };
        let Some(Reply::PostTask(posted)) = self.run(&seeker, Command::PostTask(post)) else {
            return;
        };
        let task_id = posted.task_id;
        let [min, max] = posted.price_range;
        let hours = self.engine.config().tiers.get(urgency).delivery_hours;
        let mut bids = Vec::new();
        let first = self.rng.gen_range(0..COACHES);
        for k in 0..3 {
            let coach = actor(&format!("coach{}", (first + k * 7) % COACHES), Role::Coach);
            let bid = PlaceBid {
                task_id: task_id.clone(),
                amount: self.rng.gen_range(min..=max),
                eta_hours: self.rng.gen_range(1..=hours),
            };
            self.now += self.rng.gen_range(10..500);
            if let Some(Reply::PlaceBid(placed)) = self.run(&coach, Command::PlaceBid(bid)) {
                bids.push((coach, placed.bid_id));
            }
        }
        let roll = self.rng.gen_range(0..100);
        if roll < 70 && !bids.is_empty() {
            let (coach, bid_id) = bids[self.rng.gen_range(0..bids.len())].clone();
            let accept = AcceptBid {
                task_id: task_id.clone(),
                bid_id,
            };
            if self.run(&seeker, Command::AcceptBid(accept)).is_none() {
                return;
            }
            self.now += self.rng.gen_range(1_000..60_000);
            let start = StartWork {
                task_id: task_id.clone(),
            };
            self.run(&coach, Command::StartWork(start));
            if roll < 20 {
                let message = SendMessage {
                    task_id: task_id.clone(),
                    text: "Could you focus on the summary section first?".into(),
                };
                self.run(&seeker, Command::SendMessage(message));
            }
            self.now += self.rng.gen_range(1_000..60_000);
            let submit = SubmitVerification {
                task_id: task_id.clone(),
                notes: Some(
                    "Reviewed: tightened the summary, fixed dates, reordered skills.".into(),
                ),
            };
            self.run(&coach, Command::SubmitVerification(submit));
            let done = AcceptVerification {
                task_id,
                rating: self.rng.gen_range(3..=5),
            };
            self.run(&seeker, Command::AcceptVerification(done));
        } else if roll < 80 {
            let cancel = CancelTask {
                task_id,
                reason: Some("no longer needed".into()),
            };
            self.run(&seeker, Command::CancelTask(cancel));
        }
    }

    /// Runs tasks until the engine has applied at least `events` events in total.
    pub(crate) fn run_until(&mut self, events: Seq) {
        while self.engine.seq() < events {
            self.step();
        }
    }
}

pub(crate) fn actor(user: &str, role: Role) -> Actor {
    Actor::new(UserId::new(user).unwrap(), role)
}

/// Real events to recycle (with new seqs) in the throughput and latency runs.
pub(crate) fn event_pool(n: usize) -> Vec<Event> {
    let mut market = Market::new(1);
    market.run_until(n as Seq);
    market.out.into_iter().map(|(_, e)| e).take(n).collect()
}
