//! `gavel serve` processes ([`GavelNode`]) and a cluster of them sharing one Postgres and one
//! Redis ([`Cluster`]). Nodes are real child processes of the test, killed when dropped.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::client::{claims_leadership, fetch_cluster_view, is_ready};
use super::services::{ThrowawayPostgres, ThrowawayRedis};
use super::{CLUSTER_SECRET, append_log, file_tail, free_ports, fresh_temp_dir};

/// The `gavel` binary Cargo built for this test run.
const GAVEL: &str = env!("CARGO_BIN_EXE_gavel");

/// How long a [`Cluster`] query of one node's `/v1/cluster` may take.
const CLUSTER_QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// How to run one `gavel serve`.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// `--node-id`.
    pub node_id: String,
    /// The port of `--listen 127.0.0.1:PORT`.
    pub port: u16,
    /// `--database-url`.
    pub database_url: String,
    /// `--redis-url`.
    pub redis_url: String,
    /// `--time-scale`.
    pub time_scale: f64,
    /// Appended to the command line (`--config FILE`, `--fault-drop-replication-every N`, …).
    pub extra_args: Vec<String>,
}

impl NodeSpec {
    /// The command line after the binary's name.
    fn args(&self, data_dir: &Path) -> Vec<String> {
        let mut args: Vec<String> = [
            "serve",
            "--listen",
            &format!("127.0.0.1:{}", self.port),
            "--database-url",
            &self.database_url,
            "--redis-url",
            &self.redis_url,
            "--node-id",
            &self.node_id,
            "--jwt-secret",
            CLUSTER_SECRET,
            "--data-dir",
            data_dir.to_str().expect("temp dir paths are UTF-8"),
            "--time-scale",
            &self.time_scale.to_string(),
        ]
        .map(str::to_owned)
        .into();
        args.extend(self.extra_args.iter().cloned());
        args
    }
}

/// One `gavel serve` child process, its output appended to `node.log` in its temp dir.
///
/// Every method takes `&self`, so a test can kill one node of a [`Cluster`] while holding
/// others. The temp dir is removed on drop, unless the thread is panicking (then the log
/// stays, for a look after the failure).
#[derive(Debug)]
pub struct GavelNode {
    spec: NodeSpec,
    dir: PathBuf,
    child: Mutex<Option<Child>>,
    paused: AtomicBool,
}

impl GavelNode {
    /// Starts `gavel serve` as `spec` says (does not wait until it is ready: see
    /// [`GavelNode::wait_ready`]).
    pub fn spawn(spec: NodeSpec) -> Self {
        let node = GavelNode {
            dir: fresh_temp_dir(&format!("node-{}", spec.node_id)),
            spec,
            child: Mutex::new(None),
            paused: AtomicBool::new(false),
        };
        node.spawn_child();
        node
    }

    /// How it is run.
    pub fn spec(&self) -> &NodeSpec {
        &self.spec
    }

    /// `127.0.0.1:PORT` (kept across restarts).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.spec.port))
    }

    /// Its `--node-id`.
    pub fn node_id(&self) -> &str {
        &self.spec.node_id
    }

    /// Its `--data-dir`.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The process id of the running process.
    pub fn pid(&self) -> Option<u32> {
        let child = self.child.lock().expect("node child lock");
        child.as_ref().map(Child::id)
    }

    /// Whether the process is alive (a paused one is).
    pub fn is_running(&self) -> bool {
        let mut child = self.child.lock().expect("node child lock");
        child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Whether it was paused by [`GavelNode::stop_signal`] and not continued since.
    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    /// SIGKILL, and waits for the process to exit. Does nothing when it is not running.
    pub fn kill(&self) {
        let taken = self.child.lock().expect("node child lock").take();
        if let Some(mut child) = taken {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.paused.store(false, Ordering::SeqCst);
    }

    /// Pauses the process (SIGSTOP): it holds its sockets but answers nothing. Returns once
    /// every thread of it is stopped (the signal is delivered asynchronously: a thread can
    /// still run briefly after `kill` returns, long enough to serve a frame sent meanwhile).
    pub fn stop_signal(&self) {
        self.signal("-STOP");
        self.paused.store(true, Ordering::SeqCst);
        let pid = self.pid().expect("the node is running");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !all_threads_stopped(pid) {
            assert!(
                Instant::now() < deadline,
                "node {} did not stop",
                self.node_id()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Resumes a paused process (SIGCONT).
    pub fn cont(&self) {
        self.signal("-CONT");
        self.paused.store(false, Ordering::SeqCst);
    }

    /// Kills the process (if running) and starts it again: same port, arguments and data dir.
    pub fn restart(&self) {
        self.kill();
        self.spawn_child();
    }

    /// Whether `GET /readyz` answers 200 now (within 1 s).
    pub async fn is_ready(&self) -> bool {
        is_ready(self.addr()).await
    }

    /// Polls `GET /readyz` until it answers 200; panics (with the log's tail) when the
    /// process exits or `timeout` passes first.
    pub async fn wait_ready(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.is_ready().await {
            let why = match (self.is_running(), Instant::now() < deadline) {
                (false, _) => "exited before it was ready".to_owned(),
                (true, false) => format!("was not ready within {timeout:?}"),
                (true, true) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            panic!(
                "node {} {why}; its log:\n{}",
                self.node_id(),
                self.log_tail(50)
            );
        }
    }

    /// The last `lines` lines of its output (across restarts).
    pub fn log_tail(&self, lines: usize) -> String {
        file_tail(&self.log_path(), lines)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("node.log")
    }

    fn spawn_child(&self) {
        let args = self.spec.args(&self.data_dir());
        let header = format!("----- test harness: gavel {} -----", args.join(" "));
        let (stdout, stderr) = append_log(&self.log_path(), Some(&header));
        let child = Command::new(GAVEL)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {GAVEL}: {e}"));
        *self.child.lock().expect("node child lock") = Some(child);
    }

    /// `kill SIGNAL PID` on the running process (panics when there is none).
    fn signal(&self, signal: &str) {
        let pid = self
            .pid()
            .unwrap_or_else(|| panic!("node {} is not running", self.node_id()));
        let status = Command::new("kill")
            .arg(signal)
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {pid} failed: {status}");
    }
}

/// Whether every thread of process `pid` is in the stopped state (`T` in /proc).
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().all(|task| {
        std::fs::read_to_string(task.path().join("stat")).is_ok_and(|stat| {
            // The state follows the command name, which is in parentheses.
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .is_some_and(|state| state == "T" || state == "t")
        })
    })
}

impl Drop for GavelNode {
    fn drop(&mut self) {
        self.kill();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// How a [`Cluster`] runs its nodes.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// `--time-scale` of every node.
    pub time_scale: f64,
    /// Extra arguments for every node.
    pub extra_args: Vec<String>,
    /// Extra arguments for node `i` (after `extra_args`); missing entries mean none.
    pub node_args: Vec<Vec<String>>,
    /// How long [`Cluster::start`] waits for each node's `/readyz`.
    pub ready_timeout: Duration,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            time_scale: 1.0,
            extra_args: Vec::new(),
            node_args: Vec::new(),
            ready_timeout: Duration::from_secs(30),
        }
    }
}

/// `n` nodes `n1`…`nN` on one Postgres and one Redis. Dropping it kills them all; when the
/// thread is panicking it first prints each node's last 50 log lines to stderr.
#[derive(Debug)]
pub struct Cluster {
    nodes: Vec<GavelNode>,
}

impl Cluster {
    /// Starts `n` nodes on free ports and waits until each is ready.
    pub async fn start(
        n: usize,
        pg: &ThrowawayPostgres,
        redis: &ThrowawayRedis,
        options: ClusterOptions,
    ) -> Self {
        let nodes = free_ports(n)
            .into_iter()
            .enumerate()
            .map(|(i, port)| {
                let mut extra_args = options.extra_args.clone();
                extra_args.extend(options.node_args.get(i).cloned().unwrap_or_default());
                GavelNode::spawn(NodeSpec {
                    node_id: format!("n{}", i + 1),
                    port,
                    database_url: pg.url(),
                    redis_url: redis.url(),
                    time_scale: options.time_scale,
                    extra_args,
                })
            })
            .collect();
        let cluster = Cluster { nodes };
        for node in &cluster.nodes {
            node.wait_ready(options.ready_timeout).await;
        }
        cluster
    }

    /// How many nodes it has.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Node `i` (0-based: node `n1` is 0).
    pub fn node(&self, i: usize) -> &GavelNode {
        &self.nodes[i]
    }

    /// Every node, in order.
    pub fn nodes(&self) -> &[GavelNode] {
        &self.nodes
    }

    /// `GET /v1/cluster` on node `i` as an admin; panics unless it answers 200 within 2 s.
    pub async fn fetch_cluster(&self, node: usize) -> Value {
        let n = &self.nodes[node];
        match fetch_cluster_view(n.addr(), CLUSTER_QUERY_TIMEOUT).await {
            Ok(view) => view,
            Err(e) => panic!(
                "GET /v1/cluster on node {}: {e}; its log:\n{}",
                n.node_id(),
                n.log_tail(50)
            ),
        }
    }

    /// Like [`Cluster::fetch_cluster`], `None` when the node is not running, paused, or does
    /// not answer 200 within 2 s.
    pub async fn try_fetch_cluster(&self, node: usize) -> Option<Value> {
        let n = &self.nodes[node];
        if n.is_paused() || !n.is_running() {
            return None;
        }
        fetch_cluster_view(n.addr(), CLUSTER_QUERY_TIMEOUT)
            .await
            .ok()
    }

    /// The nodes (but `excluding`) whose `/v1/cluster` lists themselves with
    /// `role: "leader"`, asked concurrently.
    pub async fn leaders(&self, excluding: Option<usize>) -> Vec<usize> {
        let asked = (0..self.len()).filter(|&i| Some(i) != excluding);
        let answers = futures_util::future::join_all(
            asked.map(|i| async move { (i, self.try_fetch_cluster(i).await) }),
        )
        .await;
        answers
            .into_iter()
            .filter(|(i, view)| {
                view.as_ref()
                    .is_some_and(|v| claims_leadership(v, self.nodes[*i].node_id()))
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// The one node that says it leads; `None` when none or several do.
    pub async fn leader(&self) -> Option<usize> {
        match self.leaders(None).await.as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    }

    /// Waits until exactly one node (but `excluding`) says it leads and returns it; panics
    /// after `timeout` with each node's view and log.
    pub async fn wait_for_leader(&self, timeout: Duration, excluding: Option<usize>) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            if let [one] = self.leaders(excluding).await.as_slice() {
                return *one;
            }
            if Instant::now() >= deadline {
                let mut views = String::new();
                for i in (0..self.len()).filter(|&i| Some(i) != excluding) {
                    let view = self.try_fetch_cluster(i).await;
                    views.push_str(&format!("{}: {view:?}\n", self.nodes[i].node_id()));
                }
                // (Dropping the cluster while panicking prints the nodes' logs.)
                panic!("no single leader within {timeout:?} (excluding {excluding:?}):\n{views}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The last `lines` log lines of every node, each under a header.
    pub fn logs(&self, lines: usize) -> String {
        self.nodes
            .iter()
            .map(|n| format!("===== node {} =====\n{}\n", n.node_id(), n.log_tail(lines)))
            .collect()
    }
}

impl Drop for Cluster {
    // The one place the harness prints: a failed cluster test shows what the nodes said.
    #[allow(clippy::print_stderr)]
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs(50));
        }
        for node in &self.nodes {
            node.kill();
        }
    }
}
