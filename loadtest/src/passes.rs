//! One pass of a scenario against one target (gavel or the baseline): start the workers,
//! set up, apply the load, drain, and gather what they saw.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::cli::{Cli, MarketArgs, Scenario};
use crate::digest::LossBook;
use crate::fanout::{Publisher, StepPub};
use crate::net::{Dialer, Http, Minter, Target};
use crate::pass_report::{ServerReadings, done_results, pass_report};
use crate::report::{PassReport, SoakTrend, StepReport};
use crate::run::{Env, say};
use crate::sampler::{Accum, Sampler};
use crate::stats::{Class, Stats, Summary, Tick, new_hist};
use crate::sysmon::{Monitor, open_fds};
use crate::worker::{Ctl, Up, WorkerResult, WorkerSpec, Workers};

/// Tells the workers to finish and collects what each of them measured.
async fn finish_workers(
    workers: &mut Workers,
    on_tick: &mut dyn FnMut(usize, Tick),
    timeout: Duration,
) -> anyhow::Result<Vec<WorkerResult>> {
    workers.broadcast(Ctl::Finish);
    let done = workers
        .wait_all(|m| matches!(m, Up::Done(_)), on_tick, timeout)
        .await?;
    Ok(done_results(done))
}

/// Processes worker messages for `d` (or until Ctrl-C).
pub(crate) async fn run_for(
    workers: &mut Workers,
    on_tick: &mut dyn FnMut(usize, Tick),
    d: Duration,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + d;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => return Ok(()),
            _ = tokio::signal::ctrl_c() => {
                say("interrupted: stopping the load and reporting");
                return Ok(());
            }
            msg = workers.next() => match msg {
                Some((i, Up::Tick(t))) => on_tick(i, t),
                Some((i, Up::Failed(e))) => bail!("worker {i} failed: {e}"),
                Some(_) => {}
                None => bail!("the workers are gone"),
            }
        }
    }
}

pub(crate) fn loadgen_pids(workers: &Workers) -> Vec<u32> {
    let mut pids = vec![std::process::id()];
    pids.extend_from_slice(workers.pids());
    pids
}

pub(crate) fn spec(env: &Env, target: &Target) -> WorkerSpec {
    WorkerSpec {
        cli: Cli {
            common: env.cli.common.clone(),
            scenario: Some(env.scenario.clone()),
        },
        index: 0,
        count: env.cli.common.workers.max(1),
        run_id: env.run_id.clone(),
        target: target.clone(),
        secret: env.secret.clone(),
    }
}

/// Registers the bidders: `PUT /v1/coaches/{id}` (verified, rated) with an admin token.
pub(crate) async fn register_bidders(
    env: &Env,
    target: &Target,
    bidders: usize,
) -> anyhow::Result<()> {
    if bidders == 0 {
        return Ok(());
    }
    let minter = Minter::new(&env.secret, Duration::from_secs(3600));
    let token = Arc::new(minter.mint(
        &format!("{}-admin", env.run_id),
        gavel_protocol::Role::Admin,
    )?);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..16.min(bidders) {
        let (token, next, target, run) = (
            token.clone(),
            next.clone(),
            target.clone(),
            env.run_id.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut http = Http::new(&target);
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= bidders {
                    return Ok::<(), anyhow::Error>(());
                }
                let id = crate::market::coach_id(&run, i);
                let body = serde_json::json!({
                    "display_name": format!("load coach {i}"),
                    "rating": 3.0 + (i % 20) as f64 / 10.0,
                    "verified": true,
                    "capacity": 3,
                })
                .to_string();
                let resp = http
                    .request(
                        "PUT",
                        &format!("/v1/coaches/{id}"),
                        Some(&token),
                        &[],
                        Some(body.as_bytes()),
                    )
                    .await
                    .with_context(|| format!("registering coach {id}"))?;
                if resp.status != 200 {
                    bail!(
                        "registering coach {id}: HTTP {} {}",
                        resp.status,
                        String::from_utf8_lossy(&resp.body)
                    );
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// Warns when the plan exceeds the server's default per-user limit (100 commands a minute,
/// bursts of 20): every user's commands are spread evenly, so this is exact.
pub(crate) fn warn_rate_limits(args: &MarketArgs, secs: f64) {
    let tasks = args.tasks_per_sec();
    let per_seeker = tasks / args.seekers.max(1) as f64 * if args.no_cancel { 1.0 } else { 2.0 };
    let per_bidder = tasks * args.bids_per_task as f64 / args.bidders().max(1) as f64;
    for (who, rate) in [("seeker", per_seeker), ("bidding coach", per_bidder)] {
        let total = rate * secs;
        if rate * 60.0 > 100.0 && total > 20.0 {
            say(&format!(
                "warning: each {who} sends {:.0} commands a minute ({total:.0} in all), over the default limit of 100 a minute (bursts of 20): expect RATE_LIMITED unless the server's [limits] allow it",
                rate * 60.0
            ));
        }
    }
}

pub(crate) async fn market_pass(
    env: &Env,
    target: Target,
    pid: Option<u32>,
) -> anyhow::Result<PassReport> {
    let args = crate::market::args_of(&env.scenario);
    let soak_every = match &env.scenario {
        Scenario::Soak(s) => Some(s.sample_every),
        _ => None,
    };
    let duration = env.cli.common.duration.unwrap_or(if soak_every.is_some() {
        Duration::from_secs(600)
    } else {
        Duration::from_secs(30)
    });
    warn_rate_limits(&args, duration.as_secs_f64());
    register_bidders(env, &target, args.bidders()).await?;
    let spec = spec(env, &target);
    let mut workers = Workers::start(&spec).await?;
    let mut monitor = Monitor::new(pid, &target);
    let monitor_name = monitor.source_name();
    let before = monitor.read().await;
    let acc = Arc::new(Mutex::new(Accum::new(workers.count())));
    let acc2 = acc.clone();
    let mut on_tick = move |i: usize, t: Tick| acc2.lock().expect("accum lock").add(i, t);
    let conns = args.seekers + args.coaches + args.admins;
    let setup = Duration::from_secs_f64(conns as f64 / args.connect_rate.max(1.0) * 2.0 + 60.0);
    workers
        .wait_all(|m| matches!(m, Up::Ready), &mut on_tick, setup)
        .await?;
    let sampler = Sampler::start(
        acc.clone(),
        monitor,
        soak_every.unwrap_or(Duration::from_secs(1)),
        env,
        Some(duration),
        loadgen_pids(&workers),
    );
    workers.broadcast(Ctl::Go);
    let t0 = Instant::now();
    run_for(&mut workers, &mut on_tick, duration).await?;
    workers.broadcast(Ctl::Stop);
    let load_secs = t0.elapsed().as_secs_f64();
    workers
        .wait_all(
            |m| matches!(m, Up::Quiet),
            &mut on_tick,
            args.drain_timeout + Duration::from_secs(30),
        )
        .await?;
    run_for(&mut workers, &mut on_tick, args.quiet).await?;
    let mut monitor = Monitor::new(pid, &target);
    let loaded = monitor.read().await;
    let fds = pid.and_then(open_fds);
    let results = finish_workers(&mut workers, &mut on_tick, Duration::from_secs(120)).await?;
    let samp = sampler.finish().await;
    let mut report = pass_report(
        &target,
        spec.count,
        load_secs,
        &results,
        None,
        samp,
        ServerReadings {
            source: monitor_name,
            rss_before_kib: before.rss_kib,
            rss_loaded_kib: loaded.rss_kib,
            open_fds: fds,
        },
        conns as u64,
    );
    // RSS here also holds every task posted: a per-connection figure would mislead.
    report.server.rss_per_connection_bytes = None;
    if let Scenario::Soak(soak) = &env.scenario {
        report.soak = SoakTrend::of(&report.series, soak.warmup.as_secs_f64(), load_secs);
    }
    Ok(report)
}

pub(crate) async fn connections_pass(
    env: &Env,
    target: Target,
    pid: Option<u32>,
) -> anyhow::Result<PassReport> {
    let Scenario::Connections(args) = &env.scenario else {
        unreachable!("connections pass");
    };
    let hold = env.cli.common.duration.unwrap_or(Duration::from_secs(30));
    let spec = spec(env, &target);
    let mut workers = Workers::start(&spec).await?;
    let mut monitor = Monitor::new(pid, &target);
    let monitor_name = monitor.source_name();
    let acc = Arc::new(Mutex::new(Accum::new(workers.count())));
    let acc2 = acc.clone();
    let mut on_tick = move |i: usize, t: Tick| acc2.lock().expect("accum lock").add(i, t);
    workers
        .wait_all(
            |m| matches!(m, Up::Ready),
            &mut on_tick,
            Duration::from_secs(60),
        )
        .await?;
    let before = monitor.read().await;
    let ramp = Duration::from_secs_f64(args.connections as f64 / args.rate.max(1.0));
    let sampler = Sampler::start(
        acc.clone(),
        monitor,
        Duration::from_secs(1),
        env,
        Some(ramp + hold),
        loadgen_pids(&workers),
    );
    workers.broadcast(Ctl::Go);
    workers
        .wait_all(
            |m| matches!(m, Up::Ramped),
            &mut on_tick,
            ramp * 3 + Duration::from_secs(120),
        )
        .await?;
    let t0 = Instant::now();
    run_for(&mut workers, &mut on_tick, hold).await?;
    let mut monitor = Monitor::new(pid, &target);
    let loaded = monitor.read().await;
    let fds = pid.and_then(open_fds);
    let load_secs = t0.elapsed().as_secs_f64();
    let results = finish_workers(&mut workers, &mut on_tick, Duration::from_secs(300)).await?;
    let samp = sampler.finish().await;
    Ok(pass_report(
        &target,
        spec.count,
        load_secs,
        &results,
        None,
        samp,
        ServerReadings {
            source: monitor_name,
            rss_before_kib: before.rss_kib,
            rss_loaded_kib: loaded.rss_kib,
            open_fds: fds,
        },
        args.connections as u64,
    ))
}

pub(crate) async fn fanout_pass(
    env: &Env,
    target: Target,
    pid: Option<u32>,
) -> anyhow::Result<PassReport> {
    let Scenario::Fanout(args) = &env.scenario else {
        unreachable!("fanout pass");
    };
    let spec = spec(env, &target);
    let mut workers = Workers::start(&spec).await?;
    let mut monitor = Monitor::new(pid, &target);
    let monitor_name = monitor.source_name();
    let before = monitor.read().await;
    let acc = Arc::new(Mutex::new(Accum::new(workers.count())));
    let acc2 = acc.clone();
    let mut on_tick = move |i: usize, t: Tick| acc2.lock().expect("accum lock").add(i, t);
    let setup =
        Duration::from_secs_f64(args.subscribers as f64 / args.connect_rate.max(1.0) * 2.0 + 60.0);
    workers
        .wait_all(|m| matches!(m, Up::Ready), &mut on_tick, setup)
        .await?;
    let loaded = monitor.read().await;
    let fds = pid.and_then(open_fds);
    if !args.hold_before_publish.is_zero() {
        say(&format!(
            "subscribers ready; publishing in {:?}",
            args.hold_before_publish
        ));
        run_for(&mut workers, &mut on_tick, args.hold_before_publish).await?;
    }
    let mut rates = Vec::new();
    let mut r = args.start_rate.max(0.1);
    while r <= args.max_rate * 1.000_001 && rates.len() < 64 {
        rates.push(r);
        r *= args.step_factor.max(1.01);
    }
    let total = args.step.as_secs_f64() * rates.len() as f64 + 2.0 * rates.len() as f64;
    let sampler = Sampler::start(
        acc.clone(),
        monitor,
        Duration::from_secs(1),
        env,
        Some(Duration::from_secs_f64(total)),
        loadgen_pids(&workers),
    );
    workers.broadcast(Ctl::Go);
    let pub_stats = Stats::new();
    let dialer = Dialer::new(target.clone(), Vec::new());
    let minter = Minter::new(&env.secret, Duration::from_secs(6 * 3600));
    let mut publisher =
        Publisher::new(&dialer, args, &env.run_id, &minter, pub_stats.clone()).await?;
    let t0 = Instant::now();
    let mut pubs: Vec<StepPub> = Vec::new();
    for (i, rate) in rates.iter().enumerate() {
        {
            let mut a = acc.lock().expect("accum lock");
            a.window.clear();
            a.window_errors = 0;
        }
        let mut step = tokio::spawn(publisher.run_step(i as u32, *rate, args.step));
        let (p, step_pub) = loop {
            tokio::select! {
                r = &mut step => break r?,
                msg = workers.next() => match msg {
                    Some((w, Up::Tick(t))) => on_tick(w, t),
                    Some((w, Up::Failed(e))) => bail!("worker {w} failed: {e}"),
                    Some(_) => {}
                    None => bail!("the workers are gone"),
                }
            }
        };
        publisher = p;
        // Let the step's tail arrive before judging it.
        run_for(&mut workers, &mut on_tick, Duration::from_millis(1500)).await?;
        let (p99_ms, errors) = {
            let a = acc.lock().expect("accum lock");
            let p99 = a
                .window
                .get(Class::Feed.name())
                .map(|h| h.value_at_quantile(0.99) as f64 / 1000.0)
                .unwrap_or(0.0);
            (p99, a.window_errors)
        };
        let failed = step_pub.failed > 0;
        let behind = (step_pub.posted as f64) < 0.9 * rate * args.step.as_secs_f64();
        pubs.push(step_pub);
        if !env.progress {
            say(&format!(
                "step {i}: {rate:.1} tasks/s, p99 ≈ {p99_ms:.1} ms{}",
                if errors > 0 { ", errors" } else { "" }
            ));
        }
        if p99_ms > args.p99_bound_ms || errors > 0 || failed || behind {
            break;
        }
    }
    let expected = publisher.expected();
    publisher.close().await;
    let load_secs = t0.elapsed().as_secs_f64();
    if !args.hold_before_publish.is_zero() {
        say(&format!(
            "steps done; subscribers disconnect in {:?}",
            args.hold_before_publish
        ));
        run_for(&mut workers, &mut on_tick, args.hold_before_publish).await?;
    }
    workers.broadcast(Ctl::Stop);
    workers
        .wait_all(
            |m| matches!(m, Up::Quiet),
            &mut on_tick,
            Duration::from_secs(60),
        )
        .await?;
    run_for(&mut workers, &mut on_tick, Duration::from_millis(500)).await?;
    let mut results = finish_workers(&mut workers, &mut on_tick, Duration::from_secs(300)).await?;
    let samp = sampler.finish().await;
    // The publisher's own measurements (HTTP errors, post latency) count too.
    results.push(WorkerResult {
        totals: pub_stats.totals(),
        ..WorkerResult::default()
    });
    let mut expect = LossBook::default();
    expect.expect("fanout", &expected);
    let mut report = pass_report(
        &target,
        spec.count,
        load_secs,
        &results,
        Some(expect),
        samp,
        ServerReadings {
            source: monitor_name,
            rss_before_kib: before.rss_kib,
            rss_loaded_kib: loaded.rss_kib,
            open_fds: fds,
        },
        args.subscribers as u64,
    );
    // Per-connection memory is the connections scenario's figure (here it would include
    // whatever the allocator kept from earlier runs).
    report.server.rss_per_connection_bytes = None;
    let subscribers = report.connections.subscribed;
    for sp in &pubs {
        let mut h = new_hist();
        let mut delivered = 0;
        for r in &results {
            if let Some(o) = r.steps.iter().find(|o| o.step == sp.step) {
                delivered += o.count;
                o.hist.merge_into(&mut h);
            }
        }
        let secs = sp.secs.max(args.step.as_secs_f64());
        let latency = Summary::of(&h);
        report.steps.push(StepReport {
            step: sp.step,
            rate: sp.rate,
            posted: sp.posted,
            failed: sp.failed,
            late: sp.late,
            delivered,
            expected_deliveries: sp.posted * subscribers,
            delivered_per_sec: delivered as f64 / secs,
            within_bound: latency.p99_ms <= args.p99_bound_ms
                && sp.failed == 0
                && delivered >= sp.posted * subscribers,
            latency,
        });
    }
    report.best_step = report
        .steps
        .iter()
        .filter(|s| s.within_bound)
        .max_by(|a, b| a.delivered_per_sec.total_cmp(&b.delivered_per_sec))
        .cloned();
    Ok(report)
}
