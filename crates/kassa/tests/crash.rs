//! The crash drill: `kassa serve` killed with SIGKILL at random instants under load and
//! restarted on the same data, once with Kaspi faults on the create path, on SQLite and on
//! PostgreSQL; then, per logical invoice, nothing lost, nothing doubled (in Kassa or at
//! Kaspi), every payment recorded, every status change delivered to a webhook under one id,
//! and every client that retried with its key answered.
//!
//! Real processes only: the Kaspi simulator runs as its own `kassa kaspi-sim` (its memory
//! survives Kassa's crashes), the cashier logs in with `kassa terminal connect`, the API key
//! comes from `kassa api-key create`, webhooks land on a receiver in this process. Loopback
//! only. Each drill is bounded ([`DRILL_LIMIT`]; every wait has its own limit) and every
//! child is killed when its guard drops, on failure too. The two drills run one after the
//! other so each has the machine to itself.
//!
//! The load: [`CLIENTS`] clients each send logical invoices one after the other, each with its
//! own `Idempotency-Key`, `external_order_id` `drill-T-NNNN` and description `drill-T-NNNN.`
//! (no description is a prefix of another, so the Kaspi comment — the description, perhaps
//! with a marker after it — is matched with `contains`). A client retries the same request
//! (same key, same bytes) on connection errors, timeouts, 409 and 5xx until it gets a 201 or
//! another 4xx, for at most [`TRY_FOR`].
//!
//! The payer (control API) acts on each new Kaspi operation by its invoice's number: pays at
//! once, declines, leaves it open, or keeps it to pay right after the next restart — those
//! give the detection delay after a restart (pay → Kassa's API shows `paid`), measured and
//! printed, asserted only against a generous [`DETECTION_LIMIT`].

mod common;
#[path = "common/drill.rs"]
mod drill;
#[path = "crash/verdict.rs"]
mod verdict;

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::receiver::Receiver;
use drill::{quantile, Proc, Sim, Site};
use kassa::db::testing::TestDb;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::time::Instant;
use verdict::{detection, observe, replays, Failures};

/// The most one drill may take, set-up to verdict.
const DRILL_LIMIT: Duration = Duration::from_secs(240);
/// Clients sending invoices at once.
const CLIENTS: usize = 4;
/// A client's timeout for one request.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a client keeps retrying one logical invoice: long enough for a create whose Kaspi
/// answer is held back past Kassa's own 20 s Kaspi timeout (then looked up in the history),
/// after a crash's 10 s idempotency lease; its client meets 409s all that time and must still
/// get its answer.
const TRY_FOR: Duration = Duration::from_secs(60);
/// Kill rounds under plain load (the fault round and the final kill come on top).
const CRASH_ROUNDS: usize = 3;
/// How long everything may take to settle after the load.
const SETTLE_LIMIT: Duration = Duration::from_secs(40);
/// A payment made right after a restart must show as paid within this.
const DETECTION_LIMIT: Duration = Duration::from_secs(60);
/// The cashier's phone at the simulator.
const CASHIER: &str = "7012345678";
/// The receiver's path for the drill's webhook endpoint.
const HOOK_PATH: &str = "/drill";

/// One drill at a time: each gets the 2 cores to itself and its figures mean something.
static DRILLS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_on_sqlite() {
    let test = TestDb::sqlite().await;
    drill("sqlite", 's', test.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_on_postgres() {
    let Some(test) = TestDb::postgres().await else {
        return;
    };
    drill("postgres", 'p', test.url()).await;
}

async fn drill(database: &str, tag: char, url: &str) {
    let _alone = DRILLS.lock().await;
    tokio::time::timeout(DRILL_LIMIT, run(database, tag, url))
        .await
        .unwrap_or_else(|_| panic!("the {database} crash drill took over {DRILL_LIMIT:?}"));
}

/// One logical invoice: what a client sends, and sends again, under one key.
struct Logical {
    order: String,
    description: String,
    key: String,
    body: Vec<u8>,
}

impl Logical {
    fn new(tag: char, n: usize) -> Logical {
        let order = format!("drill-{tag}-{n:04}");
        let description = format!("{order}.");
        // Few payers and few amounts, as in a real shop: invoices differ only by their
        // description, so Kaspi's operations cannot be told apart by phone and amount.
        let body = json!({
            "amount": 100 + 50 * (n % 3),
            "phone_number": format!("870710000{:02}", n % 4),
            "description": description,
            "external_order_id": order,
        });
        Logical {
            key: format!("{order}-key"),
            order,
            description,
            body: serde_json::to_vec(&body).expect("json"),
        }
    }
}

/// How a client's logical invoice ended.
#[derive(Debug, Clone)]
enum Answer {
    Created(i64),
    /// A definite 4xx other than 409.
    Refused(u16, Value),
    /// No 201 or definite refusal within [`TRY_FOR`].
    None,
}

/// A client's logical invoice, answered or given up, with what it saw on the way.
#[derive(Debug, Clone)]
struct Sent {
    n: usize,
    answer: Answer,
    tries: u32,
    /// Run-length log of the failed tries: ("409 idempotency_key_in_use", 12).
    seen: Vec<(String, u32)>,
    took: Duration,
}

/// What the load's tasks share.
struct Load {
    tag: char,
    api_key: String,
    /// The running `kassa serve`'s `http://ADDR`.
    base: watch::Receiver<String>,
    stop: AtomicBool,
    next: AtomicUsize,
    sent: Mutex<Vec<Sent>>,
}

async fn client(load: Arc<Load>, seed: u64) {
    let http = reqwest::Client::builder()
        .timeout(CLIENT_TIMEOUT)
        .build()
        .expect("client");
    let mut rng = StdRng::seed_from_u64(seed);
    while !load.stop.load(Ordering::SeqCst) {
        let n = load.next.fetch_add(1, Ordering::SeqCst);
        let sent = submit(&http, &load, n).await;
        lock(&load.sent).push(sent);
        tokio::time::sleep(Duration::from_millis(rng.gen_range(150..500))).await;
    }
}

/// Sends logical invoice `n` until it is answered, retrying the same request.
async fn submit(http: &reqwest::Client, load: &Load, n: usize) -> Sent {
    let logical = Logical::new(load.tag, n);
    let started = Instant::now();
    let mut sent = Sent {
        n,
        answer: Answer::None,
        tries: 0,
        seen: Vec::new(),
        took: Duration::ZERO,
    };
    loop {
        sent.tries += 1;
        let base = load.base.borrow().clone();
        let outcome = post_invoice(http, &base, &load.api_key, &logical).await;
        match outcome {
            Ok((201, body)) => {
                sent.answer = Answer::Created(body["id"].as_i64().expect("an id"));
                break;
            }
            Ok((status, body)) if status == 409 || status >= 500 => {
                note(
                    &mut sent.seen,
                    format!("{status} {}", body["error"].as_str().unwrap_or_default()),
                );
            }
            Ok((status, body)) => {
                sent.answer = Answer::Refused(status, body);
                break;
            }
            Err(e) => note(&mut sent.seen, e),
        }
        if started.elapsed() >= TRY_FOR {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    sent.took = started.elapsed();
    sent
}

/// One try: the status and JSON body, or what went wrong on the wire.
async fn post_invoice(
    http: &reqwest::Client,
    base: &str,
    api_key: &str,
    logical: &Logical,
) -> Result<(u16, Value), String> {
    let answer = http
        .post(format!("{base}/api/v1/invoices"))
        .header("X-API-Key", api_key)
        .header("Idempotency-Key", &logical.key)
        .header("Content-Type", "application/json")
        .body(logical.body.clone())
        .send()
        .await
        .map_err(wire_error)?;
    let status = answer.status().as_u16();
    let body = answer.json::<Value>().await.map_err(wire_error)?;
    Ok((status, body))
}

fn wire_error(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connection refused".into()
    } else {
        "connection lost".into()
    }
}

fn note(seen: &mut Vec<(String, u32)>, what: String) {
    match seen.last_mut() {
        Some((last, count)) if *last == what => *count += 1,
        _ => seen.push((what, 1)),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The invoice number in a Kaspi comment (`…drill-T-NNNN.…`).
fn number_in(comment: &str, tag: char) -> Option<usize> {
    let prefix = format!("drill-{tag}-");
    let at = comment.find(&prefix)? + prefix.len();
    comment.get(at..at + 4)?.parse().ok()
}

/// What the payer does with the operation of invoice `n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    Pay,
    Decline,
    LeaveOpen,
    /// Pay right after the next restart.
    PayAfterRestart,
}

fn plan(n: usize) -> Plan {
    match n % 6 {
        0..=2 => Plan::Pay,
        3 => Plan::PayAfterRestart,
        4 => Plan::Decline,
        _ => Plan::LeaveOpen,
    }
}

/// A payment made right after a restart.
#[derive(Debug, Clone)]
struct Measured {
    n: usize,
    op: u64,
    restart: usize,
    at: Instant,
}

#[derive(Default)]
struct PayerState {
    handled: HashMap<u64, Plan>,
    kept: Vec<(u64, usize)>,
    /// Once the last restart is done, kept operations are paid at once.
    no_more_restarts: bool,
    measured: Vec<Measured>,
}

/// Acts on new open drill operations every 200 ms until `stop`.
async fn payer(sim: Arc<Sim>, tag: char, state: Arc<Mutex<PayerState>>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::SeqCst) {
        for op in sim.operations().await {
            let Some(n) = number_in(&op.comment, tag) else {
                continue;
            };
            if op.status != "RemotePaymentCreated" || lock(&state).handled.contains_key(&op.id) {
                continue;
            }
            let mut planned = plan(n);
            if planned == Plan::PayAfterRestart && lock(&state).no_more_restarts {
                planned = Plan::Pay;
            }
            match planned {
                Plan::Pay => {
                    sim.act(op.id, "pay").await;
                }
                Plan::Decline => {
                    sim.act(op.id, "decline").await;
                }
                Plan::PayAfterRestart => lock(&state).kept.push((op.id, n)),
                Plan::LeaveOpen => {}
            }
            lock(&state).handled.insert(op.id, planned);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Pays the operations kept for after a restart; right after restart `restart` when given,
/// and then their detection is measured.
async fn pay_kept(sim: &Sim, state: &Mutex<PayerState>, restart: Option<usize>) {
    let kept = std::mem::take(&mut lock(state).kept);
    for (op, n) in kept {
        let paid = sim.act(op, "pay").await;
        if let (true, Some(restart)) = (paid, restart) {
            let at = Instant::now();
            lock(state).measured.push(Measured { n, op, restart, at });
        }
    }
}

/// Kassa's invoices through the API (`query` added), every page, oldest first.
async fn invoices(
    http: &reqwest::Client,
    base: &str,
    api_key: &str,
    query: &[(&str, &str)],
) -> Result<Vec<Value>, String> {
    let mut all = Vec::new();
    for page in 1.. {
        let page = page.to_string();
        let mut q = vec![
            ("per_page", "100"),
            ("sort_by", "id"),
            ("sort_order", "asc"),
            ("page", page.as_str()),
        ];
        q.extend_from_slice(query);
        let answer = http
            .get(format!("{base}/api/v1/invoices"))
            .header("X-API-Key", api_key)
            .query(&q)
            .send()
            .await
            .map_err(wire_error)?;
        if answer.status() != 200 {
            return Err(format!("list answered {}", answer.status()));
        }
        let body: Value = answer.json().await.map_err(wire_error)?;
        let data = body["data"].as_array().cloned().unwrap_or_default();
        let done = data.len() < 100;
        all.extend(data);
        if done {
            break;
        }
    }
    Ok(all)
}

/// Notes when each invoice first shows as paid, polling the API every 200 ms until `stop`.
async fn watcher(
    load: Arc<Load>,
    first_paid: Arc<Mutex<HashMap<String, Instant>>>,
    stop: Arc<AtomicBool>,
) {
    let http = reqwest::Client::builder()
        .timeout(CLIENT_TIMEOUT)
        .build()
        .expect("client");
    while !stop.load(Ordering::SeqCst) {
        let base = load.base.borrow().clone();
        if let Ok(paid) = invoices(&http, &base, &load.api_key, &[("status[]", "paid")]).await {
            let now = Instant::now();
            let mut first = lock(&first_paid);
            for invoice in paid {
                if let Some(order) = invoice["external_order_id"].as_str() {
                    first.entry(order.to_owned()).or_insert(now);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Aborts its tasks when dropped (a failed drill leaves nothing running).
struct Tasks(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// The running gateway and the ones killed before it.
struct Gateway {
    site: Site,
    current: Proc,
    dead: Vec<Proc>,
    base: watch::Sender<String>,
    kills: usize,
}

impl Gateway {
    /// `kill -9`, then a new `kassa serve` on the same data; answers the restart's number.
    async fn crash_and_restart(&mut self) -> usize {
        self.current.kill9().await;
        self.kills += 1;
        let (next, base) = self
            .site
            .serve(&format!("kassa serve #{}", self.kills))
            .await;
        self.dead.push(std::mem::replace(&mut self.current, next));
        self.base.send_replace(base);
        self.kills
    }

    fn errors(&self) -> Vec<String> {
        self.dead
            .iter()
            .chain(std::iter::once(&self.current))
            .flat_map(|p| p.errors().into_iter().map(|e| format!("{}: {e}", p.name)))
            .collect()
    }
}

/// What the drill starts before the load: the simulator, the cashier's login, an API key,
/// the webhook receiver and its endpoint, and the first `kassa serve`.
struct Stage {
    sim: Arc<Sim>,
    api_key: String,
    receiver: Receiver,
    gateway: Gateway,
    base: watch::Receiver<String>,
    http: reqwest::Client,
}

/// Sets the stage as a user would, with the commands of the `kassa` binary.
async fn set_up(url: &str, data_dir: std::path::PathBuf, seed: u64) -> Stage {
    let sim = Arc::new(Sim::start(seed).await);
    let site = Site {
        data_dir,
        database_url: url.to_owned(),
        kaspi: sim.base.clone(),
    };
    site.admin(&["migrate"]).await;
    site.admin(&["org", "create", "drill", "--name", "Drill"])
        .await;
    site.connect_terminal(&sim, "drill", CASHIER).await;
    let api_key = site
        .admin(&["api-key", "create", "--org", "drill", "--name", "drill"])
        .await
        .trim()
        .to_owned();
    let receiver = Receiver::start().await;
    let (first, base) = site.serve("kassa serve #0").await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let hook = http
        .post(format!("{base}/api/v1/webhooks"))
        .header("X-API-Key", &api_key)
        .json(&json!({"url": receiver.url(HOOK_PATH), "events": ["*"], "format": "apipay"}))
        .send()
        .await
        .expect("webhook registered");
    assert_eq!(hook.status(), 201, "{:?}", hook.text().await);
    let (base_tx, base_rx) = watch::channel(base);
    Stage {
        sim,
        api_key,
        receiver,
        gateway: Gateway {
            site,
            current: first,
            dead: Vec::new(),
            base: base_tx,
            kills: 0,
        },
        base: base_rx,
        http,
    }
}

/// Faults on the create path — latency, 5xx and dropped answers — and a kill among them;
/// then two answers held back past Kassa's own Kaspi timeout (20 s), until Kassa gave up.
async fn fault_round(
    sim: &Sim,
    gateway: &mut Gateway,
    payer_state: &Mutex<PayerState>,
    rng: &mut StdRng,
) {
    sim.set_faults(json!({
        "latency_ms": 200, "http_5xx": 0.2, "lost": 0.25, "lost_mode": "drop",
        "path_contains": "remote/create",
    }))
    .await;
    tokio::time::sleep(pause(rng, 2000, 4000)).await;
    let restart = gateway.crash_and_restart().await;
    pay_kept(sim, payer_state, Some(restart)).await;
    sim.set_faults(json!({
        "lost": 1.0, "lost_mode": "timeout", "hang_ms": 25_000,
        "path_contains": "remote/create", "count": 2,
    }))
    .await;
    let held = common::wait_for(Duration::from_secs(20), || async {
        (sim.faults().await["count"] == 0).then_some(())
    })
    .await;
    assert!(
        held.is_some(),
        "two creates were held back: {}",
        sim.faults().await
    );
    let released = common::wait_for(Duration::from_secs(40), || async {
        (sim.held().await == 0).then_some(())
    })
    .await;
    assert!(released.is_some(), "Kassa gave up on the held-back creates");
    sim.clear_faults().await;
}

/// A random pause of `from..to` ms: when the next kill comes.
fn pause(rng: &mut StdRng, from: u64, to: u64) -> Duration {
    Duration::from_millis(rng.gen_range(from..to))
}

async fn run(database: &str, tag: char, url: &str) {
    let began = Instant::now();
    let seed: u64 = rand::thread_rng().gen();
    let mut rng = StdRng::seed_from_u64(seed);
    let tmp = tempfile::tempdir().expect("tempdir");
    let Stage {
        sim,
        api_key,
        receiver,
        mut gateway,
        base: base_rx,
        http,
    } = set_up(url, tmp.path().join("data"), seed).await;

    // Load, payer, watcher.
    let load = Arc::new(Load {
        tag,
        api_key: api_key.clone(),
        base: base_rx,
        stop: AtomicBool::new(false),
        next: AtomicUsize::new(0),
        sent: Mutex::new(Vec::new()),
    });
    let payer_state = Arc::new(Mutex::new(PayerState::default()));
    let first_paid = Arc::new(Mutex::new(HashMap::new()));
    let stop_watching = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        clients.push(tokio::spawn(client(
            load.clone(),
            seed.wrapping_add(c as u64),
        )));
    }
    let _clients = Tasks(clients);
    let _helpers = Tasks(vec![
        tokio::spawn(payer(
            sim.clone(),
            tag,
            payer_state.clone(),
            stop_watching.clone(),
        )),
        tokio::spawn(watcher(
            load.clone(),
            first_paid.clone(),
            stop_watching.clone(),
        )),
    ]);

    // Kills under load, then the round with faults.
    for _ in 0..CRASH_ROUNDS {
        tokio::time::sleep(pause(&mut rng, 1500, 4000)).await;
        let restart = gateway.crash_and_restart().await;
        pay_kept(&sim, &payer_state, Some(restart)).await;
    }
    fault_round(&sim, &mut gateway, &payer_state, &mut rng).await;
    // The last kill, as the load ends.
    tokio::time::sleep(pause(&mut rng, 1000, 2500)).await;
    load.stop.store(true, Ordering::SeqCst);
    let restart = gateway.crash_and_restart().await;
    pay_kept(&sim, &payer_state, Some(restart)).await;
    lock(&payer_state).no_more_restarts = true;
    let rounds = CRASH_ROUNDS + 2;

    // Settle: every client answered or gave up, then every decided payment shows in Kassa
    // and in a webhook.
    let issued = load.next.load(Ordering::SeqCst);
    let answered = common::wait_for(TRY_FOR + Duration::from_secs(15), || async {
        (lock(&load.sent).len() >= issued).then_some(())
    })
    .await;
    assert!(answered.is_some(), "every client finished its tries");
    pay_kept(&sim, &payer_state, None).await;
    let base = gateway.base.borrow().clone();
    let settle_began = Instant::now();
    let mut world = observe(&sim, &http, &base, &api_key, &receiver).await;
    let (unrecorded, undelivered) = world.unsettled(tag);
    while world.unsettled(tag) != (0, 0) && settle_began.elapsed() < SETTLE_LIMIT {
        tokio::time::sleep(Duration::from_millis(500)).await;
        world = observe(&sim, &http, &base, &api_key, &receiver).await;
    }
    let settle_took = settle_began.elapsed();
    stop_watching.store(true, Ordering::SeqCst);

    // The verdict, per logical invoice.
    let sent = lock(&load.sent).clone();
    let mut failures = Failures::default();
    world.check(tag, issued, &sent, &mut failures);
    replays(&http, &base, &api_key, tag, issued, &world, &mut failures).await;
    let measured = lock(&payer_state).measured.clone();
    let delays = detection(tag, &measured, &lock(&first_paid), &mut failures);

    let p = |q| quantile(&delays, q).map_or("-".into(), |d| format!("{:.2} s", d.as_secs_f64()));
    let summary = format!(
        "crash drill [{database}]: {issued} invoices ({} in Kassa, {} Kaspi operations), \
         {rounds} rounds ({CRASH_ROUNDS} crash, 1 fault, 1 final), {} kills; detection after \
         restart p50 {} p99 {} (n={}); settled in {:.1} s (at its start {unrecorded} Kaspi outcomes \
         not in Kassa, {undelivered} changes without a webhook); wall {:.1} s; {} failures \
         (seed {seed})",
        world.invoices.len(),
        world.ops.len(),
        gateway.kills,
        p(0.5),
        p(0.99),
        delays.len(),
        settle_took.as_secs_f64(),
        began.elapsed().as_secs_f64(),
        failures.list.len(),
    );
    // Straight to stderr: libtest hides `eprintln!` of a passing test, and the figures are
    // wanted from every run.
    let _ = writeln!(std::io::stderr(), "{summary}");
    if !failures.list.is_empty() {
        panic!(
            "{summary}\nthe {database} crash drill failed:\n{}\nKassa's error log lines:\n{}",
            failures.report(),
            gateway.errors().join("\n")
        );
    }
}
