//! Start-up and shutdown: open the store, recover the engine, start the engine task, the
//! publisher and the journal writer, serve HTTP/WebSocket — and, on shutdown, stop accepting,
//! close every client with 1001, and drain the pipeline so everything acknowledged is durable.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::serve::ListenerExt as _;
use gavel_engine::{Engine, EngineConfig};
use gavel_protocol::Seq;
use gavel_storage::{AppendFaults, JournalHandle, Store, WriterOptions, WriterStats, recover};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;

use crate::cli::config::{Limits, ServerConfig};
use crate::cluster::state::{ClusterState, NodeRole};
use crate::fanout::outbox::{ConnHandle, ConnId, ConnIds};
use crate::fanout::publisher::{Publisher, SubscriptionLimits};
use crate::fanout::stats::stats_ticker;
use crate::fanout::topic_router::FeedMeta;
use crate::ingress::auth::JwtKeys;
use crate::ingress::rate_limit::UserRateLimiter;
use crate::metrics::Metrics;
use crate::replica::snapshotter::{self, SnapshotPolicy};
use crate::sequencer::clock::EngineClock;
#[cfg(feature = "fault-injection")]
use crate::sequencer::engine_task::CommandHook;
use crate::sequencer::engine_task::{EngineActor, Mode};
use crate::sequencer::follower::FollowerLink;
use crate::sequencer::handle::{EngineHandle, RebuildSignal};
use crate::sequencer::messages::PUBLISH_QUEUE;
use crate::supervisor::{Fatal, supervise};
use crate::webhooks::{Webhooks, check_all, prepare_cursors};

/// Events kept in memory for `since` resumes (older ones come from the journal).
pub const DEFAULT_HISTORY: usize = 100_000;

/// Everything a server needs to start.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub config: ServerConfig,
    pub jwt_secret: Vec<u8>,
    pub time_scale: f64,
    pub history: usize,
    /// Snapshot every this many events…
    pub snapshot_every_events: u64,
    /// …or this often, whichever comes first.
    pub snapshot_interval: Duration,
    /// Fault injection, for tests of the pipeline's seams; `Default` injects nothing.
    pub faults: FaultHooks,
    /// Set when this server is one pipeline of a cluster node (see [`crate::cluster::node`]):
    /// the role it runs in is the node's role at start.
    pub cluster: Option<Arc<ClusterState>>,
}

/// Faults a test can inject into a running server (nothing a client can reach).
#[derive(Clone, Default)]
pub struct FaultHooks {
    /// Called by the engine task before each command (a panic here ends the process); only
    /// in builds with the `fault-injection` feature (the integration tests).
    #[cfg(feature = "fault-injection")]
    pub before_command: Option<CommandHook>,
    /// Faults for the journal writer's next appends.
    pub appends: Option<Arc<AppendFaults>>,
    /// The journal writer's queue, in batches (default [`gavel_storage::writer::QUEUE_CAPACITY`]).
    pub journal_queue: Option<usize>,
    /// Postgres `statement_timeout` (default [`gavel_storage::store::POSTGRES_STATEMENT_TIMEOUT`]),
    /// short for tests of a journal write that hangs.
    pub postgres_statement_timeout: Option<Duration>,
}

impl std::fmt::Debug for FaultHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultHooks")
            .field("appends", &self.appends)
            .field("journal_queue", &self.journal_queue)
            .field(
                "postgres_statement_timeout",
                &self.postgres_statement_timeout,
            )
            .finish()
    }
}

/// What request handlers share.
#[derive(Debug)]
pub struct AppState {
    pub engine: EngineHandle,
    pub keys: JwtKeys,
    pub metrics: Arc<Metrics>,
    pub limits: Limits,
    pub rate_limiter: Arc<UserRateLimiter>,
    pub subscribe_limiter: UserRateLimiter,
    /// One permit per open WebSocket connection (`[limits] max_connections`), taken before
    /// the upgrade and held by the session.
    pub connection_permits: Arc<Semaphore>,
    pub conn_ids: ConnIds,
    pub connections: Mutex<HashMap<ConnId, ConnHandle>>,
    pub store: Store,
    pub rebuild: Arc<RebuildSignal>,
    /// The node's view of the cluster, when it is part of one.
    pub cluster: Option<Arc<ClusterState>>,
    /// A follower's link to the leader, where reads are charged to the cluster's one rate
    /// limiter before they are served here; `None` where this node's own limiter decides.
    pub forward: Option<mpsc::Sender<crate::cluster::forward::Forward>>,
    /// Set when a pipeline task died (the process is ending).
    pub fatal: Arc<Fatal>,
    pub shutting_down: watch::Receiver<bool>,
    /// The `[[webhooks]]` and, where this node delivers them, their delivery status.
    pub webhooks: Arc<Webhooks>,
    /// Task history answers reading storage at once (`GET /v1/tasks/{id}/events`).
    pub history_reads: Semaphore,
}

/// A journal written before the task archive existed has archived tasks but no archive rows:
/// they are rebuilt from the journal once, before serving (what `gavel archive rebuild`
/// does). Followers leave it to the leader.
async fn backfill_archive(store: &Store, engine: &gavel_engine::Engine) -> anyhow::Result<()> {
    if engine.state().archived_ids.is_empty() || store.archive_count().await? > 0 {
        return Ok(());
    }
    tracing::warn!(
        archived = engine.state().archived_ids.len(),
        "the journal has archived tasks but the archive is empty (a journal from before it): \
         rebuilding the archive from the journal"
    );
    let rows = store.archive_rebuild().await?;
    tracing::info!(rows, "archive rebuilt");
    Ok(())
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    pub addr: SocketAddr,
    pub epoch: String,
    stop: watch::Sender<bool>,
    done: JoinHandle<()>,
}

impl Server {
    /// Opens storage, recovers, and starts serving on `options.listen`.
    pub async fn start(options: ServerOptions) -> anyhow::Result<Self> {
        // The role, read once and before recovery: a leader's engine must recover from a
        // journal read after its lease was taken (nothing can be appended behind it then).
        let role = options.cluster.as_ref().map(|c| c.role());
        let store = match &options.database_url {
            Some(url) => match options.faults.postgres_statement_timeout {
                Some(timeout) => Store::open_postgres_with(url, timeout).await?,
                None => Store::open_postgres(url).await?,
            },
            None => Store::open_sqlite(&options.data_dir).await?,
        };
        let epoch = store.epoch().await?;
        let config = EngineConfig {
            tiers: options.config.tiers,
            archive_after: options.config.retention.archive_after_ms(),
            pricing: options.config.pricing,
        };
        let (engine, report) = recover(&store, config.clone()).await?;
        tracing::info!(
            backend = store.backend(),
            epoch = %epoch,
            seq = engine.seq(),
            snapshot_seq = report.snapshot_seq,
            replayed = report.replayed,
            took_ms = report.took.as_millis() as u64,
            "recovered"
        );
        if !matches!(role, Some(NodeRole::Follower)) {
            backfill_archive(&store, &engine).await?;
        }
        let recovered_seq = engine.seq();
        let task_meta: Vec<(gavel_protocol::TaskId, FeedMeta)> = engine
            .state()
            .tasks
            .iter()
            .map(|(id, t)| {
                let meta = FeedMeta {
                    urgency: t.spec.urgency,
                    task_type: t.spec.task_type.clone(),
                    suggested_price: t.spec.suggested_price,
                };
                (id.clone(), meta)
            })
            .collect();
        let seq = engine.seq();
        let metrics = Arc::new(Metrics::new());
        let cluster = options.cluster.clone();
        if let Some(cluster) = &cluster {
            cluster.metrics.register(metrics.registry());
            cluster.count_connections_in(metrics.connections.clone());
            cluster.start_at(seq);
        }
        let fatal = Arc::new(Fatal::default());
        let policy = SnapshotPolicy {
            every_events: options.snapshot_every_events,
            interval: options.snapshot_interval,
            keep: 2,
            persist: role != Some(NodeRole::Follower),
        };
        let replica =
            Engine::restore(config.clone(), engine.snapshot()).map_err(anyhow::Error::msg)?;
        let snapshots = snapshotter::spawn(
            replica,
            policy,
            store.clone(),
            metrics.clone(),
            fatal.clone(),
        );
        let (mode, follower_queue, forward) = match (&cluster, role) {
            (Some(cluster), Some(NodeRole::Follower)) => {
                let (tx, rx) = mpsc::channel(crate::cluster::forward::FORWARD_QUEUE);
                let link = FollowerLink::new(tx.clone(), cluster.clone());
                (Mode::Follower(link), Some(rx), Some(tx))
            }
            (_, role) => {
                let epoch = match role {
                    Some(NodeRole::Leader { epoch }) => Some(epoch),
                    _ => None,
                };
                let journal = start_journal(&options, &store, seq, epoch, &fatal);
                (Mode::Leader(journal), None, None)
            }
        };
        let (publish_tx, publish_rx) = mpsc::channel(PUBLISH_QUEUE);
        let rebuild = Arc::new(RebuildSignal::default());
        let clock = EngineClock::new(options.time_scale, engine.state().now);
        let actor = EngineActor {
            engine,
            config,
            store: store.clone(),
            mode,
            cluster: cluster.clone(),
            clock,
            publisher: publish_tx,
            metrics: metrics.clone(),
            rebuild: rebuild.clone(),
            epoch: epoch.clone(),
            #[cfg(feature = "fault-injection")]
            faults: options.faults.before_command.clone(),
        };
        let (engine_handle, engine_task) = actor.spawn();
        let engine_task = supervise("engine task", engine_task, fatal.clone());
        let (stop, stopped) = watch::channel(false);
        if let (Some(cluster), Some(queue)) = (&cluster, follower_queue) {
            start_follower(
                &options,
                &store,
                cluster,
                &engine_handle,
                queue,
                seq,
                &stopped,
            );
        }
        let subscription_limits = SubscriptionLimits {
            max_subscriptions: options.config.limits.max_subscriptions,
            max_replay_events: options.config.limits.max_replay_events,
        };
        let (publisher, catch_up_rx) = Publisher::new(
            store.clone(),
            epoch.clone(),
            engine_handle.downgrade(),
            rebuild.clone(),
            metrics.clone(),
            options.history,
            seq,
            task_meta,
            snapshots,
            subscription_limits,
        );
        let publisher =
            publisher.with_coalescing(Duration::from_millis(options.config.delivery.coalesce_ms));
        let (stats_tx, stats_rx) = mpsc::channel(4);
        tokio::spawn(stats_ticker(
            engine_handle.clone(),
            clock,
            stats_tx,
            stopped.clone(),
        ));
        let publisher_task = supervise(
            "publisher",
            tokio::spawn(publisher.run(publish_rx, catch_up_rx, stats_rx)),
            fatal.clone(),
        );
        let limits = options.config.limits.clone();
        // Bound before the webhooks start: a start that fails here leaves no webhook loop behind.
        let listener = TcpListener::bind(options.listen).await?;
        let addr = listener.local_addr()?;
        // Only the node that writes the journal delivers the webhooks (contract §14). A new
        // webhook's cursor is the position recovered, set before any command is taken.
        let hooks = check_all(&options.config.webhooks).map_err(anyhow::Error::msg)?;
        let webhooks = if matches!(role, Some(NodeRole::Follower)) {
            Webhooks::idle(hooks)
        } else {
            prepare_cursors(&store, &hooks, recovered_seq).await?;
            // The journal's appends index their own batches; a journal whose index is behind
            // (written before, or by an older binary) is caught up here once, where it is
            // written, like the webhooks. Followers never index.
            tokio::spawn(crate::history::indexer::run(store.clone(), stopped.clone()));
            Webhooks::start(hooks, &store, &epoch, &metrics, &stopped)
        };
        let state = Arc::new(AppState {
            engine: engine_handle,
            keys: JwtKeys::new(&options.jwt_secret),
            metrics,
            rate_limiter: Arc::new(UserRateLimiter::new(
                limits.commands_per_minute,
                limits.command_burst,
            )),
            subscribe_limiter: UserRateLimiter::new(
                limits.subscribes_per_minute,
                limits.subscribe_burst,
            ),
            connection_permits: Arc::new(Semaphore::new(limits.max_connections)),
            limits,
            conn_ids: ConnIds::default(),
            connections: Mutex::new(HashMap::new()),
            store,
            rebuild,
            cluster,
            forward,
            fatal,
            shutting_down: stopped.clone(),
            webhooks: Arc::new(webhooks),
            history_reads: Semaphore::new(crate::history::CONCURRENT_READS),
        });
        let done = tokio::spawn(serve(listener, state, stopped, engine_task, publisher_task));
        Ok(Server {
            addr,
            epoch,
            stop,
            done,
        })
    }

    /// Stops gracefully and waits until everything acknowledged is durable.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.done.await;
    }

    /// Waits until the server stops on its own (it does not, unless shut down).
    pub async fn wait(self) {
        let _ = self.done.await;
    }

    /// A sender that shuts the server down when `true` is sent (e.g. from a signal handler).
    pub fn stopper(&self) -> watch::Sender<bool> {
        self.stop.clone()
    }
}

/// The journal writer of a leader (or a single node): fenced by the lease epoch in a
/// cluster, whose committed rows then also go to Redis for the followers.
fn start_journal(
    options: &ServerOptions,
    store: &Store,
    seq: Seq,
    fence: Option<u64>,
    fatal: &Arc<Fatal>,
) -> JournalHandle {
    let mut writer = WriterOptions {
        capacity: options
            .faults
            .journal_queue
            .unwrap_or(gavel_storage::writer::QUEUE_CAPACITY),
        faults: options.faults.appends.clone(),
        ..WriterOptions::default()
    };
    // The epoch the pipeline started with (read once: the role may change meanwhile, and
    // then this pipeline is about to be replaced — its appends stay fenced by this epoch).
    if let (Some(cluster), Some(epoch)) = (&options.cluster, fence) {
        let (commits, published) = mpsc::channel(crate::cluster::replication::PUBLISH_QUEUE);
        writer.fence = Some(epoch);
        writer.on_commit = Some(commits);
        tokio::spawn(crate::cluster::replication::publish_commits(
            cluster.clone(),
            published,
        ));
    }
    let (journal, writer_task) =
        JournalHandle::spawn_with(store.clone(), seq, Arc::new(WriterStats::default()), writer);
    // The writer ends after the engine (its last handle); only a panic matters here.
    drop(supervise("journal writer", writer_task, fatal.clone()));
    journal
}

/// A follower's replication input and command link.
fn start_follower(
    options: &ServerOptions,
    store: &Store,
    cluster: &Arc<ClusterState>,
    engine: &EngineHandle,
    queue: mpsc::Receiver<crate::cluster::forward::Forward>,
    seq: Seq,
    stopped: &watch::Receiver<bool>,
) {
    tokio::spawn(crate::cluster::replication::follow(
        store.clone(),
        cluster.clone(),
        engine.clone(),
        seq,
        stopped.clone(),
    ));
    tokio::spawn(crate::cluster::forward::forward(
        cluster.clone(),
        engine.clone(),
        queue,
        JwtKeys::new(&options.jwt_secret),
        stopped.clone(),
    ));
}

async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    mut stopped: watch::Receiver<bool>,
    engine_task: JoinHandle<()>,
    publisher_task: JoinHandle<()>,
) {
    let app = crate::ingress::http::router(state.clone());
    let shutdown_state = state.clone();
    let mut shutdown_signal = stopped.clone();
    let graceful = async move {
        let _ = shutdown_signal.wait_for(|s| *s).await;
        tracing::info!("shutting down: closing clients with 1001");
        crate::ingress::session::close_all(&shutdown_state);
    };
    // Replies and events are small frames written as soon as they are ready: with Nagle's
    // algorithm on, a frame that follows another unacknowledged one waits for the peer's
    // delayed ACK (up to 40 ms on Linux). Every accepted socket gets TCP_NODELAY.
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY on an accepted socket");
        }
    });
    let server = axum::serve(listener, app).with_graceful_shutdown(graceful);
    // Forget idle rate-limit buckets now and then (bounded memory).
    let limiter_state = state.clone();
    let sweeper = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    limiter_state.rate_limiter.forget_idle();
                    limiter_state.subscribe_limiter.forget_idle();
                }
                _ = stopped.changed() => return,
            }
        }
    });
    if let Err(error) = server.await {
        tracing::error!(%error, "server error");
    }
    let _ = sweeper.await;
    // axum does not track upgraded WebSockets: wait for our own sessions to finish closing.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !state
        .connections
        .lock()
        .expect("connection registry lock")
        .is_empty()
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Sessions are gone; dropping the last engine handle lets the engine drain its queue, the
    // publisher publish the rest, and the writer commit it.
    drop(state);
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        let _ = engine_task.await;
        let _ = publisher_task.await;
    })
    .await;
    tracing::info!("stopped");
}
