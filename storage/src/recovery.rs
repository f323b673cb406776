//! Recovery at start: the latest snapshot, then the journal tail through `evolve`.

use std::time::{Duration, Instant};

use gavel_engine::{Engine, EngineConfig, Snapshot};
use gavel_protocol::Seq;

use crate::error::StorageError;
use crate::snapshot_codec;
use crate::store::Store;

/// Journal rows read per query while replaying.
const PAGE: u32 = 10_000;

/// What recovery did, for the start-up log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The snapshot's `seq` (0: started from empty).
    pub snapshot_seq: Seq,
    /// Journal events replayed after the snapshot.
    pub replayed: u64,
    pub took: Duration,
}

/// Journal events decoded ahead while the snapshot loads, at most: past this, reading waits
/// for the snapshot (a bound on memory when the tail is long).
const AHEAD_EVENTS: usize = 200_000;

/// Rebuilds the engine from what is durable: the latest snapshot, then every later event in
/// `seq` order. A gap in the journal or an undecodable row is an error, never skipped.
///
/// The snapshot is decoded and restored on a blocking thread while the first pages of the tail
/// are read and decoded here: neither needs the other, and both are mostly CPU (decoding), so
/// on two cores the tail's reading is off the critical path. Those events are then applied in
/// order, and the rest of the tail as before.
pub async fn recover(
    store: &Store,
    config: EngineConfig,
) -> Result<(Engine, RecoveryReport), StorageError> {
    let started = Instant::now();
    let Some(stored) = store.latest_snapshot().await? else {
        return replay_tail(store, Engine::new(config), 0, started).await;
    };
    let snapshot_seq = stored.seq;
    let restoring = tokio::task::spawn_blocking(move || {
        let snapshot = snapshot_codec::decode(&stored.state)
            .map_err(|e| StorageError::Corrupt(format!("snapshot at seq {}: {e}", stored.seq)))?;
        Engine::restore(config, snapshot).map_err(StorageError::Corrupt)
    });
    let mut ahead = Vec::new();
    let mut after = snapshot_seq;
    while !restoring.is_finished() && ahead.len() < AHEAD_EVENTS {
        let page = store.read_after(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for row in &page {
            ahead.push((row.seq, row.decode()?));
        }
    }
    let mut engine = restoring.await.map_err(|e| {
        StorageError::Corrupt(format!(
            "snapshot at seq {snapshot_seq}: loading it failed: {e}"
        ))
    })??;
    for (seq, event) in &ahead {
        apply(&mut engine, *seq, event)?;
    }
    let replayed = ahead.len() as u64;
    drop(ahead);
    let (engine, mut report) = replay_tail(store, engine, snapshot_seq, started).await?;
    report.replayed += replayed;
    Ok((engine, report))
}

/// Applies the journal after `engine.seq()` and reports the whole recovery (from a snapshot at
/// `snapshot_seq`; the events applied here are `replayed`).
async fn replay_tail(
    store: &Store,
    mut engine: Engine,
    snapshot_seq: Seq,
    started: Instant,
) -> Result<(Engine, RecoveryReport), StorageError> {
    let mut replayed = 0;
    loop {
        let page = store.read_after(engine.seq(), PAGE).await?;
        if page.is_empty() {
            break;
        }
        for row in &page {
            apply(&mut engine, row.seq, &row.decode()?)?;
        }
        replayed += page.len() as u64;
    }
    let report = RecoveryReport {
        snapshot_seq,
        replayed,
        took: started.elapsed(),
    };
    Ok((engine, report))
}

/// Applies one journaled event, which must be the next in `seq` order.
fn apply(
    engine: &mut Engine,
    row_seq: Seq,
    event: &gavel_engine::Event,
) -> Result<(), StorageError> {
    let seq = engine.evolve(event);
    if seq != row_seq {
        return Err(StorageError::Corrupt(format!(
            "journal gap: expected seq {seq}, found {row_seq}"
        )));
    }
    Ok(())
}

/// Serializes a snapshot into a snapshot row's bytes ([`snapshot_codec`]).
pub fn encode_snapshot(snapshot: &Snapshot) -> Vec<u8> {
    snapshot_codec::encode(&snapshot.state)
}
