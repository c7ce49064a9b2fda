//! A gateway started as `kassa serve` starts it, on a test database, with helpers to make API
//! keys and wait for things. Used by the API tests.
#![allow(dead_code)]

pub mod browser;
pub mod receiver;
pub mod served;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kassa::app::{App, AppState};
use kassa::clock::Clock;
use kassa::config::{Config, KaspiMode, ServeArgs, StorageArgs};
use kassa::gateway::GatewaySettings;
use kassa::jobs::Jobs;
use kassa::secrets::{new_api_key, MasterKey};
use kassa::store::Store;

/// Runs `$body(test_db)` once on SQLite and once on PostgreSQL (skipped outside CI when the
/// server is missing; a failure in CI).
#[macro_export]
macro_rules! on_both_databases {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let test = ::kassa::db::testing::TestDb::sqlite().await;
                ($body)(test).await;
            }

            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(test) = ::kassa::db::testing::TestDb::postgres().await else {
                    return;
                };
                ($body)(test).await;
            }
        }
    };
}

/// Schedules short enough for tests.
pub fn fast_settings() -> GatewaySettings {
    let ms = Duration::from_millis;
    GatewaySettings {
        poll_schedule: vec![ms(200), ms(300), ms(500)],
        tick: ms(50),
        lease: Duration::from_secs(10),
        reconcile_schedule: vec![ms(200), ms(300), ms(300)],
        late_check: ms(300),
        history_every: ms(200),
        history_idle_every: ms(200),
        ..GatewaySettings::default()
    }
}

/// How a test gateway is started.
pub struct Options {
    pub database_url: String,
    pub data_dir: PathBuf,
    pub rate_limit_per_minute: u32,
    /// `None`: sandbox mode. `Some(base)`: live mode against a simulator at `base`.
    pub live_kaspi: Option<String>,
    pub settings: GatewaySettings,
    /// Webhook targets on loopback are allowed unless a test turns this off.
    pub webhook_allow_private: bool,
    /// A fast webhook retry schedule (`--webhook-retry-schedule`).
    pub webhook_retry_schedule: String,
    /// `--webhook-timeout-secs`.
    pub webhook_timeout_secs: u64,
    /// `--webhook-disable-after`, when a test needs it short.
    pub webhook_disable_after: Option<String>,
    /// Sets more `kassa serve` settings (the HTTP limits, …) before they are resolved.
    pub more_serve_args: Option<fn(&mut ServeArgs)>,
    /// The gateway's clock. `Some`: no background work runs by itself; the test moves the
    /// clock ([`Kassa::advance`]) and steps the work ([`Kassa::step`]). `None`: the system
    /// clock and the server's own background loops.
    pub clock: Option<Clock>,
}

impl Options {
    pub fn new(database_url: &str, data_dir: &Path) -> Options {
        Options {
            database_url: database_url.to_owned(),
            data_dir: data_dir.to_owned(),
            rate_limit_per_minute: 0,
            live_kaspi: None,
            settings: fast_settings(),
            webhook_allow_private: true,
            webhook_retry_schedule: "100ms,200ms,300ms,300ms,300ms".into(),
            webhook_timeout_secs: 5,
            webhook_disable_after: None,
            more_serve_args: None,
            clock: None,
        }
    }

    /// Stepped: a manual clock at the real now, no background loops.
    pub fn stepped(mut self) -> Options {
        self.clock = Some(Clock::manual_from_now());
        self
    }
}

/// A running gateway.
pub struct Kassa {
    pub addr: SocketAddr,
    pub base: String,
    pub state: AppState,
    /// The background work, for [`Kassa::step`].
    pub jobs: Jobs,
    pub http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Kassa {
    pub async fn start(options: Options) -> Kassa {
        let storage = StorageArgs {
            data_dir: Some(options.data_dir.clone()),
            database_url: Some(options.database_url.clone()),
            config: None,
        };
        let mut serve = ServeArgs {
            listen: Some("127.0.0.1:0".parse().expect("addr")),
            rate_limit_per_minute: Some(options.rate_limit_per_minute),
            webhook_allow_private: Some(options.webhook_allow_private),
            webhook_retry_schedule: Some(options.webhook_retry_schedule.clone()),
            webhook_timeout_secs: Some(options.webhook_timeout_secs),
            webhook_disable_after: options.webhook_disable_after.clone(),
            ..ServeArgs::default()
        };
        if let Some(base) = &options.live_kaspi {
            serve.kaspi = Some(KaspiMode::Live);
            serve.kaspi_entrance_url = Some(format!("{base}/entrance-pay"));
            serve.kaspi_mtoken_url = Some(format!("{base}/mtoken"));
            serve.kaspi_qrpay_url = Some(format!("{base}/qrpay"));
        }
        if let Some(more) = options.more_serve_args {
            more(&mut serve);
        }
        let config = Config::resolve(&storage, &serve).expect("config");
        let stepped = options.clock.is_some();
        let clock = options.clock.unwrap_or_else(Clock::system);
        let mut app = App::build_with_clock(config, options.settings, clock)
            .await
            .expect("the gateway starts");
        if stepped {
            app = app.without_background_work();
        }
        let addr = app.local_addr();
        let state = app.state().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until_stopped(async {
            let _ = stopped.await;
        }));
        let jobs = Jobs::new(
            state.gateway.clone(),
            state.webhooks.clone(),
            format!("kassa-test-{}", uuid::Uuid::new_v4().simple()),
        );
        Kassa {
            addr,
            base: format!("http://{addr}/api/v1"),
            jobs,
            state,
            http: reqwest::Client::new(),
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// A stepped sandbox gateway on `test` in `dir`, with its demo organization and a key of it.
    pub async fn stepped_demo(
        test: &kassa::db::testing::TestDb,
        dir: &Path,
    ) -> (Kassa, i64, String) {
        let kassa = Kassa::start(Options::new(test.url(), dir).stepped()).await;
        let org = kassa.demo_org().await;
        let key = kassa.api_key(org).await;
        (kassa, org, key)
    }

    pub fn store(&self) -> &Store {
        &self.state.store
    }

    /// The status changes of invoice `id` of `org` in its outbox events, oldest first: from,
    /// to, when.
    pub async fn invoice_events(
        &self,
        org: i64,
        id: i64,
    ) -> Vec<(
        Option<kassa::store::InvoiceStatus>,
        kassa::store::InvoiceStatus,
        i64,
    )> {
        self.store()
            .invoices()
            .invoice_events(org, id)
            .await
            .expect("events")
    }

    /// Does all the background work due now on the gateway's clock, to the end.
    pub async fn step(&self) -> usize {
        self.jobs.run_until_idle().await
    }

    /// Moves the gateway's clock (and the sandbox Kaspi's, in sandbox mode) forward by `by`,
    /// then steps the work that came due.
    pub async fn advance(&self, by: Duration) -> usize {
        self.state.clock.advance(by);
        if let Some(sim) = &self.state.sandbox {
            sim.advance_clock(by);
        }
        self.step().await
    }

    /// Steps the work due now; then, until `probe` gives `Some`, moves the clock by `every` and
    /// steps again, for at most `limit` of clock time. Nothing waits on real time: retries and
    /// backoffs come due as the clock moves. `None` when `probe` never gave a value.
    pub async fn advance_until<T, F, Fut>(
        &self,
        limit: Duration,
        every: Duration,
        mut probe: F,
    ) -> Option<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        self.step().await;
        let mut moved = Duration::ZERO;
        loop {
            if let Some(found) = probe().await {
                return Some(found);
            }
            if moved >= limit {
                return None;
            }
            self.advance(every).await;
            moved += every;
        }
    }

    /// Steps through `total` in moves of `every` (work due in between runs in order).
    pub async fn advance_by_steps(&self, total: Duration, every: Duration) -> usize {
        let mut done = 0;
        let mut moved = Duration::ZERO;
        while moved < total {
            let by = every.min(total - moved);
            done += self.advance(by).await;
            moved += by;
        }
        done
    }

    pub fn sim(&self) -> &kaspi_sim::Simulator {
        self.state.sandbox.as_ref().expect("sandbox mode")
    }

    /// Waits until the sandbox's demo organization has its cashier logged in; its id.
    pub async fn demo_org(&self) -> i64 {
        self.state.wait_started().await;
        let org = self
            .store()
            .orgs()
            .org_by_slug("demo")
            .await
            .expect("read")
            .expect("the demo organization is set up on first start");
        let cashier = self
            .store()
            .orgs()
            .terminal_for_org(org.id)
            .await
            .expect("read");
        assert!(cashier.is_some(), "the demo organization has its cashier");
        org.id
    }

    /// A key of a new organization `slug`: another shop on the same Kassa.
    pub async fn other_org_key(&self, slug: &str) -> String {
        let org = self
            .store()
            .orgs()
            .create_org(slug, slug)
            .await
            .expect("org");
        self.api_key(org.id).await
    }

    /// The stored id of API key `key` (idempotency records are kept per key id).
    pub async fn key_id(&self, key: &str) -> i64 {
        self.store()
            .orgs()
            .api_key_by_hash(&self.state.master_key.api_key_hash(key))
            .await
            .expect("read")
            .expect("the key")
            .key_id
    }

    /// A new API key of `org_id`, made as `kassa api-key create` makes it.
    pub async fn api_key(&self, org_id: i64) -> String {
        let (raw, prefix) = new_api_key();
        let hash = self.state.master_key.api_key_hash(&raw);
        self.store()
            .orgs()
            .create_api_key(org_id, "test", &prefix, &hash)
            .await
            .expect("key stored");
        raw
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post(&self, key: &str, path: &str, body: serde_json::Value) -> Answer {
        let r = self
            .http
            .post(self.url(path))
            .header("X-API-Key", key)
            .json(&body)
            .send()
            .await
            .expect("request sent");
        Answer::read(r).await
    }

    /// A request to the xPayment surface at `/v1{path}`, with a Bearer key.
    pub async fn x(
        &self,
        method: reqwest::Method,
        key: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Answer {
        let mut request = self
            .http
            .request(method, format!("http://{}/v1{path}", self.addr))
            .bearer_auth(key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        Answer::read(request.send().await.expect("request sent")).await
    }

    pub async fn get(&self, key: &str, path: &str) -> Answer {
        let r = self
            .http
            .get(self.url(path))
            .header("X-API-Key", key)
            .send()
            .await
            .expect("request sent");
        Answer::read(r).await
    }

    /// Stops the gateway as Ctrl-C does and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("joined").expect("clean shutdown");
        }
    }
}

impl Drop for Kassa {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// An answer, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub json: serde_json::Value,
}

impl Answer {
    pub async fn read(r: reqwest::Response) -> Answer {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.expect("body");
        let json = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("answer {status} is not JSON: {text:?}"));
        Answer {
            status,
            headers,
            json,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Polls `probe` every 50 ms until it gives `Some`, for at most `limit`.
pub async fn wait_for<T, F, Fut>(limit: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = probe().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Logs a cashier of a new organization `slug` in to `sim` through `kassa`'s own settings.
pub async fn connect(kassa: &Kassa, sim: &kaspi_sim::Simulator, slug: &str, cashier: &str) -> i64 {
    let org = kassa
        .store()
        .orgs()
        .create_org(slug, slug)
        .await
        .expect("org");
    login(kassa, sim, org.id, cashier).await;
    org.id
}

/// Logs the cashier with phone `cashier` in for `org_id` against `sim`, as `kassa terminal
/// connect` does with a person at the prompt (the simulator's control side answers it).
pub async fn login(kassa: &Kassa, sim: &kaspi_sim::Simulator, org_id: i64, cashier: &str) {
    let phone = kaspi::phone::normalize(cashier).expect("phone");
    let mut prompt = kassa::gateway::SandboxPrompt {
        sim: sim.clone(),
        phone: phone.as_str().into(),
    };
    kassa::gateway::connect_terminal(
        kassa.store(),
        &kassa.state.master_key,
        kassa.state.gateway.terminals().client_config().clone(),
        org_id,
        &phone,
        &mut prompt,
    )
    .await
    .expect("cashier logs in");
}

/// Starts `kassa serve` as a process on `database_url` against the simulator at `base`; its
/// address once it listens. Webhook targets on loopback allowed, a fast retry schedule.
pub async fn serve_process(
    dir: &std::path::Path,
    database_url: &str,
    base: &str,
) -> (tokio::process::Child, String) {
    serve_process_with(dir, database_url, base, &[]).await
}

/// [`serve_process`] with more environment settings.
pub async fn serve_process_with(
    dir: &std::path::Path,
    database_url: &str,
    base: &str,
    env: &[(&str, &str)],
) -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kassa"))
        .envs(env.iter().copied())
        .args(["serve", "--listen", "127.0.0.1:0", "--kaspi", "live"])
        .env("KASSA_DATA_DIR", dir)
        .env("KASSA_DATABASE_URL", database_url)
        .env("KASSA_KASPI_ENTRANCE_URL", format!("{base}/entrance-pay"))
        .env("KASSA_KASPI_MTOKEN_URL", format!("{base}/mtoken"))
        .env("KASSA_KASPI_QRPAY_URL", format!("{base}/qrpay"))
        .env("KASSA_RATE_LIMIT_PER_MINUTE", "0")
        .env("KASSA_WEBHOOK_ALLOW_PRIVATE", "1")
        .env("KASSA_WEBHOOK_RETRY_SCHEDULE", "100ms,200ms,300ms")
        .env("RUST_LOG", "warn")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("kassa starts");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stderr));
    let addr = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(addr) = line.strip_prefix("kassa listening on ") {
                return addr.trim().trim_start_matches("http://").to_owned();
            }
        }
        panic!("kassa exited before listening");
    })
    .await
    .expect("kassa listens in time");
    // Keep draining its log so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

/// Stops a process started by [`serve_process`] as a service manager does (SIGTERM) and waits
/// until it has exited cleanly: its background work finished what it had in hand.
pub async fn terminate(mut child: tokio::process::Child) {
    let pid = child.id().expect("running").to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(sent.success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("stops in time")
        .expect("waited");
    assert!(status.success(), "{status}");
}

/// A new data dir holding `dir`'s master key: each `kassa serve` locks its own data dir, so
/// processes sharing one database get one each, with the same key.
pub fn sibling_data_dir(dir: &Path) -> tempfile::TempDir {
    let other = tempfile::tempdir().expect("tempdir");
    std::fs::copy(dir.join("master.key"), other.path().join("master.key")).expect("key copied");
    other
}

/// The master key of a data dir, as the gateway loads it.
pub fn master_key(data_dir: &Path) -> MasterKey {
    std::fs::create_dir_all(data_dir).expect("data dir");
    MasterKey::load_or_create(data_dir).expect("master key")
}

/// An invoice made through ApiPay: its id, its Kaspi operation and the answer.
pub struct MadeInvoice {
    pub id: i64,
    /// The Kaspi operation (`kaspi_invoice_id`).
    pub op: u64,
    pub json: serde_json::Value,
}

/// How far [`Kassa::invoice_reaches`] moves the clock at a time, and at most.
const REACH_EVERY: Duration = Duration::from_millis(100);
const REACH_LIMIT: Duration = Duration::from_secs(30);

impl Kassa {
    /// Creates an invoice through ApiPay with `body` (answered 201, sent to Kaspi).
    pub async fn invoice(&self, key: &str, body: serde_json::Value) -> MadeInvoice {
        let created = self.post(key, "/invoices", body).await;
        assert_eq!(created.status, 201, "{:?}", created.json);
        let op = created.json["kaspi_invoice_id"]
            .as_str()
            .and_then(|op| op.parse().ok())
            .unwrap_or_else(|| panic!("a numeric Kaspi operation: {:?}", created.json));
        MadeInvoice {
            id: created.json["id"].as_i64().expect("id"),
            op,
            json: created.json,
        }
    }

    /// Steps the work, moving the clock while it is due later, until ApiPay's view of invoice
    /// `id` has `field` equal to `value`; that view, or `None` after 30 s of clock time.
    pub async fn invoice_reaches(
        &self,
        key: &str,
        id: i64,
        field: &str,
        value: &str,
    ) -> Option<serde_json::Value> {
        self.advance_until(REACH_LIMIT, REACH_EVERY, || async {
            let got = self.get(key, &format!("/invoices/{id}")).await;
            (got.json[field] == value).then_some(got.json)
        })
        .await
    }

    /// `GET /api/v1/status` (no key needed).
    pub async fn status(&self) -> Answer {
        let r = self
            .http
            .get(self.url("/status"))
            .send()
            .await
            .expect("sent");
        Answer::read(r).await
    }
}

/// A manual clock at the start of the current wall-clock minute: what is counted per clock
/// minute (the rate limit) starts a fresh window and stays in it until the test moves it.
pub fn clock_at_minute_start() -> Clock {
    let now = kassa::clock::wall_ms();
    Clock::manual(now - now.rem_euclid(60_000))
}

/// The number in column `n` of the one row `sql` reads.
pub async fn count(db: &kassa::db::Db, sql: &str) -> i64 {
    let sql = sql.to_owned();
    db.read(move |tx| tx.query_one(&sql, &[])?.i64("n"))
        .await
        .expect("count")
}
