//! Kassa as its own process, for what must be measured without the load generator in the
//! same address space: `kassa serve` from the release binary, on 127.0.0.1 with a port the
//! OS picks (read from its "kassa listening on" line), rate limit off, nothing of the caller's
//! `KASSA_*` environment.
//!
//! It is stopped with SIGTERM (as a service manager would; sent with `kill` on its pid) and
//! killed if it has not exited within [`STOP_TIMEOUT`], or when dropped.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::time::Instant;

/// How long a start or a stop may take before it is a failure.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// Lines of the child's stderr kept for error messages.
const TAIL_LINES: usize = 20;

/// The `kassa` binary beside this one (both are in `target/release` under `cargo run
/// --release`; a test binary sits one level deeper, in `deps/`).
pub fn find_kassa_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    [dir.join("kassa"), dir.parent()?.join("kassa")]
        .into_iter()
        .find(|p| p.is_file())
}

/// Memory of a process, from `/proc/<pid>/status`, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// Resident now.
    pub rss_kib: u64,
    /// The most resident so far.
    pub peak_kib: u64,
}

/// A running `kassa serve`.
pub struct Child {
    child: tokio::process::Child,
    pub pid: u32,
    pub addr: SocketAddr,
    /// From spawning to the first 200 on `/api/v1/status`.
    pub start_to_ready: Duration,
    tail: Arc<Mutex<VecDeque<String>>>,
}

impl Child {
    /// Spawns `binary serve` on `data_dir` and `database_url` and waits for its first 200 on
    /// `/api/v1/status`.
    pub async fn start(
        binary: &Path,
        data_dir: &Path,
        database_url: &str,
    ) -> anyhow::Result<Child> {
        let spawned_at = Instant::now();
        let mut command = tokio::process::Command::new(binary);
        command
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--database-url")
            .arg(database_url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("KASSA_") {
                command.env_remove(name);
            }
        }
        command.env("KASSA_RATE_LIMIT_PER_MINUTE", "0");
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let pid = child.id().context("the child has a pid while running")?;
        let stderr = child.stderr.take().context("the child's stderr is piped")?;
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let (addr_tx, addr_rx) = tokio::sync::oneshot::channel::<SocketAddr>();
        tokio::spawn(read_stderr(stderr, tail.clone(), addr_tx));
        let mut started = Child {
            child,
            pid,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            start_to_ready: Duration::ZERO,
            tail,
        };
        started.addr = match tokio::time::timeout(START_TIMEOUT, addr_rx).await {
            Ok(Ok(addr)) => addr,
            _ => anyhow::bail!(
                "kassa serve did not say where it listens within {} s; its last lines:\n{}",
                START_TIMEOUT.as_secs(),
                started.tail()
            ),
        };
        loop {
            if let Ok((status, _)) =
                crate::load::get_once(started.addr, "/api/v1/status", None).await
            {
                if status == http::StatusCode::OK {
                    break;
                }
            }
            if spawned_at.elapsed() > START_TIMEOUT {
                anyhow::bail!("kassa serve did not answer 200 on /api/v1/status in time");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        started.start_to_ready = spawned_at.elapsed();
        Ok(started)
    }

    /// The child's memory now.
    pub fn memory(&self) -> Option<Memory> {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        let field = |name: &str| -> Option<u64> {
            let line = text.lines().find(|l| l.starts_with(name))?;
            line.get(name.len()..)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        };
        Some(Memory {
            rss_kib: field("VmRSS:")?,
            peak_kib: field("VmHWM:")?,
        })
    }

    /// Its last lines on stderr.
    pub fn tail(&self) -> String {
        self.tail
            .lock()
            .map(|t| t.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    }

    /// SIGTERM, then waits for a clean exit; how long that took. Killed after
    /// [`STOP_TIMEOUT`] (an error).
    pub async fn stop(mut self) -> anyhow::Result<Duration> {
        let asked_at = Instant::now();
        let sent = tokio::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status()
            .await;
        if !matches!(sent, Ok(s) if s.success()) {
            self.child.kill().await.context("killing kassa serve")?;
            anyhow::bail!("could not send SIGTERM to kassa serve ({sent:?}); killed it");
        }
        match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(Ok(status)) if status.success() => Ok(asked_at.elapsed()),
            Ok(Ok(status)) => anyhow::bail!(
                "kassa serve exited with {status} after SIGTERM; its last lines:\n{}",
                self.tail()
            ),
            Ok(Err(e)) => Err(e).context("waiting for kassa serve"),
            Err(_) => {
                self.child.kill().await.context("killing kassa serve")?;
                anyhow::bail!(
                    "kassa serve did not stop within {} s of SIGTERM; killed it",
                    STOP_TIMEOUT.as_secs()
                )
            }
        }
    }
}

/// Keeps the last lines of the child's stderr and passes on the address it listens on.
async fn read_stderr(
    stderr: tokio::process::ChildStderr,
    tail: Arc<Mutex<VecDeque<String>>>,
    addr_tx: tokio::sync::oneshot::Sender<SocketAddr>,
) {
    let mut addr_tx = Some(addr_tx);
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(rest) = line.strip_prefix("kassa listening on http://") {
            if let (Some(tx), Ok(addr)) = (addr_tx.take(), rest.trim().parse()) {
                let _ = tx.send(addr);
            }
        }
        if let Ok(mut tail) = tail.lock() {
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        }
    }
}

/// `kassa api-key create --org demo` against the child's data, retried until the demo
/// organization exists (it is made just after the listener is up); the key.
pub async fn create_api_key(
    binary: &Path,
    data_dir: &Path,
    database_url: &str,
) -> anyhow::Result<String> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let mut command = tokio::process::Command::new(binary);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("KASSA_") {
                command.env_remove(name);
            }
        }
        let out = command
            .args(["api-key", "create", "--org", "demo", "--name", "bench"])
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--database-url")
            .arg(database_url)
            .stdin(Stdio::null())
            .output()
            .await
            .context("running kassa api-key create")?;
        let key = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if out.status.success() && !key.is_empty() {
            return Ok(key);
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "kassa api-key create kept failing: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
