//! The server's optional TOML configuration (`--config FILE`): the tier table, the limits,
//! how long finished tasks stay in memory and how tasks are priced.
//! Every key is optional and defaults to the contract's value; unknown keys are an error, so a
//! typo never silently leaves a default in place.
//!
//! ```toml
//! [tiers.urgent]
//! multiplier_percent = 150
//! delivery_hours = 2
//! bidding_minutes = 10
//!
//! [limits]
//! commands_per_minute = 100
//! command_burst = 20
//! write_timeout_secs = 10
//! max_subscriptions = 64
//! subscribes_per_minute = 120
//! max_connections = 50000
//! max_replay_events = 100000
//!
//! [retention]
//! final_task_minutes = 60
//!
//! [pricing]          # contract §11
//! mode = "fixed"     # or "market": the tier's median accepted amount
//! window = 200
//! min_samples = 20
//!
//! [[webhooks]]       # contract §14; one table per receiver
//! url = "http://127.0.0.1:9000/gavel"
//! secret = "at-least-24-bytes-of-secret"
//! kinds = ["payment.held", "payment.released", "payment.refunded"]
//!
//! [cluster]          # used with --redis-url (see docs/operations.md, "Running a cluster")
//! lease_ms = 2500
//! poll_ms = 250
//! max_lag_ms = 5000
//! heartbeat_ms = 1000
//! channel = "gavel:journal"
//! ```

use std::path::Path;

use gavel_engine::TierTable;
use gavel_engine::market::PricingConfig;
use serde::Deserialize;

/// Everything the TOML file may set.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub tiers: TierTable,
    pub limits: Limits,
    pub retention: Retention,
    pub pricing: PricingConfig,
    pub cluster: ClusterConfig,
    pub delivery: Delivery,
    /// `[[webhooks]]` (contract §14).
    pub webhooks: Vec<crate::webhooks::WebhookConfig>,
}

/// How the nodes of a cluster coordinate (only read when `--redis-url` is given).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// How long the leader's lease lasts without a renewal; it renews every fifth of it. A
    /// killed or frozen leader is replaced within about this long (plus `poll_ms`).
    pub lease_ms: u64,
    /// How often a follower reads the lease (to find the leader, or take over) and, when no
    /// message came over Redis meanwhile, the journal's tail.
    pub poll_ms: u64,
    /// A node whose replica is behind the journal by more than this answers commands
    /// `UNAVAILABLE` and `/readyz` 503 (contract §12).
    pub max_lag_ms: u64,
    /// How often each node records its heartbeat (for `GET /v1/cluster`).
    pub heartbeat_ms: u64,
    /// The Redis pub/sub channel that carries the journal's committed batches.
    pub channel: String,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            lease_ms: 2500,
            poll_ms: 250,
            max_lag_ms: 5000,
            heartbeat_ms: 1000,
            channel: "gavel:journal".into(),
        }
    }
}

/// How events reach the sockets.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Delivery {
    /// A `feed` or `admin` event for a subscriber that was written to less than this many
    /// milliseconds ago waits, about this long (to the next millisecond tick after it), and
    /// everything that waited goes out in one write. A subscriber that has been quiet that long gets the
    /// event at once, so only one that receives faster than an event per window trades up to
    /// this much latency for fewer writes. `task:`, `seeker:` and `coach:` events and replies
    /// never wait. 0 writes every event at once.
    pub coalesce_ms: u64,
}

impl Default for Delivery {
    fn default() -> Self {
        Delivery { coalesce_ms: 2 }
    }
}

/// How long the engine keeps what it no longer needs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Retention {
    /// Minutes a task stays in memory (views, `GET /v1/tasks/{id}`, subscriptions) after it
    /// reached a final state — completed, canceled or refunded; then it is archived: its
    /// history stays in the journal, its id stays taken. 0 keeps every task for ever (memory
    /// then grows with every task the market ever saw).
    pub final_task_minutes: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            final_task_minutes: 60,
        }
    }
}

impl Retention {
    /// The engine's `archive_after`, in milliseconds of engine time.
    pub fn archive_after_ms(&self) -> Option<u64> {
        (self.final_task_minutes > 0).then(|| self.final_task_minutes.saturating_mul(60_000))
    }
}

/// Per-connection and per-user limits (contract §1, §2, §7).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Sustained commands per user per minute (subscriptions and pings are not counted).
    pub commands_per_minute: u32,
    /// Commands a user may send at once before the per-minute rate applies.
    pub command_burst: u32,
    /// Largest client frame, in bytes; larger closes the connection with 1009.
    pub max_frame_bytes: usize,
    /// tungstenite's read buffer per connection, allocated up front and held for the
    /// connection's life — the largest single part of an idle connection's memory. 256 bytes
    /// hold a subscribe, a ping or a bid in one read; bigger frames (up to `max_frame_bytes`)
    /// still arrive, in more reads. Raise it for clients that send large commands often.
    pub read_buffer_bytes: usize,
    /// Bad frames tolerated per `bad_frame_window_secs` before closing with 1008.
    pub bad_frames: u32,
    pub bad_frame_window_secs: u64,
    /// Seconds between server pings.
    pub ping_interval_secs: u64,
    /// Seconds of silence after which a connection is closed.
    pub idle_timeout_secs: u64,
    /// Seconds a write to one socket may take; a client that stops reading is closed with
    /// 4008 after this and its memory released (contract §13).
    pub write_timeout_secs: u64,
    /// Topics one connection may hold at once; one more is `CONFLICT`.
    pub max_subscriptions: usize,
    /// Sustained `subscribe` frames per user per minute (a budget of their own, apart from
    /// commands), with bursts of `subscribe_burst` so a reconnect can resubscribe at once.
    pub subscribes_per_minute: u32,
    pub subscribe_burst: u32,
    /// Open WebSocket connections per node; beyond it the upgrade is refused with HTTP 503.
    pub max_connections: usize,
    /// Events of a topic a `since` resume may replay; further behind gets a fresh snapshot
    /// with `reset: true`.
    pub max_replay_events: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            commands_per_minute: 100,
            command_burst: 20,
            max_frame_bytes: gavel_protocol::MAX_FRAME_BYTES,
            read_buffer_bytes: 256,
            bad_frames: 20,
            bad_frame_window_secs: 10,
            ping_interval_secs: 20,
            idle_timeout_secs: 60,
            write_timeout_secs: 10,
            max_subscriptions: 64,
            subscribes_per_minute: 120,
            subscribe_burst: 64,
            max_connections: 50_000,
            max_replay_events: 100_000,
        }
    }
}

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: String,
        source: toml::de::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

impl ServerConfig {
    /// Loads and checks `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let display = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: display.clone(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { source, .. } => ConfigError::Parse {
                path: display,
                source,
            },
            ConfigError::Invalid { message, .. } => ConfigError::Invalid {
                path: display,
                message,
            },
            other => other,
        })
    }

    /// Parses and checks TOML text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: ServerConfig = toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: String::new(),
            source,
        })?;
        config.validate().map_err(|message| ConfigError::Invalid {
            path: String::new(),
            message,
        })?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        self.tiers.validate()?;
        self.pricing.validate()?;
        crate::webhooks::check_all(&self.webhooks)?;
        let l = &self.limits;
        if l.commands_per_minute == 0 || l.command_burst == 0 {
            return Err("limits: commands_per_minute and command_burst must be at least 1".into());
        }
        if l.max_frame_bytes < 1024 {
            return Err("limits: max_frame_bytes must be at least 1024".into());
        }
        if !(256..=l.max_frame_bytes).contains(&l.read_buffer_bytes) {
            return Err("limits: read_buffer_bytes must be within 256..=max_frame_bytes".into());
        }
        if l.ping_interval_secs == 0 || l.idle_timeout_secs <= l.ping_interval_secs {
            return Err("limits: idle_timeout_secs must exceed ping_interval_secs (> 0)".into());
        }
        if l.write_timeout_secs == 0 {
            return Err("limits: write_timeout_secs must be at least 1".into());
        }
        if l.max_subscriptions == 0 || l.max_connections == 0 {
            return Err("limits: max_subscriptions and max_connections must be at least 1".into());
        }
        if l.subscribes_per_minute == 0 || l.subscribe_burst == 0 {
            return Err(
                "limits: subscribes_per_minute and subscribe_burst must be at least 1".into(),
            );
        }
        let c = &self.cluster;
        if c.lease_ms < 500 || c.poll_ms == 0 || c.poll_ms >= c.lease_ms || c.heartbeat_ms == 0 {
            return Err(
                "cluster: lease_ms must be at least 500, poll_ms within 1..lease_ms, heartbeat_ms at least 1"
                    .into(),
            );
        }
        if c.channel.is_empty() {
            return Err("cluster: channel must not be empty".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_means_the_contracts_defaults() {
        let c = ServerConfig::parse("").unwrap();
        assert_eq!(c, ServerConfig::default());
        assert_eq!(c.limits.commands_per_minute, 100);
        assert_eq!(c.limits.command_burst, 20);
        assert_eq!(c.limits.max_frame_bytes, 65536);
        assert_eq!(c.limits.read_buffer_bytes, 256);
        assert_eq!(c.limits.write_timeout_secs, 10);
        assert_eq!(c.limits.max_subscriptions, 64);
        assert_eq!(c.limits.subscribes_per_minute, 120);
        assert_eq!(c.limits.subscribe_burst, 64);
        assert_eq!(c.limits.max_connections, 50_000);
        assert_eq!(c.limits.max_replay_events, 100_000);
        assert_eq!(c.retention.archive_after_ms(), Some(3_600_000));
        let keep = ServerConfig::parse("[retention]\nfinal_task_minutes = 0\n").unwrap();
        assert_eq!(keep.retention.archive_after_ms(), None);
    }

    #[test]
    fn tiers_and_limits_can_be_overridden() {
        let c = ServerConfig::parse(
            "[tiers.urgent]\nmultiplier_percent = 200\ndelivery_hours = 1\nbidding_minutes = 5\n\
             [limits]\ncommands_per_minute = 600\n",
        )
        .unwrap();
        assert_eq!(c.tiers.urgent.multiplier_percent, 200);
        assert_eq!(c.limits.commands_per_minute, 600);
        assert_eq!(c.limits.command_burst, 20);
    }

    #[test]
    fn typos_and_nonsense_are_refused() {
        assert!(matches!(
            ServerConfig::parse("[limits]\ncomands_per_minute = 5\n"),
            Err(ConfigError::Parse { .. })
        ));
        assert!(matches!(
            ServerConfig::parse("[limits]\ncommand_burst = 0\n"),
            Err(ConfigError::Invalid { .. })
        ));
        assert!(matches!(
            ServerConfig::parse("[limits]\nread_buffer_bytes = 16\n"),
            Err(ConfigError::Invalid { .. })
        ));
        assert!(matches!(
            ServerConfig::parse(
                "[tiers.flexible]\nmultiplier_percent = 0\ndelivery_hours = 1\nbidding_minutes = 1\n"
            ),
            Err(ConfigError::Invalid { .. })
        ));
    }
}
