//! Scenario 3, read: `GET /api/v1/invoices/{id}` spread over invoices made beforehand, and
//! the first page of `GET /api/v1/invoices?per_page=20` (which counts `total` over all of
//! them), each compared with the floor measured on the same server, interleaved with it.
//!
//! The invoices are seeded through the store, not the API (the API would send each to the
//! sandbox Kaspi and take as long as scenario 2): `insert_invoice` then `mark_invoice_sent`,
//! as a create records them, 64 at a time. Their Kaspi operation ids are made up, so their
//! first status poll is put a day away: the poller stays idle, as it would with invoices that
//! are not due.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use http::{StatusCode, Uri};
use kassa::store::InvoiceSent;

use super::{
    bench_invoice, get, get_each, key_header, status_load, Ctx, Running, Scenario, CONNECTIONS,
};
use crate::cpu;
use crate::load::{get_once, interleave, Load};
use crate::target::InProcess;

pub const SCENARIO: Scenario = Scenario {
    name: "read",
    about: "GET /api/v1/invoices/{id} and the first page of GET /api/v1/invoices (20, with total) over 10,000 invoices, vs the floor",
    run: Some(start),
};

/// Invoices seeded before the reads.
const SEED: usize = 10_000;
const SEED_QUICK: usize = 200;
/// Seeding tasks at once.
const SEED_CONCURRENCY: usize = 64;

const GOAL_BY_ID_SHARE: f64 = 50.0;
const GOAL_LIST_SHARE: f64 = 20.0;

fn start(ctx: &mut Ctx) -> Running<'_> {
    Box::pin(run(ctx))
}

async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    let server = ctx.start_in_process().await?;
    let count = if ctx.quick { SEED_QUICK } else { SEED };
    eprintln!("    seeding {count} invoices through the store");
    let seeded_at = std::time::Instant::now();
    let ids = seed(&server, count).await?;
    let seconds = seeded_at.elapsed().as_secs_f64();
    ctx.figure("seed.invoices", ids.len() as f64, "invoices");
    ctx.figure(
        "seed.rate",
        ids.len() as f64 / seconds.max(1e-9),
        "invoices/s",
    );

    let key = key_header(&server.api_key)?;
    check_list_total(&server, count).await?;
    let uris = ids
        .iter()
        .map(|id| format!("/api/v1/invoices/{id}").parse::<Uri>())
        .collect::<Result<Vec<_>, _>>()?;
    let loads = [
        status_load(server.addr, cpu::Scope::InProcess),
        Load {
            label: "by_id",
            what: "GET /api/v1/invoices/{id}".into(),
            addr: server.addr,
            connections: CONNECTIONS,
            expect: StatusCode::OK,
            make: get_each(uris, Some(key.clone())),
            cpu_scope: cpu::Scope::InProcess,
            counter: None,
        },
        Load {
            label: "list",
            what: "GET /api/v1/invoices?per_page=20".into(),
            addr: server.addr,
            connections: CONNECTIONS,
            expect: StatusCode::OK,
            make: get(Uri::from_static("/api/v1/invoices?per_page=20"), Some(key)),
            cpu_scope: cpu::Scope::InProcess,
            counter: None,
        },
    ];
    let summaries = interleave(&loads, ctx.rounds(), ctx.window()).await;
    server.stop().await?;
    let [floor, by_id, list] = &summaries[..] else {
        anyhow::bail!("one summary per load");
    };
    ctx.record("status", floor);
    ctx.record("by_id", by_id);
    ctx.record("list", list);
    let by_id_share = ctx.ratio_to_floor("by_id", by_id, floor);
    let list_share = ctx.ratio_to_floor("list", list, floor);
    ctx.goal(
        format!("read by id ≥ {GOAL_BY_ID_SHARE:.0}% of floor"),
        format!("{by_id_share:.0}% of floor"),
        by_id_share >= GOAL_BY_ID_SHARE && by_id.errors() == 0,
    );
    ctx.goal(
        format!("list page 1 ≥ {GOAL_LIST_SHARE:.0}% of floor"),
        format!("{list_share:.0}% of floor"),
        list_share >= GOAL_LIST_SHARE && list.errors() == 0,
    );
    Ok(())
}

/// Makes `count` sent invoices of the demo organization; their ids.
async fn seed(server: &InProcess, count: usize) -> anyhow::Result<Vec<i64>> {
    let store = server.state().store.clone();
    let org_id = server.org_id;
    server
        .on_server(async move {
            let next = Arc::new(AtomicUsize::new(0));
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..SEED_CONCURRENCY {
                let (store, next) = (store.clone(), next.clone());
                tasks.spawn(async move {
                    let mut ids = Vec::new();
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        if n >= count {
                            return Ok::<_, anyhow::Error>(ids);
                        }
                        let now = now_ms();
                        let day = 24 * 3600 * 1000;
                        let invoice = store
                            .invoices()
                            .insert_invoice(bench_invoice(org_id, n, now, day))
                            .await?;
                        store
                            .invoices()
                            .mark_invoice_sent(
                                invoice.id,
                                InvoiceSent {
                                    kaspi_operation_id: kassa::domain::KaspiOperationId::new(
                                        900_000_000_000 + n as i64,
                                    ),
                                    kaspi_status: None,
                                    client_name: Some("Bench B.".into()),
                                    at_ms: now,
                                    poll_at_ms: now + day,
                                    qr_token: None,
                                    ext_tran_id: None,
                                    expires_at: None,
                                },
                            )
                            .await?;
                        ids.push(invoice.id);
                    }
                });
            }
            let mut ids = Vec::with_capacity(count);
            while let Some(done) = tasks.join_next().await {
                ids.extend(done.context("a seeding task failed")??);
            }
            Ok::<_, anyhow::Error>(ids)
        })
        .await?
}

/// One list request before the load: it must answer 200 with `meta.total` = `count`.
async fn check_list_total(server: &InProcess, count: usize) -> anyhow::Result<()> {
    let (status, body) = get_once(
        server.addr,
        "/api/v1/invoices?per_page=20",
        Some(&server.api_key),
    )
    .await?;
    let json: serde_json::Value = serde_json::from_slice(&body)
        .with_context(|| format!("the list answered {status}, not JSON"))?;
    let total = json["meta"]["total"].as_u64();
    anyhow::ensure!(
        status == StatusCode::OK && total == Some(count as u64),
        "the list answered {status} with total {total:?}, not {count}: {json}"
    );
    Ok(())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
