//! Workers: the processes (or, with one worker, the in-process task) that hold connections.
//!
//! The parent hands each worker a [`WorkerSpec`] and then drives it with [`Ctl`] messages;
//! the worker answers with [`Up`] messages: `Ready` once its connections are set up, a `Tick`
//! every second, `Quiet` once its load has drained, and `Done` with everything it measured.
//! A child process speaks the same messages as JSON lines on stdin/stdout, so one worker in
//! process and N child processes are driven by the same code.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use crate::cli::{Cli, Scenario};
use crate::digest::LossBook;
use crate::net::Target;
use crate::stats::{Stats, Tick, Totals};

/// What one worker is asked to do.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerSpec {
    pub cli: Cli,
    pub index: u32,
    pub count: u32,
    /// Prefix of every user and task id of this run (no `-` in it).
    pub run_id: String,
    pub target: Target,
    pub secret: String,
}

impl WorkerSpec {
    /// `[lo, hi)`: this worker's share of `n` items.
    pub fn share(&self, n: usize) -> std::ops::Range<usize> {
        split(n, self.index as usize, self.count as usize)
    }

    pub fn scenario(&self) -> &Scenario {
        self.cli.scenario.as_ref().expect("workers run a scenario")
    }
}

/// `[lo, hi)` of part `i` of `n` items split in `parts`.
pub fn split(n: usize, i: usize, parts: usize) -> std::ops::Range<usize> {
    let lo = n * i / parts;
    let hi = n * (i + 1) / parts;
    lo..hi
}

/// Parent → worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Ctl {
    /// Start the load.
    Go,
    /// Stop generating load; report `Quiet` once nothing is outstanding or arriving.
    Stop,
    /// Close every connection and report `Done`.
    Finish,
}

/// Worker → parent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[allow(clippy::large_enum_variant)]
pub enum Up {
    Ready,
    /// The connections scenario finished its ramp.
    Ramped,
    Tick(Tick),
    Quiet,
    Done(Box<WorkerResult>),
    Failed(String),
}

/// Everything one worker measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WorkerResult {
    pub totals: Totals,
    pub loss: LossBook,
    /// Fan-out: per step, what its subscribers received.
    pub steps: Vec<crate::fanout::StepObs>,
    /// Tasks this worker posted and got acknowledged.
    pub posted: u64,
    pub bids: u64,
    pub canceled: u64,
    /// Connections that could not be set up.
    pub setup_failures: u64,
}

/// The worker's side of the link.
#[derive(Debug)]
pub struct Link {
    ctl: mpsc::UnboundedReceiver<Ctl>,
    up: mpsc::UnboundedSender<Up>,
}

impl Link {
    pub fn send(&self, msg: Up) {
        let _ = self.up.send(msg);
    }

    /// The next message from the parent (`Finish` if the parent is gone).
    pub async fn recv(&mut self) -> Ctl {
        self.ctl.recv().await.unwrap_or(Ctl::Finish)
    }

    /// Sends a `Tick` of `stats` every second until the returned guard is dropped.
    pub fn ticker(&self, stats: &Arc<Stats>) -> tokio::task::JoinHandle<()> {
        let up = self.up.clone();
        let stats = stats.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            every.tick().await;
            let (mut events, mut errors) = (0, 0);
            loop {
                every.tick().await;
                if up
                    .send(Up::Tick(stats.tick(&mut events, &mut errors)))
                    .is_err()
                {
                    break;
                }
            }
        })
    }
}

/// Runs one worker to the end.
pub async fn run(spec: WorkerSpec, mut link: Link) {
    let outcome = match spec.scenario().clone() {
        Scenario::Market(_) | Scenario::Soak(_) => crate::market::worker(spec, &mut link).await,
        Scenario::Connections(_) => crate::conns::worker(spec, &mut link).await,
        Scenario::Fanout(_) => crate::fanout::worker(spec, &mut link).await,
        Scenario::BaselineServer(_) => Err(anyhow::anyhow!("not a worker scenario")),
    };
    match outcome {
        Ok(result) => link.send(Up::Done(Box::new(result))),
        Err(e) => link.send(Up::Failed(format!("{e:#}"))),
    }
}

/// A child process's main: the spec is the first stdin line; later lines are `Ctl`s; `Up`s go
/// to stdout, one JSON object per line.
pub async fn child_main() -> anyhow::Result<()> {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let first = lines
        .next_line()
        .await?
        .context("no worker spec on stdin")?;
    let spec: WorkerSpec = serde_json::from_str(&first).context("decoding the worker spec")?;
    let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
    let (up_tx, mut up_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            match serde_json::from_str::<Ctl>(&line) {
                Ok(ctl) => {
                    if ctl_tx.send(ctl).is_err() {
                        break;
                    }
                }
                Err(_) => continue,
            }
        }
        // The parent is gone: finish.
        let _ = ctl_tx.send(Ctl::Finish);
    });
    let writer = tokio::spawn(async move {
        let mut out = tokio::io::stdout();
        while let Some(msg) = up_rx.recv().await {
            let done = matches!(msg, Up::Done(_) | Up::Failed(_));
            let mut line = serde_json::to_string(&msg).expect("worker messages serialize");
            line.push('\n');
            if out.write_all(line.as_bytes()).await.is_err() {
                break;
            }
            let _ = out.flush().await;
            if done {
                break;
            }
        }
    });
    run(
        spec,
        Link {
            ctl: ctl_rx,
            up: up_tx,
        },
    )
    .await;
    let _ = writer.await;
    Ok(())
}

/// The parent's side: every worker's control channel, and their messages merged.
#[derive(Debug)]
pub struct Workers {
    ctl: Vec<mpsc::UnboundedSender<Ctl>>,
    up: mpsc::UnboundedReceiver<(usize, Up)>,
    pids: Vec<u32>,
    _children: Vec<tokio::process::Child>,
}

impl Workers {
    /// Starts `spec.count` workers: in this process when there is one, else child processes
    /// of this same binary.
    pub async fn start(spec: &WorkerSpec) -> anyhow::Result<Workers> {
        let (up_tx, up_rx) = mpsc::unbounded_channel();
        let mut ctl = Vec::new();
        let mut children = Vec::new();
        let mut pids = Vec::new();
        if spec.count <= 1 {
            let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
            let (my_up_tx, mut my_up_rx) = mpsc::unbounded_channel();
            let up_tx = up_tx.clone();
            tokio::spawn(async move {
                while let Some(msg) = my_up_rx.recv().await {
                    if up_tx.send((0, msg)).is_err() {
                        break;
                    }
                }
            });
            let spec = WorkerSpec {
                index: 0,
                count: 1,
                ..spec.clone()
            };
            tokio::spawn(run(
                spec,
                Link {
                    ctl: ctl_rx,
                    up: my_up_tx,
                },
            ));
            ctl.push(ctl_tx);
        } else {
            let exe = std::env::current_exe().context("locating this binary")?;
            for index in 0..spec.count {
                let mut child = tokio::process::Command::new(&exe)
                    .arg("--worker")
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::inherit())
                    .kill_on_drop(true)
                    .spawn()
                    .with_context(|| format!("starting worker {index}"))?;
                pids.extend(child.id());
                let mut stdin = child.stdin.take().context("worker stdin")?;
                let stdout = child.stdout.take().context("worker stdout")?;
                let mut line = serde_json::to_string(&WorkerSpec {
                    index,
                    ..spec.clone()
                })?;
                line.push('\n');
                stdin.write_all(line.as_bytes()).await?;
                stdin.flush().await?;
                let (ctl_tx, mut ctl_rx) = mpsc::unbounded_channel::<Ctl>();
                tokio::spawn(async move {
                    while let Some(msg) = ctl_rx.recv().await {
                        let mut line = serde_json::to_string(&msg).expect("ctl serializes");
                        line.push('\n');
                        if stdin.write_all(line.as_bytes()).await.is_err() {
                            break;
                        }
                        let _ = stdin.flush().await;
                    }
                });
                let up_tx = up_tx.clone();
                let i = index as usize;
                tokio::spawn(async move {
                    let mut lines = BufReader::new(stdout).lines();
                    let mut finished = false;
                    while let Ok(Some(line)) = lines.next_line().await {
                        match serde_json::from_str::<Up>(&line) {
                            Ok(msg) => {
                                finished |= matches!(msg, Up::Done(_) | Up::Failed(_));
                                let _ = up_tx.send((i, msg));
                            }
                            Err(e) => {
                                let _ = up_tx.send((i, Up::Failed(format!("bad line: {e}"))));
                                finished = true;
                            }
                        }
                    }
                    if !finished {
                        let _ = up_tx.send((i, Up::Failed("the worker process exited".into())));
                    }
                });
                ctl.push(ctl_tx);
                children.push(child);
            }
        }
        Ok(Workers {
            ctl,
            up: up_rx,
            pids,
            _children: children,
        })
    }

    pub fn count(&self) -> usize {
        self.ctl.len()
    }

    /// Process ids of the child workers (none when the worker runs in process).
    pub fn pids(&self) -> &[u32] {
        &self.pids
    }

    pub fn broadcast(&self, msg: Ctl) {
        for tx in &self.ctl {
            let _ = tx.send(msg.clone());
        }
    }

    /// The next message of any worker.
    pub async fn next(&mut self) -> Option<(usize, Up)> {
        self.up.recv().await
    }

    /// Waits until every worker sent a message `want` accepts, passing ticks to `on_tick`
    /// meanwhile; a `Failed` worker is an error. Returns the accepted messages by worker.
    pub async fn wait_all(
        &mut self,
        want: impl Fn(&Up) -> bool,
        on_tick: &mut dyn FnMut(usize, Tick),
        timeout: Duration,
    ) -> anyhow::Result<Vec<Up>> {
        let mut got: Vec<Option<Up>> = (0..self.count()).map(|_| None).collect();
        let deadline = tokio::time::Instant::now() + timeout;
        while got.iter().any(Option::is_none) {
            let next = tokio::time::timeout_at(deadline, self.next()).await;
            let Ok(Some((i, msg))) = next else {
                bail!(
                    "timed out after {:?} waiting for {} worker(s)",
                    timeout,
                    got.iter().filter(|g| g.is_none()).count()
                );
            };
            match msg {
                Up::Tick(t) => on_tick(i, t),
                Up::Failed(e) => bail!("worker {i} failed: {e}"),
                m if want(&m) => got[i] = Some(m),
                _ => {}
            }
        }
        Ok(got.into_iter().map(|g| g.expect("all arrived")).collect())
    }
}
