//! The log of `kassa serve` as an operator reads it, in both formats: the real binary started
//! as a user starts it (sandbox mode, its stderr a pipe), driven over HTTP through a whole
//! payment (an API key made with the CLI beside it, webhook endpoints with their secrets, an
//! invoice the sandbox payer pays, a refund, a dashboard sign-in link), stopped with SIGTERM.
//!
//! Checked: in JSON every line is a JSON object, in text there is no colour code; the start
//! line, access lines (the matched route, never the path or query), the status change and the
//! refund with amounts in tenge, the disabled webhook endpoint and the stop line are there; and
//! no secret appears: API keys, webhook secrets, the master key, the sandbox cashier's Kaspi
//! session, a sign-in link's token.
//!
//! The text run starts on a fresh data dir (first start: the demo organization, whose banner
//! is meant for a person), the JSON run restarts on the same one.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use common::receiver::{Receiver, Reply};
use serde_json::{json, Value};
use tokio::io::AsyncBufReadExt as _;

/// How long any one thing may take: a start, a command, a payment's way through.
const LIMIT: Duration = Duration::from_secs(60);
/// Marks the query string of a request: it must not reach the log.
const QUERY_MARK: &str = "query-mark-7f3a";

/// `kassa` on data dir `dir`, with none of the caller's `KASSA_*`, `RUST_LOG` or `NO_COLOR`.
fn kassa(dir: &Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_kassa"));
    for (name, _) in std::env::vars() {
        if name.starts_with("KASSA_") || name == "RUST_LOG" || name == "NO_COLOR" {
            cmd.env_remove(name);
        }
    }
    cmd.env("KASSA_DATA_DIR", dir)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// Runs `kassa <args>` beside the server; its stdout, trimmed.
async fn cli(dir: &Path, args: &[&str]) -> String {
    let out = tokio::time::timeout(
        LIMIT,
        kassa(dir)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output(),
    )
    .await
    .expect("the command ends in time")
    .expect("kassa runs");
    assert!(
        out.status.success(),
        "kassa {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

/// A running `kassa serve` and every line of its stderr so far.
struct Served {
    child: tokio::process::Child,
    base: String,
    log: Arc<Mutex<Vec<String>>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Served {
    async fn start(dir: &Path, format: &str) -> Served {
        let mut child = kassa(dir)
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", format])
            .env("KASSA_WEBHOOK_ALLOW_PRIVATE", "1")
            .env("KASSA_WEBHOOK_RETRY_SCHEDULE", "100ms,200ms")
            // Our own crates' debug lines too: none of them may carry a secret either.
            .env("RUST_LOG", "info,kassa=debug,kaspi=debug,kaspi_sim=debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kassa starts");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = tokio::sync::oneshot::channel::<String>();
        let reader = tokio::spawn({
            let log = log.clone();
            async move {
                let mut addr_tx = Some(addr_tx);
                let mut lines = tokio::io::BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    const LISTENING: &str = "kassa listening on http://";
                    if let Some(at) = line.find(LISTENING) {
                        let rest = &line[at + LISTENING.len()..];
                        let addr = rest
                            .split(|c: char| c == '"' || c.is_whitespace())
                            .next()
                            .unwrap_or_default()
                            .to_owned();
                        if let Some(tx) = addr_tx.take() {
                            let _ = tx.send(addr);
                        }
                    }
                    log.lock().expect("log").push(line);
                }
            }
        });
        let addr = tokio::time::timeout(LIMIT, addr_rx)
            .await
            .expect("kassa listens in time")
            .unwrap_or_else(|_| panic!("kassa exited before listening: {:?}", log));
        Served {
            child,
            base: format!("http://{addr}"),
            log,
            reader,
        }
    }

    /// Stops it as a service manager does, and answers its whole log.
    async fn stop(self) -> Vec<String> {
        common::terminate(self.child).await;
        tokio::time::timeout(LIMIT, self.reader)
            .await
            .expect("the log ends with the process")
            .expect("reader");
        let log = self.log.lock().expect("log").clone();
        log
    }
}

/// What a run showed that must never be logged.
struct Secrets(Vec<String>);

/// Polls `probe` every 50 ms until it gives `Some`, for at most [`LIMIT`].
async fn until<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    common::wait_for(LIMIT, &mut probe)
        .await
        .unwrap_or_else(|| panic!("{what} within {LIMIT:?}"))
}

async fn send(request: reqwest::RequestBuilder, expected: u16) -> Value {
    let answer = request.send().await.expect("sent");
    let status = answer.status().as_u16();
    let text = answer.text().await.expect("body");
    assert_eq!(status, expected, "{text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// The whole payment over HTTP against `served` on `dir`; the secrets it made.
async fn full_flow(dir: &Path, served: &Served) -> Secrets {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let api = |path: &str| format!("{}/api/v1{path}", served.base);
    // The demo organization's cashier is logged in once startup is done.
    until("the demo cashier is logged in", || async {
        let status: Value = http
            .get(api("/status"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (status["kaspi"]["sessions"]["healthy"] == 1).then_some(())
    })
    .await;
    let key = cli(dir, &["api-key", "create", "--org", "demo"]).await;
    assert!(key.starts_with("kassa_"), "{key}");

    let receiver = Receiver::start().await;
    let gone = Receiver::start().await;
    gone.set_default(Reply::status(410));
    let mut secrets = vec![key.clone()];
    for url in [receiver.url("/hook"), gone.url("/gone")] {
        let made = send(
            http.post(api("/webhooks"))
                .header("X-API-Key", &key)
                .json(&json!({"url": url, "events": ["*"]})),
            201,
        )
        .await;
        let secret = made["secret"].as_str().expect("a secret").to_owned();
        assert!(secret.starts_with("whsec_"), "{secret}");
        secrets.push(secret.trim_start_matches("whsec_").to_owned());
        secrets.push(secret);
    }

    let invoice = send(
        http.post(api("/invoices"))
            .header("X-API-Key", &key)
            .json(&json!({"amount": 1500, "phone_number": "87001234567", "description": "logs"})),
        201,
    )
    .await;
    let id = invoice["id"].as_i64().expect("id");
    send(
        http.get(api(&format!("/invoices?external_order_id={QUERY_MARK}")))
            .header("X-API-Key", &key),
        200,
    )
    .await;
    let paid = send(
        http.post(api(&format!("/sandbox/invoices/{id}/pay")))
            .header("X-API-Key", &key),
        200,
    )
    .await;
    assert_eq!(paid["status"], "paid", "{paid}");

    let refund = send(
        http.post(api(&format!("/invoices/{id}/refund")))
            .header("X-API-Key", &key)
            .json(&json!({"amount": 500, "reason": "logs"})),
        201,
    )
    .await;
    let refund_id = refund["refund"]["id"].as_i64().expect("refund id");
    until("the refund completes", || async {
        let list: Value = http
            .get(api(&format!("/invoices/{id}/refunds")))
            .header("X-API-Key", &key)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        list["data"]
            .as_array()?
            .iter()
            .any(|r| r["id"] == refund_id && r["status"] == "completed")
            .then_some(())
    })
    .await;
    // The events reach the receiver, signed; the endpoint answering 410 is disabled.
    receiver.wait_for(1, LIMIT).await;
    until("the endpoint answering 410 is disabled", || async {
        let list: Value = http
            .get(api("/webhooks"))
            .header("X-API-Key", &key)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        list["data"]
            .as_array()?
            .iter()
            .any(|e| e["is_active"] == false)
            .then_some(())
    })
    .await;

    // A one-time dashboard sign-in link: its token is in the path, never in the log.
    let link = cli(dir, &["user", "login-link", "--email", "demo@example.com"]).await;
    let path = &link[link.find("/dashboard/login/").expect("a sign-in link")..];
    let token = path.trim_start_matches("/dashboard/login/").to_owned();
    let signed_in = http
        .get(format!("{}{path}", served.base))
        .send()
        .await
        .expect("sent");
    assert!(
        signed_in.status().is_redirection(),
        "{}",
        signed_in.status()
    );
    secrets.push(token);
    Secrets(secrets)
}

/// Secrets that live in the data dir: the master key (as stored, and as hex) and the sandbox
/// Kaspi's session tokens and their secrets (its saved state).
fn stored_secrets(dir: &Path) -> Vec<String> {
    let master = std::fs::read_to_string(dir.join("master.key")).expect("master.key");
    let master = master.trim().to_owned();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&master)
        .expect("base64");
    let mut secrets = vec![master, hex::encode(bytes)];
    let state = std::fs::read_to_string(dir.join(kassa::app::SANDBOX_STATE_FILE))
        .expect("the sandbox Kaspi's state");
    let state: Value = serde_json::from_str(&state).expect("JSON state");
    let sessions = state["sessions"].as_array().expect("sessions");
    assert!(!sessions.is_empty(), "the sandbox cashier has a session");
    for session in sessions {
        for field in ["token_sn", "vtoken_secret"] {
            let secret = session[field]
                .as_str()
                .expect("a session's token and secret");
            secrets.push(secret.to_owned());
        }
    }
    secrets
}

/// Checks common to both formats, on the log as text.
fn no_secret_in(log: &[String], secrets: &[String]) {
    for secret in secrets {
        assert!(secret.len() >= 8, "a real secret: {secret:?}");
        if let Some(line) = log.iter().find(|line| line.contains(secret.as_str())) {
            panic!("a secret is in the log: {line}");
        }
    }
    if let Some(line) = log.iter().find(|line| line.contains(QUERY_MARK)) {
        panic!("a query string is in the log: {line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_run_logs_what_happened_and_no_secret_in_text_then_json() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();

    // Text, on a fresh data dir.
    let served = Served::start(dir, "text").await;
    let mut secrets = full_flow(dir, &served).await.0;
    let log = served.stop().await;
    let text = log.join("\n");
    assert!(!text.contains('\u{1b}'), "colour codes in a pipe:\n{text}");
    let has = |parts: &[&str]| log.iter().any(|l| parts.iter().all(|p| l.contains(p)));
    assert!(
        has(&["kassa started", "sandbox", "listen=", "database=sqlite://"]),
        "no start line:\n{text}"
    );
    assert!(
        has(&[
            "request answered",
            "method=POST",
            "route=/api/v1/invoices",
            "status=201"
        ]),
        "no access line for the create:\n{text}"
    );
    assert!(
        has(&["request answered", "route=/dashboard/login/{token}"]),
        "no access line naming the sign-in route:\n{text}"
    );
    assert!(
        has(&["invoice status changed", "paid", "amount_kzt=1500.00"]),
        "no status change in tenge:\n{text}"
    );
    assert!(
        has(&["refund completed", "amount_kzt=500.00"]),
        "no refund outcome:\n{text}"
    );
    assert!(
        has(&["webhook endpoint disabled", "410"]),
        "no disabled endpoint:\n{text}"
    );
    assert!(has(&["stopping", "SIGTERM"]), "no signal line:\n{text}");
    assert!(has(&["kassa stopped"]), "no stop line:\n{text}");
    assert!(!text.contains("150000"), "an amount in tiyn:\n{text}");
    secrets.extend(stored_secrets(dir));
    no_secret_in(&log, &secrets);

    // JSON, restarted on the same data dir.
    let served = Served::start(dir, "json").await;
    secrets.extend(full_flow(dir, &served).await.0);
    let log = served.stop().await;
    let events: Vec<Value> = log
        .iter()
        .map(|line| {
            let event: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
            assert!(event.is_object(), "{line}");
            assert!(
                event["level"].is_string() && event["timestamp"].is_string(),
                "{line}"
            );
            event
        })
        .collect();
    let find = |what: &str, fits: &dyn Fn(&Value) -> bool| {
        events
            .iter()
            .find(|e| e["message"] == what && fits(e))
            .unwrap_or_else(|| panic!("no {what:?} line:\n{}", log.join("\n")))
            .clone()
    };
    let start = find("kassa started", &|_| true);
    assert_eq!(start["mode"], "sandbox", "{start}");
    assert_eq!(start["log_format"], "json", "{start}");
    assert!(
        start["database"]
            .as_str()
            .is_some_and(|d| d.starts_with("sqlite://")),
        "{start}"
    );
    let access = find("request answered", &|e| {
        e["route"] == "/api/v1/invoices" && e["method"] == "POST"
    });
    assert_eq!(access["status"], 201, "{access}");
    assert!(access["latency_ms"].is_u64(), "{access}");
    assert!(
        access["request_id"]
            .as_str()
            .is_some_and(|id| id.len() >= 8),
        "{access}"
    );
    find("request answered", &|e| {
        e["route"] == "/dashboard/login/{token}"
    });
    let changed = find("invoice status changed", &|e| e["status"] == "paid");
    assert_eq!(changed["amount_kzt"], "1500.00", "{changed}");
    let refunded = find("refund completed", &|_| true);
    assert_eq!(refunded["amount_kzt"], "500.00", "{refunded}");
    find("webhook endpoint disabled", &|_| true);
    find("kassa stopped", &|_| true);
    secrets.extend(stored_secrets(dir));
    no_secret_in(&log, &secrets);
}
