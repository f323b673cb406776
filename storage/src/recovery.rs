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

/// Rebuilds the engine from what is durable: the latest snapshot, then every later event in
/// `seq` order. A gap in the journal or an undecodable row is an error, never skipped.
pub async fn recover(
    store: &Store,
    config: EngineConfig,
) -> Result<(Engine, RecoveryReport), StorageError> {
    let started = Instant::now();
    let mut engine = match store.latest_snapshot().await? {
        Some(stored) => {
            let snapshot = snapshot_codec::decode(&stored.state).map_err(|e| {
                StorageError::Corrupt(format!("snapshot at seq {}: {e}", stored.seq))
            })?;
            Engine::restore(config, snapshot).map_err(StorageError::Corrupt)?
        }
        None => Engine::new(config),
    };
    let snapshot_seq = engine.seq();
    let mut replayed = 0;
    loop {
        let page = store.read_after(engine.seq(), PAGE).await?;
        if page.is_empty() {
            break;
        }
        for row in &page {
            let event = row.decode()?;
            let seq = engine.evolve(&event);
            if seq != row.seq {
                return Err(StorageError::Corrupt(format!(
                    "journal gap: expected seq {seq}, found {}",
                    row.seq
                )));
            }
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

/// Serializes a snapshot into a snapshot row's bytes ([`snapshot_codec`]).
pub fn encode_snapshot(snapshot: &Snapshot) -> Vec<u8> {
    snapshot_codec::encode(&snapshot.state)
}
