//! Snapshots without stalling the engine: a replica of the engine, on its own thread, applies
//! every *durable* batch the publisher has published and, every N events or T seconds,
//! encodes itself and writes the snapshot. It also builds the `feed` snapshots too large for
//! the engine task (past [`crate::sequencer::engine_task::FEED_SNAPSHOT_ON_ENGINE_MAX`] open
//! tasks). The live engine never pauses for a snapshot (at
//! 100,000 open tasks a copy of its state takes ~100 ms), and the replica can only ever hold
//! durable state. The price is a second copy of the state in memory and a second `evolve`
//! per event (the cheap part of a command).

use std::time::{Duration, Instant};

use gavel_engine::Engine;
use gavel_protocol::views::{Snapshot, SubscribeResult};
use gavel_storage::{Batch, Store, StoredSnapshot};
use tokio::sync::mpsc;

use crate::durability::replies::ok_value_frame;
use crate::fanout::catch_up::{CancelToken, CatchUpKey, CatchUpMsg};
use crate::metrics::Metrics;
use crate::sequencer::messages::SubscribeRequest;
use crate::supervisor::{DieOnPanic, Fatal};
use std::sync::Arc;

/// Durable batches and feed requests waiting for the replica. The publisher waits when it is
/// full (the replica only evolves, so it falls behind only while encoding a snapshot); a feed
/// request that finds it full is refused `UNAVAILABLE`.
pub const QUEUE: usize = 4096;

/// When a snapshot is written: every `every_events` events or every `interval`, whichever
/// comes first (and only when something changed); the newest `keep` are kept.
#[derive(Debug, Clone)]
pub struct SnapshotPolicy {
    pub every_events: u64,
    pub interval: Duration,
    pub keep: u32,
    /// Whether this node writes snapshots at all (in a cluster only the leader does; a
    /// follower's replica serves feed snapshots only).
    pub persist: bool,
}

/// What reaches the replica thread, in the publisher's order.
#[derive(Debug)]
pub enum ReplicaMsg {
    /// A durable, published batch.
    Batch(Batch),
    /// A `feed` snapshot too large to build on the engine task.
    Feed(Box<FeedRequest>),
}

/// A `feed` subscription whose snapshot the replica builds, at its own position R; the
/// subscription then goes live through a catch-up reader from R (see
/// [`crate::fanout::catch_up`]), so neither the engine nor the publisher pays for it.
#[derive(Debug)]
pub struct FeedRequest {
    pub key: CatchUpKey,
    pub request: SubscribeRequest,
    pub privileged: bool,
    /// Whether the snapshot answers a resume that could not be honoured (`reset: true`).
    pub reset: bool,
    pub epoch: String,
    /// Set when the subscribe was superseded: the replica skips the work.
    pub cancel: CancelToken,
    /// Where the replica hands the encoded snapshot back (the publisher sends it, if still
    /// wanted, and starts the catch-up from R). Unbounded: the replica must never wait for the
    /// publisher, which may be waiting for room in the replica's queue.
    pub reply: mpsc::UnboundedSender<CatchUpMsg>,
}

/// Starts the replica thread from `replica` (a copy of the recovered engine); returns where
/// the publisher sends durable batches and feed snapshot requests.
pub fn spawn(
    replica: Engine,
    policy: SnapshotPolicy,
    store: Store,
    metrics: Arc<Metrics>,
    fatal: Arc<Fatal>,
) -> mpsc::Sender<ReplicaMsg> {
    let (tx, mut rx) = mpsc::channel::<ReplicaMsg>(QUEUE);
    let runtime = tokio::runtime::Handle::current();
    std::thread::Builder::new()
        .name("gavel-snapshots".into())
        .spawn(move || {
            let _die_on_panic = DieOnPanic {
                name: "snapshot replica",
                fatal: fatal.clone(),
            };
            let mut replica = Replica {
                fatal,
                last_seq: replica.seq(),
                engine: replica,
                last_at: Instant::now(),
                policy,
                store,
                metrics,
                runtime,
            };
            while let Some(msg) = rx.blocking_recv() {
                match msg {
                    ReplicaMsg::Batch(batch) => {
                        if !replica.apply(&batch) {
                            // No snapshots and no large feed snapshots from here on: as broken
                            // as a panic, and handled the same way.
                            replica
                                .fatal
                                .die("snapshot replica", "cannot follow the journal");
                        }
                        replica.snapshot_if_due();
                    }
                    ReplicaMsg::Feed(request) => replica.serve_feed(*request),
                }
            }
        })
        .expect("spawning the snapshot thread");
    tx
}

/// The replica thread's state.
struct Replica {
    fatal: Arc<Fatal>,
    engine: Engine,
    last_seq: u64,
    last_at: Instant,
    policy: SnapshotPolicy,
    store: Store,
    metrics: Arc<Metrics>,
    runtime: tokio::runtime::Handle,
}

impl Replica {
    /// Evolves a durable batch; `false` when a gap before it cannot be filled.
    fn apply(&mut self, batch: &Batch) -> bool {
        let Some((first, _)) = batch.first() else {
            return true;
        };
        if *first != self.engine.seq() + 1
            && !catch_up(&mut self.engine, *first - 1, &self.store, &self.runtime)
        {
            return false;
        }
        for (seq, event) in batch.iter() {
            if *seq > self.engine.seq() {
                self.engine.evolve(event);
            }
        }
        true
    }

    /// Writes a snapshot every N events or T seconds (when something changed).
    fn snapshot_if_due(&mut self) {
        let seq = self.engine.seq();
        let policy = &self.policy;
        let due = policy.persist
            && seq > self.last_seq
            && (seq - self.last_seq >= policy.every_events
                || self.last_at.elapsed() >= policy.interval);
        if !due {
            return;
        }
        let started = Instant::now();
        let state = gavel_storage::snapshot_codec::encode(self.engine.state());
        let snapshot = StoredSnapshot {
            seq,
            at: self.engine.state().now,
            state,
        };
        match self.runtime.block_on(self.store.write_snapshot(&snapshot)) {
            Ok(()) => {
                self.metrics.snapshots_written.inc();
                self.metrics
                    .snapshot_write_seconds
                    .observe(started.elapsed().as_secs_f64());
                if let Err(error) = self
                    .runtime
                    .block_on(self.store.prune_snapshots(policy.keep))
                {
                    tracing::warn!(%error, "pruning old snapshots failed");
                }
                tracing::info!(
                    seq,
                    bytes = snapshot.state.len(),
                    took_ms = started.elapsed().as_millis() as u64,
                    "snapshot written"
                );
                self.last_seq = seq;
                self.last_at = Instant::now();
            }
            Err(error) => tracing::warn!(
                %error,
                seq,
                "writing a snapshot failed; the journal still has everything"
            ),
        }
    }

    /// Builds and encodes a feed snapshot at the replica's position R and hands it to the
    /// publisher, which sends it and replays from R into live delivery.
    fn serve_feed(&self, feed: FeedRequest) {
        let FeedRequest {
            key,
            mut request,
            privileged,
            reset,
            epoch,
            cancel,
            reply,
        } = feed;
        if request.conn.is_closed() {
            let _ = reply.send(CatchUpMsg::Ended { key });
            return;
        }
        let seq = self.engine.seq();
        let frame = if cancel.is_cancelled() {
            // Superseded: no work; the publisher answers it.
            None
        } else {
            let started = Instant::now();
            let limit = request.limit.map(|l| l as usize);
            let snapshot =
                self.engine
                    .feed_snapshot(&request.actor, request.filter.as_ref(), limit);
            let frame = request.id.clone().map(|id| {
                let result = SubscribeResult {
                    topic: request.topic.clone(),
                    epoch,
                    seq,
                    snapshot: Some(Snapshot::Feed(snapshot)),
                    reset: reset.then_some(true),
                };
                ok_value_frame(id, &result)
            });
            self.metrics
                .feed_snapshot_seconds
                .observe(started.elapsed().as_secs_f64());
            frame
        };
        request.since = Some(seq);
        let _ = reply.send(CatchUpMsg::Snapshotted {
            key,
            request: Box::new(request),
            privileged,
            seq,
            frame,
        });
    }
}

/// Brings the replica up to `upto` from the journal (a commit whose reply was lost is durable
/// but was never published). `false` when the journal does not have it.
fn catch_up(
    replica: &mut Engine,
    upto: u64,
    store: &Store,
    runtime: &tokio::runtime::Handle,
) -> bool {
    while replica.seq() < upto {
        let Ok(page) = runtime.block_on(store.read_after(replica.seq(), 1000)) else {
            return false;
        };
        if page.is_empty() {
            return false;
        }
        for row in page.iter().take_while(|r| r.seq <= upto) {
            let Ok(event) = row.decode() else {
                return false;
            };
            replica.evolve(&event);
        }
    }
    replica.seq() == upto
}
