//! Scenario `steady`: status changes at a steady 500 a second for 20 s, each delivered to a
//! local receiver; the delay from commit to receipt is what a merchant feels.
//!
//! A receiver, Kassa and one endpoint as `webhook_rig` sets them up, 10,000 pending invoices
//! seeded in bulk; then one invoice is paid every 2 ms by the wall clock (open loop: a change
//! is started on its tick whether or not the ones before it have committed, and ticks missed
//! are caught up at once), each `Store::apply_status` on the server's runtime committing with
//! its outbox event. `--quick` runs it for 2 s.
//!
//! Figures: changes made and the rate achieved (first commit to last), how late a change
//! committed after its tick (`commit.p50`, `commit.p99`: the database's share of the delay),
//! the delay from commit to arrival (p50, p99, max, matched by invoice id), duplicates (a
//! `webhook-id` seen twice), and deliveries still missing when the bounded wait ends.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::time::MissedTickBehavior;

use super::webhook_rig::{self, now_us, Found, Rig};
use super::{Ctx, Running, Scenario};
use crate::target::InProcess;

pub const SCENARIO: Scenario = Scenario {
    name: "steady",
    about: "status changes at a steady 500/s for 20 s (open loop), delivered to a receiver on 127.0.0.1: delay from commit to arrival p50/p99/max, duplicates, missing",
    run: Some(start),
};

/// Changes a second.
const RATE: u32 = 500;
const SECONDS: u32 = 20;
const SECONDS_QUICK: u32 = 2;
/// How long after the last change the deliveries are waited for.
const WAIT: Duration = Duration::from_secs(30);
const WAIT_QUICK: Duration = Duration::from_secs(10);

const GOAL_P99_MS: f64 = 50.0;

fn start(ctx: &mut Ctx) -> Running<'_> {
    Box::pin(run(ctx))
}

async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    let seconds = if ctx.quick { SECONDS_QUICK } else { SECONDS };
    let wait = if ctx.quick { WAIT_QUICK } else { WAIT };
    let count = (RATE * seconds) as usize;
    let Rig {
        receiver,
        server,
        ids,
    } = Rig::start(ctx, count).await?;

    eprintln!("    paying {RATE} a second for {seconds} s");
    let paced = pay_paced(&server, ids).await?;
    let changed = paced.committed.len();
    let (first_commit, last_commit) = webhook_rig::commit_span(&paced.committed)?;

    let deadline = Instant::now() + wait;
    while receiver.invoices_seen() < changed && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let waited_out = receiver.invoices_seen() < changed;
    server.stop().await?;
    let arrivals = receiver.stop();

    let found = Found::of(&arrivals, &paced.committed);
    ctx.figure("changes", changed as f64, "invoices");
    ctx.figure(
        "changes.rate",
        changed as f64 / ((last_commit - first_commit) as f64 / 1e6).max(1e-6),
        "changes/s",
    );
    let mut lags = paced.lags_us;
    lags.sort_unstable();
    let quantile = |q: f64| {
        let i = ((lags.len().saturating_sub(1)) as f64 * q).round() as usize;
        lags.get(i).map_or(f64::NAN, |&us| us as f64 / 1000.0)
    };
    ctx.figure("commit.p50", quantile(0.5), "ms");
    ctx.figure("commit.p99", quantile(0.99), "ms");
    webhook_rig::record_found(ctx, &found);
    if waited_out {
        webhook_rig::note_missing(ctx, &found, changed, wait);
    }
    let p99 = found.delay_ms(0.99);
    ctx.goal(
        format!("steady {RATE}/s: delay p99 ≤ {GOAL_P99_MS:.0} ms"),
        format!("p99 {p99:.1} ms"),
        p99 <= GOAL_P99_MS && found.missing == 0 && found.duplicates == 0,
    );
    Ok(())
}

/// What the paced changes did.
struct Paced {
    /// When each change committed (µs), by invoice id, for those that changed.
    committed: HashMap<i64, i64>,
    /// From each change's tick to its commit, µs.
    lags_us: Vec<i64>,
}

/// Pays the invoices of `ids` one every `1/RATE` s by the wall clock on the server's
/// runtime, each change in its own task (open loop).
async fn pay_paced(server: &InProcess, ids: Vec<i64>) -> anyhow::Result<Paced> {
    let store = server.state().store.clone();
    server
        .on_server(async move {
            let mut ticks = tokio::time::interval(Duration::from_secs(1) / RATE);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
            // Unix µs of the first tick; change `n` is due `n / RATE` s after it.
            let start_us = now_us();
            let mut changes = tokio::task::JoinSet::new();
            for (n, id) in ids.into_iter().enumerate() {
                ticks.tick().await;
                let store = store.clone();
                let due = start_us + n as i64 * 1_000_000 / i64::from(RATE);
                changes.spawn(async move {
                    let at = webhook_rig::pay(&store, id).await?;
                    Ok::<_, kassa::store::StoreError>(at.map(|at| (id, at, at - due)))
                });
            }
            let mut paced = Paced {
                committed: HashMap::new(),
                lags_us: Vec::new(),
            };
            while let Some(done) = changes.join_next().await {
                if let Some((id, at, lag)) = done.context("a paying task failed")?? {
                    paced.committed.insert(id, at);
                    paced.lags_us.push(lag);
                }
            }
            Ok::<_, anyhow::Error>(paced)
        })
        .await?
}
