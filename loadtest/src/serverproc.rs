//! Servers the harness starts itself: `gavel serve` for `--smoke`, and the baseline server for
//! `--baseline`. Both announce their address in a JSON `listening` line on stderr.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A server child process (killed if dropped).
#[derive(Debug)]
pub struct ServerProc {
    child: Child,
    pub addr: SocketAddr,
    pub pid: u32,
    /// The last lines it logged, for when something goes wrong.
    pub tail: Arc<Mutex<VecDeque<String>>>,
    /// Log lines at ERROR level.
    pub errors: Arc<Mutex<u64>>,
    data_dir: Option<PathBuf>,
}

/// The address in a `listening` log line (JSON, or text with `addr=`).
fn listening_addr(line: &str) -> Option<SocketAddr> {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
        let message = v
            .get("message")
            .or_else(|| v.get("fields").and_then(|f| f.get("message")))?;
        if message != "listening" {
            return None;
        }
        let addr = v
            .get("addr")
            .or_else(|| v.get("fields").and_then(|f| f.get("addr")))?;
        return addr.as_str()?.parse().ok();
    }
    if !line.contains("listening") {
        return None;
    }
    let at = line.find("addr=")? + 5;
    line[at..].split_whitespace().next()?.parse().ok()
}

impl ServerProc {
    /// Starts `command` and waits (up to `timeout`) for its `listening` line.
    pub async fn start(
        mut command: Command,
        timeout: Duration,
        data_dir: Option<PathBuf>,
    ) -> anyhow::Result<ServerProc> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting the server")?;
        let pid = child.id().context("the server exited at once")?;
        let stderr = child.stderr.take().context("server stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let keep = |tail: &Mutex<VecDeque<String>>, line: &str| {
            let mut t = tail.lock().expect("tail lock");
            if t.len() == 40 {
                t.pop_front();
            }
            t.push_back(line.to_owned());
        };
        let found = tokio::time::timeout(timeout, async {
            while let Ok(Some(line)) = lines.next_line().await {
                keep(&tail, &line);
                if let Some(addr) = listening_addr(&line) {
                    return Some(addr);
                }
            }
            None
        })
        .await;
        let addr = match found {
            Ok(Some(addr)) => addr,
            _ => {
                let _ = child.start_kill();
                let log: Vec<String> = tail.lock().expect("tail lock").iter().cloned().collect();
                bail!(
                    "the server did not say it was listening within {timeout:?}; its log:\n{}",
                    log.join("\n")
                );
            }
        };
        let errors = Arc::new(Mutex::new(0));
        {
            let tail = tail.clone();
            let errors = errors.clone();
            tokio::spawn(async move {
                while let Ok(Some(line)) = lines.next_line().await {
                    if line.contains("\"level\":\"ERROR\"") || line.contains(" ERROR ") {
                        *errors.lock().expect("errors lock") += 1;
                    }
                    keep(&tail, &line);
                }
            });
        }
        Ok(ServerProc {
            child,
            addr,
            pid,
            tail,
            errors,
            data_dir,
        })
    }

    /// `gavel serve` on a free port with a fresh data directory.
    pub async fn gavel(bin: &Path, secret: &str, run: &str) -> anyhow::Result<ServerProc> {
        if !bin.exists() {
            bail!(
                "no gavel binary at {} (build it with `cargo build -p gavel-gateway`, or pass --gavel-bin)",
                bin.display()
            );
        }
        let data_dir = std::env::temp_dir().join(format!("gavel-loadtest-{run}"));
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        let mut command = Command::new(bin);
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--jwt-secret", secret, "--time-scale", "1"])
            .env("RUST_LOG", "info");
        ServerProc::start(command, Duration::from_secs(30), Some(data_dir)).await
    }

    /// This binary's `baseline-server` on a free port (`plain`: one write per frame).
    pub async fn baseline(plain: bool) -> anyhow::Result<ServerProc> {
        let exe = std::env::current_exe().context("locating this binary")?;
        let mut command = Command::new(exe);
        command.args(["baseline-server", "--listen", "127.0.0.1:0"]);
        if plain {
            command.arg("--write-per-frame");
        }
        ServerProc::start(command, Duration::from_secs(10), None).await
    }

    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// SIGTERM (a clean shutdown), then SIGKILL after 10 s; removes its data directory.
    pub async fn stop(mut self) -> Option<i32> {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let status = match tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await {
            Ok(Ok(status)) => status.code(),
            _ => {
                let _ = self.child.kill().await;
                None
            }
        };
        if let Some(dir) = self.data_dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listening_line_is_found_in_json_and_text() {
        let json = r#"{"timestamp":"x","level":"INFO","message":"listening","addr":"127.0.0.1:4321","epoch":"e","target":"gavel"}"#;
        assert_eq!(
            listening_addr(json),
            Some("127.0.0.1:4321".parse().unwrap())
        );
        let text = "2025 INFO gavel: listening addr=127.0.0.1:99 epoch=e";
        assert_eq!(listening_addr(text), Some("127.0.0.1:99".parse().unwrap()));
        assert_eq!(listening_addr(r#"{"message":"recovered"}"#), None);
    }
}
