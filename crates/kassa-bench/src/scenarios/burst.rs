//! Scenario burst: 300 invoice creates fired at once for one organization, under the default
//! per-cashier Kaspi call budget (not lifted: the budget is what is measured), once with the
//! organization's one cashier and once with three. The sandbox Kaspi behaves as Kaspi does
//! (50 ms a call, each cashier throttled above 20 calls a second); Kassa runs with production
//! settings, so its history sync and polls take their share of the cashiers' budgets too.
//!
//! A create answers only once Kaspi's invoice exists (the gateway stores the invoice, asks
//! Kaspi, records the operation id, then answers: each answer is checked to carry
//! `kaspi_invoice_id`), so a create's answer time is the time from the request to the Kaspi
//! invoice. Figures: creates a second (first request to last answer) and that time's p50 and
//! p99, for each cashier count, and the ratio of the two rates.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use kassa::gateway::{connect_terminal, SandboxPrompt, DEMO_CASHIER_PHONE};

use super::{Ctx, Running, Scenario};
use crate::load::send_once_within;

pub const SCENARIO: Scenario = Scenario {
    name: "burst",
    about: "300 invoice creates at once for one organization under the default Kaspi budget, with 1 and with 3 cashiers: creates/s, p50/p99 to the Kaspi invoice",
    run: Some(start),
};

const CREATES: usize = 300;
const CREATES_QUICK: usize = 60;
/// The cashiers added for the second round (in the demo cashier's Kaspi organization).
const MORE_CASHIERS: [&str; 2] = ["7000000002", "7000000003"];
/// How long one create may wait for its turn.
const ANSWER_WITHIN: Duration = Duration::from_secs(120);
/// The issue's goal: three cashiers give at least this many times the rate of one.
const GOAL_RATIO: f64 = 2.5;

fn start(ctx: &mut Ctx) -> Running<'_> {
    Box::pin(run(ctx))
}

/// What one burst gave.
struct Burst {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    failed: usize,
}

async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    let creates = if ctx.quick { CREATES_QUICK } else { CREATES };
    let one = burst(ctx, 1, creates).await?;
    let three = burst(ctx, 3, creates).await?;
    for (label, b) in [("one_cashier", &one), ("three_cashiers", &three)] {
        ctx.figure(&format!("{label}.rate"), b.rate, "creates/s");
        ctx.figure(&format!("{label}.p50"), b.p50_ms, "ms");
        ctx.figure(&format!("{label}.p99"), b.p99_ms, "ms");
        ctx.figure(&format!("{label}.failed"), b.failed as f64, "creates");
    }
    let ratio = if one.rate > 0.0 {
        three.rate / one.rate
    } else {
        0.0
    };
    ctx.figure("three_vs_one", ratio, "×");
    ctx.goal(
        format!("3 cashiers ≥ {GOAL_RATIO}× the creates/s of 1"),
        format!(
            "{ratio:.2}× ({:.1} vs {:.1} creates/s)",
            three.rate, one.rate
        ),
        ratio >= GOAL_RATIO && one.failed == 0 && three.failed == 0,
    );
    Ok(())
}

/// A fresh server whose demo organization has `cashiers` cashiers, and `creates` creates fired
/// at it at once.
async fn burst(ctx: &mut Ctx, cashiers: usize, creates: usize) -> anyhow::Result<Burst> {
    let server = ctx.start_in_process().await?;
    let state = server.state().clone();
    let sim = state
        .sandbox
        .clone()
        .ok_or_else(|| anyhow::anyhow!("burst needs the sandbox Kaspi"))?;
    let org_id = server.org_id;
    let added = MORE_CASHIERS[..cashiers.saturating_sub(1)].to_vec();
    let login_state = state.clone();
    let login_sim = sim.clone();
    server
        .on_server(async move {
            for phone in added {
                login_sim
                    .add_cashier_to(phone, DEMO_CASHIER_PHONE)
                    .map_err(|e| anyhow::anyhow!("adding cashier {phone}: {e}"))?;
                let phone = kaspi::phone::normalize(phone)?;
                let mut prompt = SandboxPrompt {
                    sim: login_sim.clone(),
                    phone: phone.as_str().into(),
                };
                connect_terminal(
                    &login_state.store,
                    &login_state.master_key,
                    login_state.gateway.terminals().client_config().clone(),
                    org_id,
                    &phone,
                    &mut prompt,
                )
                .await?;
            }
            Ok::<_, anyhow::Error>(())
        })
        .await??;
    // Kaspi as the issue describes it, from now on.
    super::kaspi_as_kaspi(&sim)?;
    let before = sim.operations().len();

    eprintln!("    {creates} creates at once with {cashiers} cashier(s)");
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..creates {
        let addr = server.addr;
        let key = server.api_key.clone();
        tasks.spawn(async move {
            let body = format!(r#"{{"amount": 100, "phone_number": "8702{n:07}"}}"#);
            let request = Request::builder()
                .method(Method::POST)
                .uri("/api/v1/invoices")
                .header("x-api-key", key)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(body)))?;
            let sent = Instant::now();
            let (status, answer) = send_once_within(addr, request, ANSWER_WITHIN).await?;
            let took = sent.elapsed();
            let json: serde_json::Value = serde_json::from_slice(&answer).unwrap_or_default();
            let at_kaspi = json["kaspi_invoice_id"].as_str().is_some();
            Ok::<_, anyhow::Error>((status == StatusCode::CREATED && at_kaspi, took))
        });
    }
    let mut took = Vec::with_capacity(creates);
    let mut failed = 0;
    let mut last = started;
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok((true, t))) => {
                took.push(t);
                last = Instant::now();
            }
            Ok(Ok((false, _))) | Ok(Err(_)) | Err(_) => failed += 1,
        }
    }
    let elapsed = last.duration_since(started).as_secs_f64();
    sim.clear_faults();
    sim.set_cashier_rate_limit(None);

    // Which cashier made the invoices, at Kaspi.
    let mut per_cashier = std::collections::BTreeMap::<String, usize>::new();
    for op in sim.operations().into_iter().skip(before) {
        *per_cashier
            .entry(op.cashier_phone.unwrap_or_default())
            .or_default() += 1;
    }
    server.stop().await?;

    took.sort_unstable();
    let at = |q: f64| {
        let i = ((took.len() as f64 * q).ceil() as usize).clamp(1, took.len().max(1)) - 1;
        took.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let result = Burst {
        rate: if elapsed > 0.0 {
            took.len() as f64 / elapsed
        } else {
            0.0
        },
        p50_ms: at(0.50),
        p99_ms: at(0.99),
        failed,
    };
    ctx.report.note(format!(
        "burst on {} with {cashiers} cashier(s): {} of {creates} creates answered with their \
         Kaspi invoice in {elapsed:.1} s; Kaspi operations by cashier: {per_cashier:?}",
        ctx.database.name(),
        took.len(),
    ));
    eprintln!(
        "    {cashiers} cashier(s): {:.1} creates/s, p50 {:.0} ms, p99 {:.0} ms, {failed} failed",
        result.rate, result.p50_ms, result.p99_ms
    );
    Ok(result)
}
