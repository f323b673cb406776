//! Prometheus metrics (`GET /metrics`). One registry per server, so tests running several
//! servers in one process never share counters.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Every metric gavel exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub connections: IntGauge,
    pub subscriptions: IntGaugeVec,
    pub commands: IntCounterVec,
    /// Webhook POSTs by webhook URL and outcome (`ok`, `failed`).
    pub webhook_deliveries: IntCounterVec,
    /// Journal events after each webhook's cursor still to go through (its backlog).
    pub webhook_pending: IntGaugeVec,
    pub command_durable_seconds: HistogramVec,
    pub event_enqueued_seconds: Histogram,
    pub journal_batch_events: Histogram,
    pub command_queue_depth: IntGauge,
    pub journal_queue_depth: IntGauge,
    pub queue_full_rejections: IntCounter,
    pub slow_consumer_closes: IntCounter,
    pub storage_errors: IntCounter,
    pub rate_limited: IntCounter,
    pub bad_frames: IntCounter,
    pub events_published: IntCounter,
    pub snapshot_write_seconds: Histogram,
    pub snapshots_written: IntCounter,
    pub connections_refused: IntCounter,
    pub write_timeouts: IntCounter,
    pub catch_ups: IntGauge,
    pub replayed_events: IntCounter,
    pub catch_up_rows_read: IntCounter,
    pub feed_snapshot_seconds: Histogram,
}

impl Metrics {
    /// The registry (for collectors kept outside, such as the cluster's).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("gavel".into()), None).expect("a valid prefix");
        let latency = || {
            vec![
                0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 2.5, 5.0,
                10.0,
            ]
        };
        let m = Metrics {
            connections: IntGauge::new("connections", "open WebSocket connections").unwrap(),
            subscriptions: IntGaugeVec::new(
                Opts::new("subscriptions", "live subscriptions by topic kind"),
                &["kind"],
            )
            .unwrap(),
            commands: IntCounterVec::new(
                Opts::new("commands_total", "commands by type and outcome"),
                &["type", "outcome"],
            )
            .unwrap(),
            webhook_deliveries: IntCounterVec::new(
                Opts::new(
                    "webhook_deliveries_total",
                    "webhook POSTs by webhook and outcome (ok: acknowledged with a 2xx)",
                ),
                &["webhook", "outcome"],
            )
            .unwrap(),
            webhook_pending: IntGaugeVec::new(
                Opts::new(
                    "webhook_pending",
                    "journal events after the webhook's cursor (matching or not) still to go through",
                ),
                &["webhook"],
            )
            .unwrap(),
            command_durable_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "command_durable_seconds",
                    "from a command's arrival to its events being durable",
                )
                .buckets(latency()),
                &["type"],
            )
            .unwrap(),
            event_enqueued_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "event_enqueued_seconds",
                    "from an event being decided to its frames being queued to every subscriber",
                )
                .buckets(latency()),
            )
            .unwrap(),
            journal_batch_events: Histogram::with_opts(
                HistogramOpts::new(
                    "journal_batch_events",
                    "events per journal batch handed to the writer",
                )
                .buckets(vec![
                    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 5000.0,
                ]),
            )
            .unwrap(),
            command_queue_depth: IntGauge::new(
                "command_queue_depth",
                "commands waiting for the engine",
            )
            .unwrap(),
            journal_queue_depth: IntGauge::new(
                "journal_queue_depth",
                "batches waiting for the journal writer",
            )
            .unwrap(),
            queue_full_rejections: IntCounter::new(
                "queue_full_rejections_total",
                "commands refused UNAVAILABLE because a queue was full",
            )
            .unwrap(),
            slow_consumer_closes: IntCounter::new(
                "slow_consumer_closes_total",
                "connections closed with 4008",
            )
            .unwrap(),
            storage_errors: IntCounter::new("storage_errors_total", "failed journal commits")
                .unwrap(),
            rate_limited: IntCounter::new("rate_limited_total", "commands refused RATE_LIMITED")
                .unwrap(),
            bad_frames: IntCounter::new(
                "bad_frames_total",
                "client frames refused BAD_REQUEST or VALIDATION_ERROR",
            )
            .unwrap(),
            events_published: IntCounter::new(
                "events_published_total",
                "journaled events published",
            )
            .unwrap(),
            snapshot_write_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "snapshot_write_seconds",
                    "encoding and writing one snapshot (on the replica's thread; the engine never pauses)",
                )
                .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            )
            .unwrap(),
            snapshots_written: IntCounter::new("snapshots_written_total", "snapshots written to storage").unwrap(),
            connections_refused: IntCounter::new(
                "connections_refused_total",
                "upgrades refused with 503 at [limits] max_connections",
            )
            .unwrap(),
            write_timeouts: IntCounter::new(
                "write_timeouts_total",
                "connections closed because a write took over [limits] write_timeout_secs",
            )
            .unwrap(),
            catch_ups: IntGauge::new(
                "catch_ups",
                "resumes being replayed from the journal at their client's pace",
            )
            .unwrap(),
            replayed_events: IntCounter::new(
                "replayed_events_total",
                "event frames sent by resumes (history ring or journal)",
            )
            .unwrap(),
            catch_up_rows_read: IntCounter::new(
                "catch_up_rows_read_total",
                "journal rows resumes read (a task topic's own through the task index, else the journal's)",
            )
            .unwrap(),
            feed_snapshot_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "feed_snapshot_seconds",
                    "building a large feed snapshot on the replica thread (never on the engine)",
                )
                .buckets(vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]),
            )
            .unwrap(),
            registry,
        };
        for c in [
            Box::new(m.connections.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.subscriptions.clone()),
            Box::new(m.commands.clone()),
            Box::new(m.webhook_deliveries.clone()),
            Box::new(m.webhook_pending.clone()),
            Box::new(m.command_durable_seconds.clone()),
            Box::new(m.event_enqueued_seconds.clone()),
            Box::new(m.journal_batch_events.clone()),
            Box::new(m.command_queue_depth.clone()),
            Box::new(m.journal_queue_depth.clone()),
            Box::new(m.queue_full_rejections.clone()),
            Box::new(m.slow_consumer_closes.clone()),
            Box::new(m.storage_errors.clone()),
            Box::new(m.rate_limited.clone()),
            Box::new(m.bad_frames.clone()),
            Box::new(m.events_published.clone()),
            Box::new(m.snapshot_write_seconds.clone()),
            Box::new(m.snapshots_written.clone()),
            Box::new(m.connections_refused.clone()),
            Box::new(m.write_timeouts.clone()),
            Box::new(m.catch_ups.clone()),
            Box::new(m.replayed_events.clone()),
            Box::new(m.catch_up_rows_read.clone()),
            Box::new(m.feed_snapshot_seconds.clone()),
        ] {
            m.registry.register(c).expect("metric names are unique");
        }
        m
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("encoding to memory cannot fail");
        String::from_utf8(out).expect("prometheus text is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
