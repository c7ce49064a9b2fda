//! What the two webhook scenarios (`webhooks`, a burst; `steady`, a steady pace) share: a
//! receiver, a Kassa pointing an endpoint at it with pending invoices seeded, the status change
//! that makes an event, and what arrived measured against when each change committed.
//!
//! The receiver is an HTTP/1.1 server (hyper) on 127.0.0.1 in this process, answering 200 at
//! once and recording each request's arrival time, its `webhook-id` header and the invoice id
//! of its body. Kassa runs in-process with production settings, webhook targets on loopback
//! allowed (`--webhook-allow-private`), and one endpoint made through `POST /api/v1/webhooks`
//! (every event, ApiPay format). The pending invoices are seeded in bulk
//! (`Store::bulk_insert_invoices`: no event, no job); a change is `Store::apply_status` to paid
//! on the server's runtime, committing with its outbox event in one transaction as a detected
//! payment does, and its commit time is taken when `apply_status` returns. Commit and arrival
//! times are read on one clock.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
use kassa::store::{BulkInvoice, InvoiceStatus, Store, StoreError};
use tokio::net::TcpListener;

use super::{bench_invoice, now_ms, Ctx};
use crate::load::send_once;
use crate::target::InProcess;

/// Rows handed to the store at once when seeding.
const SEED_CHUNK: usize = 10_000;

/// Now in unix microseconds: commit and arrival times are taken on one clock.
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// A receiver, a Kassa with an endpoint pointing at it, and `count` pending invoices.
pub struct Rig {
    pub receiver: Receiver,
    pub server: InProcess,
    /// The seeded invoices' ids.
    pub ids: Vec<i64>,
}

impl Rig {
    pub async fn start(ctx: &Ctx, count: usize) -> anyhow::Result<Rig> {
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
        Ok(Rig {
            receiver,
            server,
            ids,
        })
    }
}

/// Pays invoice `id` (one status change and its event, one transaction); when it committed
/// (µs), `None` if it did not change.
pub async fn pay(store: &Store, id: i64) -> Result<Option<i64>, StoreError> {
    let changed = store
        .invoices()
        .apply_status(id, InvoiceStatus::Paid, Some("Processed"), now_ms(), None)
        .await?;
    Ok(changed.map(|_| now_us()))
}

/// The first and the last commit time of `committed` (by invoice id, µs).
pub fn commit_span(committed: &HashMap<i64, i64>) -> anyhow::Result<(i64, i64)> {
    let first = committed.values().copied().min();
    let last = committed.values().copied().max();
    first.zip(last).context("no status change committed")
}

/// Records the figures of what arrived: `delay.p50`, `delay.p99`, `delay.max` (ms),
/// `duplicates`, `missing`.
pub fn record_found(ctx: &mut Ctx, found: &Found) {
    ctx.figure("delay.p50", found.delay_ms(0.5), "ms");
    ctx.figure("delay.p99", found.delay_ms(0.99), "ms");
    ctx.figure("delay.max", found.delay_ms(1.0), "ms");
    ctx.figure("duplicates", found.duplicates as f64, "deliveries");
    ctx.figure("missing", found.missing as f64, "invoices");
}

/// Notes deliveries that had not arrived `wait` after the last change.
pub fn note_missing(ctx: &mut Ctx, found: &Found, changed: usize, wait: Duration) {
    ctx.report.note(format!(
        "{} on {}: {} of {changed} deliveries had not arrived {} s after the last change",
        ctx.scenario,
        ctx.database.name(),
        found.missing,
        wait.as_secs()
    ));
}

/// What arrived, measured against when each change committed.
pub struct Found {
    /// Requests with a `webhook-id` not seen before.
    pub deliveries: usize,
    pub duplicates: usize,
    /// Changed invoices with no delivery.
    pub missing: usize,
    /// Unique deliveries a second from the first arrival to the last.
    pub rate: f64,
    pub last_arrival: Option<i64>,
    /// Commit → first arrival of each invoice, µs, sorted.
    pub delays_us: Vec<i64>,
}

impl Found {
    pub fn of(arrivals: &[Arrival], committed: &HashMap<i64, i64>) -> Found {
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

    pub fn delay_ms(&self, quantile: f64) -> f64 {
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

/// One request that reached the receiver.
#[derive(Debug, Clone)]
pub struct Arrival {
    at_us: i64,
    webhook_id: Option<String>,
    invoice_id: Option<i64>,
}

/// The local webhook receiver: answers 200 to everything and records what came.
pub struct Receiver {
    pub addr: std::net::SocketAddr,
    arrivals: Arc<Mutex<Vec<Arrival>>>,
    /// Distinct invoice ids seen so far.
    invoices: Arc<Mutex<HashSet<i64>>>,
    /// The accepting task; its connections end with it.
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start(expected: usize) -> anyhow::Result<Receiver> {
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

    pub fn invoices_seen(&self) -> usize {
        self.invoices.lock().map_or(0, |seen| seen.len())
    }

    /// Stops receiving; what arrived.
    pub fn stop(self) -> Vec<Arrival> {
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
