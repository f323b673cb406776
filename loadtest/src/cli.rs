//! The command line. Every argument struct is also (de)serializable: a parent process hands the
//! whole parsed command line to its `--workers` children as one JSON line.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde::{Deserialize, Serialize};

/// Load tests for gavel, speaking only the wire protocol (a client like any other).
///
/// Scenarios: `market` (seekers post, coaches bid, admins watch), `connections` (many idle
/// subscribed connections), `fanout` (feed fan-out at increasing rates), `soak` (market for a
/// long time) and `baseline-server` (the plainest WebSocket broadcast, as a ceiling).
/// `--smoke` runs a few seconds of `market` against a server it starts itself.
#[derive(Debug, Clone, Parser, Serialize, Deserialize)]
#[command(name = "gavel-loadtest", version)]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub scenario: Option<Scenario>,
}

/// Flags every scenario shares.
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
pub struct Common {
    /// The server: `ws://host:port` (`/v1/ws` and the HTTP base are derived from it).
    /// Default ws://127.0.0.1:8080; with `--smoke` and no `--url`, a server is started.
    #[arg(long, global = true, env = "GAVEL_LOADTEST_URL")]
    pub url: Option<String>,
    /// The server's HS256 secret: tokens `{sub, role, exp}` are minted with it.
    #[arg(long, global = true, env = "GAVEL_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// How long to apply load (market, soak), or to hold the connections (connections):
    /// a number with s, m or h.
    #[arg(long, global = true, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Write the full result as JSON to this file.
    #[arg(long, global = true)]
    pub json: Option<PathBuf>,
    /// Draw delivered msgs/s and p99 latencies over time as an SVG file.
    #[arg(long, global = true)]
    pub plot: Option<PathBuf>,
    /// Bind client sockets to these local addresses, round-robin (e.g.
    /// 127.0.0.2,127.0.0.3): each gives another ~28k ephemeral ports.
    #[arg(long, global = true, value_delimiter = ',')]
    pub source_addrs: Vec<IpAddr>,
    /// Spread the subscriber connections (connections, fanout) over these nodes too, round
    /// robin with `--url` (e.g. the other nodes of a cluster: 127.0.0.1:8082,127.0.0.1:8083);
    /// commands and the publisher stay on `--url`.
    #[arg(long, global = true, value_delimiter = ',')]
    pub spread_to: Vec<std::net::SocketAddr>,
    /// Split the connections over this many child processes (each under its own open-file
    /// limit); their results are aggregated.
    #[arg(long, global = true, default_value_t = 1)]
    pub workers: u32,
    /// The server's process id: its RSS and CPU are sampled from /proc.
    #[arg(long, global = true)]
    pub server_pid: Option<u32>,
    /// A few seconds of `market` at a low rate, asserting no loss and no errors (not speed).
    /// Starts its own server unless `--url` is given.
    #[arg(long, global = true)]
    pub smoke: bool,
    /// The `gavel` binary `--smoke` starts (default: next to this binary).
    #[arg(long, global = true)]
    pub gavel_bin: Option<PathBuf>,
    /// No progress bar (it is also hidden when stderr is not a terminal, and with --smoke).
    #[arg(long, global = true)]
    pub no_progress: bool,
    /// Internal: run as a worker of a parent process (spec on stdin).
    #[arg(long, hide = true)]
    pub worker: bool,
}

/// The scenarios.
#[derive(Debug, Clone, Subcommand, Serialize, Deserialize)]
pub enum Scenario {
    /// Seekers post tasks at an open-loop rate and watch their tasks; coaches on `feed` bid;
    /// admins watch `admin`. Measures latency per topic and checks nothing is lost.
    Market(MarketArgs),
    /// Ramp to N idle `feed` subscribers, hold; connect+subscribe latency and server RSS.
    Connections(ConnectionsArgs),
    /// N `feed` subscribers, one publisher at increasing rates: the highest delivered msgs/s
    /// while p99 stays under a bound.
    Fanout(FanoutArgs),
    /// `market` for a long time, sampling server RSS and p99 over time.
    Soak(SoakArgs),
    /// The plainest broadcast over the same WebSocket stack (no auth, no engine, no journal):
    /// each text frame from a `/pub` connection goes to every other connection.
    BaselineServer(BaselineArgs),
}

impl Scenario {
    pub fn name(&self) -> &'static str {
        match self {
            Scenario::Market(_) => "market",
            Scenario::Connections(_) => "connections",
            Scenario::Fanout(_) => "fanout",
            Scenario::Soak(_) => "soak",
            Scenario::BaselineServer(_) => "baseline-server",
        }
    }
}

/// `market` (and `soak`).
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
pub struct MarketArgs {
    /// Seeker connections: each posts tasks and watches `task:<id>` of its own.
    #[arg(long, default_value_t = 20)]
    pub seekers: usize,
    /// Coach connections on `feed`.
    #[arg(long, default_value_t = 50)]
    pub coaches: usize,
    /// Coaches that bid (registered first with `PUT /v1/coaches/{id}`); default: all coaches,
    /// at most 1000. The others only watch, some with filters.
    #[arg(long)]
    pub bidders: Option<usize>,
    /// Percentage of the watching (non-bidding) coaches that subscribe with a `feed` filter.
    #[arg(long, default_value_t = 25)]
    pub filtered_pct: u32,
    /// Admin connections on `admin`.
    #[arg(long, default_value_t = 1)]
    pub admins: usize,
    /// Commands per second in all (open loop): each task costs `post_task`, one `place_bid`
    /// per bidder and a `cancel_task`.
    #[arg(long, default_value_t = 40.0)]
    pub rate: f64,
    /// Coaches that bid on each task.
    #[arg(long, default_value_t = 2)]
    pub bids_per_task: usize,
    /// Leave tasks open (by default a seeker cancels its task once every bid arrived).
    #[arg(long)]
    pub no_cancel: bool,
    /// Connections opened per second while setting up.
    #[arg(long, default_value_t = 2000.0)]
    pub connect_rate: f64,
    /// After the load: the run ends once nothing arrived for this long.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub quiet: Duration,
    /// After the load: give up waiting for replies and events after this long.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
}

impl Default for MarketArgs {
    fn default() -> Self {
        MarketArgs {
            seekers: 20,
            coaches: 50,
            bidders: None,
            filtered_pct: 25,
            admins: 1,
            rate: 40.0,
            bids_per_task: 2,
            no_cancel: false,
            connect_rate: 2000.0,
            quiet: Duration::from_secs(1),
            drain_timeout: Duration::from_secs(20),
        }
    }
}

impl MarketArgs {
    /// Coaches that bid.
    pub fn bidders(&self) -> usize {
        self.bidders
            .unwrap_or(self.coaches.min(1000))
            .min(self.coaches)
    }

    /// Commands one task costs.
    pub fn commands_per_task(&self) -> f64 {
        1.0 + self.bids_per_task as f64 + if self.no_cancel { 0.0 } else { 1.0 }
    }

    /// Tasks posted per second.
    pub fn tasks_per_sec(&self) -> f64 {
        self.rate / self.commands_per_task()
    }
}

/// `soak`.
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
pub struct SoakArgs {
    #[command(flatten)]
    pub market: MarketArgs,
    /// Points of the over-time table (RSS, p99, msgs/s) are this far apart.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub sample_every: Duration,
    /// The first stretch of the load, left out of the trend: connections, caches and the
    /// server's history ring fill up first.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// The soak fails when server RSS grows by more than this many percent from the first
    /// sample after the warm-up to the last one of the load.
    #[arg(long, default_value_t = 5.0)]
    pub max_rss_growth_pct: f64,
}

/// `connections`.
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
pub struct ConnectionsArgs {
    /// Subscribed `feed` connections to ramp to.
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    /// Connections opened per second.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Connects in flight at once (per process).
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    #[command(flatten)]
    pub baseline: BaselineChoice,
}

/// `fanout`.
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
pub struct FanoutArgs {
    /// `feed` subscribers.
    #[arg(long, default_value_t = 1000)]
    pub subscribers: usize,
    /// First publishing rate, in tasks per second.
    #[arg(long, default_value_t = 10.0)]
    pub start_rate: f64,
    /// Each step multiplies the rate by this.
    #[arg(long, default_value_t = 1.5)]
    pub step_factor: f64,
    /// Highest publishing rate tried.
    #[arg(long, default_value_t = 2000.0)]
    pub max_rate: f64,
    /// How long each rate is held.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub step: Duration,
    /// The p99 bound (ms): steps whose p99 exceeds it do not count, and the run stops there.
    #[arg(long, default_value_t = 50.0)]
    pub p99_bound_ms: f64,
    /// HTTP connections the publisher may use at once (`POST /v1/tasks`).
    #[arg(long, default_value_t = 32)]
    pub http_conns: usize,
    /// Connections opened per second while setting up.
    #[arg(long, default_value_t = 2000.0)]
    pub connect_rate: f64,
    /// Wait this long once every subscriber is ready, before the first step, and again after
    /// the last one, before the subscribers disconnect, saying so on stderr (`subscribers
    /// ready`, `steps done`): time for a profiler to count the deliveries alone, without the
    /// connects and the teardown (docs/benchmarks.md, "Where the time goes").
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub hold_before_publish: Duration,
    #[command(flatten)]
    pub baseline: BaselineChoice,
}

/// Whether (and how) a pass against the baseline server runs too.
#[derive(Debug, Clone, Default, Args, Serialize, Deserialize)]
pub struct BaselineChoice {
    /// Also run the same traffic against the baseline server (after gavel), and report the
    /// ratio. The baseline server is started as a child process unless --baseline-url.
    #[arg(long)]
    pub baseline: bool,
    /// Only run against the baseline server.
    #[arg(long)]
    pub baseline_only: bool,
    /// A baseline server already running (`gavel-loadtest baseline-server`).
    #[arg(long)]
    pub baseline_url: Option<String>,
    /// Start the baseline server with `--write-per-frame` (the plainest one: each frame its own
    /// write and flush).
    #[arg(long)]
    #[serde(default)]
    pub baseline_plain: bool,
}

/// `baseline-server`.
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
pub struct BaselineArgs {
    /// Address to listen on (`:0` picks a free port; the `listening` line on stderr says which).
    #[arg(long, default_value = "127.0.0.1:9090")]
    pub listen: SocketAddr,
    /// tungstenite's per-connection read buffer (gavel's default is 1 KiB; change it only to
    /// see what that buffer costs per connection).
    #[arg(long, default_value_t = 1024)]
    pub read_buffer_bytes: usize,
    /// Write and flush each frame on its own (one write per message, no batching) instead of
    /// feeding what is queued and flushing once: the plainest tokio-tungstenite broadcast.
    #[arg(long)]
    pub write_per_frame: bool,
}

/// Parses `500ms`, `90s`, `15m`, `1h` (a bare number means seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 500ms, 90s, 15m or 1h"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("unknown unit `{unit}`: use ms, s, m or h")),
    };
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err(format!("`{s}` is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
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
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("1w").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn global_flags_go_anywhere_and_smoke_needs_no_scenario() {
        let cli = Cli::try_parse_from([
            "gavel-loadtest",
            "market",
            "--rate",
            "10",
            "--url",
            "ws://127.0.0.1:1",
            "--source-addrs",
            "127.0.0.2,127.0.0.3",
        ])
        .unwrap();
        assert_eq!(cli.common.source_addrs.len(), 2);
        assert!(matches!(cli.scenario, Some(Scenario::Market(ref m)) if m.rate == 10.0));
        let cli = Cli::try_parse_from(["gavel-loadtest", "--smoke"]).unwrap();
        assert!(cli.common.smoke && cli.scenario.is_none());
    }

    #[test]
    fn a_task_costs_its_commands() {
        let m = MarketArgs {
            rate: 1000.0,
            ..MarketArgs::default()
        };
        assert_eq!(m.commands_per_task(), 4.0);
        assert_eq!(m.tasks_per_sec(), 250.0);
    }
}
