//! The `gavel` command line. Every flag can also be given as a `GAVEL_*` environment variable
//! (the flag wins), so containers and CI configure gavel without argument lists.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use gavel_protocol::{Role, UserId};

use crate::cli::logging::LogFormat;

/// gavel: a real-time marketplace engine (tasks, live bids, deadlines, escrow, WebSockets).
#[derive(Debug, Parser)]
#[command(name = "gavel", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: CliCommand,
}

/// The commands of the `gavel` binary.
#[derive(Debug, Subcommand)]
pub enum CliCommand {
    /// Run the server.
    Serve(ServeArgs),
    /// Print an HS256 token signed with the configured secret (for trials, tests, load tests).
    Token(TokenArgs),
    /// Talk to a server by hand: stdin lines are sent as frames, frames are printed as lines.
    Connect(ConnectArgs),
    /// The task archive (tasks that have left memory; contract §9).
    #[command(subcommand)]
    Archive(ArchiveCommand),
    /// The engine's snapshots (binary in the store; JSON on export).
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
}

/// `gavel snapshot …`.
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Write the newest stored snapshot as JSON (the engine's whole state, readable by jq).
    /// It only reads snapshots, but opening the store is what `serve` does (create it if
    /// absent, run migrations): give the data directory or database the servers use.
    Export(SnapshotExportArgs),
}

/// `gavel snapshot export`.
#[derive(Debug, Clone, Args)]
pub struct SnapshotExportArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Where to write the JSON (default: standard output).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `gavel archive …`.
#[derive(Debug, Subcommand)]
pub enum ArchiveCommand {
    /// Recompute the archive from the journal (the same rows the servers wrote). Run it with
    /// the servers of this database stopped.
    Rebuild(StoreArgs),
}

/// Which store a maintenance command works on.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Directory holding the SQLite journal (when no --database-url is given).
    #[arg(long, env = "GAVEL_DATA_DIR", default_value = "./gavel-data")]
    pub data_dir: PathBuf,
    /// Postgres URL of the journal (default: SQLite in the data directory).
    #[arg(long, env = "GAVEL_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

/// `gavel connect`.
#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// The WebSocket endpoint.
    #[arg(long, env = "GAVEL_URL", default_value = "ws://127.0.0.1:8080/v1/ws")]
    pub url: String,
    /// The token to connect with (see `gavel token`).
    #[arg(long, env = "GAVEL_TOKEN", hide_env_values = true)]
    pub token: String,
    /// How long to keep printing after the end of input: a number with s, m, h or d.
    #[arg(long, default_value = "1s", value_parser = parse_ttl)]
    pub linger: Duration,
}

/// Where the JWT secret comes from (shared by `serve` and `token`).
#[derive(Debug, Clone, Args)]
pub struct SecretArgs {
    /// Directory for gavel's own files (the journal, and the generated secret).
    #[arg(long, env = "GAVEL_DATA_DIR", default_value = "./gavel-data")]
    pub data_dir: PathBuf,
    /// HS256 secret for tokens. Without one, a random secret is generated at first start and
    /// kept in `<data-dir>/jwt-secret`.
    #[arg(long, env = "GAVEL_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
}

/// `gavel serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on for HTTP and WebSocket.
    #[arg(long, env = "GAVEL_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub secret: SecretArgs,
    /// Postgres URL for the journal and snapshots (default: SQLite in the data directory).
    #[arg(long, env = "GAVEL_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Redis URL: runs this node as part of a cluster (needs --database-url postgres://…).
    /// Every node runs the same command; one leads, the others follow.
    #[arg(long, env = "GAVEL_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// This node's name in the cluster (default: derived from the listen address).
    #[arg(long, env = "GAVEL_NODE_ID")]
    pub node_id: Option<String>,
    /// The address other nodes reach this one at (default: the listen address).
    #[arg(long, env = "GAVEL_ADVERTISE")]
    pub advertise: Option<SocketAddr>,
    /// Tests only: drop every Nth batch received over Redis (followers must fill the gaps).
    #[arg(long, hide = true)]
    pub fault_drop_replication_every: Option<u64>,
    /// TOML file with tiers and limits (every key optional).
    #[arg(long, env = "GAVEL_CONFIG")]
    pub config: Option<PathBuf>,
    /// Engine time runs this many times faster than wall time (demos and tests).
    #[arg(long, env = "GAVEL_TIME_SCALE", default_value = "1", value_parser = parse_time_scale)]
    pub time_scale: f64,
    /// Events kept in memory for `since` resumes (older ones are read from the journal).
    #[arg(long, env = "GAVEL_HISTORY", default_value_t = crate::app::DEFAULT_HISTORY)]
    pub history: usize,
    /// Write a snapshot every this many events…
    #[arg(long, env = "GAVEL_SNAPSHOT_EVERY_EVENTS", default_value_t = 100_000)]
    pub snapshot_every_events: u64,
    /// …or every this many seconds, whichever comes first.
    #[arg(long, env = "GAVEL_SNAPSHOT_INTERVAL_SECS", default_value_t = 300)]
    pub snapshot_interval_secs: u64,
    /// Log line format.
    #[arg(long, env = "GAVEL_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// `gavel token`.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// The user id (1-64 characters of A-Z a-z 0-9 _ . : -).
    #[arg(long, value_parser = parse_user_id)]
    pub sub: UserId,
    /// seeker, coach or admin.
    #[arg(long, value_parser = parse_role)]
    pub role: Role,
    /// How long the token is valid: a number with s, m, h or d (e.g. 90s, 15m, 1h, 7d).
    #[arg(long, default_value = "1h", value_parser = parse_ttl)]
    pub ttl: Duration,
    #[command(flatten)]
    pub secret: SecretArgs,
}

fn parse_user_id(s: &str) -> Result<UserId, String> {
    UserId::new(s).map_err(|e| format!("user id {e}"))
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| format!("role must be one of {}", Role::expected()))
}

fn parse_time_scale(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 && x <= 1_000_000.0 => Ok(x),
        _ => Err("time scale must be a number greater than 0 (at most 1000000)".into()),
    }
}

/// Parses `90s`, `15m`, `1h`, `7d` (a bare number means seconds).
pub fn parse_ttl(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 90s, 15m, 1h or 7d"))?;
    let unit_secs = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("unknown unit `{unit}`: use s, m, h or d")),
    };
    if n == 0 {
        return Err("ttl must be positive".into());
    }
    n.checked_mul(unit_secs)
        .map(Duration::from_secs)
        .ok_or_else(|| "ttl is too long".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn ttls_parse_with_units() {
        assert_eq!(parse_ttl("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_ttl("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_ttl("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_ttl("30"), Ok(Duration::from_secs(30)));
        assert!(parse_ttl("0h").is_err());
        assert!(parse_ttl("1w").is_err());
        assert!(parse_ttl("h").is_err());
    }

    #[test]
    fn serve_defaults_match_the_docs() {
        let cli = Cli::try_parse_from(["gavel", "serve"]).unwrap();
        let CliCommand::Serve(args) = cli.command else {
            panic!("serve expected")
        };
        assert_eq!(args.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(args.secret.data_dir, PathBuf::from("./gavel-data"));
        assert_eq!(args.time_scale, 1.0);
        assert_eq!(args.log_format, LogFormat::Text);
    }

    #[test]
    fn bad_flags_are_refused() {
        assert!(Cli::try_parse_from(["gavel", "serve", "--time-scale", "0"]).is_err());
        assert!(
            Cli::try_parse_from(["gavel", "token", "--sub", "a b", "--role", "coach"]).is_err()
        );
        assert!(Cli::try_parse_from(["gavel", "token", "--sub", "a", "--role", "root"]).is_err());
    }
}
