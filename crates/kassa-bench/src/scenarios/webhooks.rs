//! Scenario 5, webhooks: a burst of 20,000 status changes delivered to a local receiver.
//!
//! The receiver is an HTTP/1.1 server (hyper) on 127.0.0.1 in this process, answering 200 at
//! once and recording each request's arrival time, its `webhook-id` header and the invoice id
//! of its body. Kassa runs in-process with production settings, webhook targets on loopback
//! allowed (`--webhook-allow-private`), and one endpoint made through `POST /api/v1/webhooks`
//! (every event, ApiPay format). 20,000 pending invoices are seeded in bulk
//! (`Store::bulk_insert_invoices`: no event, no job), then all of them are paid at once:
//! `Store::apply_status` from 64 tasks on the server's runtime, each change committing with
//! its outbox event in one transaction, as a detected payment does. The commit time of each
//! change is taken when its `apply_status` returns.
//!
//! Figures: how fast the changes committed, when the dispatcher had turned every event into a
//! delivery (polled every 50 ms), deliveries per second from the first arrival to the last, the delay from a committed change to its arrival (p50, p99, max, matched by
//! invoice id), duplicates (a `webhook-id` seen twice), and deliveries still missing when the
//! bounded wait ends.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use kassa::config::ServeArgs;
use kassa::gateway::GatewaySettings;
use kassa::store::{BulkInvoice, InvoiceStatus, StoreError};
use tokio::net::TcpListener;

use super::{bench_invoice, now_ms, Ctx, Running, Scenario};
use crate::load::send_once;
use crate::target::InProcess;

pub const SCENARIO: Scenario = Scenario {
    name: "webhooks",
    about: "a burst of 20,000 status changes committed at once, delivered to a receiver on 127.0.0.1: deliveries/s, delay from commit to arrival, duplicates, missing",
    run: Some(start),
};

const CHANGES: usize = 20_000;
const CHANGES_QUICK: usize = 500;
/// Tasks making the status changes at once.
const CHANGE_TASKS: usize = 64;
/// How long after the last change the deliveries are waited for.
const WAIT: Duration = Duration::from_secs(120);
const WAIT_QUICK: Duration = Duration::from_secs(20);
/// Rows handed to the store at once when seeding.
const SEED_CHUNK: usize = 10_000;

const GOAL_RATE: f64 = 2_000.0;

fn start(ctx: &mut Ctx) -> Running<'_> {
    Box::pin(run(ctx))
}

/// Now in unix microseconds: commit and arrival times are taken on one clock.
fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    let count = if ctx.quick { CHANGES_QUICK } else { CHANGES };
    let wait = if ctx.quick { WAIT_QUICK } else { WAIT };
    let receiver = Receiver::start(count).await?;
    let server = ctx
        .start_in_process_with_args(
            GatewaySettings::default(),
            ServeArgs {
                webhook_allow_private: Some(true),
                ..ServeArgs::default()
            },
        )
        .await?;
    create_endpoint(&server, &format!("http://{}/hook", receiver.addr)).await?;

    eprintln!("    seeding {count} pending invoices in bulk");
    let ids = seed(&server, count).await?;
    anyhow::ensure!(
        ids.len() == count,
        "seeded {} invoices, not {count}",
        ids.len()
    );

    eprintln!("    paying all {count} at once from {CHANGE_TASKS} tasks");
    let committed = pay_all(&server, ids).await?;
    let changed = committed.len();
    let (Some(first_commit), Some(last_commit)) = (
        committed.values().copied().min(),
        committed.values().copied().max(),
    ) else {
        anyhow::bail!("no status change committed");
    };

    eprintln!(
        "    waiting for {changed} deliveries (at most {} s after the last change)",
        wait.as_secs()
    );
    let deadline = Instant::now() + wait;
    // When the dispatcher had turned every event into a delivery (polled).
    let mut dispatched_at: Option<i64> = None;
    while receiver.invoices_seen() < changed && Instant::now() < deadline {
        if dispatched_at.is_none() && undispatched(&server).await? == 0 {
            dispatched_at = Some(now_us());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let waited_out = receiver.invoices_seen() < changed;
    server.stop().await?;
    let arrivals = receiver.stop();

    let found = Found::of(&arrivals, &committed);
    let commit_seconds = (last_commit - first_commit) as f64 / 1e6;
    ctx.figure("changes", changed as f64, "invoices");
    ctx.figure("changes.seconds", commit_seconds, "s");
    ctx.figure(
        "changes.rate",
        changed as f64 / commit_seconds.max(1e-6),
        "changes/s",
    );
    if let Some(at) = dispatched_at {
        let seconds = (at - first_commit) as f64 / 1e6;
        ctx.figure("dispatched.drain", seconds, "s");
        ctx.figure(
            "dispatched.rate",
            changed as f64 / seconds.max(1e-6),
            "events/s",
        );
    }
    ctx.figure("deliveries", found.deliveries as f64, "deliveries");
    ctx.figure("deliveries.rate", found.rate, "deliveries/s");
    ctx.figure(
        "deliveries.drain",
        found
            .last_arrival
            .map_or(f64::NAN, |last| (last - first_commit) as f64 / 1e6),
        "s",
    );
    ctx.figure("delay.p50", found.delay_ms(0.5), "ms");
    ctx.figure("delay.p99", found.delay_ms(0.99), "ms");
    ctx.figure("delay.max", found.delay_ms(1.0), "ms");
    ctx.figure("duplicates", found.duplicates as f64, "deliveries");
    ctx.figure("missing", found.missing as f64, "invoices");
    if waited_out {
        ctx.report.note(format!(
            "webhooks on {}: {} of {changed} deliveries had not arrived {} s after the last \
             change",
            ctx.database.name(),
            found.missing,
            wait.as_secs()
        ));
    }
    ctx.goal(
        format!("webhooks ≥ {GOAL_RATE:.0} deliveries/s"),
        format!("{:.0} deliveries/s", found.rate),
        found.rate >= GOAL_RATE && found.missing == 0,
    );
    Ok(())
}

/// What arrived, measured against when each change committed.
struct Found {
    /// Requests with a `webhook-id` not seen before.
    deliveries: usize,
    duplicates: usize,
    /// Changed invoices with no delivery.
    missing: usize,
    /// Unique deliveries a second from the first arrival to the last.
    rate: f64,
    last_arrival: Option<i64>,
    /// Commit → first arrival of each invoice, µs, sorted.
    delays_us: Vec<i64>,
}

impl Found {
    fn of(arrivals: &[Arrival], committed: &HashMap<i64, i64>) -> Found {
        let mut ids = HashSet::with_capacity(arrivals.len());
        let mut duplicates = 0;
        let mut first_by_invoice: HashMap<i64, i64> = HashMap::with_capacity(committed.len());
        for a in arrivals {
            if let Some(id) = &a.webhook_id {
                if !ids.insert(id.as_str()) {
                    duplicates += 1;
                }
            }
            if let Some(invoice) = a.invoice_id {
                let first = first_by_invoice.entry(invoice).or_insert(a.at_us);
                *first = (*first).min(a.at_us);
            }
        }
        let mut delays_us: Vec<i64> = committed
            .iter()
            .filter_map(|(invoice, at)| Some(first_by_invoice.get(invoice)? - at))
            .collect();
        delays_us.sort_unstable();
        let first = arrivals.iter().map(|a| a.at_us).min();
        let last = arrivals.iter().map(|a| a.at_us).max();
        let deliveries = ids.len();
        let rate = match (first, last) {
            (Some(first), Some(last)) if last > first => {
                deliveries as f64 / ((last - first) as f64 / 1e6)
            }
            _ => 0.0,
        };
        Found {
            deliveries,
            duplicates,
            missing: committed.len() - delays_us.len(),
            rate,
            last_arrival: last,
            delays_us,
        }
    }

    fn delay_ms(&self, quantile: f64) -> f64 {
        if self.delays_us.is_empty() {
            return f64::NAN;
        }
        let i = ((self.delays_us.len() - 1) as f64 * quantile).round() as usize;
        self.delays_us[i.min(self.delays_us.len() - 1)] as f64 / 1000.0
    }
}

/// `POST /api/v1/webhooks`: every event to `url`, ApiPay format.
async fn create_endpoint(server: &InProcess, url: &str) -> anyhow::Result<()> {
    let body = serde_json::json!({"url": url, "events": ["*"], "format": "apipay"});
    let mut request = Request::new(Full::new(Bytes::from(serde_json::to_vec(&body)?)));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = "/api/v1/webhooks".parse()?;
    let headers = request.headers_mut();
    headers.insert("x-api-key", HeaderValue::from_str(&server.api_key)?);
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let (status, answer) = send_once(server.addr, request).await?;
    anyhow::ensure!(
        status == StatusCode::CREATED,
        "POST /api/v1/webhooks answered {status}: {}",
        String::from_utf8_lossy(&answer)
    );
    Ok(())
}

/// Seeds `count` pending invoices of the demo organization in bulk; their ids.
async fn seed(server: &InProcess, count: usize) -> anyhow::Result<Vec<i64>> {
    let store = server.state().store.clone();
    let org_id = server.org_id;
    server
        .on_server(async move {
            let now = now_ms();
            let mut from = 0;
            while from < count {
                let to = (from + SEED_CHUNK).min(count);
                let rows = (from..to)
                    .map(|n| {
                        BulkInvoice::pending(
                            bench_invoice(org_id, n, now, 24 * 3600 * 1000),
                            kassa::domain::KaspiOperationId::new(800_000_000_000 + n as i64),
                        )
                    })
                    .collect();
                store.invoices().bulk_insert_invoices(rows).await?;
                from = to;
            }
            store
                .db()
                .read(move |tx| {
                    let rows = tx.query(
                        "SELECT id FROM invoices WHERE org_id = $1 AND status = 'pending' \
                         ORDER BY id",
                        &[org_id.into()],
                    )?;
                    rows.iter()
                        .map(|r| r.i64("id"))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(StoreError::from)
                })
                .await
                .map_err(anyhow::Error::from)
        })
        .await?
}

/// Outbox events not yet turned into deliveries.
async fn undispatched(server: &InProcess) -> anyhow::Result<i64> {
    let db = server.state().store.db().clone();
    server
        .on_server(async move {
            db.read(|tx| {
                tx.query_one(
                    "SELECT COUNT(*) AS n FROM invoice_events WHERE dispatched_at IS NULL",
                    &[],
                )?
                .i64("n")
            })
            .await
        })
        .await?
        .context("counting undispatched events")
}

/// Pays every invoice of `ids` at once from [`CHANGE_TASKS`] tasks on the server's runtime;
/// when each change committed (µs), by invoice id, for those that changed.
async fn pay_all(server: &InProcess, ids: Vec<i64>) -> anyhow::Result<HashMap<i64, i64>> {
    let store = server.state().store.clone();
    server
        .on_server(async move {
            let ids = Arc::new(ids);
            let next = Arc::new(AtomicUsize::new(0));
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..CHANGE_TASKS {
                let (store, ids, next) = (store.clone(), ids.clone(), next.clone());
                tasks.spawn(async move {
                    let mut committed = Vec::new();
                    loop {
                        let Some(&id) = ids.get(next.fetch_add(1, Ordering::Relaxed)) else {
                            return Ok::<_, StoreError>(committed);
                        };
                        let changed = store
                            .invoices()
                            .apply_status(
                                id,
                                InvoiceStatus::Paid,
                                Some("Processed"),
                                now_ms(),
                                None,
                            )
                            .await?;
                        if changed.is_some() {
                            committed.push((id, now_us()));
                        }
                    }
                });
            }
            let mut committed = HashMap::with_capacity(ids.len());
            while let Some(done) = tasks.join_next().await {
                committed.extend(done.context("a paying task failed")??);
            }
            Ok::<_, anyhow::Error>(committed)
        })
        .await?
}

/// One request that reached the receiver.
#[derive(Debug, Clone)]
struct Arrival {
    at_us: i64,
    webhook_id: Option<String>,
    invoice_id: Option<i64>,
}

/// The local webhook receiver: answers 200 to everything and records what came.
struct Receiver {
    addr: std::net::SocketAddr,
    arrivals: Arc<Mutex<Vec<Arrival>>>,
    /// Distinct invoice ids seen so far.
    invoices: Arc<Mutex<HashSet<i64>>>,
    /// The accepting task; its connections end with it.
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(expected: usize) -> anyhow::Result<Receiver> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .context("binding the webhook receiver")?;
        let addr = listener.local_addr()?;
        let arrivals = Arc::new(Mutex::new(Vec::with_capacity(expected)));
        let invoices = Arc::new(Mutex::new(HashSet::with_capacity(expected)));
        let (a, i) = (arrivals.clone(), invoices.clone());
        let task = tokio::spawn(async move {
            // Dropped with this task (when aborted): its connections end too.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let (arrivals, invoices) = (a.clone(), i.clone());
                connections.spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let (arrivals, invoices) = (arrivals.clone(), invoices.clone());
                        async move {
                            record(request, &arrivals, &invoices).await;
                            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
        Ok(Receiver {
            addr,
            arrivals,
            invoices,
            task,
        })
    }

    fn invoices_seen(&self) -> usize {
        self.invoices.lock().map_or(0, |seen| seen.len())
    }

    /// Stops receiving; what arrived.
    fn stop(self) -> Vec<Arrival> {
        self.task.abort();
        let arrivals = self
            .arrivals
            .lock()
            .map(|mut a| std::mem::take(&mut *a))
            .unwrap_or_default();
        arrivals
    }
}

/// Records one request: when it had arrived whole, its `webhook-id`, its invoice.
async fn record(
    request: Request<Incoming>,
    arrivals: &Mutex<Vec<Arrival>>,
    invoices: &Mutex<HashSet<i64>>,
) {
    let webhook_id = request
        .headers()
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = request.into_body().collect().await.map(|b| b.to_bytes());
    let at_us = now_us();
    let invoice_id = body
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|json| json["invoice"]["id"].as_i64());
    if let (Some(id), Ok(mut seen)) = (invoice_id, invoices.lock()) {
        seen.insert(id);
    }
    if let Ok(mut arrivals) = arrivals.lock() {
        arrivals.push(Arrival {
            at_us,
            webhook_id,
            invoice_id,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn found_counts_duplicates_missing_and_delays() {
        let arrival = |at_us, id: &str, invoice| Arrival {
            at_us,
            webhook_id: Some(id.into()),
            invoice_id: Some(invoice),
        };
        let arrivals = [
            arrival(1_000_000, "a", 1),
            arrival(1_500_000, "b", 2),
            arrival(1_600_000, "b", 2),
            arrival(2_000_000, "c", 3),
        ];
        let committed: HashMap<i64, i64> =
            [(1, 990_000), (2, 1_000_000), (3, 1_000_000), (4, 1_000_000)].into();
        let found = Found::of(&arrivals, &committed);
        assert_eq!(found.deliveries, 3);
        assert_eq!(found.duplicates, 1);
        assert_eq!(found.missing, 1);
        assert!((found.rate - 3.0).abs() < 1e-9);
        assert_eq!(found.delays_us, [10_000, 500_000, 1_000_000]);
        assert!((found.delay_ms(0.5) - 500.0).abs() < 1e-9);
        assert!((found.delay_ms(1.0) - 1_000.0).abs() < 1e-9);
    }
}
