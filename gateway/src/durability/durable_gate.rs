//! The durable gate: a batch's events and answers leave only once the journal writer says the
//! batch landed. A batch that did not land switches the gate to failing: everything after it
//! was decided from memory that ran ahead of the journal, so it is refused until the engine has
//! rebuilt itself from what is durable.

use std::sync::Arc;

use gavel_storage::StorageError;
use tokio::sync::oneshot;

use crate::metrics::Metrics;
use crate::sequencer::handle::RebuildSignal;

/// Whether a batch may be published.
#[derive(Debug)]
pub struct DurableGate {
    rebuild: Arc<RebuildSignal>,
    metrics: Arc<Metrics>,
    failing: bool,
}

impl DurableGate {
    pub fn new(rebuild: Arc<RebuildSignal>, metrics: Arc<Metrics>) -> Self {
        DurableGate {
            rebuild,
            metrics,
            failing: false,
        }
    }

    /// Waits for a batch's commit; `true` when it landed and the gate is open.
    pub async fn admit(
        &mut self,
        commit: Option<oneshot::Receiver<Result<(), StorageError>>>,
        first_seq: Option<u64>,
    ) -> bool {
        let durable = match commit {
            None => true,
            Some(wait) => matches!(wait.await, Ok(Ok(()))),
        };
        if !durable && !self.failing {
            tracing::error!(
                first = first_seq,
                "journal commit failed: refusing until the engine rebuilds"
            );
            self.metrics.storage_errors.inc();
            self.failing = true;
            self.rebuild.raise();
        }
        !self.failing
    }

    /// The engine has rebuilt from the journal: batches decided from now on may pass.
    pub fn reopen(&mut self) {
        self.failing = false;
    }
}
