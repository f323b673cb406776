//! What the parent gathers while a pass runs: the workers' ticks folded together ([`Accum`]),
//! and the [`Sampler`] that reads the server's RSS and CPU each interval, keeps the series for
//! the plot and drives the progress display.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::watch;

use crate::report::Point;
use crate::run::{Env, say};
use crate::stats::{Tick, new_hist};
use crate::sysmon::{Monitor, cpu_secs};

/// Ticks from every worker, folded together.
#[derive(Debug)]
pub(crate) struct Accum {
    pub events: u64,
    pub errors: u64,
    pub hists: BTreeMap<String, Histogram<u64>>,
    pub window: BTreeMap<String, Histogram<u64>>,
    pub window_errors: u64,
    pub open: Vec<i64>,
    pub connected: Vec<u64>,
}

impl Accum {
    pub fn new(workers: usize) -> Self {
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

    pub fn add(&mut self, w: usize, t: Tick) {
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
pub(crate) struct Sampler {
    stop: watch::Sender<bool>,
    handle: tokio::task::JoinHandle<SamplerOut>,
}

#[derive(Debug, Default)]
pub(crate) struct SamplerOut {
    pub series: Vec<Point>,
    pub rss_peak: Option<u64>,
    pub cpu: Vec<f64>,
    pub loadgen_cpu_pct: Option<f64>,
}

impl Sampler {
    pub fn start(
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

    pub async fn finish(self) -> SamplerOut {
        let _ = self.stop.send(true);
        self.handle.await.unwrap_or_default()
    }
}
