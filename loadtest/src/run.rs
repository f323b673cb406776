//! The parent process: resolves the target (starting a server for `--smoke` and the baseline
//! when asked), registers bidders, drives the workers through each pass, samples the server,
//! shows progress, and turns everything into a [`Report`].

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::cli::{BaselineChoice, Cli, MarketArgs, Scenario};
use crate::digest::fnv;
use crate::net::{Target, unix_micros};
use crate::passes::{connections_pass, fanout_pass, market_pass};
use crate::report::{PassReport, Report, SHARED_MACHINE};
use crate::serverproc::ServerProc;
use crate::sysmon::Machine;

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
pub(crate) struct Env {
    pub cli: Cli,
    pub scenario: Scenario,
    pub secret: String,
    pub run_id: String,
    pub progress: bool,
    pub smoke: bool,
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
        crate::baseline::serve(b.listen, b.read_buffer_bytes, b.write_per_frame).await?;
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
                            let p = ServerProc::baseline(choice.baseline_plain).await?;
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
    if let Scenario::Soak(soak) = &env.scenario {
        match &p.soak {
            Some(t) if t.rss_growth_pct > soak.max_rss_growth_pct => f.push(format!(
                "{who}: server RSS grew {:.1} % over the soak ({} → {} KiB), more than {} %",
                t.rss_growth_pct, t.rss_start_kib, t.rss_end_kib, soak.max_rss_growth_pct
            )),
            Some(_) => {}
            None => f.push(format!(
                "{who}: too few samples after the warm-up for a trend (lengthen --duration)"
            )),
        }
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
