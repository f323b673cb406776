//! Harness for cluster tests made of real processes: a throwaway Postgres and Redis on
//! 127.0.0.1 ([`services`]), `gavel serve` nodes ([`nodes`]), and WebSocket / HTTP clients
//! that talk to a node by address ([`client`]). Nothing is mocked.
//!
//! Use it from a test binary with `#[path = "cluster_support/mod.rs"] mod support;`.
// Shared by several test binaries; each uses only some of it.
#![allow(dead_code)]

pub mod client;
pub mod failover;
pub mod nodes;
pub mod services;
pub mod streams;

#[allow(unused_imports)]
pub use client::{NodeClient, admin_token, http_get, http_json, token, try_http};
#[allow(unused_imports)]
pub use nodes::{Cluster, ClusterOptions, GavelNode, NodeSpec};
#[allow(unused_imports)]
pub use services::{ThrowawayPostgres, ThrowawayRedis};

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};

/// The JWT secret every node of a test cluster is started with (and clients sign with).
pub const CLUSTER_SECRET: &str = "cluster-test-secret-0123456789abcdef";

/// Whether this process runs as root (Postgres then runs as the `postgres` user).
pub fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A new, empty directory named after `prefix`, this process and a counter.
///
/// As root it is made under `/tmp` (not `$TMPDIR`): the `postgres` user must be able to reach
/// it.
pub fn fresh_temp_dir(prefix: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let base = if is_root() {
        PathBuf::from("/tmp")
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!(
        "gavel-{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create temp dir {}: {e}", dir.display()));
    dir
}

/// The last `lines` lines of the file at `path` (empty when it cannot be read).
pub fn file_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A port on 127.0.0.1 that was free a moment ago (the OS picks it).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    listener
        .local_addr()
        .expect("a bound listener has an address")
        .port()
}

/// `n` distinct ports on 127.0.0.1 that were free a moment ago (held together while picked,
/// so no two are the same).
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0"))
        .collect();
    listeners
        .iter()
        .map(|l| {
            l.local_addr()
                .expect("a bound listener has an address")
                .port()
        })
        .collect()
}

/// A file to send a child's stdout and stderr to, `header` written first (appended:
/// restarts keep earlier output).
pub fn append_log(path: &Path, header: Option<&str>) -> (Stdio, Stdio) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("cannot open log file {}: {e}", path.display()));
    if let Some(header) = header {
        let _ = writeln!(file, "{header}");
    }
    let err = file.try_clone().expect("clone a log file handle");
    (Stdio::from(file), Stdio::from(err))
}
