//! The server's resident memory and CPU time: from `/proc/<pid>` when its pid is known (the
//! machine is shared, so this is the honest source), else from `/metrics` if it exports
//! `process_resident_memory_bytes` / `process_cpu_seconds_total`.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::net::{Http, Target};

/// `/proc` reports CPU times in clock ticks; Linux fixes USER_HZ at 100 for every
/// mainstream architecture.
const CLOCK_TICKS_PER_SEC: f64 = 100.0;

/// Resident set size of `pid`, in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// CPU seconds (user + system) `pid` has used (`/proc/<pid>/stat` fields 14 and 15).
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: split after it.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3, so fields 14 and 15 are at 11 and 12.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / CLOCK_TICKS_PER_SEC)
}

/// Open file descriptors of `pid`.
pub fn open_fds(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

/// Where server usage is read from.
#[derive(Debug)]
pub enum Source {
    Proc(u32),
    Metrics(Box<Http>),
    None,
}

/// One reading.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Usage {
    pub rss_kib: Option<u64>,
    pub cpu_secs: Option<f64>,
}

/// Samples a server's usage and turns CPU seconds into a percentage between readings.
#[derive(Debug)]
pub struct Monitor {
    source: Source,
    last: Option<(Instant, f64)>,
}

impl Monitor {
    pub fn new(pid: Option<u32>, target: &Target) -> Self {
        let source = match pid {
            Some(pid) => Source::Proc(pid),
            None => Source::Metrics(Box::new(Http::new(target))),
        };
        Monitor { source, last: None }
    }

    pub fn source_name(&self) -> String {
        match &self.source {
            Source::Proc(pid) => format!("/proc/{pid}"),
            Source::Metrics(_) => "/metrics".into(),
            Source::None => "unavailable".into(),
        }
    }

    pub async fn read(&mut self) -> Usage {
        match &mut self.source {
            Source::Proc(pid) => Usage {
                rss_kib: rss_kib(*pid),
                cpu_secs: cpu_secs(*pid),
            },
            Source::Metrics(http) => {
                let Ok(resp) = http.request("GET", "/metrics", None, &[], None).await else {
                    return Usage::default();
                };
                let text = String::from_utf8_lossy(&resp.body);
                let metric = |name: &str| {
                    text.lines()
                        .find(|l| l.starts_with(name))
                        .and_then(|l| l.split_whitespace().last())
                        .and_then(|v| v.parse::<f64>().ok())
                };
                let usage = Usage {
                    rss_kib: metric("process_resident_memory_bytes ").map(|b| b as u64 / 1024),
                    cpu_secs: metric("process_cpu_seconds_total "),
                };
                if usage.rss_kib.is_none() && usage.cpu_secs.is_none() {
                    // Nothing there: stop asking.
                    self.source = Source::None;
                }
                usage
            }
            Source::None => Usage::default(),
        }
    }

    /// A reading plus CPU % since the previous call to `sample`.
    pub async fn sample(&mut self) -> (Usage, Option<f64>) {
        let u = self.read().await;
        let now = Instant::now();
        let pct = match (u.cpu_secs, self.last) {
            (Some(c), Some((t, c0))) => {
                let dt = now.duration_since(t).as_secs_f64();
                (dt > 0.0).then(|| (c - c0) / dt * 100.0)
            }
            _ => None,
        };
        if let Some(c) = u.cpu_secs {
            self.last = Some((now, c));
        }
        (u, pct)
    }
}

/// The machine, for the record next to every figure.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub mem_total_mib: u64,
    pub kernel: String,
}

impl Machine {
    pub fn read() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Machine {
            cpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            cpu_model: cpuinfo
                .lines()
                .find_map(|l| l.strip_prefix("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
                .unwrap_or_default(),
            mem_total_mib: meminfo
                .lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
                .map(|kib| kib / 1024)
                .unwrap_or(0),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_owned())
                .unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_can_be_measured() {
        let pid = std::process::id();
        assert!(rss_kib(pid).unwrap() > 0);
        assert!(cpu_secs(pid).unwrap() >= 0.0);
        assert!(open_fds(pid).unwrap() > 0);
    }
}
