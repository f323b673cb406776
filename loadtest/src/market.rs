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

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gavel_protocol::{FeedFilter, Urgency};
use tokio::sync::{mpsc, watch};

mod client;
mod frame;

use client::client;

use crate::cli::{MarketArgs, Scenario};
use crate::digest::{Acc, Digest, FILTER_CLASSES, LossBook, filter_class};
use crate::net::{Dialer, Minter, unix_micros};
use crate::stats::Stats;
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
