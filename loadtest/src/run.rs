//! The parent process: resolves the target (starting a server for `--smoke` and the baseline
//! when asked), registers bidders, drives the workers through each pass, samples the server,
//! shows progress, and turns everything into a [`Report`].

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::watch;

use crate::cli::{BaselineChoice, Cli, MarketArgs, Scenario};
use crate::digest::{LossBook, fnv};
use crate::fanout::{Publisher, StepPub};
use crate::net::{Dialer, Http, Minter, Target, unix_micros};
use crate::report::{
    Commands, Connections, PassReport, Point, Report, SHARED_MACHINE, ServerUsage, StepReport,
};
use crate::serverproc::ServerProc;
use crate::stats::{Class, Stats, Summary, Tick, Totals, new_hist};
use crate::sysmon::{Machine, Monitor, cpu_secs, open_fds};
use crate::worker::{Ctl, Up, WorkerResult, WorkerSpec, Workers};

/// Logs a line on stderr (above the progress bar when there is one).
pub fn say(msg: &str) {
    let mut err = std::io::stderr();
    let _ = writeln!(err, "gavel-loadtest: {msg}");
}

/// The settings `--smoke` runs `market` with: a handful of each role, a low rate, a few
/// seconds — about correctness (no loss, no errors), not speed.
pub fn smoke_market() -> MarketArgs {
    MarketArgs {
        seekers: 8,
        coaches: 12,
        bidders: Some(8),
        filtered_pct: 50,
        admins: 1,
        rate: 20.0,
        bids_per_task: 2,
        no_cancel: false,
        connect_rate: 500.0,
        quiet: Duration::from_millis(700),
        drain_timeout: Duration::from_secs(8),
    }
}

fn run_id() -> String {
    let h = fnv(&[
        &unix_micros().to_le_bytes(),
        &std::process::id().to_le_bytes(),
    ]);
    // Six base-36 characters: short ids, no `-` (ids are split on it).
    let mut n = h;
    let mut s = String::new();
    for _ in 0..6 {
        let d = (n % 36) as u32;
        s.push(std::char::from_digit(d, 36).expect("digit"));
        n /= 36;
    }
    format!("lt{s}")
}

/// Everything a pass needs to know.
struct Env {
    cli: Cli,
    scenario: Scenario,
    secret: String,
    run_id: String,
    progress: bool,
    smoke: bool,
}

/// Runs the command line; `Ok(true)` when the run passed.
pub async fn run(mut cli: Cli) -> anyhow::Result<bool> {
    if cli.common.smoke {
        if !matches!(cli.scenario, Some(Scenario::Market(_))) {
            cli.scenario = Some(Scenario::Market(smoke_market()));
        }
        cli.common.duration.get_or_insert(Duration::from_secs(4));
    }
    let scenario = cli
        .scenario
        .clone()
        .context("choose a scenario (market, connections, fanout, soak, baseline-server) or --smoke; see --help")?;
    if let Scenario::BaselineServer(b) = &scenario {
        crate::baseline::serve(b.listen, b.read_buffer_bytes).await?;
        return Ok(true);
    }
    let run_id = run_id();
    let baseline_only = baseline_choice(&scenario).is_some_and(|b| b.baseline_only);
    let own_server = cli.common.smoke && cli.common.url.is_none();
    let secret = match (&cli.common.jwt_secret, own_server) {
        (Some(s), _) => s.clone(),
        (None, true) => format!(
            "smoke-{:016x}{:016x}",
            fnv(&[run_id.as_bytes()]),
            unix_micros()
        ),
        (None, false) if baseline_only => String::new(),
        (None, false) => bail!(
            "--jwt-secret (or GAVEL_JWT_SECRET) is required: the harness mints its own tokens with the server's secret"
        ),
    };
    let progress = !cli.common.no_progress && !cli.common.smoke && std::io::stderr().is_terminal();
    let env = Env {
        scenario: scenario.clone(),
        secret,
        run_id: run_id.clone(),
        progress,
        smoke: cli.common.smoke,
        cli: cli.clone(),
    };

    let mut smoke_server = None;
    let url = match &cli.common.url {
        Some(u) => u.clone(),
        None if own_server => {
            let bin = match &cli.common.gavel_bin {
                Some(b) => b.clone(),
                None => std::env::current_exe()?.with_file_name("gavel"),
            };
            let server = ServerProc::gavel(&bin, &env.secret, &run_id).await?;
            say(&format!(
                "started {} serve on {} (pid {})",
                bin.display(),
                server.addr,
                server.pid
            ));
            let url = server.url();
            smoke_server = Some(server);
            url
        }
        None => "ws://127.0.0.1:8080".into(),
    };
    let server_pid = cli
        .common
        .server_pid
        .or(smoke_server.as_ref().map(|s| s.pid));

    let mut report = Report {
        scenario: if env.smoke {
            "market (smoke)".into()
        } else {
            scenario.name().into()
        },
        command_line: std::env::args().collect(),
        machine: Machine::read(),
        note: SHARED_MACHINE.into(),
        run_id: run_id.clone(),
        params: serde_json::to_value(&scenario)?,
        ..Report::default()
    };

    let outcome: anyhow::Result<()> = async {
        match &scenario {
            Scenario::Market(_) | Scenario::Soak(_) => {
                let target = Target::parse(&url, false)?;
                let mut pass = market_pass(&env, target, server_pid).await?;
                if let Some(s) = &smoke_server {
                    pass.server.error_log_lines = Some(*s.errors.lock().expect("errors lock"));
                }
                report.passes.push(pass);
            }
            Scenario::Connections(_) | Scenario::Fanout(_) => {
                let choice = baseline_choice(&scenario).cloned().unwrap_or_default();
                if !choice.baseline_only {
                    let target = Target::parse(&url, false)?;
                    report.passes.push(pass_of(&env, target, server_pid).await?);
                }
                if choice.baseline || choice.baseline_only {
                    let (target, proc_) = match &choice.baseline_url {
                        Some(u) => (Target::parse(u, true)?, None),
                        None => {
                            let p = ServerProc::baseline().await?;
                            say(&format!(
                                "started the baseline server on {} (pid {})",
                                p.addr, p.pid
                            ));
                            (Target::parse(&p.url(), true)?, Some(p))
                        }
                    };
                    // With only a baseline pass, --server-pid names the baseline server.
                    let pid = proc_.as_ref().map(|p| p.pid).or(if choice.baseline_only {
                        server_pid
                    } else {
                        None
                    });
                    let pass = pass_of(&env, target, pid).await;
                    if let Some(p) = proc_ {
                        p.stop().await;
                    }
                    report.passes.push(pass?);
                }
            }
            Scenario::BaselineServer(_) => unreachable!("handled above"),
        }
        Ok(())
    }
    .await;

    if let Some(server) = smoke_server {
        let tail: Vec<String> = server
            .tail
            .lock()
            .expect("tail lock")
            .iter()
            .cloned()
            .collect();
        match server.stop().await {
            Some(0) => {}
            other => {
                report.failures.push(format!(
                    "the gavel server exited with {other:?} after SIGTERM"
                ));
                say(&format!(
                    "the server's last log lines:\n{}",
                    tail.join("\n")
                ));
            }
        }
    }
    if let Err(e) = outcome {
        report.failures.push(format!("{e:#}"));
    }
    ratios(&mut report);
    for p in &report.passes {
        report.failures.extend(verdict(p, &env));
    }
    report.passed = report.failures.is_empty();

    let mut out = std::io::stdout();
    let _ = write!(out, "{}", report.table());
    let _ = out.flush();
    if let Some(path) = &cli.common.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &cli.common.plot {
        std::fs::write(path, crate::plot::svg(&report))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(report.passed)
}

fn baseline_choice(s: &Scenario) -> Option<&BaselineChoice> {
    match s {
        Scenario::Connections(c) => Some(&c.baseline),
        Scenario::Fanout(f) => Some(&f.baseline),
        _ => None,
    }
}

async fn pass_of(env: &Env, target: Target, pid: Option<u32>) -> anyhow::Result<PassReport> {
    match &env.scenario {
        Scenario::Connections(_) => connections_pass(env, target, pid).await,
        Scenario::Fanout(_) => fanout_pass(env, target, pid).await,
        _ => unreachable!("only connections and fanout have passes"),
    }
}

/// Why a pass failed (nothing: it passed).
fn verdict(p: &PassReport, env: &Env) -> Vec<String> {
    let mut f = Vec::new();
    let who = &p.target;
    if !p.loss.ok {
        f.push(format!(
            "{who}: events lost, duplicated or leaked: {}",
            p.loss.details.join("; ")
        ));
    }
    if !p.tallies.errors.is_empty() {
        f.push(format!("{who}: error replies {:?}", p.tallies.errors));
    }
    if !p.tallies.closes.is_empty() {
        f.push(format!("{who}: unexpected closes {:?}", p.tallies.closes));
    }
    if !p.tallies.transport.is_empty() {
        f.push(format!(
            "{who}: connection problems {:?}",
            p.tallies.transport
        ));
    }
    if p.violations.count > 0 {
        f.push(format!(
            "{who}: {} protocol violations, e.g. {}",
            p.violations.count,
            p.violations.examples.first().cloned().unwrap_or_default()
        ));
    }
    if p.connections.failed > 0 {
        f.push(format!(
            "{who}: {} connections could not be set up",
            p.connections.failed
        ));
    }
    if p.commands.unanswered > 0 {
        f.push(format!(
            "{who}: {} commands unanswered",
            p.commands.unanswered
        ));
    }
    if env.smoke && p.commands.tasks_posted == 0 {
        f.push(format!("{who}: the smoke run posted no task"));
    }
    f
}

/// gavel ÷ baseline for the figures both passes have.
fn ratios(report: &mut Report) {
    let find = |t: &str| report.passes.iter().find(|p| p.target == t);
    let (Some(g), Some(b)) = (find("gavel"), find("baseline")) else {
        return;
    };
    let mut r = BTreeMap::new();
    if let (Some(gs), Some(bs)) = (&g.best_step, &b.best_step)
        && bs.delivered_per_sec > 0.0
    {
        r.insert(
            "best delivered msgs/s".into(),
            gs.delivered_per_sec / bs.delivered_per_sec,
        );
    }
    if let (Some(gr), Some(br)) = (
        g.server.rss_per_connection_bytes,
        b.server.rss_per_connection_bytes,
    ) && br > 0.0
    {
        r.insert("RSS per connection".into(), gr / br);
    }
    if let (Some(gl), Some(bl)) = (g.latency_ms.get("connect"), b.latency_ms.get("connect"))
        && bl.p99_ms > 0.0
    {
        r.insert("connect+subscribe p99".into(), gl.p99_ms / bl.p99_ms);
    }
    report.ratio_to_baseline = r;
}

/// Ticks from every worker, folded together.
#[derive(Debug)]
struct Accum {
    events: u64,
    errors: u64,
    hists: BTreeMap<String, Histogram<u64>>,
    window: BTreeMap<String, Histogram<u64>>,
    window_errors: u64,
    open: Vec<i64>,
    connected: Vec<u64>,
}

impl Accum {
    fn new(workers: usize) -> Self {
        Accum {
            events: 0,
            errors: 0,
            hists: BTreeMap::new(),
            window: BTreeMap::new(),
            window_errors: 0,
            open: vec![0; workers],
            connected: vec![0; workers],
        }
    }

    fn add(&mut self, w: usize, t: Tick) {
        self.events += t.events;
        self.errors += t.errors;
        self.window_errors += t.errors;
        if w < self.open.len() {
            self.open[w] = t.open;
            self.connected[w] = t.connected;
        }
        for (k, h) in t.hists {
            h.merge_into(self.hists.entry(k.clone()).or_insert_with(new_hist));
            h.merge_into(self.window.entry(k).or_insert_with(new_hist));
        }
    }
}

/// Samples the server and the ticks into the series, and drives the progress display.
struct Sampler {
    stop: watch::Sender<bool>,
    handle: tokio::task::JoinHandle<SamplerOut>,
}

#[derive(Debug, Default)]
struct SamplerOut {
    series: Vec<Point>,
    rss_peak: Option<u64>,
    cpu: Vec<f64>,
    loadgen_cpu_pct: Option<f64>,
}

impl Sampler {
    fn start(
        acc: Arc<Mutex<Accum>>,
        mut monitor: Monitor,
        every: Duration,
        env: &Env,
        total: Option<Duration>,
        loadgen_pids: Vec<u32>,
    ) -> Sampler {
        let (stop, mut stopped) = watch::channel(false);
        let bar = if env.progress {
            let bar = match total {
                Some(t) => ProgressBar::new(t.as_secs().max(1)),
                None => ProgressBar::new_spinner(),
            };
            bar.set_draw_target(ProgressDrawTarget::stderr());
            let style =
                ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len}s {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            Some(bar)
        } else {
            None
        };
        let chatty = !env.progress && !env.smoke && !env.cli.common.no_progress;
        let handle = tokio::spawn(async move {
            let start = Instant::now();
            let cpu0: f64 = loadgen_pids.iter().filter_map(|p| cpu_secs(*p)).sum();
            let mut out = SamplerOut::default();
            let _ = monitor.sample().await;
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            let mut last_say = Instant::now();
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.changed() => break,
                }
                let (usage, cpu) = monitor.sample().await;
                let point = {
                    let mut a = acc.lock().expect("accum lock");
                    let dt = every.as_secs_f64();
                    let p99 = a
                        .hists
                        .iter()
                        .filter(|(k, _)| ["feed", "task", "admin", "connect"].contains(&k.as_str()))
                        .map(|(k, h)| (k.clone(), h.value_at_quantile(0.99) as f64 / 1000.0))
                        .collect();
                    let p = Point {
                        t_secs: start.elapsed().as_secs_f64(),
                        msgs_per_sec: a.events as f64 / dt,
                        p99_ms: p99,
                        rss_kib: usage.rss_kib,
                        cpu_pct: cpu,
                        open_connections: a.open.iter().sum(),
                        errors: a.errors,
                    };
                    a.events = 0;
                    a.hists.clear();
                    p
                };
                if let Some(r) = usage.rss_kib {
                    out.rss_peak = Some(out.rss_peak.unwrap_or(0).max(r));
                }
                if let Some(c) = cpu {
                    out.cpu.push(c);
                }
                let msg = format!(
                    "conns {} | {:.0} msgs/s | p99 {} | errors {} | RSS {} MiB",
                    point.open_connections,
                    point.msgs_per_sec,
                    point
                        .p99_ms
                        .iter()
                        .map(|(k, v)| format!("{k} {v:.1}ms"))
                        .collect::<Vec<_>>()
                        .join(" "),
                    point.errors,
                    point
                        .rss_kib
                        .map(|r| (r / 1024).to_string())
                        .unwrap_or_else(|| "?".into())
                );
                if let Some(bar) = &bar {
                    bar.set_position(start.elapsed().as_secs());
                    bar.set_message(msg);
                } else if chatty && last_say.elapsed() >= Duration::from_secs(10) {
                    last_say = Instant::now();
                    say(&format!("{:.0}s: {msg}", start.elapsed().as_secs_f64()));
                }
                out.series.push(point);
            }
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            let cpu1: f64 = loadgen_pids.iter().filter_map(|p| cpu_secs(*p)).sum();
            let secs = start.elapsed().as_secs_f64();
            if secs > 0.0 && !loadgen_pids.is_empty() {
                out.loadgen_cpu_pct = Some((cpu1 - cpu0) / secs * 100.0);
            }
            out
        });
        Sampler { stop, handle }
    }

    async fn finish(self) -> SamplerOut {
        let _ = self.stop.send(true);
        self.handle.await.unwrap_or_default()
    }
}

/// Processes worker messages for `d` (or until Ctrl-C).
async fn run_for(
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

fn loadgen_pids(workers: &Workers) -> Vec<u32> {
    let mut pids = vec![std::process::id()];
    pids.extend_from_slice(workers.pids());
    pids
}

/// Merges the workers' results.
fn merge(results: &[WorkerResult]) -> (Totals, BTreeMap<String, Histogram<u64>>, LossBook) {
    let mut t = Totals::default();
    let mut hists: BTreeMap<String, Histogram<u64>> = BTreeMap::new();
    let mut loss = LossBook::default();
    for r in results {
        for (k, h) in &r.totals.hists {
            h.merge_into(hists.entry(k.clone()).or_insert_with(new_hist));
        }
        t.events += r.totals.events;
        t.stats_frames += r.totals.stats_frames;
        t.sent += r.totals.sent;
        t.replies_ok += r.totals.replies_ok;
        t.replies_err += r.totals.replies_err;
        t.unanswered += r.totals.unanswered;
        t.connected += r.totals.connected;
        t.tallies.merge(&r.totals.tallies);
        t.violations.merge(&r.totals.violations);
        loss.merge(&r.loss);
    }
    (t, hists, loss)
}

fn done_results(done: Vec<Up>) -> Vec<WorkerResult> {
    done.into_iter()
        .filter_map(|m| match m {
            Up::Done(r) => Some(*r),
            _ => None,
        })
        .collect()
}

/// The common tail of a pass's report.
#[allow(clippy::too_many_arguments)]
fn pass_report(
    target: &Target,
    workers: u32,
    load_secs: f64,
    results: &[WorkerResult],
    extra_loss: Option<LossBook>,
    samp: SamplerOut,
    monitor_name: String,
    rss_before: Option<u64>,
    rss_loaded: Option<u64>,
    wanted: u64,
    fds: Option<u64>,
) -> PassReport {
    let (totals, hists, mut loss) = merge(results);
    if let Some(extra) = extra_loss {
        loss.merge(&extra);
    }
    let latency_ms = hists
        .iter()
        .map(|(k, h)| (k.clone(), Summary::of(h)))
        .collect();
    let connected = totals.connected;
    let per_conn = match (rss_before, rss_loaded) {
        (Some(b), Some(l)) if connected > 0 => {
            Some((l as f64 - b as f64) * 1024.0 / connected as f64)
        }
        _ => None,
    };
    let cpu_avg =
        (!samp.cpu.is_empty()).then(|| samp.cpu.iter().sum::<f64>() / samp.cpu.len() as f64);
    let cpu_peak = samp
        .cpu
        .iter()
        .copied()
        .fold(None, |m: Option<f64>, c| Some(m.map_or(c, |m| m.max(c))));
    PassReport {
        target: if target.baseline { "baseline" } else { "gavel" }.into(),
        url: target.ws_url.clone(),
        workers,
        load_secs,
        latency_ms,
        events_received: totals.events,
        delivered_per_sec: if load_secs > 0.0 {
            totals.events as f64 / load_secs
        } else {
            0.0
        },
        commands: Commands {
            sent: totals.sent,
            ok: totals.replies_ok,
            refused: totals.replies_err,
            unanswered: totals.unanswered,
            tasks_posted: results.iter().map(|r| r.posted).sum(),
            bids_placed: results.iter().map(|r| r.bids).sum(),
            tasks_canceled: results.iter().map(|r| r.canceled).sum(),
        },
        connections: Connections {
            wanted,
            subscribed: connected,
            failed: results.iter().map(|r| r.setup_failures).sum(),
        },
        tallies: totals.tallies,
        violations: totals.violations,
        loss: loss.verdict(),
        server: ServerUsage {
            source: monitor_name,
            rss_before_kib: rss_before,
            rss_loaded_kib: rss_loaded,
            rss_peak_kib: samp.rss_peak,
            rss_per_connection_bytes: per_conn,
            cpu_avg_pct: cpu_avg,
            cpu_peak_pct: cpu_peak,
            open_fds: fds,
            loadgen_cpu_avg_pct: samp.loadgen_cpu_pct,
            error_log_lines: None,
        },
        series: samp.series,
        steps: Vec::new(),
        best_step: None,
    }
}

fn spec(env: &Env, target: &Target) -> WorkerSpec {
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
async fn register_bidders(env: &Env, target: &Target, bidders: usize) -> anyhow::Result<()> {
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
fn warn_rate_limits(args: &MarketArgs, secs: f64) {
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

async fn market_pass(env: &Env, target: Target, pid: Option<u32>) -> anyhow::Result<PassReport> {
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
    workers.broadcast(Ctl::Finish);
    let done = workers
        .wait_all(
            |m| matches!(m, Up::Done(_)),
            &mut on_tick,
            Duration::from_secs(120),
        )
        .await?;
    let samp = sampler.finish().await;
    let results = done_results(done);
    let mut report = pass_report(
        &target,
        spec.count,
        load_secs,
        &results,
        None,
        samp,
        monitor_name,
        before.rss_kib,
        loaded.rss_kib,
        conns as u64,
        fds,
    );
    // RSS here also holds every task posted: a per-connection figure would mislead.
    report.server.rss_per_connection_bytes = None;
    Ok(report)
}

async fn connections_pass(
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
    workers.broadcast(Ctl::Finish);
    let done = workers
        .wait_all(
            |m| matches!(m, Up::Done(_)),
            &mut on_tick,
            Duration::from_secs(300),
        )
        .await?;
    let samp = sampler.finish().await;
    let results = done_results(done);
    Ok(pass_report(
        &target,
        spec.count,
        load_secs,
        &results,
        None,
        samp,
        monitor_name,
        before.rss_kib,
        loaded.rss_kib,
        args.connections as u64,
        fds,
    ))
}

async fn fanout_pass(env: &Env, target: Target, pid: Option<u32>) -> anyhow::Result<PassReport> {
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
    workers.broadcast(Ctl::Stop);
    workers
        .wait_all(
            |m| matches!(m, Up::Quiet),
            &mut on_tick,
            Duration::from_secs(60),
        )
        .await?;
    run_for(&mut workers, &mut on_tick, Duration::from_millis(500)).await?;
    workers.broadcast(Ctl::Finish);
    let done = workers
        .wait_all(
            |m| matches!(m, Up::Done(_)),
            &mut on_tick,
            Duration::from_secs(300),
        )
        .await?;
    let samp = sampler.finish().await;
    let mut results = done_results(done);
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
        monitor_name,
        before.rss_kib,
        loaded.rss_kib,
        args.subscribers as u64,
        fds,
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
