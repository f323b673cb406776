//! The result of a run: what is written with `--json`, and the summary table printed at the
//! end.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::digest::LossVerdict;
use crate::stats::{Summary, Tallies, Violations};
use crate::sysmon::Machine;

/// Said next to every figure: the numbers are only meaningful with it.
pub const SHARED_MACHINE: &str =
    "server and load generator share this machine: every figure includes that contention";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    pub scenario: String,
    pub passed: bool,
    pub failures: Vec<String>,
    pub command_line: Vec<String>,
    pub machine: Machine,
    pub note: String,
    pub run_id: String,
    pub params: serde_json::Value,
    pub passes: Vec<PassReport>,
    /// gavel ÷ baseline for the pass's headline figures (fanout, connections).
    pub ratio_to_baseline: BTreeMap<String, f64>,
}

/// One pass: the scenario against one server (gavel, or the baseline).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PassReport {
    pub target: String,
    pub url: String,
    pub workers: u32,
    /// The load phase (market, soak), the hold (connections) or all steps (fanout).
    pub load_secs: f64,
    pub latency_ms: BTreeMap<String, Summary>,
    pub events_received: u64,
    pub delivered_per_sec: f64,
    pub commands: Commands,
    pub connections: Connections,
    pub tallies: Tallies,
    pub violations: Violations,
    pub loss: LossVerdict,
    pub server: ServerUsage,
    pub series: Vec<Point>,
    pub steps: Vec<StepReport>,
    pub best_step: Option<StepReport>,
    /// `soak` only: how RSS and p99 moved over the load.
    pub soak: Option<SoakTrend>,
}

/// How a soak's server RSS and p99 latencies moved over the load, the warm-up left out.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SoakTrend {
    pub warmup_secs: f64,
    pub rss_start_kib: u64,
    pub rss_end_kib: u64,
    pub rss_growth_pct: f64,
    /// Per latency class: the mean of the sampling windows' p99 in the first half of the
    /// samples, and in the second half — "flat" means these two agree.
    pub p99_first_half_ms: BTreeMap<String, f64>,
    pub p99_second_half_ms: BTreeMap<String, f64>,
}

impl SoakTrend {
    /// The trend of the samples taken between `warmup` and `load_secs` (the sampler's clock
    /// starts with the load); `None` when fewer than two samples fall in it.
    pub fn of(series: &[Point], warmup_secs: f64, load_secs: f64) -> Option<SoakTrend> {
        let kept: Vec<&Point> = series
            .iter()
            .filter(|p| p.t_secs >= warmup_secs && p.t_secs <= load_secs + 1.0)
            .collect();
        let rss: Vec<u64> = kept.iter().filter_map(|p| p.rss_kib).collect();
        if kept.len() < 2 || rss.len() < 2 {
            return None;
        }
        let (start, end) = (rss[0], rss[rss.len() - 1]);
        let (first, second) = kept.split_at(kept.len() / 2);
        Some(SoakTrend {
            warmup_secs,
            rss_start_kib: start,
            rss_end_kib: end,
            rss_growth_pct: (end as f64 - start as f64) / start.max(1) as f64 * 100.0,
            p99_first_half_ms: mean_p99(first),
            p99_second_half_ms: mean_p99(second),
        })
    }
}

fn mean_p99(points: &[&Point]) -> BTreeMap<String, f64> {
    let mut sums: BTreeMap<String, (f64, u32)> = BTreeMap::new();
    for p in points {
        for (class, v) in &p.p99_ms {
            let e = sums.entry(class.clone()).or_default();
            e.0 += v;
            e.1 += 1;
        }
    }
    sums.into_iter()
        .map(|(k, (sum, n))| (k, sum / f64::from(n)))
        .collect()
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Commands {
    pub sent: u64,
    pub ok: u64,
    pub refused: u64,
    pub unanswered: i64,
    pub tasks_posted: u64,
    pub bids_placed: u64,
    pub tasks_canceled: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Connections {
    pub wanted: u64,
    pub subscribed: u64,
    pub failed: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ServerUsage {
    /// `/proc/<pid>`, `/metrics` or `unavailable`.
    pub source: String,
    pub rss_before_kib: Option<u64>,
    /// With every connection up (connections), or at the end of the load.
    pub rss_loaded_kib: Option<u64>,
    pub rss_peak_kib: Option<u64>,
    /// (loaded − before) ÷ connections.
    pub rss_per_connection_bytes: Option<f64>,
    pub cpu_avg_pct: Option<f64>,
    pub cpu_peak_pct: Option<f64>,
    pub open_fds: Option<u64>,
    /// CPU % of the load generator's own processes over the load phase.
    pub loadgen_cpu_avg_pct: Option<f64>,
    pub error_log_lines: Option<u64>,
}

/// One second (or one `--sample-every`) of the run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Point {
    pub t_secs: f64,
    pub msgs_per_sec: f64,
    pub p99_ms: BTreeMap<String, f64>,
    pub rss_kib: Option<u64>,
    pub cpu_pct: Option<f64>,
    pub open_connections: i64,
    pub errors: u64,
}

/// One fan-out step.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StepReport {
    pub step: u32,
    /// Tasks per second asked for.
    pub rate: f64,
    pub posted: u64,
    pub failed: u64,
    pub late: u64,
    pub delivered: u64,
    /// What N subscribers × posted would be.
    pub expected_deliveries: u64,
    pub delivered_per_sec: f64,
    pub latency: Summary,
    pub within_bound: bool,
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "n/a".into())
}

impl Report {
    /// The human summary.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "\n== gavel-loadtest {} — {} ==",
            self.scenario,
            if self.passed { "PASSED" } else { "FAILED" }
        );
        let _ = writeln!(
            s,
            "machine: {} cpus ({}), {} MiB, Linux {} — {}",
            self.machine.cpus,
            self.machine.cpu_model,
            self.machine.mem_total_mib,
            self.machine.kernel,
            self.note
        );
        for p in &self.passes {
            let _ = writeln!(
                s,
                "\n-- {} ({}) — {} worker process(es), {:.1} s of load",
                p.target, p.url, p.workers, p.load_secs
            );
            let _ = writeln!(
                s,
                "connections: {} subscribed of {} ({} failed)",
                p.connections.subscribed, p.connections.wanted, p.connections.failed
            );
            if p.commands.sent > 0 {
                let c = &p.commands;
                let _ = writeln!(
                    s,
                    "commands: {} sent, {} ok, {} refused, {} unanswered; tasks posted {}, bids {}, canceled {}",
                    c.sent,
                    c.ok,
                    c.refused,
                    c.unanswered,
                    c.tasks_posted,
                    c.bids_placed,
                    c.tasks_canceled
                );
            }
            let _ = writeln!(
                s,
                "events received: {} ({:.0} msgs/s over the load)",
                p.events_received, p.delivered_per_sec
            );
            if !p.latency_ms.is_empty() {
                let _ = writeln!(
                    s,
                    "{:<10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
                    "latency", "count", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms"
                );
                for (name, l) in &p.latency_ms {
                    let _ = writeln!(
                        s,
                        "{:<10} {:>9} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                        name, l.count, l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms
                    );
                }
            }
            if !p.steps.is_empty() {
                let _ = writeln!(
                    s,
                    "{:>4} {:>9} {:>8} {:>11} {:>12} {:>9} {:>9} {:>6}",
                    "step", "tasks/s", "posted", "delivered", "msgs/s", "p50 ms", "p99 ms", "ok"
                );
                for st in &p.steps {
                    let _ = writeln!(
                        s,
                        "{:>4} {:>9.1} {:>8} {:>11} {:>12.0} {:>9.2} {:>9.2} {:>6}",
                        st.step,
                        st.rate,
                        st.posted,
                        st.delivered,
                        st.delivered_per_sec,
                        st.latency.p50_ms,
                        st.latency.p99_ms,
                        if st.within_bound { "yes" } else { "no" }
                    );
                }
                match &p.best_step {
                    Some(b) => {
                        let _ = writeln!(
                            s,
                            "best: {:.0} delivered msgs/s at {:.1} tasks/s (p99 {:.2} ms)",
                            b.delivered_per_sec, b.rate, b.latency.p99_ms
                        );
                    }
                    None => {
                        let _ = writeln!(s, "best: no step stayed within the p99 bound");
                    }
                }
            }
            let sv = &p.server;
            let _ = writeln!(
                s,
                "server ({}): RSS before {} KiB, loaded {} KiB, peak {} KiB, per connection {} bytes; CPU avg {}%, peak {}%; fds {}; load generator CPU avg {}%",
                sv.source,
                opt(sv.rss_before_kib),
                opt(sv.rss_loaded_kib),
                opt(sv.rss_peak_kib),
                opt(sv.rss_per_connection_bytes.map(|b| format!("{b:.0}"))),
                opt(sv.cpu_avg_pct.map(|c| format!("{c:.0}"))),
                opt(sv.cpu_peak_pct.map(|c| format!("{c:.0}"))),
                opt(sv.open_fds),
                opt(sv.loadgen_cpu_avg_pct.map(|c| format!("{c:.0}"))),
            );
            let loss = if p.loss.ok {
                format!(
                    "none ({} subscribers/tasks checked)",
                    p.loss.subscribers_checked
                )
            } else {
                format!(
                    "{} of {} failed: {}",
                    p.loss.subscribers_failed,
                    p.loss.subscribers_checked,
                    p.loss.details.join("; ")
                )
            };
            let _ = writeln!(s, "loss: {loss}");
            let t = &p.tallies;
            let _ = writeln!(
                s,
                "errors: {:?}; unexpected closes: {:?}; transport: {:?}; protocol violations: {}",
                t.errors, t.closes, t.transport, p.violations.count
            );
            for e in t.examples.iter().take(5) {
                let _ = writeln!(s, "  refused: {e}");
            }
            for v in p.violations.examples.iter().take(5) {
                let _ = writeln!(s, "  violation: {v}");
            }
            if let Some(t) = &p.soak {
                let halves = t
                    .p99_first_half_ms
                    .iter()
                    .map(|(k, a)| {
                        let b = t.p99_second_half_ms.get(k).copied().unwrap_or(f64::NAN);
                        format!("{k} {a:.2} → {b:.2} ms")
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                let _ = writeln!(
                    s,
                    "soak trend after {:.0} s of warm-up: RSS {} → {} KiB ({:+.1} %); mean window p99, first half → second half: {halves}",
                    t.warmup_secs, t.rss_start_kib, t.rss_end_kib, t.rss_growth_pct
                );
            }
            if p.series.len() > 1 && self.scenario == "soak" {
                let _ = writeln!(
                    s,
                    "{:>8} {:>10} {:>10} {:>10} {:>12}",
                    "t s", "msgs/s", "feed p99", "task p99", "RSS KiB"
                );
                for pt in &p.series {
                    let _ = writeln!(
                        s,
                        "{:>8.0} {:>10.0} {:>10.2} {:>10.2} {:>12}",
                        pt.t_secs,
                        pt.msgs_per_sec,
                        pt.p99_ms.get("feed").copied().unwrap_or(0.0),
                        pt.p99_ms.get("task").copied().unwrap_or(0.0),
                        opt(pt.rss_kib)
                    );
                }
            }
        }
        for (k, v) in &self.ratio_to_baseline {
            let _ = writeln!(s, "gavel ÷ baseline, {k}: {v:.3}");
        }
        for f in &self.failures {
            let _ = writeln!(s, "FAILURE: {f}");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(t: f64, rss: u64, feed_p99: f64) -> Point {
        Point {
            t_secs: t,
            rss_kib: Some(rss),
            p99_ms: [("feed".to_owned(), feed_p99)].into(),
            ..Point::default()
        }
    }

    #[test]
    fn a_soak_trend_leaves_out_the_warmup_and_the_drain() {
        let series = [
            point(30.0, 50_000, 90.0), // warm-up
            point(60.0, 100_000, 10.0),
            point(90.0, 101_000, 12.0),
            point(120.0, 102_000, 14.0),
            point(150.0, 103_000, 16.0),
            point(200.0, 400_000, 99.0), // after the load
        ];
        let t = SoakTrend::of(&series, 60.0, 150.0).unwrap();
        assert_eq!((t.rss_start_kib, t.rss_end_kib), (100_000, 103_000));
        assert!((t.rss_growth_pct - 3.0).abs() < 1e-9);
        assert_eq!(t.p99_first_half_ms["feed"], 11.0);
        assert_eq!(t.p99_second_half_ms["feed"], 15.0);
        assert!(SoakTrend::of(&series[..2], 60.0, 150.0).is_none());
    }
}
