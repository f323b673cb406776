//! One cluster node for the life of the process: it keeps (or watches) the lease and writes
//! its heartbeat, and runs a pipeline — a [`Server`] — for its current role. When the role
//! changes the pipeline restarts, crash-only: clients are closed with 1001 and resume on
//! any node with `since`; a new leader recovers its engine from the journal (everything
//! durable, nothing else), and a stepped-down leader throws its memory away — whatever it
//! decided after losing the lease was never written (the epoch fenced it) and never
//! acknowledged.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use gavel_storage::Store;
use tokio::sync::watch;

use crate::app::{Server, ServerOptions};
use crate::cluster::lease;
use crate::cluster::nodes;
use crate::cluster::state::{ClusterState, NodeRole};

/// What makes a server a cluster node.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub node_id: String,
    /// Where other nodes reach this one.
    pub advertise: SocketAddr,
    pub redis_url: String,
    /// Tests only: drop every Nth batch received over Redis.
    pub drop_replication_every: Option<u64>,
}

/// The default node id: from the listen address (`127.0.0.1:8081` → `node-127.0.0.1-8081`).
pub fn default_node_id(listen: SocketAddr) -> String {
    format!("node-{}-{}", listen.ip(), listen.port())
}

/// Runs the node until `stop` turns `true`.
pub async fn run(
    options: ServerOptions,
    cluster: ClusterOptions,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let url = options
        .database_url
        .as_deref()
        .context("a cluster needs --database-url postgres://…")?;
    let store = Store::open_postgres(url)
        .await
        .context("opening the cluster's Postgres database")?;
    let mut state = ClusterState::new(
        cluster.node_id.clone(),
        cluster.advertise.to_string(),
        options.config.cluster.clone(),
        cluster.redis_url.clone(),
        NodeRole::Follower,
    );
    state.drop_replication_every = cluster.drop_replication_every;
    let state = Arc::new(state);
    if let Some(epoch) = lease::try_take(&store, &state).await {
        state.set_role(NodeRole::Leader { epoch });
    }
    let (quit, quitting) = watch::channel(false);
    tokio::spawn(lease::keep(store.clone(), state.clone(), quitting.clone()));
    tokio::spawn(nodes::heartbeat(store.clone(), state.clone(), quitting));
    let mut roles = state.watch_role();
    loop {
        let role = *roles.borrow_and_update();
        tracing::info!(node = %state.node_id, role = role.name(), "starting the pipeline");
        let server = match start(&options, &state).await {
            Ok(server) => server,
            Err(error) => {
                tracing::error!(error = %format!("{error:#}"), "cannot start the pipeline; retrying");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    () = crate::cluster::until_stopped(&mut stop) => break,
                }
            }
        };
        tracing::info!(addr = %server.addr, epoch = %server.epoch, role = role.name(), "listening");
        tokio::select! {
            () = crate::cluster::until_stopped(&mut stop) => {
                server.shutdown().await;
                break;
            }
            _ = roles.changed() => {
                tracing::warn!(from = role.name(), to = state.role().name(), "role changed: restarting the pipeline");
                server.shutdown().await;
            }
        }
    }
    let _ = quit.send(true);
    if let NodeRole::Leader { epoch } = state.role() {
        // A graceful stop hands over at once instead of after the lease expires.
        if let Err(error) = store.lease_release(epoch).await {
            tracing::warn!(%error, "cannot release the lease");
        } else {
            tracing::info!(epoch, "lease released");
        }
    }
    Ok(())
}

async fn start(options: &ServerOptions, state: &Arc<ClusterState>) -> anyhow::Result<Server> {
    let mut options = options.clone();
    options.cluster = Some(state.clone());
    Server::start(options).await
}
