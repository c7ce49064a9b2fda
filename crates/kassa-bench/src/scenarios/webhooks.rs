//! Scenario 5, webhooks: a burst of 20,000 status changes delivered to a local receiver.
//!
//! A receiver, Kassa and one endpoint as `webhook_rig` sets them up; 20,000 pending invoices
//! seeded in bulk, then all of them paid at once: `Store::apply_status` from 64 tasks on the
//! server's runtime, each change committing with its outbox event in one transaction.
//!
//! Figures: how fast the changes committed, when the dispatcher had turned every event into a
//! delivery (polled every 50 ms), deliveries per second from the first arrival to the last, the
//! delay from a committed change to its arrival (p50, p99, max, matched by invoice id),
//! duplicates (a `webhook-id` seen twice), and deliveries still missing when the bounded wait
//! ends.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use kassa::store::StoreError;

use super::webhook_rig::{self, now_us, Found, Rig};
use super::{Ctx, Running, Scenario};
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

const GOAL_RATE: f64 = 2_000.0;

fn start(ctx: &mut Ctx) -> Running<'_> {
    Box::pin(run(ctx))
}

async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    let count = if ctx.quick { CHANGES_QUICK } else { CHANGES };
    let wait = if ctx.quick { WAIT_QUICK } else { WAIT };
    let Rig {
        receiver,
        server,
        ids,
    } = Rig::start(ctx, count).await?;

    eprintln!("    paying all {count} at once from {CHANGE_TASKS} tasks");
    let committed = pay_all(&server, ids).await?;
    let changed = committed.len();
    let (first_commit, last_commit) = webhook_rig::commit_span(&committed)?;

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
    webhook_rig::record_found(ctx, &found);
    if waited_out {
        webhook_rig::note_missing(ctx, &found, changed, wait);
    }
    ctx.goal(
        format!("webhooks ≥ {GOAL_RATE:.0} deliveries/s"),
        format!("{:.0} deliveries/s", found.rate),
        found.rate >= GOAL_RATE && found.missing == 0,
    );
    Ok(())
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
                        if let Some(at) = webhook_rig::pay(&store, id).await? {
                            committed.push((id, at));
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
