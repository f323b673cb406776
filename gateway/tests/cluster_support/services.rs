//! Throwaway Postgres and Redis servers on 127.0.0.1, each on a free port with its own temp
//! dir, that a test can stop and start again (same port, same data) to simulate outages.
//!
//! Their methods block (they run `pg_ctl` and wait for ports): fine in tests, on a
//! multi-threaded runtime or outside one; wrap them in `spawn_blocking` where a single-threaded
//! runtime must keep running something else meanwhile.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::client::redis_ping;
use super::{append_log, file_tail, free_port, fresh_temp_dir, is_root};

/// How the test script and a developer get the binaries these servers need.
const INSTALL_HINT: &str = "install them (Debian/Ubuntu: `apt-get install postgresql redis-server`), \
     or run `scripts/test`, which installs them";

// ---- Postgres ----------------------------------------------------------------------------

/// A Postgres cluster of its own (`initdb` into a temp dir, trust auth, superuser `postgres`),
/// listening on 127.0.0.1 only. As root its binaries run as the `postgres` user (`runuser`),
/// since Postgres refuses to run as root. Dropping it stops it and removes its files.
#[derive(Debug)]
pub struct ThrowawayPostgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    as_postgres_user: bool,
    running: AtomicBool,
}

impl ThrowawayPostgres {
    /// Initialises and starts a fresh cluster on a free port (panics when Postgres is not
    /// installed or does not start).
    pub fn start() -> Self {
        let bin = postgres_bin_dir();
        let as_postgres_user = is_root();
        let dir = fresh_temp_dir("pg");
        let mut pg = ThrowawayPostgres {
            bin,
            dir,
            port: 0,
            as_postgres_user,
            running: AtomicBool::new(false),
        };
        pg.hand_dir_to_postgres_user();
        pg.initdb();
        let mut last_error = String::new();
        for _attempt in 0..3 {
            pg.port = free_port();
            match pg.pg_ctl_start() {
                Ok(()) => return pg,
                // Most likely the port was taken in the meantime: try another one.
                Err(e) => last_error = e,
            }
        }
        panic!("the throwaway Postgres did not start: {last_error}");
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The port it listens on (kept across [`ThrowawayPostgres::start_again`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether it was started and not stopped since.
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    /// Stops it at once (`pg_ctl -m immediate`, like a crash; waits until it is gone).
    /// Does nothing when it is not running.
    pub fn stop(&self) {
        if !self.running.swap(false, Ordering::SeqCst) {
            return;
        }
        if let Err(e) = self.pg_ctl(&["-m", "immediate", "-w", "stop"]) {
            panic!("the throwaway Postgres did not stop: {e}");
        }
    }

    /// Starts it again on the same port with the same data (panics when it does not start).
    /// Does nothing when it is running.
    pub fn start_again(&self) {
        if self.is_running() {
            return;
        }
        if let Err(e) = self.pg_ctl_start() {
            panic!("the throwaway Postgres did not start again: {e}");
        }
    }

    /// [`ThrowawayPostgres::stop`], then [`ThrowawayPostgres::start_again`].
    pub fn restart(&self) {
        self.stop();
        self.start_again();
    }

    /// The last `lines` lines of the server's log.
    pub fn log_tail(&self, lines: usize) -> String {
        file_tail(&self.dir.join("postgres.log"), lines)
    }

    /// `pg_ctl start` on `self.port`, waiting until it accepts connections.
    fn pg_ctl_start(&self) -> Result<(), String> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("postgres.log");
        let log = log.to_str().expect("temp dir paths are UTF-8");
        match self.pg_ctl(&["-w", "-t", "60", "-o", &options, "-l", log, "start"]) {
            Ok(()) => {
                self.running.store(true, Ordering::SeqCst);
                Ok(())
            }
            Err(e) => {
                // A half-started server must not keep the data dir locked.
                let _ = self.pg_ctl(&["-m", "immediate", "-w", "stop"]);
                Err(format!("{e}\n--- postgres.log ---\n{}", self.log_tail(20)))
            }
        }
    }

    /// Runs `pg_ctl -D <data> ARGS`; its output goes to `pg_ctl.out` (not a pipe: the
    /// postmaster it starts must not hold our pipes open).
    fn pg_ctl(&self, args: &[&str]) -> Result<(), String> {
        let out_path = self.dir.join("pg_ctl.out");
        let _ = std::fs::remove_file(&out_path);
        let (stdout, stderr) = append_log(&out_path, None);
        let data = self.dir.join("data");
        let status = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&data)
            .args(args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .status()
            .map_err(|e| format!("cannot run pg_ctl: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!(
                "pg_ctl {args:?} exited with {status}: {}",
                file_tail(&out_path, 20)
            ))
        }
    }

    fn initdb(&self) {
        let out = self
            .command("initdb")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-A", "trust", "-U", "postgres", "--no-sync"])
            .args(["--encoding=UTF8", "--locale=C"])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run initdb: {e}"));
        assert!(
            out.status.success(),
            "initdb failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// As root: the temp dir belongs to `postgres`, who runs every binary.
    fn hand_dir_to_postgres_user(&self) {
        if !self.as_postgres_user {
            return;
        }
        let known = Command::new("id").arg("postgres").output();
        assert!(
            known.is_ok_and(|o| o.status.success()),
            "running as root, but there is no `postgres` user to run Postgres as; {INSTALL_HINT}"
        );
        let status = Command::new("chown")
            .args(["-R", "postgres:"])
            .arg(&self.dir)
            .status()
            .expect("run chown");
        assert!(
            status.success(),
            "chown -R postgres: {}",
            self.dir.display()
        );
    }

    /// A Postgres binary, run as `postgres` when we are root, in the temp dir (the other user
    /// may not be allowed into the test's working directory).
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut command = if self.as_postgres_user {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        };
        command.current_dir(&self.dir);
        command
    }
}

impl Drop for ThrowawayPostgres {
    fn drop(&mut self) {
        if self.running.swap(false, Ordering::SeqCst) {
            let _ = self.pg_ctl(&["-m", "immediate", "-w", "stop"]);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `pg_config --bindir`, else the newest `/usr/lib/postgresql/*/bin` (needs `initdb` and
/// `pg_ctl`); panics with what to install when there is none.
fn postgres_bin_dir() -> PathBuf {
    let usable = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && usable(&dir) {
            return dir;
        }
    }
    let mut versions: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let version: Option<Vec<u32>> = name.split('.').map(|p| p.parse().ok()).collect();
            Some((version?, entry.path().join("bin")))
        })
        .filter(|(_, bin)| usable(bin))
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "no Postgres server binaries (initdb, pg_ctl) found via `pg_config --bindir` or \
             under /usr/lib/postgresql/*/bin; {INSTALL_HINT}"
        ),
    }
}

// ---- Redis -------------------------------------------------------------------------------

/// A `redis-server` child process on 127.0.0.1 without persistence. Dropping it kills it and
/// removes its temp dir.
#[derive(Debug)]
pub struct ThrowawayRedis {
    port: u16,
    dir: PathBuf,
    child: Mutex<Option<Child>>,
}

impl ThrowawayRedis {
    /// Starts one on a free port and waits until it answers `PING` (panics when
    /// `redis-server` is not installed or does not start).
    pub fn start() -> Self {
        let found = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status();
        assert!(
            found.is_ok(),
            "redis-server is not on PATH ({}); {INSTALL_HINT}",
            found.err().map(|e| e.to_string()).unwrap_or_default()
        );
        let mut redis = ThrowawayRedis {
            port: 0,
            dir: fresh_temp_dir("redis"),
            child: Mutex::new(None),
        };
        let mut last_error = String::new();
        for _attempt in 0..3 {
            redis.port = free_port();
            match redis.spawn() {
                Ok(()) => return redis,
                // Most likely the port was taken in the meantime: try another one.
                Err(e) => last_error = e,
            }
        }
        panic!("the throwaway Redis did not start: {last_error}");
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The address it listens on (kept across [`ThrowawayRedis::start_again`]).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// Whether its process is alive.
    pub fn is_running(&self) -> bool {
        let mut child = self.child.lock().expect("redis child lock");
        child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Kills it (SIGKILL) and waits for it to exit. Does nothing when it is not running.
    pub fn stop(&self) {
        let taken = self.child.lock().expect("redis child lock").take();
        if let Some(mut child) = taken {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port (empty: nothing was persisted) and waits until it
    /// answers `PING`. Does nothing when it is running.
    pub fn start_again(&self) {
        if self.is_running() {
            return;
        }
        if let Err(e) = self.spawn() {
            panic!("the throwaway Redis did not start again: {e}");
        }
    }

    /// [`ThrowawayRedis::stop`], then [`ThrowawayRedis::start_again`].
    pub fn restart(&self) {
        self.stop();
        self.start_again();
    }

    /// Sends `PING` over a raw TCP connection and returns the reply line (`+PONG`).
    pub fn ping(&self) -> std::io::Result<String> {
        redis_ping(self.addr())
    }

    /// The last `lines` lines of the server's output.
    pub fn log_tail(&self, lines: usize) -> String {
        file_tail(&self.dir.join("redis.log"), lines)
    }

    /// Spawns `redis-server` on `self.port` and waits (10 s) for its `+PONG`.
    fn spawn(&self) -> Result<(), String> {
        let (stdout, stderr) = append_log(&self.dir.join("redis.log"), None);
        let port = self.port.to_string();
        let mut child = Command::new("redis-server")
            .args(["--port", &port, "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("cannot run redis-server: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "redis-server exited with {status}: {}",
                    self.log_tail(10)
                ));
            }
            if self.ping().is_ok_and(|reply| reply == "+PONG") {
                *self.child.lock().expect("redis child lock") = Some(child);
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("no +PONG within 10 s: {}", self.log_tail(10)));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for ThrowawayRedis {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
