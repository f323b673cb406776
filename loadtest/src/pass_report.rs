//! Folding the workers' results of one pass into its [`PassReport`].

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use crate::digest::LossBook;
use crate::net::Target;
use crate::report::{Commands, Connections, PassReport, ServerUsage};
use crate::sampler::SamplerOut;
use crate::stats::{Summary, Totals, new_hist};
use crate::worker::{Up, WorkerResult};

/// Merges the workers' results.
pub(crate) fn merge(
    results: &[WorkerResult],
) -> (Totals, BTreeMap<String, Histogram<u64>>, LossBook) {
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

pub(crate) fn done_results(done: Vec<Up>) -> Vec<WorkerResult> {
    done.into_iter()
        .filter_map(|m| match m {
            Up::Done(r) => Some(*r),
            _ => None,
        })
        .collect()
}

/// What was read off the server around a pass: before the load and with it applied.
#[derive(Debug)]
pub(crate) struct ServerReadings {
    /// `/proc/<pid>`, `/metrics` or `unavailable`.
    pub source: String,
    pub rss_before_kib: Option<u64>,
    pub rss_loaded_kib: Option<u64>,
    pub open_fds: Option<u64>,
}

/// The common tail of a pass's report: `wanted` connections, `results` from every worker.
#[allow(clippy::too_many_arguments)]
pub(crate) fn pass_report(
    target: &Target,
    workers: u32,
    load_secs: f64,
    results: &[WorkerResult],
    extra_loss: Option<LossBook>,
    samp: SamplerOut,
    server: ServerReadings,
    wanted: u64,
) -> PassReport {
    let ServerReadings {
        source,
        rss_before_kib: rss_before,
        rss_loaded_kib: rss_loaded,
        open_fds: fds,
    } = server;
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
            source,
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
        soak: None,
    }
}
