//! The real processes of the crash drill (`tests/crash.rs`) and how the drill talks to them:
//! the `kassa` binary run as a user runs it (administration commands, `kassa serve`, `kassa
//! kaspi-sim`), each child killed when its guard drops, and the simulator's control API over
//! HTTP. Everything listens on 127.0.0.1 only.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt as _;

/// How long one administration command may take.
const COMMAND_LIMIT: Duration = Duration::from_secs(30);
/// How long a process may take to say it listens.
const START_LIMIT: Duration = Duration::from_secs(30);
/// How long a control call may take.
const CONTROL_LIMIT: Duration = Duration::from_secs(10);
/// Log lines of a process kept for the report.
const LOG_TAIL: usize = 40;

/// `kassa <args>` with none of the caller's `KASSA_*` settings; killed when dropped.
pub fn kassa(args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_kassa"));
    for (name, _) in std::env::vars() {
        if name.starts_with("KASSA_") {
            cmd.env_remove(name);
        }
    }
    cmd.env("RUST_LOG", "warn")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// A child process that is killed (SIGKILL) when this guard drops, on every path out of the
/// test, panics included.
pub struct Proc {
    pub name: String,
    child: tokio::process::Child,
    /// Its last log lines (stderr), for reports.
    log: Arc<Mutex<VecDeque<String>>>,
}

impl Proc {
    /// Starts `cmd` and waits (bounded) for the stderr line that starts with `banner`;
    /// answers the guard and the rest of that line. Its log is drained from then on.
    pub async fn start(
        name: &str,
        mut cmd: tokio::process::Command,
        banner: &str,
    ) -> (Proc, String) {
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{name} starts: {e}"));
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let mut proc = Proc {
            name: name.to_owned(),
            child,
            log: log.clone(),
        };
        let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stderr));
        let found = tokio::time::timeout(START_LIMIT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.strip_prefix(banner) {
                    return Some(rest.to_owned());
                }
                keep(&log, line);
            }
            None
        })
        .await;
        let rest = match found {
            Ok(Some(rest)) => rest,
            Ok(None) => {
                let status = proc.child.wait().await;
                panic!(
                    "{name} exited before `{banner}` ({status:?}); its log:\n{}",
                    proc.log_tail()
                );
            }
            Err(_) => panic!(
                "{name} did not say `{banner}` in {START_LIMIT:?}; its log:\n{}",
                proc.log_tail()
            ),
        };
        // Keep draining its log so it never blocks on a full pipe.
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                keep(&log, line);
            }
        });
        (proc, rest)
    }

    /// `kill -9`, and waits (bounded) until the process is gone.
    pub async fn kill9(&mut self) {
        let _ = self.child.start_kill();
        let waited = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
        assert!(
            matches!(waited, Ok(Ok(_))),
            "{} did not die after SIGKILL",
            self.name
        );
    }

    /// Its last log lines.
    pub fn log_tail(&self) -> String {
        let log = self
            .log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        log.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// Its log lines at ERROR level (or panics) so far.
    pub fn errors(&self) -> Vec<String> {
        let log = self
            .log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        log.iter()
            .filter(|l| l.contains("ERROR") || l.contains("panicked"))
            .cloned()
            .collect()
    }
}

fn keep(log: &Mutex<VecDeque<String>>, line: String) {
    let mut log = log
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if log.len() == LOG_TAIL {
        log.pop_front();
    }
    log.push_back(line);
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// Where Kassa keeps its data and which Kaspi it talks to: the arguments every command of one
/// drill shares.
#[derive(Clone)]
pub struct Site {
    pub data_dir: PathBuf,
    pub database_url: String,
    /// The simulator's base URL.
    pub kaspi: String,
}

impl Site {
    fn storage(&self) -> Vec<String> {
        vec![
            "--data-dir".into(),
            self.data_dir.display().to_string(),
            "--database-url".into(),
            self.database_url.clone(),
        ]
    }

    fn live(&self) -> Vec<String> {
        let base = &self.kaspi;
        vec![
            "--kaspi".into(),
            "live".into(),
            "--kaspi-entrance-url".into(),
            format!("{base}/entrance-pay"),
            "--kaspi-mtoken-url".into(),
            format!("{base}/mtoken"),
            "--kaspi-qrpay-url".into(),
            format!("{base}/qrpay"),
        ]
    }

    fn command(&self, args: &[&str], live: bool) -> tokio::process::Command {
        let mut all = self.storage();
        all.extend(args.iter().map(|a| (*a).to_owned()));
        if live {
            all.extend(self.live());
        }
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        kassa(&all)
    }

    /// Runs an administration command to its end (bounded) and asserts it succeeded; its
    /// stdout.
    pub async fn admin(&self, args: &[&str]) -> String {
        let out = tokio::time::timeout(COMMAND_LIMIT, self.command(args, false).output())
            .await
            .unwrap_or_else(|_| panic!("kassa {args:?} did not finish in {COMMAND_LIMIT:?}"))
            .expect("kassa runs");
        succeeded(args, &out)
    }

    /// `kassa terminal connect` for `org` with cashier `phone`, typing the SMS code the
    /// simulator sent.
    pub async fn connect_terminal(&self, sim: &Sim, org: &str, phone: &str) {
        let args = ["terminal", "connect", "--org", org, "--phone", phone];
        let mut child = self
            .command(&args, true)
            .stdin(Stdio::piped())
            .spawn()
            .expect("kassa starts");
        let code = tokio::time::timeout(COMMAND_LIMIT, async {
            loop {
                if let Some(code) = sim.sms(phone).await {
                    return code;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .expect("the simulator sent the cashier an SMS code");
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin
            .write_all(format!("{code}\n").as_bytes())
            .await
            .expect("code typed");
        drop(stdin);
        let out = tokio::time::timeout(COMMAND_LIMIT, child.wait_with_output())
            .await
            .expect("terminal connect finished in time")
            .expect("kassa ran");
        succeeded(&args, &out);
    }

    /// Starts `kassa serve` in live mode on a free loopback port; the guard and
    /// `http://ADDR`. Webhook targets on loopback are allowed, their retries fast.
    pub async fn serve(&self, name: &str) -> (Proc, String) {
        let mut cmd = self.command(&["serve", "--listen", "127.0.0.1:0"], true);
        cmd.env("KASSA_RATE_LIMIT_PER_MINUTE", "0")
            .env("KASSA_WEBHOOK_ALLOW_PRIVATE", "1")
            .env(
                "KASSA_WEBHOOK_RETRY_SCHEDULE",
                "100ms,200ms,500ms,1s,1s,2s,2s,2s,5s,5s",
            )
            .stdout(Stdio::null());
        let (proc, rest) = Proc::start(name, cmd, "kassa listening on ").await;
        (proc, rest.trim().to_owned())
    }
}

fn succeeded(args: &[&str], out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "kassa {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The Kaspi simulator as its own process (`kassa kaspi-sim`), so its memory outlives
/// Kassa's crashes, and its control API.
pub struct Sim {
    /// Killed when this drops.
    _proc: Proc,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    http: reqwest::Client,
}

impl Sim {
    pub async fn start(seed: u64) -> Sim {
        let seed = seed.to_string();
        let mut cmd = kassa(&["kaspi-sim", "--listen", "127.0.0.1:0", "--seed", &seed]);
        cmd.stdout(Stdio::null());
        let (proc, rest) = Proc::start("kaspi-sim", cmd, "Kaspi simulator on ").await;
        let base = rest
            .split_whitespace()
            .next()
            .expect("the simulator names its address")
            .to_owned();
        let http = reqwest::Client::builder()
            .timeout(CONTROL_LIMIT)
            .build()
            .expect("client");
        Sim {
            _proc: proc,
            base,
            http,
        }
    }

    /// A control call; the answer's status and JSON.
    async fn control(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("{}/_control{path}", self.base);
        let mut request = self.http.request(method.clone(), &url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("control {method} {path}: {e}"));
        let status = answer.status().as_u16();
        let json = answer.json().await.unwrap_or(Value::Null);
        (status, json)
    }

    /// The last SMS code sent to `phone`.
    pub async fn sms(&self, phone: &str) -> Option<String> {
        let (status, body) = self
            .control(reqwest::Method::GET, &format!("/sms/{phone}"), None)
            .await;
        (status == 200).then(|| body["code"].as_str().map(str::to_owned))?
    }

    /// Every operation, oldest first.
    pub async fn operations(&self) -> Vec<Op> {
        let (status, body) = self
            .control(reqwest::Method::GET, "/operations", None)
            .await;
        assert_eq!(status, 200, "the simulator lists its operations: {body}");
        body["operations"]
            .as_array()
            .expect("a list")
            .iter()
            .map(|op| Op {
                id: op["id"].as_u64().expect("id"),
                status: op["status"].as_str().unwrap_or_default().to_owned(),
                comment: op["comment"].as_str().unwrap_or_default().to_owned(),
            })
            .collect()
    }

    /// `pay` or `decline` an open operation; whether it was open.
    pub async fn act(&self, op: u64, action: &str) -> bool {
        let (status, body) = self
            .control(
                reqwest::Method::POST,
                &format!("/operations/{op}/{action}"),
                None,
            )
            .await;
        assert!(
            status == 200 || status == 409,
            "{action} operation {op}: {status} {body}"
        );
        status == 200
    }

    /// Puts `faults` in force (`{}` clears them).
    pub async fn set_faults(&self, faults: Value) {
        let (status, body) = self
            .control(reqwest::Method::POST, "/faults", Some(faults))
            .await;
        assert_eq!(status, 200, "faults set: {body}");
    }

    /// The faults in force (`count` shows what is left).
    pub async fn faults(&self) -> Value {
        self.control(reqwest::Method::GET, "/faults", None).await.1
    }

    /// Answers a `timeout` fault holds back right now.
    pub async fn held(&self) -> u64 {
        let (_, body) = self.control(reqwest::Method::GET, "/stats", None).await;
        body["held"].as_u64().expect("stats show held answers")
    }

    pub async fn clear_faults(&self) {
        self.set_faults(json!({})).await;
    }
}

/// A Kaspi operation as the control API lists it.
#[derive(Debug, Clone)]
pub struct Op {
    pub id: u64,
    pub status: String,
    pub comment: String,
}

/// The value at quantile `q` (0..=1) of sorted `values` (nearest rank).
pub fn quantile(sorted: &[Duration], q: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}
