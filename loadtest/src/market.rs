//! The `market` scenario (and `soak`, which is `market` for longer), one worker's share.
//!
//! - Seekers post tasks at an open-loop rate (a dispatcher hands each post to the next seeker
//!   in turn, whatever the server's pace), subscribe to each task's `task:<id>`, and — once every
//!   bid of the task arrived — cancel it and unsubscribe.
//! - Coaches subscribe to `feed`: the bidders (registered beforehand by the parent) bid on the
//!   tasks chosen for them; the others only watch, some through a filter.
//! - Admins watch `admin`.
//!
//! Latency is measured from the command's send to the event's receipt: a post's send time
//! travels in the task id the seeker picks (`<run>-<worker>-<n>-<µs>`, `task_id` being
//! client-choosable), a bid's send time is kept in a map keyed by (task, coach) — a task's
//! bidders live in the same process as its seeker, so the map is local.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use gavel_protocol::command::{CancelTask, PlaceBid, PostTask, Subscribe, Unsubscribe};
use gavel_protocol::event::EventPayload;
use gavel_protocol::reply::{ErrorReply, EventFrame, OkReply};
use gavel_protocol::views::{PlaceBidResult, PostTaskResult, TaskView};
use gavel_protocol::{Command, FeedFilter, Role, ServerFrame, TaskId, Topic, Urgency};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

use crate::cli::{MarketArgs, Scenario};
use crate::client::{Order, close, encode, parse_task_id, send_text, unexpected_close};
use crate::digest::{
    Acc, BASE_PRICES, Digest, FILTER_CLASSES, LossBook, TASK_TYPES, filter_class, fnv,
};
use crate::net::{Dialer, Minter, Ws, unix_micros};
use crate::stats::{Batch, Class, Stats};
use crate::worker::{Ctl, Link, Up, WorkerResult, WorkerSpec};

/// The market's arguments, whether run as `market` or `soak`.
pub fn args_of(scenario: &Scenario) -> MarketArgs {
    match scenario {
        Scenario::Market(m) => m.clone(),
        Scenario::Soak(s) => s.market.clone(),
        _ => MarketArgs::default(),
    }
}

/// User ids of the run: `<run>-s<i>`, `<run>-c<i>`, `<run>-a<i>`.
pub fn seeker_id(run: &str, i: usize) -> String {
    format!("{run}-s{i}")
}
pub fn coach_id(run: &str, i: usize) -> String {
    format!("{run}-c{i}")
}
pub fn admin_id(run: &str, i: usize) -> String {
    format!("{run}-a{i}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Setup,
    Run,
    Stop,
    Finish,
}

/// What the worker did to the marketplace, for the expected digests.
#[derive(Debug, Default)]
struct TaskRec {
    urgency: Option<Urgency>,
    task_type: String,
    suggested: Option<u64>,
    bids: Vec<String>,
    canceled: bool,
}

#[derive(Debug)]
struct Ctx {
    run: String,
    worker: String,
    args: MarketArgs,
    stats: Arc<Stats>,
    dialer: Dialer,
    minter: Minter,
    /// Bids each task of this worker gets.
    k: usize,
    /// Bidders in this worker.
    local_bidders: usize,
    ledger: Mutex<HashMap<String, TaskRec>>,
    /// `<task>|<coach>` → when the bid was sent (µs since the epoch).
    bid_sent: Mutex<HashMap<String, u64>>,
    task_no: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
enum RoleSpec {
    Seeker(usize),
    /// Global coach index, local bidder slot (bidders only), filter class.
    Coach(usize, Option<usize>, usize),
    Admin(usize),
}

/// What a client hands back at the end.
#[derive(Debug, Default)]
struct Outcome {
    /// Its subscriber kind and what it saw (coaches and admins).
    digest: Option<(String, Digest)>,
    /// A seeker's tasks: bid ids seen on each.
    tasks: Vec<(String, Acc)>,
}

pub async fn worker(spec: WorkerSpec, link: &mut Link) -> anyhow::Result<WorkerResult> {
    let args = args_of(spec.scenario());
    let stats = Stats::new();
    let duration = spec.cli.common.duration.unwrap_or(Duration::from_secs(30));
    let minter = Minter::new(
        &spec.secret,
        duration + args.drain_timeout + Duration::from_secs(3600),
    );
    let bidders = args.bidders();
    let my_bidders = spec.share(bidders);
    let watchers = spec.share(args.coaches - bidders);
    let my_seekers = spec.share(args.seekers);
    let my_admins = spec.share(args.admins);
    let local_bidders = my_bidders.len();
    let ctx = Arc::new(Ctx {
        run: spec.run_id.clone(),
        worker: spec.index.to_string(),
        k: args.bids_per_task.min(local_bidders),
        local_bidders,
        args: args.clone(),
        stats: stats.clone(),
        dialer: Dialer::new(spec.target.clone(), spec.cli.common.source_addrs.clone()),
        minter,
        ledger: Mutex::new(HashMap::new()),
        bid_sent: Mutex::new(HashMap::new()),
        task_no: AtomicU64::new(0),
    });

    // Who this worker plays: admins, then coaches (bidders, then watchers), then seekers.
    let mut roles = Vec::new();
    roles.extend(my_admins.map(RoleSpec::Admin));
    for (slot, i) in my_bidders.enumerate() {
        roles.push(RoleSpec::Coach(i, Some(slot), 0));
    }
    let filtered_every = if args.filtered_pct == 0 {
        usize::MAX
    } else {
        (100 / args.filtered_pct.min(100) as usize).max(1)
    };
    for j in watchers {
        // Every `filtered_every`-th watcher uses a filter, cycling through the classes.
        let class = if j % filtered_every == filtered_every - 1 || filtered_every == 1 {
            1 + (j / filtered_every) % (FILTER_CLASSES - 1)
        } else {
            0
        };
        roles.push(RoleSpec::Coach(bidders + j, None, class));
    }
    roles.extend(my_seekers.clone().map(RoleSpec::Seeker));

    let (phase_tx, phase_rx) = watch::channel(Phase::Setup);
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<bool>();
    let mut clients = Vec::with_capacity(roles.len());
    let mut triggers = Vec::new();
    let pace = Duration::from_secs_f64(spec.count as f64 / args.connect_rate.max(1.0));
    let start = tokio::time::Instant::now();
    for (i, role) in roles.iter().enumerate() {
        tokio::time::sleep_until(start + pace * i as u32).await;
        let trigger = if let RoleSpec::Seeker(_) = role {
            let (tx, rx) = mpsc::channel(4096);
            triggers.push(tx);
            Some(rx)
        } else {
            None
        };
        clients.push(tokio::spawn(client(
            ctx.clone(),
            *role,
            ready_tx.clone(),
            phase_rx.clone(),
            trigger,
        )));
    }
    drop(ready_tx);
    let mut setup_failures = 0;
    for _ in 0..roles.len() {
        match ready_rx.recv().await {
            Some(true) => {}
            Some(false) | None => setup_failures += 1,
        }
    }
    link.send(Up::Ready);
    let ticker = link.ticker(&stats);
    let sweeper = tokio::spawn(sweep_bid_times(ctx.clone()));

    // Run until told to stop.
    let mut finish_early = false;
    loop {
        match link.recv().await {
            Ctl::Go => break,
            Ctl::Finish => {
                finish_early = true;
                break;
            }
            Ctl::Stop => {}
        }
    }
    if !finish_early {
        let _ = phase_tx.send(Phase::Run);
        let share = my_seekers.len() as f64 / args.seekers.max(1) as f64;
        let rate = args.tasks_per_sec() * share;
        let dispatcher = tokio::spawn(dispatch(rate, triggers, phase_rx.clone(), stats.clone()));
        loop {
            match link.recv().await {
                Ctl::Stop => break,
                Ctl::Finish => {
                    finish_early = true;
                    break;
                }
                Ctl::Go => {}
            }
        }
        let _ = phase_tx.send(Phase::Stop);
        let _ = dispatcher.await;
    }
    if !finish_early {
        drain(&stats, args.quiet, args.drain_timeout).await;
        link.send(Up::Quiet);
        while !matches!(link.recv().await, Ctl::Finish) {}
    }
    let _ = phase_tx.send(Phase::Finish);

    let mut loss = LossBook::default();
    let mut outcomes = Vec::new();
    for c in clients {
        if let Ok(o) = c.await {
            outcomes.push(o);
        }
    }
    ticker.abort();
    sweeper.abort();

    // What every subscriber should have seen of this worker's tasks.
    let ledger = std::mem::take(&mut *ctx.ledger.lock().expect("ledger lock"));
    let mut feed = [Digest::default(); FILTER_CLASSES];
    let filters: Vec<Option<FeedFilter>> = (0..FILTER_CLASSES).map(filter_class).collect();
    let mut admin = Digest::default();
    let (mut posted, mut bids, mut canceled) = (0, 0, 0);
    for (task, rec) in &ledger {
        let (Some(urgency), Some(suggested)) = (rec.urgency, rec.suggested) else {
            continue; // never acknowledged: no event is owed (and its error is counted)
        };
        posted += 1;
        bids += rec.bids.len() as u64;
        canceled += u64::from(rec.canceled);
        let mut d = Digest::default();
        d.opened(task);
        for n in 1..=rec.bids.len() {
            d.bid_count(task, n as u32);
        }
        if rec.canceled {
            d.closed(task);
        }
        for (class, f) in filters.iter().enumerate() {
            if f.as_ref()
                .is_none_or(|f| f.matches(urgency, &rec.task_type, suggested))
            {
                feed[class].merge(&d);
            }
        }
        for b in &rec.bids {
            d.bid_placed(b);
        }
        admin.merge(&d);
    }
    for (class, d) in feed.iter().enumerate() {
        loss.expect(&format!("feed:{class}"), d);
    }
    loss.expect("admin", &admin);
    for o in outcomes {
        if let Some((kind, d)) = o.digest {
            loss.observe(&kind, d);
        }
        for (task, seen) in o.tasks {
            let Some(rec) = ledger.get(&task) else {
                continue;
            };
            if rec.suggested.is_none() {
                continue;
            }
            let mut want = Acc::default();
            for b in &rec.bids {
                want.add(&[b.as_bytes()]);
            }
            loss.local(seen == want, || {
                format!(
                    "task:{task}: the owner saw {} of {} bid.placed (or other ones)",
                    seen.n, want.n
                )
            });
        }
    }
    Ok(WorkerResult {
        totals: stats.totals(),
        loss,
        steps: Vec::new(),
        posted,
        bids,
        canceled,
        setup_failures,
    })
}

/// Waits until no command is outstanding and no event arrived for `quiet`, or `timeout`.
pub async fn drain(stats: &Stats, quiet: Duration, timeout: Duration) {
    let start = Instant::now();
    loop {
        let outstanding = stats.outstanding.load(Ordering::Relaxed);
        let idle_us = unix_micros().saturating_sub(stats.last_event_us.load(Ordering::Relaxed));
        if outstanding <= 0 && idle_us >= quiet.as_micros() as u64 {
            return;
        }
        if start.elapsed() >= timeout {
            if outstanding > 0 {
                stats.transport("drain timeout: replies missing");
            }
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Hands posts to the seekers in turn at `rate` per second (open loop: late replies never
/// slow it down).
async fn dispatch(
    rate: f64,
    triggers: Vec<mpsc::Sender<()>>,
    mut phase: watch::Receiver<Phase>,
    stats: Arc<Stats>,
) {
    if rate <= 0.0 || triggers.is_empty() {
        return;
    }
    let start = tokio::time::Instant::now();
    let mut sent: u64 = 0;
    loop {
        if *phase.borrow() != Phase::Run {
            return;
        }
        let due = (start.elapsed().as_secs_f64() * rate) as u64;
        while sent < due {
            let tx = &triggers[sent as usize % triggers.len()];
            if tx.try_send(()).is_err() {
                stats.transport("dispatch backlog");
            }
            sent += 1;
        }
        let next = start + Duration::from_secs_f64((sent + 1) as f64 / rate);
        tokio::select! {
            () = tokio::time::sleep_until(next) => {}
            _ = phase.changed() => {}
        }
    }
}

/// Forgets bid send times older than a minute (the soak runs for hours).
async fn sweep_bid_times(ctx: Arc<Ctx>) {
    loop {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let cutoff = unix_micros().saturating_sub(60_000_000);
        ctx.bid_sent
            .lock()
            .expect("bid map lock")
            .retain(|_, sent| *sent >= cutoff);
    }
}

#[derive(Debug)]
enum Pending {
    /// `initial`: the connection's first subscription (its latency is connect+subscribe).
    Subscribe {
        topic: String,
        initial: bool,
    },
    Unsubscribe {
        topic: String,
    },
    Post {
        task: String,
    },
    Bid {
        task: String,
    },
    Cancel {
        task: String,
    },
}

#[derive(Debug, Default)]
struct SeekerTask {
    seen: HashSet<String>,
    acc: Acc,
    cancel_sent: bool,
}

struct Client {
    ctx: Arc<Ctx>,
    role: RoleSpec,
    user: String,
    filter: Option<FeedFilter>,
    kind: Option<String>,
    next_id: u64,
    pending: HashMap<String, (Pending, Instant)>,
    order: Order,
    digest: Digest,
    tasks: HashMap<String, SeekerTask>,
    lat_feed: Batch,
    lat_task: Batch,
    lat_admin: Batch,
    lat_command: Batch,
    lat_at: Batch,
    dialed: Instant,
    ready: Option<mpsc::UnboundedSender<bool>>,
}

async fn client(
    ctx: Arc<Ctx>,
    role: RoleSpec,
    ready: mpsc::UnboundedSender<bool>,
    mut phase: watch::Receiver<Phase>,
    mut trigger: Option<mpsc::Receiver<()>>,
) -> Outcome {
    let stats = ctx.stats.clone();
    let (user, role_name, filter, kind) = match role {
        RoleSpec::Seeker(i) => (seeker_id(&ctx.run, i), Role::Seeker, None, None),
        RoleSpec::Coach(i, _, class) => (
            coach_id(&ctx.run, i),
            Role::Coach,
            filter_class(class),
            Some(format!("feed:{class}")),
        ),
        RoleSpec::Admin(i) => (
            admin_id(&ctx.run, i),
            Role::Admin,
            None,
            Some("admin".into()),
        ),
    };
    let dialed = Instant::now();
    let token = match ctx.minter.mint(&user, role_name) {
        Ok(t) => t,
        Err(e) => {
            stats.transport(&format!("token: {e}"));
            let _ = ready.send(false);
            return Outcome::default();
        }
    };
    let mut ws = match ctx.dialer.dial(None, Some(&token)).await {
        Ok(ws) => ws,
        Err(e) => {
            stats.transport(&e.key);
            let _ = ready.send(false);
            return Outcome::default();
        }
    };
    stats.open.fetch_add(1, Ordering::Relaxed);
    let mut c = Client {
        lat_feed: Batch::new(&stats, Class::Feed),
        lat_task: Batch::new(&stats, Class::Task),
        lat_admin: Batch::new(&stats, Class::Admin),
        lat_command: Batch::new(&stats, Class::Command),
        lat_at: Batch::new(&stats, Class::EngineAt),
        ctx,
        role,
        user,
        filter,
        kind,
        next_id: 0,
        pending: HashMap::new(),
        order: Order::default(),
        digest: Digest::default(),
        tasks: HashMap::new(),
        dialed,
        ready: Some(ready),
    };
    let first = match role {
        RoleSpec::Seeker(_) => None,
        RoleSpec::Coach(..) => Some(Topic::Feed),
        RoleSpec::Admin(_) => Some(Topic::Admin),
    };
    let started = match first {
        Some(topic) => c.subscribe(&mut ws, topic, true).await,
        None => {
            stats.connected.fetch_add(1, Ordering::Relaxed);
            c.signal_ready(true);
            Ok(())
        }
    };
    let mut ended = started.is_err();
    if let Err(e) = started {
        stats.transport(&e);
        c.signal_ready(false);
    }
    while !ended {
        let next_trigger = async {
            match trigger.as_mut() {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = phase.changed() => {
                if changed.is_err() || *phase.borrow() == Phase::Finish {
                    close(&mut ws, &stats).await;
                    break;
                }
            }
            Some(()) = next_trigger => {
                if let Err(e) = c.post(&mut ws).await {
                    stats.transport(&e);
                    ended = true;
                }
            }
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(text))) => {
                    if let Err(e) = c.on_text(&mut ws, text.as_str()).await {
                        stats.transport(&e);
                        ended = true;
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    unexpected_close(&stats, frame.as_ref());
                    ended = true;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    stats.transport(&format!("read: {e}"));
                    ended = true;
                }
                None => {
                    unexpected_close(&stats, None);
                    ended = true;
                }
            }
        }
    }
    c.signal_ready(false);
    stats.open.fetch_sub(1, Ordering::Relaxed);
    Outcome {
        digest: c.kind.clone().map(|k| (k, c.digest)),
        tasks: c.tasks.iter().map(|(t, s)| (t.clone(), s.acc)).collect(),
    }
}

impl Client {
    fn signal_ready(&mut self, ok: bool) {
        if let Some(tx) = self.ready.take() {
            let _ = tx.send(ok);
        }
    }

    /// Sends a command, remembering what it was for its reply.
    async fn command(
        &mut self,
        ws: &mut Ws,
        pending: Pending,
        command: Command,
    ) -> Result<(), String> {
        self.next_id += 1;
        let id = self.next_id.to_string();
        let text = encode(&id, command);
        self.pending.insert(id, (pending, Instant::now()));
        self.ctx.stats.sent.fetch_add(1, Ordering::Relaxed);
        self.ctx.stats.outstanding.fetch_add(1, Ordering::Relaxed);
        send_text(ws, text).await
    }

    async fn subscribe(&mut self, ws: &mut Ws, topic: Topic, initial: bool) -> Result<(), String> {
        let filter = if topic == Topic::Feed {
            self.filter.clone()
        } else {
            None
        };
        let pending = Pending::Subscribe {
            topic: topic.to_string(),
            initial,
        };
        let command = Command::Subscribe(Subscribe {
            topic,
            filter,
            since: None,
            epoch: None,
        });
        self.command(ws, pending, command).await
    }

    /// A seeker posts a task whose id carries the send time.
    async fn post(&mut self, ws: &mut Ws) -> Result<(), String> {
        let ctx = self.ctx.clone();
        let n = ctx.task_no.fetch_add(1, Ordering::Relaxed);
        let task = format!("{}-{}-{n}-{}", ctx.run, ctx.worker, unix_micros());
        let h = fnv(&[task.as_bytes()]);
        let urgency = Urgency::ALL[(h % 3) as usize];
        let task_type = TASK_TYPES[((h >> 8) % 2) as usize];
        let base = BASE_PRICES[((h >> 16) % 3) as usize];
        ctx.ledger.lock().expect("ledger lock").insert(
            task.clone(),
            TaskRec {
                urgency: Some(urgency),
                task_type: task_type.to_owned(),
                ..TaskRec::default()
            },
        );
        let command = Command::PostTask(PostTask {
            resume_id: format!("resume-{n}"),
            task_type: Some(task_type.to_owned()),
            urgency,
            base_price: Some(base),
            award: None,
            task_id: Some(TaskId::new(&task).expect("harness task ids are valid")),
            owner: None,
        });
        self.tasks.insert(task.clone(), SeekerTask::default());
        self.command(ws, Pending::Post { task }, command).await
    }

    async fn on_text(&mut self, ws: &mut Ws, text: &str) -> Result<(), String> {
        let now_us = unix_micros();
        let frame: ServerFrame = match serde_json::from_str(text) {
            Ok(f) => f,
            Err(e) => {
                let cut: String = text.chars().take(200).collect();
                self.ctx
                    .stats
                    .violation(format!("undecodable frame ({e}): {cut}"));
                return Ok(());
            }
        };
        match frame {
            ServerFrame::Ok(ok) => self.on_ok(ws, ok).await,
            ServerFrame::Error(e) => {
                self.on_error(e);
                Ok(())
            }
            ServerFrame::Event(ev) => self.on_event(ws, ev, now_us).await,
        }
    }

    fn on_error(&mut self, e: ErrorReply) {
        let stats = self.ctx.stats.clone();
        stats.replies_err.fetch_add(1, Ordering::Relaxed);
        stats.error(e.code.as_str());
        let pending =
            e.id.as_ref()
                .and_then(|id| self.pending.remove(id.as_str()));
        if let Some((p, _)) = pending {
            stats.outstanding.fetch_sub(1, Ordering::Relaxed);
            if matches!(p, Pending::Subscribe { initial: true, .. }) {
                self.signal_ready(false);
            }
            stats.error_example(format!(
                "{}: {:?} refused: {} {}",
                self.user,
                p,
                e.code.as_str(),
                e.message
            ));
        }
    }

    async fn on_ok(&mut self, ws: &mut Ws, ok: OkReply) -> Result<(), String> {
        let stats = self.ctx.stats.clone();
        let Some((pending, sent)) = self.pending.remove(ok.id.as_str()) else {
            stats.violation(format!("{}: a reply to unknown id {}", self.user, ok.id));
            return Ok(());
        };
        stats.replies_ok.fetch_add(1, Ordering::Relaxed);
        stats.outstanding.fetch_sub(1, Ordering::Relaxed);
        let took = sent.elapsed().as_micros() as u64;
        match pending {
            Pending::Subscribe { topic, initial } => {
                let seq = ok.result.get("seq").and_then(|s| s.as_u64()).unwrap_or(0);
                self.order.start(&topic, seq);
                if initial {
                    stats.record(Class::Connect, self.dialed.elapsed().as_micros() as u64);
                    stats.connected.fetch_add(1, Ordering::Relaxed);
                    self.signal_ready(true);
                }
                if let Some(task) = topic.strip_prefix("task:") {
                    // Bids placed before the subscription are in the snapshot.
                    let view = ok
                        .result
                        .get("snapshot")
                        .cloned()
                        .map(serde_json::from_value::<TaskView>);
                    match view {
                        Some(Ok(view)) => {
                            for bid in view.bids {
                                self.bid_seen(task, bid.bid_id.as_str(), bid.coach_id.as_str());
                            }
                            self.maybe_cancel(ws, task).await?;
                        }
                        _ => stats.violation(format!("{topic}: subscribe without a task snapshot")),
                    }
                }
            }
            Pending::Unsubscribe { topic } => self.order.forget(&topic),
            Pending::Post { task } => {
                self.lat_command.record(took);
                match serde_json::from_value::<PostTaskResult>(ok.result) {
                    Ok(r) => {
                        // Acknowledged: from now on its events are owed to every subscriber.
                        if let Some(rec) =
                            self.ctx.ledger.lock().expect("ledger lock").get_mut(&task)
                        {
                            rec.suggested = Some(r.suggested_price);
                        }
                        let topic = Topic::Task(r.task_id);
                        self.subscribe(ws, topic, false).await?;
                    }
                    Err(e) => stats.violation(format!("post_task result: {e}")),
                }
            }
            Pending::Bid { task } => {
                self.lat_command.record(took);
                match serde_json::from_value::<PlaceBidResult>(ok.result) {
                    Ok(r) => self
                        .ctx
                        .ledger
                        .lock()
                        .expect("ledger lock")
                        .entry(task)
                        .or_default()
                        .bids
                        .push(r.bid_id.to_string()),
                    Err(e) => stats.violation(format!("place_bid result: {e}")),
                }
            }
            Pending::Cancel { task } => {
                self.lat_command.record(took);
                if let Some(rec) = self.ctx.ledger.lock().expect("ledger lock").get_mut(&task) {
                    rec.canceled = true;
                }
                let topic = Topic::Task(TaskId::new(&task).expect("valid"));
                let pending = Pending::Unsubscribe {
                    topic: topic.to_string(),
                };
                self.command(ws, pending, Command::Unsubscribe(Unsubscribe { topic }))
                    .await?;
            }
        }
        Ok(())
    }

    /// A seeker saw a bid on its task (in the snapshot or as `bid.placed`).
    fn bid_seen(&mut self, task: &str, bid: &str, coach: &str) {
        let Some(t) = self.tasks.get_mut(task) else {
            self.ctx.stats.violation(format!(
                "{}: a bid on a task it does not own: {task}",
                self.user
            ));
            return;
        };
        if !t.seen.insert(bid.to_owned()) {
            self.ctx
                .stats
                .violation(format!("task:{task}: bid {bid} delivered twice"));
        }
        t.acc.add(&[bid.as_bytes()]);
        let _ = coach;
    }

    async fn maybe_cancel(&mut self, ws: &mut Ws, task: &str) -> Result<(), String> {
        let k = self.ctx.k;
        if self.ctx.args.no_cancel {
            return Ok(());
        }
        let Some(t) = self.tasks.get_mut(task) else {
            return Ok(());
        };
        if t.cancel_sent || t.seen.len() < k {
            return Ok(());
        }
        t.cancel_sent = true;
        let command = Command::CancelTask(CancelTask {
            task_id: TaskId::new(task).expect("valid"),
            reason: None,
        });
        let pending = Pending::Cancel {
            task: task.to_owned(),
        };
        self.command(ws, pending, command).await
    }

    fn bid_latency(&self, task: &str, coach: &str, now_us: u64) -> Option<u64> {
        let key = format!("{task}|{coach}");
        let sent = *self.ctx.bid_sent.lock().expect("bid map lock").get(&key)?;
        Some(now_us.saturating_sub(sent))
    }

    async fn on_event(&mut self, ws: &mut Ws, ev: EventFrame, now_us: u64) -> Result<(), String> {
        let stats = self.ctx.stats.clone();
        if let EventPayload::Stats { .. } = ev.event.payload {
            stats.stats_frames.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        stats.event_arrived(now_us);
        let now_ms = now_us / 1000;
        if now_ms >= ev.event.at {
            self.lat_at.record((now_ms - ev.event.at) * 1000);
        }
        let topic = ev.topic.to_string();
        if let Err(last) = self.order.check(&topic, ev.seq) {
            stats.violation(format!(
                "{} on {topic}: seq {} after {last} ({})",
                self.user,
                ev.seq,
                ev.event.kind()
            ));
        }
        let Some(task) = ev.event.task_id.as_ref().map(|t| t.to_string()) else {
            return Ok(());
        };
        let Some((group, sent_us)) = parse_task_id(&task, &self.ctx.run) else {
            return Ok(()); // another run's task
        };
        let mine = group == self.ctx.worker;
        match (&ev.topic, &ev.event.payload) {
            (Topic::Feed, EventPayload::TaskOpened { task: view }) => {
                self.digest.opened(&task);
                self.lat_feed.record(now_us.saturating_sub(sent_us));
                if let Some(f) = &self.filter
                    && !f.matches_task(view)
                {
                    stats.violation(format!("{}: {task} passed its filter", self.user));
                }
                if let RoleSpec::Coach(_, Some(slot), _) = self.role
                    && mine
                    && self.chosen(slot, &task)
                {
                    let [min, max] = view.price_range;
                    let amount =
                        min + fnv(&[task.as_bytes(), self.user.as_bytes()]) % (max - min + 1);
                    self.ctx
                        .bid_sent
                        .lock()
                        .expect("bid map lock")
                        .insert(format!("{task}|{}", self.user), unix_micros());
                    let command = Command::PlaceBid(PlaceBid {
                        task_id: view.task_id.clone(),
                        amount,
                        eta_hours: 1,
                    });
                    self.command(ws, Pending::Bid { task: task.clone() }, command)
                        .await?;
                }
            }
            (Topic::Feed | Topic::Admin, EventPayload::TaskBidCount { bid_count }) => {
                self.digest.bid_count(&task, *bid_count);
            }
            (Topic::Feed | Topic::Admin, EventPayload::TaskClosed { .. }) => {
                self.digest.closed(&task);
            }
            (Topic::Admin, EventPayload::TaskOpened { .. }) => {
                self.digest.opened(&task);
                self.lat_admin.record(now_us.saturating_sub(sent_us));
            }
            (Topic::Admin, EventPayload::BidPlaced { bid }) => {
                self.digest.bid_placed(bid.bid_id.as_str());
                if let Some(l) = self.bid_latency(&task, bid.coach_id.as_str(), now_us) {
                    self.lat_admin.record(l);
                }
            }
            (Topic::Task(_), EventPayload::BidPlaced { bid }) => {
                if let Some(l) = self.bid_latency(&task, bid.coach_id.as_str(), now_us) {
                    self.lat_task.record(l);
                }
                self.bid_seen(&task, bid.bid_id.as_str(), bid.coach_id.as_str());
                self.maybe_cancel(ws, &task).await?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Whether this bidder (local slot) is one of the `k` chosen for `task`.
    fn chosen(&self, slot: usize, task: &str) -> bool {
        let n = self.ctx.local_bidders;
        if n == 0 {
            return false;
        }
        let first = (fnv(&[task.as_bytes()]) % n as u64) as usize;
        (slot + n - first) % n < self.ctx.k
    }
}
