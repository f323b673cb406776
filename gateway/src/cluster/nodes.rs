//! Heartbeats (each node's row in `cluster_nodes`, every `heartbeat_ms`) and the admin view
//! `GET /v1/cluster` built from them and the lease (contract §12).

use std::sync::Arc;
use std::time::Duration;

use gavel_storage::{NodeRow, StorageError, Store};
use serde::Serialize;
use tokio::sync::watch;

use crate::cluster::state::{ClusterState, NodeRole};

/// Nodes silent for longer than this drop out of `GET /v1/cluster`.
pub const FORGET_AFTER: Duration = Duration::from_secs(60);

/// `GET /v1/cluster`.
#[derive(Debug, Serialize)]
pub struct ClusterView {
    pub leader: Option<String>,
    pub nodes: Vec<NodeView>,
}

/// One node in [`ClusterView`].
#[derive(Debug, Serialize)]
pub struct NodeView {
    pub node_id: String,
    pub role: String,
    pub seq: u64,
    pub lag_ms: u64,
    pub connections: u64,
    /// Unix milliseconds of its last heartbeat.
    pub last_seen: u64,
    pub addr: String,
}

/// Writes this node's heartbeat until `stopped`.
pub async fn heartbeat(
    store: Store,
    cluster: Arc<ClusterState>,
    mut stopped: watch::Receiver<bool>,
) {
    let every = Duration::from_millis(cluster.config.heartbeat_ms);
    loop {
        let lag_ms = cluster.lag_ms();
        cluster.metrics.replica_lag_ms.set(lag_ms as i64);
        let row = NodeRow {
            node_id: cluster.node_id.clone(),
            addr: cluster.addr.clone(),
            role: cluster.role().name().to_owned(),
            seq: cluster.applied(),
            lag_ms,
            connections: cluster.connections(),
            last_seen_ms: 0,
        };
        if let Err(error) = store.node_heartbeat(&row).await {
            tracing::debug!(%error, "cannot write the heartbeat");
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = crate::cluster::until_stopped(&mut stopped) => return,
        }
    }
}

/// The cluster as the database sees it: the live lease holder and every recent heartbeat.
/// This node's own row is its live state, not its last heartbeat.
pub async fn view(store: &Store, cluster: &ClusterState) -> Result<ClusterView, StorageError> {
    let lease = store.lease().await?;
    let mut nodes: Vec<NodeView> = store
        .nodes(FORGET_AFTER)
        .await?
        .into_iter()
        .map(|n| NodeView {
            node_id: n.node_id,
            role: n.role,
            seq: n.seq,
            lag_ms: n.lag_ms,
            connections: n.connections,
            last_seen: n.last_seen_ms,
            addr: n.addr,
        })
        .collect();
    if let Some(me) = nodes.iter_mut().find(|n| n.node_id == cluster.node_id) {
        me.role = cluster.role().name().to_owned();
        me.seq = cluster.applied();
        me.lag_ms = cluster.lag_ms();
        me.connections = cluster.connections();
    }
    let leader = lease.live_holder().map(str::to_owned);
    // A node that leads by the lease is reported as leader even before its next heartbeat.
    for node in &mut nodes {
        if leader.as_deref() == Some(node.node_id.as_str()) {
            node.role = NodeRole::Leader { epoch: lease.epoch }.name().to_owned();
        } else if node.role == "leader" {
            node.role = NodeRole::Follower.name().to_owned();
        }
    }
    Ok(ClusterView { leader, nodes })
}
