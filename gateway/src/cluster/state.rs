//! What a node knows about the cluster, shared by its tasks and kept across the restarts of
//! its pipeline when its role changes: its role, who leads, how far its replica has come and
//! how far the journal goes, and the cluster's metrics.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use gavel_protocol::Seq;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use tokio::sync::watch;

use crate::cli::config::ClusterConfig;

/// Unapplied positions remembered one by one for the lag (beyond, the newest is extended).
const PENDING_TIPS: usize = 1024;

/// What this node does in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeRole {
    /// Runs the engine and writes the journal, fenced by the lease `epoch`.
    Leader { epoch: u64 },
    /// Runs a gateway on a replica; forwards commands to the leader.
    Follower,
}

impl NodeRole {
    pub fn name(&self) -> &'static str {
        match self {
            NodeRole::Leader { .. } => "leader",
            NodeRole::Follower => "follower",
        }
    }
}

/// The leader as this node last read the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderInfo {
    pub node_id: String,
    /// Where it serves (followers forward commands there).
    pub addr: String,
    pub epoch: u64,
}

/// A node's view of the cluster.
#[derive(Debug)]
pub struct ClusterState {
    pub node_id: String,
    /// The address other nodes reach this one at.
    pub addr: String,
    pub config: ClusterConfig,
    pub redis_url: String,
    /// Tests only: drop every Nth batch received over Redis.
    pub drop_replication_every: Option<u64>,
    role: watch::Sender<NodeRole>,
    leader: watch::Sender<Option<LeaderInfo>>,
    /// The last `seq` this node's engine (leader) or replica (follower) has applied.
    applied: AtomicU64,
    /// The highest `seq` known to be in the journal.
    tip: AtomicU64,
    /// Positions known to be in the journal and not applied yet, each with when it was
    /// learned (oldest first; coalesced past [`PENDING_TIPS`]): the lag is the front's age.
    pending_tips: Mutex<VecDeque<(Seq, Instant)>>,
    /// Open connections of the current pipeline (for the heartbeat).
    connections: Mutex<Option<IntGauge>>,
    /// Whether a follower's command link to the leader is up.
    link_up: AtomicBool,
    pub metrics: ClusterMetrics,
}

impl ClusterState {
    pub fn new(
        node_id: String,
        addr: String,
        config: ClusterConfig,
        redis_url: String,
        role: NodeRole,
    ) -> Self {
        let metrics = ClusterMetrics::new();
        metrics
            .leader
            .set(i64::from(matches!(role, NodeRole::Leader { .. })));
        ClusterState {
            node_id,
            addr,
            config,
            redis_url,
            drop_replication_every: None,
            role: watch::channel(role).0,
            leader: watch::channel(None).0,
            applied: AtomicU64::new(0),
            tip: AtomicU64::new(0),
            pending_tips: Mutex::new(VecDeque::new()),
            connections: Mutex::new(None),
            link_up: AtomicBool::new(false),
            metrics,
        }
    }

    pub fn role(&self) -> NodeRole {
        *self.role.borrow()
    }

    /// Watches role changes (the node restarts its pipeline on each).
    pub fn watch_role(&self) -> watch::Receiver<NodeRole> {
        self.role.subscribe()
    }

    pub fn set_role(&self, role: NodeRole) {
        let changed = self.role.send_if_modified(|current| {
            let changed = *current != role;
            *current = role;
            changed
        });
        if changed {
            self.metrics
                .leader
                .set(i64::from(matches!(role, NodeRole::Leader { .. })));
            self.metrics.role_changes.inc();
            tracing::warn!(role = role.name(), "cluster role changed");
        }
    }

    pub fn leader(&self) -> Option<LeaderInfo> {
        self.leader.borrow().clone()
    }

    pub fn watch_leader(&self) -> watch::Receiver<Option<LeaderInfo>> {
        self.leader.subscribe()
    }

    pub fn set_leader(&self, leader: Option<LeaderInfo>) {
        self.leader.send_if_modified(|current| {
            let changed = *current != leader;
            *current = leader;
            changed
        });
    }

    /// Where the current pipeline counts its connections.
    pub fn count_connections_in(&self, gauge: IntGauge) {
        *self.connections.lock().expect("connections lock") = Some(gauge);
    }

    pub fn connections(&self) -> u64 {
        self.connections
            .lock()
            .expect("connections lock")
            .as_ref()
            .map_or(0, |g| g.get().max(0) as u64)
    }

    pub fn applied(&self) -> Seq {
        self.applied.load(Ordering::Acquire)
    }

    /// A new pipeline starts from what the journal holds: forget positions of the last one
    /// (a stepped-down leader's memory may have run past what was ever written).
    pub fn start_at(&self, seq: Seq) {
        self.applied.store(seq, Ordering::Release);
        self.tip.store(seq, Ordering::Release);
        self.pending_tips.lock().expect("lag lock").clear();
        self.refresh_lag();
    }

    /// Records the replica's (or the leader's durable) position.
    pub fn note_applied(&self, seq: Seq) {
        self.applied.store(seq, Ordering::Release);
        self.note_tip(seq);
        self.refresh_lag();
    }

    /// Records that the journal reaches at least `seq`.
    pub fn note_tip(&self, seq: Seq) {
        let before = self.tip.fetch_max(seq, Ordering::AcqRel);
        if seq > before && seq > self.applied() {
            let mut pending = self.pending_tips.lock().expect("lag lock");
            if pending.len() < PENDING_TIPS {
                pending.push_back((seq, Instant::now()));
            } else if let Some(last) = pending.back_mut() {
                // Coalesced: the newest entry now stands for everything up to `seq`.
                last.0 = seq;
            }
        }
        self.refresh_lag();
    }

    pub fn tip(&self) -> Seq {
        self.tip.load(Ordering::Acquire)
    }

    fn refresh_lag(&self) {
        let applied = self.applied();
        let mut pending = self.pending_tips.lock().expect("lag lock");
        while pending.front().is_some_and(|(seq, _)| *seq <= applied) {
            pending.pop_front();
        }
        drop(pending);
        self.metrics
            .replica_lag_seq
            .set(self.tip().saturating_sub(applied) as i64);
    }

    /// How long the oldest event known to be in the journal but not applied has been known
    /// (0 when caught up).
    pub fn lag_ms(&self) -> u64 {
        self.pending_tips
            .lock()
            .expect("lag lock")
            .front()
            .map_or(0, |(_, since)| since.elapsed().as_millis() as u64)
    }

    /// Whether this node may take commands (contract §12): a leader always; a follower while
    /// it knows a leader and its replica is at most `max_lag_ms` behind.
    pub fn can_serve(&self) -> Result<(), &'static str> {
        match self.role() {
            NodeRole::Leader { .. } => Ok(()),
            NodeRole::Follower if self.leader().is_none() => {
                Err("no leader is known right now; retry shortly")
            }
            NodeRole::Follower if self.lag_ms() > self.config.max_lag_ms => {
                Err("this node's replica is behind the journal; retry shortly")
            }
            NodeRole::Follower => Ok(()),
        }
    }
}

impl ClusterState {
    pub fn set_link_up(&self, up: bool) {
        self.link_up.store(up, Ordering::Release);
    }

    /// Whether `/readyz` says ready: as [`ClusterState::can_serve`], and a follower's command
    /// link to the leader is up (a follower that just started, or whose leader just changed,
    /// is not ready until it can forward).
    pub fn ready(&self) -> Result<(), &'static str> {
        self.can_serve()?;
        match self.role() {
            NodeRole::Follower if !self.link_up.load(Ordering::Acquire) => {
                Err("no link to the leader yet; retry shortly")
            }
            _ => Ok(()),
        }
    }
}

/// The cluster's metrics: kept by the node (across pipeline restarts) and registered into
/// each pipeline's registry.
#[derive(Debug, Clone)]
pub struct ClusterMetrics {
    pub leader: IntGauge,
    pub role_changes: IntCounter,
    pub replica_lag_seq: IntGauge,
    pub replica_lag_ms: IntGauge,
    pub replication_seconds: Histogram,
    pub redis_reconnects: IntCounter,
    pub redis_published: IntCounter,
    pub redis_errors: IntCounter,
    pub gap_fills: IntCounter,
    pub gap_filled_events: IntCounter,
    pub forwarded: IntCounterVec,
    pub forward_seconds: Histogram,
}

impl ClusterMetrics {
    fn new() -> Self {
        let counter = |name: &str, help: &str| IntCounter::new(name, help).expect("valid metric");
        let gauge = |name: &str, help: &str| IntGauge::new(name, help).expect("valid metric");
        let buckets = vec![
            0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
        ];
        ClusterMetrics {
            leader: gauge(
                "cluster_leader",
                "1 while this node leads the cluster, else 0",
            ),
            role_changes: counter("cluster_role_changes_total", "role changes of this node"),
            replica_lag_seq: gauge(
                "cluster_replica_lag_seq",
                "events in the journal this node has not applied yet",
            ),
            replica_lag_ms: gauge(
                "cluster_replica_lag_ms",
                "how long this node's replica has been behind the journal",
            ),
            replication_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "cluster_replication_seconds",
                    "from the leader's commit to this follower applying the batch",
                )
                .buckets(buckets.clone()),
            )
            .expect("valid metric"),
            redis_reconnects: counter(
                "cluster_redis_reconnects_total",
                "Redis pub/sub connections made after the first",
            ),
            redis_published: counter(
                "cluster_redis_published_total",
                "committed batches published to Redis",
            ),
            redis_errors: counter("cluster_redis_errors_total", "failed Redis operations"),
            gap_fills: counter(
                "cluster_gap_fills_total",
                "journal reads that filled events Redis did not deliver",
            ),
            gap_filled_events: counter(
                "cluster_gap_filled_events_total",
                "events read from the journal instead of Redis",
            ),
            forwarded: IntCounterVec::new(
                Opts::new(
                    "cluster_forwarded_commands_total",
                    "commands forwarded to the leader, by outcome",
                ),
                &["outcome"],
            )
            .expect("valid metric"),
            forward_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "cluster_forward_seconds",
                    "a forwarded command's round trip to the leader",
                )
                .buckets(buckets),
            )
            .expect("valid metric"),
        }
    }

    /// Adds these metrics to a pipeline's registry.
    pub fn register(&self, registry: &Registry) {
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(self.leader.clone()),
            Box::new(self.role_changes.clone()),
            Box::new(self.replica_lag_seq.clone()),
            Box::new(self.replica_lag_ms.clone()),
            Box::new(self.replication_seconds.clone()),
            Box::new(self.redis_reconnects.clone()),
            Box::new(self.redis_published.clone()),
            Box::new(self.redis_errors.clone()),
            Box::new(self.gap_fills.clone()),
            Box::new(self.gap_filled_events.clone()),
            Box::new(self.forwarded.clone()),
            Box::new(self.forward_seconds.clone()),
        ];
        for collector in collectors {
            registry
                .register(collector)
                .expect("cluster metrics are registered once per registry");
        }
    }
}
