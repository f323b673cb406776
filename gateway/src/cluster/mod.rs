//! Many nodes on Postgres and Redis, with no consensus of gavel's own (design: "Many nodes";
//! contract §12).
//!
//! - [`lease`] — leadership: a lease row in Postgres with a fencing epoch.
//! - [`replication`] — the leader publishes each committed batch to Redis once; followers
//!   apply them in `seq` order and fill any gap from the journal.
//! - [`forward`] — a follower's commands travel to the leader over one WebSocket, and the
//!   replies come back once the follower's replica has applied them; its reads are charged to
//!   the leader's rate limiter on the same link before it serves them.
//! - [`nodes`] — heartbeats and `GET /v1/cluster`.
//! - [`node`] — the process: keeps the lease, and runs the pipeline for its current role,
//!   restarting it (crash-only) when the role changes.
//! - [`state`] — what the node knows, shared by all of the above.

pub mod forward;
pub mod lease;
pub mod node;
pub mod nodes;
pub mod replication;
pub mod state;

/// Completes once `stopped` is `true` (or its sender is gone).
pub async fn until_stopped(stopped: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}
