//! What a process measures: HDR latency histograms (in microseconds) per class, counters,
//! tallies of errors and closes, and protocol violations. Connection tasks record into small
//! local batches that flush into the shared histograms, so tens of thousands of tasks never
//! contend on one lock per sample.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::net::unix_micros;

/// Largest latency recorded: one hour, in microseconds (larger values saturate).
pub const MAX_MICROS: u64 = 3_600_000_000;

/// A new latency histogram: 1 µs .. 1 h, 3 significant digits.
pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid histogram bounds")
}

/// What a latency measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Class {
    /// `post_task` sent → `task.opened` received by a `feed` subscriber.
    Feed,
    /// `place_bid` sent → `bid.placed` received by the task's owner on `task:<id>`.
    Task,
    /// A command sent → its event received on `admin`.
    Admin,
    /// Dialing started → the `subscribe` reply received.
    Connect,
    /// A state-changing command sent → its `ok` received by the sender.
    Command,
    /// Engine time (`at`) → received, for every event (ms resolution: the clock is the engine's).
    EngineAt,
}

impl Class {
    pub const ALL: [Class; 6] = [
        Class::Feed,
        Class::Task,
        Class::Admin,
        Class::Connect,
        Class::Command,
        Class::EngineAt,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Class::Feed => "feed",
            Class::Task => "task",
            Class::Admin => "admin",
            Class::Connect => "connect",
            Class::Command => "command",
            Class::EngineAt => "engine_at",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A histogram as `(value, count)` pairs, to cross process boundaries.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EncHist(pub Vec<(u64, u64)>);

impl EncHist {
    pub fn encode(h: &Histogram<u64>) -> Self {
        EncHist(
            h.iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect(),
        )
    }

    pub fn merge_into(&self, h: &mut Histogram<u64>) {
        for &(v, n) in &self.0 {
            let _ = h.record_n(v.clamp(1, MAX_MICROS), n);
        }
    }

    #[cfg(test)]
    pub fn decode(&self) -> Histogram<u64> {
        let mut h = new_hist();
        self.merge_into(&mut h);
        h
    }
}

#[derive(Debug)]
struct Sink {
    total: Histogram<u64>,
    interval: Histogram<u64>,
}

/// A process's measurements, shared by every connection task.
#[derive(Debug)]
pub struct Stats {
    sinks: Vec<Mutex<Sink>>,
    /// Event frames received (not `stats`).
    pub events: AtomicU64,
    /// `stats` frames received (not journaled; not checked).
    pub stats_frames: AtomicU64,
    /// Commands (frames with an `id`) sent.
    pub sent: AtomicU64,
    pub replies_ok: AtomicU64,
    pub replies_err: AtomicU64,
    /// Frames with an `id` still waiting for their reply.
    pub outstanding: AtomicI64,
    /// When the last event arrived (µs since the epoch).
    pub last_event_us: AtomicU64,
    /// Connections open now.
    pub open: AtomicI64,
    /// Connections that subscribed successfully.
    pub connected: AtomicU64,
    tallies: Mutex<Tallies>,
    violations: Mutex<Violations>,
}

/// Counts by key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tallies {
    /// `error` replies by code.
    pub errors: BTreeMap<String, u64>,
    /// Closes the client did not ask for, by close code (`none`: the stream ended).
    pub closes: BTreeMap<String, u64>,
    /// Connection failures and I/O errors by kind.
    pub transport: BTreeMap<String, u64>,
    /// The first few refusals, for people.
    #[serde(default)]
    pub examples: Vec<String>,
}

impl Tallies {
    pub fn merge(&mut self, other: &Tallies) {
        for (dst, src) in [
            (&mut self.errors, &other.errors),
            (&mut self.closes, &other.closes),
            (&mut self.transport, &other.transport),
        ] {
            for (k, v) in src {
                *dst.entry(k.clone()).or_default() += v;
            }
        }
        for e in &other.examples {
            if self.examples.len() < 10 {
                self.examples.push(e.clone());
            }
        }
    }

    pub fn total(&self) -> u64 {
        self.errors.values().sum::<u64>()
            + self.closes.values().sum::<u64>()
            + self.transport.values().sum::<u64>()
    }
}

/// Protocol violations: out-of-order or duplicate events, undecodable frames, filter leaks.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Violations {
    pub count: u64,
    /// The first few, for people.
    pub examples: Vec<String>,
}

impl Violations {
    pub fn add(&mut self, what: String) {
        self.count += 1;
        if self.examples.len() < 20 {
            self.examples.push(what);
        }
    }

    pub fn merge(&mut self, other: &Violations) {
        self.count += other.count;
        for e in &other.examples {
            if self.examples.len() < 20 {
                self.examples.push(e.clone());
            }
        }
    }
}

/// One second's worth of a process's measurements (sent by workers to the parent).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Tick {
    pub events: u64,
    pub errors: u64,
    pub open: i64,
    pub connected: u64,
    pub outstanding: i64,
    /// Interval histograms by class name (only classes with samples).
    pub hists: BTreeMap<String, EncHist>,
}

/// Everything a process measured, at the end.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Totals {
    pub hists: BTreeMap<String, EncHist>,
    pub events: u64,
    pub stats_frames: u64,
    pub sent: u64,
    pub replies_ok: u64,
    pub replies_err: u64,
    pub unanswered: i64,
    pub connected: u64,
    pub tallies: Tallies,
    pub violations: Violations,
}

impl Stats {
    pub fn new() -> Arc<Self> {
        Arc::new(Stats {
            sinks: Class::ALL
                .iter()
                .map(|_| {
                    Mutex::new(Sink {
                        total: new_hist(),
                        interval: new_hist(),
                    })
                })
                .collect(),
            events: AtomicU64::new(0),
            stats_frames: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            replies_ok: AtomicU64::new(0),
            replies_err: AtomicU64::new(0),
            outstanding: AtomicI64::new(0),
            last_event_us: AtomicU64::new(unix_micros()),
            open: AtomicI64::new(0),
            connected: AtomicU64::new(0),
            tallies: Mutex::new(Tallies::default()),
            violations: Mutex::new(Violations::default()),
        })
    }

    fn record_all(&self, class: Class, values: &[u64]) {
        let mut sink = self.sinks[class.index()].lock().expect("stats lock");
        for &v in values {
            let v = v.clamp(1, MAX_MICROS);
            let _ = sink.total.record(v);
            let _ = sink.interval.record(v);
        }
    }

    /// Records one sample directly (for rare classes).
    pub fn record(&self, class: Class, micros: u64) {
        self.record_all(class, &[micros]);
    }

    pub fn error(&self, code: &str) {
        *self
            .tallies
            .lock()
            .expect("stats lock")
            .errors
            .entry(code.to_owned())
            .or_default() += 1;
    }

    /// Keeps an example of a refusal (the first ten).
    pub fn error_example(&self, what: String) {
        let mut t = self.tallies.lock().expect("stats lock");
        if t.examples.len() < 10 {
            t.examples.push(what);
        }
    }

    pub fn close(&self, code: &str) {
        *self
            .tallies
            .lock()
            .expect("stats lock")
            .closes
            .entry(code.to_owned())
            .or_default() += 1;
    }

    pub fn transport(&self, kind: &str) {
        *self
            .tallies
            .lock()
            .expect("stats lock")
            .transport
            .entry(kind.to_owned())
            .or_default() += 1;
    }

    pub fn violation(&self, what: String) {
        self.violations.lock().expect("stats lock").add(what);
    }

    pub fn tallies(&self) -> Tallies {
        self.tallies.lock().expect("stats lock").clone()
    }

    /// Notes that an event arrived now.
    pub fn event_arrived(&self, now_us: u64) {
        self.events.fetch_add(1, Ordering::Relaxed);
        self.last_event_us.store(now_us, Ordering::Relaxed);
    }

    /// Takes the interval histograms (and resets them) with the counters so far.
    pub fn tick(&self, last_events: &mut u64, last_errors: &mut u64) -> Tick {
        let mut hists = BTreeMap::new();
        for class in Class::ALL {
            let mut sink = self.sinks[class.index()].lock().expect("stats lock");
            if !sink.interval.is_empty() {
                hists.insert(class.name().to_owned(), EncHist::encode(&sink.interval));
                sink.interval.reset();
            }
        }
        let events = self.events.load(Ordering::Relaxed);
        let errors = self.tallies().total() + self.violations.lock().expect("stats lock").count;
        let tick = Tick {
            events: events - *last_events,
            errors: errors.saturating_sub(*last_errors),
            open: self.open.load(Ordering::Relaxed),
            connected: self.connected.load(Ordering::Relaxed),
            outstanding: self.outstanding.load(Ordering::Relaxed),
            hists,
        };
        *last_events = events;
        *last_errors = errors;
        tick
    }

    pub fn totals(&self) -> Totals {
        let mut hists = BTreeMap::new();
        for class in Class::ALL {
            let sink = self.sinks[class.index()].lock().expect("stats lock");
            if !sink.total.is_empty() {
                hists.insert(class.name().to_owned(), EncHist::encode(&sink.total));
            }
        }
        Totals {
            hists,
            events: self.events.load(Ordering::Relaxed),
            stats_frames: self.stats_frames.load(Ordering::Relaxed),
            sent: self.sent.load(Ordering::Relaxed),
            replies_ok: self.replies_ok.load(Ordering::Relaxed),
            replies_err: self.replies_err.load(Ordering::Relaxed),
            unanswered: self.outstanding.load(Ordering::Relaxed),
            connected: self.connected.load(Ordering::Relaxed),
            tallies: self.tallies(),
            violations: self.violations.lock().expect("stats lock").clone(),
        }
    }
}

/// A connection task's local buffer of samples for one class; flushes every 128 samples or
/// 100 ms (checked when recording), and when dropped.
#[derive(Debug)]
pub struct Batch {
    stats: Arc<Stats>,
    class: Class,
    buf: Vec<u64>,
    since: Instant,
}

impl Batch {
    pub fn new(stats: &Arc<Stats>, class: Class) -> Self {
        Batch {
            stats: stats.clone(),
            class,
            buf: Vec::new(),
            since: Instant::now(),
        }
    }

    pub fn record(&mut self, micros: u64) {
        if self.buf.is_empty() {
            self.since = Instant::now();
        }
        self.buf.push(micros);
        if self.buf.len() >= 128 || self.since.elapsed().as_millis() >= 100 {
            self.flush();
        }
    }

    pub fn flush(&mut self) {
        if !self.buf.is_empty() {
            self.stats.record_all(self.class, &self.buf);
            self.buf.clear();
        }
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Latency percentiles of one class, in milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Summary {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Summary {
    pub fn of(h: &Histogram<u64>) -> Summary {
        let ms = |us: u64| us as f64 / 1000.0;
        Summary {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.5)),
            p90_ms: ms(h.value_at_quantile(0.9)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
            mean_ms: h.mean() / 1000.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_survive_encoding_and_merge() {
        let mut a = new_hist();
        for v in [10, 20, 30, 1000, 50_000] {
            a.record(v).unwrap();
        }
        let mut b = EncHist::encode(&a).decode();
        EncHist::encode(&a).merge_into(&mut b);
        assert_eq!(b.len(), 10);
        assert_eq!(b.max(), a.max());
        assert_eq!(b.value_at_quantile(0.5), a.value_at_quantile(0.5));
    }

    #[test]
    fn batches_flush_when_dropped_and_ticks_reset() {
        let stats = Stats::new();
        {
            let mut batch = Batch::new(&stats, Class::Feed);
            batch.record(1500);
            batch.record(2500);
        }
        let (mut e, mut r) = (0, 0);
        let tick = stats.tick(&mut e, &mut r);
        assert_eq!(tick.hists["feed"].decode().len(), 2);
        assert!(stats.tick(&mut e, &mut r).hists.is_empty());
        assert_eq!(stats.totals().hists["feed"].decode().len(), 2);
    }
}
