//! Scenario 6, detection at scale: 10,000 open invoices whose payers pay at random moments
//! over one minute, with the sandbox Kaspi adding 50 ms to every call and throttling each
//! cashier above 20 calls a second (HTTP 429), as Kaspi does. Reports the delay from "payer
//! paid" to "Kassa knows" (p50, p99, max), how many were never seen, and the Kaspi calls spent.
//!
//! The invoices are made on both sides without client calls (creating 10,000 through the
//! throttled cashier would itself take over eight minutes and is not what is measured): at the
//! simulator through its control side, in Kassa's store as a create records them. Kassa runs
//! with production settings: its history sync settles open invoices in bulk; polling one
//! invoice is the slow fallback.

use std::time::{Duration, Instant};

use kaspi::Amount;
use kassa::store::{InvoiceFilter, InvoiceKind, InvoiceSent, InvoiceStatus, NewInvoice};
use rand::Rng as _;

use super::{Ctx, Running, Scenario};

pub const SCENARIO: Scenario = Scenario {
    name: "detection",
    about: "10,000 open invoices paid at random moments over a minute, Kaspi at +50 ms and 20 calls/s: delay to detection and calls spent",
    run: Some(start),
};

const INVOICES: usize = 10_000;
const INVOICES_QUICK: usize = 200;
const SPREAD: Duration = Duration::from_secs(60);
const SPREAD_QUICK: Duration = Duration::from_secs(3);
/// How long after the last payment Kassa is given to see it.
const GRACE: Duration = Duration::from_secs(30);
const GOAL_P99_MS: f64 = 5_000.0;
/// Tasks making the invoices at once.
const SEED_TASKS: usize = 16;

fn start(ctx: &mut Ctx) -> Running<'_> {
    Box::pin(run(ctx))
}

fn now_ms() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    let server = ctx.start_in_process().await?;
    let count = if ctx.quick { INVOICES_QUICK } else { INVOICES };
    let spread = if ctx.quick { SPREAD_QUICK } else { SPREAD };
    let state = server.state().clone();
    let sim = state
        .sandbox
        .clone()
        .ok_or_else(|| anyhow::anyhow!("detection needs the sandbox Kaspi"))?;
    let org_id = server.org_id;

    eprintln!("    making {count} open invoices at the simulator and in the store");
    let store = state.store.clone();
    let sim_for_seed = sim.clone();
    let invoices: Vec<(i64, u64)> = server
        .on_server(async move {
            // Made by several tasks at once: the writes of a create group-commit on SQLite
            // and spread over the pool on PostgreSQL, as concurrent creates would.
            let mut tasks = tokio::task::JoinSet::new();
            for task in 0..SEED_TASKS {
                let store = store.clone();
                let sim_for_seed = sim_for_seed.clone();
                tasks.spawn(async move {
                    let mut made = Vec::with_capacity(count / SEED_TASKS + 1);
                    for n in (task..count).step_by(SEED_TASKS) {
                        let amount = Amount::from_tiyn(100 * (1 + (n as i64 % 500)));
                        let op = sim_for_seed.create_remote_invoice(
                            kassa::gateway::DEMO_CASHIER_PHONE,
                            "87001234567",
                            amount,
                            "bench",
                        )?;
                        let now = now_ms();
                        let invoice = store
                            .invoices()
                            .insert_invoice(NewInvoice {
                                payment_id: uuid::Uuid::new_v4().to_string(),
                                org_id,
                                kind: InvoiceKind::Remote,
                                amount: amount.into(),
                                phone: kassa::domain::parse_phone("7001234567").ok(),
                                description: Some("bench".into()),
                                external_order_id: None,
                                is_sandbox: true,
                                created_at: now,
                                expires_at: Some(now + 24 * 3600 * 1000),
                                metadata: None,
                                kaspi_ref: None,
                                reconcile_at: None,
                                idempotency: None,
                            })
                            .await?;
                        let first_poll =
                            kassa::gateway::GatewaySettings::default().poll_schedule[0];
                        store
                            .invoices()
                            .mark_invoice_sent(
                                invoice.id,
                                InvoiceSent {
                                    kaspi_operation_id: kassa::domain::KaspiOperationId::from(op),
                                    kaspi_status: Some("RemotePaymentCreated".into()),
                                    client_name: None,
                                    at_ms: now,
                                    poll_at_ms: now + i64::try_from(first_poll.as_millis())?,
                                    qr_token: None,
                                    ext_tran_id: None,
                                    expires_at: None,
                                },
                            )
                            .await?;
                        made.push((invoice.id, op));
                    }
                    Ok::<_, anyhow::Error>(made)
                });
            }
            let mut made = Vec::with_capacity(count);
            while let Some(done) = tasks.join_next().await {
                made.extend(done??);
            }
            // The history sync is due now (an invoice is open).
            store
                .jobs()
                .pull_job_forward(
                    kassa::store::JobKind::SyncHistory,
                    org_id,
                    now_ms(),
                    now_ms(),
                )
                .await?;
            Ok::<_, anyhow::Error>(made)
        })
        .await??;

    // Kaspi as the issue describes it, from now on.
    super::kaspi_as_kaspi(&sim)?;
    let calls_before = sim.call_count();

    // Payers pay at random moments over the spread.
    let mut moments: Vec<(Duration, i64, u64)> = {
        let mut rng = rand::thread_rng();
        invoices
            .iter()
            .map(|&(id, op)| {
                let at = rng.gen_range(0..spread.as_millis().max(1) as u64);
                (Duration::from_millis(at), id, op)
            })
            .collect()
    };
    moments.sort_by_key(|m| m.0);
    eprintln!(
        "    {count} payers pay over {} s; Kaspi adds 50 ms and throttles above 20 calls/s",
        spread.as_secs()
    );
    let began = Instant::now();
    let mut paid_at: std::collections::HashMap<i64, i64> =
        std::collections::HashMap::with_capacity(count);
    for (at, id, op) in &moments {
        let due = began + *at;
        if due > Instant::now() {
            tokio::time::sleep_until(due.into()).await;
        }
        sim.pay(*op).map_err(|e| anyhow::anyhow!("pay {op}: {e}"))?;
        paid_at.insert(*id, now_ms());
    }

    // Wait until Kassa knows every payment (nothing pending), or the grace period ends.
    let deadline = Instant::now()
        + if ctx.quick {
            Duration::from_secs(10)
        } else {
            GRACE
        };
    let store = state.store.clone();
    loop {
        let store = store.clone();
        let pending = server
            .on_server(async move {
                let filter = InvoiceFilter {
                    statuses: vec![InvoiceStatus::Pending],
                    per_page: 1,
                    ..InvoiceFilter::default()
                };
                store
                    .invoices()
                    .list_invoices(org_id, &filter)
                    .await
                    .map(|(_, total)| total)
            })
            .await??;
        if pending == 0 || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let calls = sim.call_count() - calls_before;
    let elapsed = began.elapsed().as_secs_f64();
    // When Kassa recorded each payment.
    let store = state.store.clone();
    let known: Vec<(i64, Option<i64>)> = server
        .on_server(async move {
            let mut known = Vec::new();
            let mut page = 1;
            loop {
                let filter = InvoiceFilter {
                    statuses: vec![InvoiceStatus::Paid],
                    per_page: 100,
                    page,
                    ..InvoiceFilter::default()
                };
                let (rows, _) = store.invoices().list_invoices(org_id, &filter).await?;
                if rows.is_empty() {
                    break;
                }
                known.extend(rows.iter().map(|i| (i.id, i.paid_at)));
                page += 1;
            }
            Ok::<_, anyhow::Error>(known)
        })
        .await??;
    sim.clear_faults();
    sim.set_cashier_rate_limit(None);
    server.stop().await?;

    let mut delays: Vec<i64> = known
        .iter()
        .filter_map(|(id, known_at)| Some(known_at.as_ref()? - paid_at.get(id)?))
        .map(|d| d.max(0))
        .collect();
    delays.sort_unstable();
    let undetected = count - delays.len();
    let pick = |q: f64| -> f64 {
        if delays.is_empty() {
            return f64::NAN;
        }
        let i = ((delays.len() as f64 - 1.0) * q).round() as usize;
        delays[i.min(delays.len() - 1)] as f64
    };
    let (p50, p99, max) = (pick(0.5), pick(0.99), pick(1.0));
    ctx.figure("invoices", count as f64, "invoices");
    ctx.figure("delay.p50", p50, "ms");
    ctx.figure("delay.p99", p99, "ms");
    ctx.figure("delay.max", max, "ms");
    ctx.figure("undetected", undetected as f64, "invoices");
    ctx.figure("kaspi_calls", calls as f64, "calls");
    ctx.figure(
        "kaspi_calls_per_sec",
        calls as f64 / elapsed.max(1e-9),
        "calls/s",
    );
    ctx.figure(
        "kaspi_calls_per_invoice",
        calls as f64 / count as f64,
        "calls/invoice",
    );
    ctx.goal(
        format!("payer paid → Kassa knows p99 ≤ {GOAL_P99_MS:.0} ms within 20 calls/s"),
        format!("p99 {p99:.0} ms, {undetected} undetected, {calls} calls"),
        p99 <= GOAL_P99_MS && undetected == 0,
    );
    Ok(())
}
