//! The scenarios of issue 6, one module each, behind one interface: a [`Scenario`] names
//! itself, says what it measures, and its `run` gets a [`Ctx`] (the database, quick or full,
//! a report to fill) and starts and stops whatever it needs.
//!
//! Figures of one load are named `<label>.<measure>` (see [`Ctx::record`]); a figure compared
//! with the floor is measured on the same server in the same run, and the ratio is a figure
//! too (`<label>.of_floor`, in %).

mod burst;
mod create;
mod depth;
mod detection;
mod floor;
mod footprint;
mod read;
mod steady;
mod webhook_rig;
mod webhooks;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::Full;
use kassa::gateway::GatewaySettings;
use kassa::store::{InvoiceKind, NewInvoice};

use crate::cpu;
use crate::load::{Load, MakeRequest, Summary, Window};
use crate::report::Report;
use crate::target::{Database, InProcess, Storage};

/// What a scenario's `run` returns.
pub type Running<'a> = Pin<Box<dyn Future<Output = anyhow::Result<()>> + 'a>>;

/// One scenario.
pub struct Scenario {
    pub name: &'static str,
    /// One line for `--help` and the progress output.
    pub about: &'static str,
    /// `None`: listed but not yet implemented.
    pub run: Option<fn(&mut Ctx) -> Running<'_>>,
}

/// Every scenario, in the order.
pub const ALL: &[Scenario] = &[
    floor::SCENARIO,
    create::SCENARIO,
    read::SCENARIO,
    depth::SCENARIO,
    webhooks::SCENARIO,
    steady::SCENARIO,
    detection::SCENARIO,
    footprint::SCENARIO,
    burst::SCENARIO,
];

/// The scenario called `name`.
pub fn find(name: &str) -> Option<&'static Scenario> {
    ALL.iter().find(|s| s.name == name)
}

/// Makes the sandbox Kaspi behave as Kaspi does, from now on: 50 ms a call, each cashier
/// throttled above 20 calls a second (HTTP 429).
pub fn kaspi_as_kaspi(sim: &kaspi_sim::Simulator) -> anyhow::Result<()> {
    sim.set_cashier_rate_limit(Some(20));
    sim.set_faults(kaspi_sim::Faults {
        latency_ms: 50,
        ..kaspi_sim::Faults::default()
    })
    .map_err(|e| anyhow::anyhow!("faults: {e}"))
}

/// Connections of every HTTP load, as the issue asks.
pub const CONNECTIONS: usize = 64;

/// What a scenario runs with.
pub struct Ctx {
    pub scenario: &'static str,
    pub database: Database,
    pub postgres_admin_url: String,
    pub quick: bool,
    /// What this scenario found on this database.
    pub report: Report,
}

impl Ctx {
    pub fn new(
        scenario: &'static str,
        database: Database,
        postgres_admin_url: &str,
        quick: bool,
    ) -> Ctx {
        Ctx {
            scenario,
            database,
            postgres_admin_url: postgres_admin_url.to_owned(),
            quick,
            report: Report::default(),
        }
    }

    /// Warm-up and measured time of one round of one load: 1 s + 4 s, or a blink with
    /// `--quick`.
    pub fn window(&self) -> Window {
        if self.quick {
            Window {
                warmup: Duration::from_millis(100),
                measure: Duration::from_millis(250),
            }
        } else {
            Window {
                warmup: Duration::from_secs(1),
                measure: Duration::from_secs(4),
            }
        }
    }

    /// Rounds of interleaved loads: two (8 s of measurement per figure), one with `--quick`.
    pub fn rounds(&self) -> u32 {
        if self.quick {
            1
        } else {
            2
        }
    }

    /// A fresh data dir and database.
    pub fn storage(&self) -> anyhow::Result<Storage> {
        Storage::new(self.database, &self.postgres_admin_url)
    }

    /// Kassa in this process, on fresh storage, with production's settings.
    pub async fn start_in_process(&self) -> anyhow::Result<InProcess> {
        self.start_in_process_with(GatewaySettings::default()).await
    }

    /// Kassa in this process, on fresh storage, with `settings`.
    pub async fn start_in_process_with(
        &self,
        settings: GatewaySettings,
    ) -> anyhow::Result<InProcess> {
        InProcess::start(self.storage()?, settings).await
    }

    /// Kassa in this process, on fresh storage, with `settings` and `serve` as its
    /// `kassa serve` flags (see [`InProcess::start_with_args`]).
    pub async fn start_in_process_with_args(
        &self,
        settings: GatewaySettings,
        serve: kassa::config::ServeArgs,
    ) -> anyhow::Result<InProcess> {
        InProcess::start_with_args(self.storage()?, settings, serve).await
    }

    pub fn figure(&mut self, metric: &str, value: f64, unit: &str) {
        let database = self.database.name();
        self.report
            .figure(self.scenario, database, metric, value, unit);
    }

    /// The figures of one load: `rate` (req/s), `p50`, `p99`, `p99_9` (ms), `errors`
    /// (unexpected answers and failures), the CPU split while it ran: `cpu_kassa`,
    /// `cpu_load` (the load generator), `cpu_other` (the rest of the machine: PostgreSQL, the
    /// kernel's own threads such as the file system journal, other programs), and
    /// `cpu_kassa_per_request` (ms of Kassa's CPU per answer: the figure least disturbed by a
    /// busy machine); `<counter>_per_request` when the load counts something on the side.
    /// A load with errors also gets a note saying what they were.
    pub fn record(&mut self, label: &str, summary: &Summary) {
        self.figure(&format!("{label}.rate"), summary.rate(), "req/s");
        self.figure(&format!("{label}.p50"), summary.percentile_ms(0.5), "ms");
        self.figure(&format!("{label}.p99"), summary.percentile_ms(0.99), "ms");
        self.figure(
            &format!("{label}.p99_9"),
            summary.percentile_ms(0.999),
            "ms",
        );
        self.figure(
            &format!("{label}.errors"),
            summary.errors() as f64,
            "requests",
        );
        if let Some(cores) = summary.cpu.cores() {
            self.figure(&format!("{label}.cpu_kassa"), cores.kassa, "cores");
            self.figure(&format!("{label}.cpu_load"), cores.load, "cores");
            self.figure(&format!("{label}.cpu_other"), cores.other, "cores");
            if summary.requests > 0 {
                let ms = summary.cpu.kassa_seconds() * 1000.0 / summary.requests as f64;
                self.figure(&format!("{label}.cpu_kassa_per_request"), ms, "ms");
            }
        }
        if let (Some((name, counted)), true) = (summary.counted, summary.requests > 0) {
            let per = counted as f64 / summary.requests as f64;
            self.figure(&format!("{label}.{name}_per_request"), per, "per request");
        }
        if let Some(problems) = summary.problems() {
            let line = format!(
                "{} on {}: {label}: {} of {} requests failed: {problems}",
                self.scenario,
                self.database.name(),
                summary.errors(),
                summary.requests + summary.failed,
            );
            self.report.note(line);
        }
    }

    /// `<label>.of_floor`: the load's rate as a share of the floor's, in %; the share.
    pub fn ratio_to_floor(&mut self, label: &str, summary: &Summary, floor: &Summary) -> f64 {
        let share = if floor.rate() > 0.0 {
            100.0 * summary.rate() / floor.rate()
        } else {
            0.0
        };
        self.figure(&format!("{label}.of_floor"), share, "%");
        eprintln!("    {label}: {share:.0}% of floor");
        share
    }

    /// Records a goal and whether it was met.
    pub fn goal(&mut self, goal: String, measured: String, met: bool) {
        let database = self.database.name();
        self.report
            .goal(self.scenario, database, goal, measured, met);
    }
}

/// The floor: `GET /api/v1/status` (no key; one read of the terminals table).
pub fn status_load(addr: std::net::SocketAddr, cpu_scope: cpu::Scope) -> Load {
    Load {
        label: "status",
        what: "GET /api/v1/status".into(),
        addr,
        connections: CONNECTIONS,
        expect: StatusCode::OK,
        make: get(Uri::from_static("/api/v1/status"), None),
        cpu_scope,
        counter: None,
    }
}

/// `GET uri`, with `X-API-Key: key` when given.
pub fn get(uri: Uri, key: Option<HeaderValue>) -> Arc<MakeRequest> {
    get_each(vec![uri], key)
}

/// `GET` one of `uris` per request, spread over all of them (a fixed stride, so neighbours
/// in time are far apart in the list).
pub fn get_each(uris: Vec<Uri>, key: Option<HeaderValue>) -> Arc<MakeRequest> {
    get_each_header(uris, key.map(|key| ("x-api-key", key)))
}

/// Like [`get_each`] with `header: value` on every request (e.g. `authorization: Bearer …`).
pub fn get_each_with(uris: Vec<Uri>, header: &'static str, value: HeaderValue) -> Arc<MakeRequest> {
    get_each_header(uris, Some((header, value)))
}

fn get_each_header(
    uris: Vec<Uri>,
    header: Option<(&'static str, HeaderValue)>,
) -> Arc<MakeRequest> {
    Arc::new(move |seq| {
        let index = (seq.wrapping_mul(7_919) % uris.len().max(1) as u64) as usize;
        let mut request = Request::new(Full::new(Bytes::new()));
        if let Some(uri) = uris.get(index) {
            *request.uri_mut() = uri.clone();
        }
        if let Some((name, value)) = &header {
            request.headers_mut().insert(*name, value.clone());
        }
        request
    })
}

/// `POST uri` with a JSON `body`, `X-API-Key: key` and a new `Idempotency-Key` each time.
pub fn post_json(uri: Uri, key: HeaderValue, body: &'static [u8]) -> Arc<MakeRequest> {
    Arc::new(move |seq| {
        let mut request = Request::new(Full::new(Bytes::from_static(body)));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri.clone();
        let headers = request.headers_mut();
        headers.insert("x-api-key", key.clone());
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert("idempotency-key", HeaderValue::from(seq));
        request
    })
}

/// Invoice number `n` of a seeded set, made at `created_at`, expiring `expires_in_ms` later.
pub fn bench_invoice(org_id: i64, n: usize, created_at: i64, expires_in_ms: i64) -> NewInvoice {
    NewInvoice {
        payment_id: uuid::Uuid::new_v4().to_string(),
        org_id,
        kind: InvoiceKind::Remote,
        amount: kassa::domain::Money::from_tiyn(100 * (1 + (n as i64 % 500)) * 100),
        phone: kassa::domain::parse_phone(&format!("700{:07}", n % 10_000_000)).ok(),
        description: Some(format!("Order #{n}")),
        external_order_id: Some(format!("bench-{n}")),
        is_sandbox: true,
        created_at,
        expires_at: Some(created_at + expires_in_ms),
        metadata: None,
        kaspi_ref: None,
        reconcile_at: None,
        idempotency: None,
    }
}

/// Now, in unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// An API key as a header value.
pub fn key_header(key: &str) -> anyhow::Result<HeaderValue> {
    Ok(HeaderValue::from_str(key)?)
}
