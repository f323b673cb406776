//! Leadership through Postgres: a lease row with an expiry and a fencing epoch (see
//! `storage::cluster`). Why a lease and not a session advisory lock: a frozen leader
//! (SIGSTOP, a long GC-like pause, a VM migration) keeps its TCP connection — and so an
//! advisory lock — for ever, while its lease simply expires; the epoch then fences whatever
//! it still tries to append when it wakes.
//!
//! The keeper runs for the life of the process. As leader it renews every fifth of the
//! lease and steps down when a renewal finds another epoch (a leader cut off from Postgres
//! cannot append either, so it keeps trying instead of restarting). As follower
//! it reads the lease every `poll_ms` — to know where to forward commands — and takes it
//! once it has expired.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gavel_storage::{LeaseRow, Store};
use tokio::sync::watch;

use crate::cluster::state::{ClusterState, LeaderInfo, NodeRole};

/// Tries once to take the lease (at start: a node that finds no live leader leads).
pub async fn try_take(store: &Store, cluster: &ClusterState) -> Option<u64> {
    let ttl = Duration::from_millis(cluster.config.lease_ms);
    match store
        .lease_acquire(&cluster.node_id, &cluster.addr, ttl)
        .await
    {
        Ok(epoch) => epoch,
        Err(error) => {
            tracing::warn!(%error, "cannot read the cluster lease");
            None
        }
    }
}

/// Keeps the lease (leader) or watches it (follower) until `stopped`.
pub async fn keep(store: Store, cluster: Arc<ClusterState>, mut stopped: watch::Receiver<bool>) {
    let lease = Duration::from_millis(cluster.config.lease_ms);
    let renew_every = lease / 5;
    let poll = Duration::from_millis(cluster.config.poll_ms);
    let mut last_renewed = Instant::now();
    let mut last_read = Instant::now();
    loop {
        let pause = match cluster.role() {
            NodeRole::Leader { epoch } => {
                renew(&store, &cluster, epoch, lease, &mut last_renewed).await;
                renew_every
            }
            NodeRole::Follower => {
                if let Some(epoch) = watch_or_take(&store, &cluster, lease, &mut last_read).await {
                    last_renewed = Instant::now();
                    cluster.set_role(NodeRole::Leader { epoch });
                }
                poll
            }
        };
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = crate::cluster::until_stopped(&mut stopped) => return,
        }
    }
}

async fn renew(
    store: &Store,
    cluster: &ClusterState,
    epoch: u64,
    lease: Duration,
    last_renewed: &mut Instant,
) {
    match store.lease_renew(epoch, cluster.applied(), lease).await {
        Ok(true) => {
            *last_renewed = Instant::now();
            cluster.set_leader(Some(LeaderInfo {
                node_id: cluster.node_id.clone(),
                addr: cluster.addr.clone(),
                epoch,
            }));
        }
        Ok(false) => {
            tracing::warn!(epoch, "the lease was taken by another node: stepping down");
            cluster.set_leader(None);
            cluster.set_role(NodeRole::Follower);
        }
        Err(error) => {
            // The database cannot be reached: appends fail too (commands get UNAVAILABLE), so
            // there is nothing to protect by stepping down — and once it is back, either this
            // epoch still holds (renewed) or another node took the lease (step down then).
            tracing::warn!(%error, epoch, stale_ms = last_renewed.elapsed().as_millis() as u64, "cannot renew the lease");
        }
    }
}

/// Reads the lease; takes it when it has expired. Returns the new epoch if taken.
async fn watch_or_take(
    store: &Store,
    cluster: &ClusterState,
    lease: Duration,
    last_read: &mut Instant,
) -> Option<u64> {
    let row = match store.lease().await {
        Ok(row) => row,
        Err(error) => {
            // One failed read says nothing about the leader: forget it only once its lease
            // would have expired since the last good read.
            tracing::debug!(%error, "cannot read the lease");
            if last_read.elapsed() >= lease {
                cluster.set_leader(None);
            }
            return None;
        }
    };
    *last_read = Instant::now();
    cluster.note_tip(row.seq);
    match leader_of(&row) {
        Some(leader) if leader.node_id != cluster.node_id => {
            cluster.set_leader(Some(leader));
            None
        }
        _ => {
            cluster.set_leader(None);
            let epoch = store
                .lease_acquire(&cluster.node_id, &cluster.addr, lease)
                .await
                .ok()
                .flatten()?;
            tracing::info!(epoch, "took the lease: this node leads now");
            Some(epoch)
        }
    }
}

fn leader_of(row: &LeaseRow) -> Option<LeaderInfo> {
    let node_id = row.live_holder()?.to_owned();
    Some(LeaderInfo {
        node_id,
        addr: row.holder_addr.clone().unwrap_or_default(),
        epoch: row.epoch,
    })
}
