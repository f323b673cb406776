//! Snapshots without stalling the engine: a replica of the engine, on its own thread, applies
//! every *durable* batch the publisher has published and, every N events or T seconds,
//! encodes itself and writes the snapshot. The live engine never pauses for a snapshot (at
//! 100,000 open tasks a copy of its state takes ~100 ms), and the replica can only ever hold
//! durable state. The price is a second copy of the state in memory and a second `evolve`
//! per event (the cheap part of a command).

use std::time::{Duration, Instant};

use gavel_engine::{Engine, SNAPSHOT_VERSION, State};
use gavel_storage::{Batch, Store, StoredSnapshot};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::supervisor::{DieOnPanic, Fatal};
use std::sync::Arc;

/// Durable batches waiting for the replica. The publisher waits when it is full (the replica
/// only evolves, so it falls behind only while encoding a snapshot).
pub const QUEUE: usize = 4096;

/// When a snapshot is written: every `every_events` events or every `interval`, whichever
/// comes first (and only when something changed); the newest `keep` are kept.
#[derive(Debug, Clone)]
pub struct SnapshotPolicy {
    pub every_events: u64,
    pub interval: Duration,
    pub keep: u32,
}

/// The snapshot's serialized form, written from a borrowed state (same shape as
/// [`gavel_engine::Snapshot`], without copying the state first).
#[derive(Serialize)]
struct SnapshotRef<'a> {
    version: u32,
    state: &'a State,
}

/// Starts the replica thread from `replica` (a copy of the recovered engine); returns where
/// the publisher sends durable batches.
pub fn spawn(
    mut replica: Engine,
    policy: SnapshotPolicy,
    store: Store,
    metrics: Arc<Metrics>,
    fatal: Arc<Fatal>,
) -> mpsc::Sender<Batch> {
    let (tx, mut rx) = mpsc::channel::<Batch>(QUEUE);
    let runtime = tokio::runtime::Handle::current();
    std::thread::Builder::new()
        .name("gavel-snapshots".into())
        .spawn(move || {
            let _die_on_panic = DieOnPanic { name: "snapshot replica", fatal };
            let mut last_seq = replica.seq();
            let mut last_at = Instant::now();
            while let Some(batch) = rx.blocking_recv() {
                let Some((first, _)) = batch.first() else { continue };
                if *first != replica.seq() + 1 && !catch_up(&mut replica, *first - 1, &store, &runtime) {
                    tracing::error!("snapshot replica cannot follow the journal; snapshots stop until restart");
                    return;
                }
                for (seq, event) in batch.iter() {
                    if *seq > replica.seq() {
                        replica.evolve(event);
                    }
                }
                let seq = replica.seq();
                let due = seq > last_seq && (seq - last_seq >= policy.every_events || last_at.elapsed() >= policy.interval);
                if !due {
                    continue;
                }
                let started = Instant::now();
                let state = serde_json::to_vec(&SnapshotRef { version: SNAPSHOT_VERSION, state: replica.state() })
                    .expect("engine state always serializes");
                let snapshot = StoredSnapshot { seq, at: replica.state().now, state };
                match runtime.block_on(store.write_snapshot(&snapshot)) {
                    Ok(()) => {
                        metrics.snapshots_written.inc();
                        metrics.snapshot_write_seconds.observe(started.elapsed().as_secs_f64());
                        if let Err(error) = runtime.block_on(store.prune_snapshots(policy.keep)) {
                            tracing::warn!(%error, "pruning old snapshots failed");
                        }
                        tracing::info!(seq, bytes = snapshot.state.len(), took_ms = started.elapsed().as_millis() as u64, "snapshot written");
                        last_seq = seq;
                        last_at = Instant::now();
                    }
                    Err(error) => tracing::warn!(%error, seq, "writing a snapshot failed; the journal still has everything"),
                }
            }
        })
        .expect("spawning the snapshot thread");
    tx
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
