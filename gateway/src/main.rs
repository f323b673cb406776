//! The `gavel` binary: `gavel serve` runs the server, `gavel token` mints a token,
//! `gavel connect` talks to a server, `gavel archive rebuild` recomputes the task archive,
//! `gavel snapshot export` writes the newest snapshot as JSON.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Parser;
use gavel_gateway::app::{Server, ServerOptions};
use gavel_gateway::cli::args::{
    ArchiveCommand, Cli, CliCommand, ServeArgs, SnapshotCommand, SnapshotExportArgs, StoreArgs,
    TokenArgs,
};
use gavel_gateway::cli::config::ServerConfig;
use gavel_gateway::cli::secret::{self, SecretSource};
use gavel_gateway::cli::{logging, signals};
use gavel_gateway::cluster::node::{ClusterOptions, default_node_id};
use gavel_gateway::ingress::auth::JwtKeys;

/// jemalloc, not glibc's malloc: under sustained load glibc's per-thread arenas kept the
/// memory of each snapshot burst and RSS climbed in steps unless `MALLOC_ARENA_MAX=2` was set;
/// jemalloc returns it by itself (docs/benchmarks.md, "The allocator").
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        CliCommand::Serve(args) => serve(args),
        CliCommand::Token(args) => token(args),
        CliCommand::Archive(ArchiveCommand::Rebuild(args)) => archive_rebuild(args),
        CliCommand::Snapshot(SnapshotCommand::Export(args)) => snapshot_export(args),
        CliCommand::Connect(args) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(gavel_gateway::cli::connect::run(
                &args.url,
                &args.token,
                args.linger,
            ))
        }
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    logging::init(args.log_format);
    let config = match &args.config {
        Some(path) => ServerConfig::load(path)?,
        None => ServerConfig::default(),
    };
    let (secret, source) =
        secret::resolve(args.secret.jwt_secret.as_deref(), &args.secret.data_dir).with_context(
            || {
                format!(
                    "resolving the JWT secret in {}",
                    args.secret.data_dir.display()
                )
            },
        )?;
    match &source {
        SecretSource::Configured => {
            tracing::info!("JWT secret: from --jwt-secret / GAVEL_JWT_SECRET")
        }
        SecretSource::Stored(path) => {
            tracing::info!(path = %path.display(), "JWT secret: read from the data directory")
        }
        SecretSource::Generated(path) => tracing::warn!(
            path = %path.display(),
            "no JWT secret configured: generated a random one and saved it; mint tokens on this machine with `gavel token`"
        ),
    }
    let cluster = match (&args.redis_url, &args.database_url) {
        (None, _) => None,
        (Some(_), None) => anyhow::bail!(
            "--redis-url runs a cluster, and a cluster needs Postgres: add --database-url postgres://… \
             (the SQLite default is one process's file)"
        ),
        (Some(_), Some(_))
            if args.listen.ip().is_unspecified()
                && (args.node_id.is_none() || args.advertise.is_none()) =>
        {
            anyhow::bail!(
                "--listen {} is every interface: other nodes cannot dial it, and every node would \
                 get the same default id; give --node-id and --advertise (an address the other \
                 nodes reach this one at)",
                args.listen
            )
        }
        (Some(redis_url), Some(_)) => Some(ClusterOptions {
            node_id: args
                .node_id
                .clone()
                .unwrap_or_else(|| default_node_id(args.listen)),
            advertise: args.advertise.unwrap_or(args.listen),
            redis_url: redis_url.clone(),
            drop_replication_every: args.fault_drop_replication_every,
        }),
    };
    tracing::info!(
        time_scale = args.time_scale,
        urgent = ?config.tiers.urgent,
        standard = ?config.tiers.standard,
        flexible = ?config.tiers.flexible,
        limits = ?config.limits,
        "configuration"
    );
    let options = ServerOptions {
        listen: args.listen,
        data_dir: args.secret.data_dir.clone(),
        database_url: args.database_url.clone(),
        config,
        jwt_secret: secret,
        time_scale: args.time_scale,
        history: args.history,
        snapshot_every_events: args.snapshot_every_events.max(1),
        snapshot_interval: std::time::Duration::from_secs(args.snapshot_interval_secs.max(1)),
        faults: Default::default(),
        cluster: None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        if let Some(cluster) = cluster {
            tracing::info!(node = %cluster.node_id, advertise = %cluster.advertise, "starting as a cluster node");
            let (stop, stopped) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                signals::shutdown_signal().await;
                let _ = stop.send(true);
            });
            return gavel_gateway::cluster::node::run(options, cluster, stopped).await;
        }
        let server = Server::start(options)
            .await
            .context("starting the server")?;
        tracing::info!(addr = %server.addr, epoch = %server.epoch, "listening");
        let stop = server.stopper();
        tokio::spawn(async move {
            signals::shutdown_signal().await;
            let _ = stop.send(true);
        });
        server.wait().await;
        Ok(())
    })
}

/// Opens the store a maintenance command names.
async fn open_store(args: &StoreArgs) -> anyhow::Result<gavel_storage::Store> {
    Ok(match &args.database_url {
        Some(url) => gavel_storage::Store::open_postgres(url).await?,
        None => gavel_storage::Store::open_sqlite(&args.data_dir).await?,
    })
}

fn archive_rebuild(args: StoreArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let archived = runtime.block_on(async {
        open_store(&args)
            .await?
            .archive_rebuild()
            .await
            .map_err(anyhow::Error::from)
    })?;
    #[allow(clippy::print_stdout)]
    {
        println!("archive rebuilt from the journal: {archived} archived tasks");
    }
    Ok(())
}

fn snapshot_export(args: SnapshotExportArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let stored = runtime
        .block_on(async { open_store(&args.store).await?.latest_snapshot().await.map_err(anyhow::Error::from) })?
        .context("the store holds no snapshot yet (one is written every --snapshot-every-events events or --snapshot-interval-secs)")?;
    let mut json = gavel_storage::snapshot_codec::to_json(&stored.state)
        .map_err(|e| anyhow::anyhow!("snapshot at seq {}: {e}", stored.seq))?;
    json.push(b'\n');
    match &args.out {
        Some(path) => {
            std::fs::write(path, &json).with_context(|| format!("writing {}", path.display()))?
        }
        None => std::io::Write::write_all(&mut std::io::stdout().lock(), &json)?,
    }
    Ok(())
}

fn token(args: TokenArgs) -> anyhow::Result<()> {
    let (secret, _) = secret::resolve(args.secret.jwt_secret.as_deref(), &args.secret.data_dir)
        .with_context(|| {
            format!(
                "resolving the JWT secret in {}",
                args.secret.data_dir.display()
            )
        })?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let token = JwtKeys::new(&secret).mint(&args.sub, args.role, args.ttl, now);
    // The token is the command's whole output, for `$(gavel token …)`.
    #[allow(clippy::print_stdout)]
    {
        println!("{token}");
    }
    Ok(())
}
