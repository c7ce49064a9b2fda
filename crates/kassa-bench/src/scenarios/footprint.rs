//! Scenario 7, footprint: Kassa alone, as the release `kassa` binary in a child process (in
//! this process the load generator's memory would count too).
//!
//! - `binary_size`: the file `target/release/kassa` (built with line tables for backtraces);
//!   `binary_size_stripped` a stripped copy (when binutils' `strip` is installed).
//! - `first_start_to_ready`: spawn to the first 200 on `/api/v1/status` on an empty data dir
//!   (migrations and the master key are made then); `restart_to_ready` the same on the data
//!   left by the run.
//! - `idle_rss`: resident memory a moment after start, the demo cashier logged in.
//! - `create.*`, `peak_rss`: the create load of scenario 2 against the child, and the most
//!   memory the child ever held (VmHWM), read after it; `rss_after_create` what it still
//!   holds.
//! - `stop`: SIGTERM to exit.

use std::time::Duration;

use anyhow::Context as _;

use super::create::{create_load, create_window};
use super::{Ctx, Running, Scenario};
use crate::child::{create_api_key, find_kassa_binary, Child};
use crate::cpu;
use crate::load::{get_once, interleave};
use crate::report::NO_DATABASE;

pub const SCENARIO: Scenario = Scenario {
    name: "footprint",
    about: "the release kassa binary as a child process: size, start time, idle and peak RSS under create load",
    run: Some(start),
};

const MIB: f64 = 1024.0 * 1024.0;

fn start(ctx: &mut Ctx) -> Running<'_> {
    Box::pin(run(ctx))
}

async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    let Some(binary) = find_kassa_binary() else {
        ctx.report.note(
            "footprint skipped: no kassa binary beside this one; build it with \
             `cargo build --release -p kassa` and run again"
                .into(),
        );
        return Ok(());
    };
    let meta = std::fs::metadata(&binary).with_context(|| binary.display().to_string())?;
    ctx.report.figure(
        ctx.scenario,
        NO_DATABASE,
        "binary_size",
        meta.len() as f64 / MIB,
        "MiB",
    );
    if let Some(stripped) = stripped_size(&binary).await {
        ctx.report.figure(
            ctx.scenario,
            NO_DATABASE,
            "binary_size_stripped",
            stripped as f64 / MIB,
            "MiB",
        );
    }
    if let (Ok(built), Ok(own)) = (
        meta.modified(),
        std::env::current_exe().and_then(|e| e.metadata()?.modified()),
    ) {
        if built < own {
            ctx.report.note(format!(
                "{} is older than this benchmark: if Kassa changed since, rebuild it with \
                 `cargo build --release -p kassa`",
                binary.display()
            ));
        }
    }

    let storage = ctx.storage()?;
    let (data_dir, url) = (storage.data_dir(), storage.database_url());
    let child = Child::start(&binary, data_dir, url).await?;
    ctx.figure(
        "first_start_to_ready",
        child.start_to_ready.as_secs_f64() * 1000.0,
        "ms",
    );
    let key = create_api_key(&binary, data_dir, url).await?;
    wait_for_healthy_cashier(&child).await?;
    tokio::time::sleep(if ctx.quick {
        Duration::from_millis(200)
    } else {
        Duration::from_secs(2)
    })
    .await;
    let idle = child.memory().context("reading the child's memory")?;
    ctx.figure("idle_rss", idle.rss_kib as f64 / 1024.0, "MiB");

    let mut load = create_load(child.addr, &key, cpu::Scope::Child(child.pid), None)?;
    if ctx.quick {
        // The release binary keeps the cashier's call budget (15/s): 64 creates in flight
        // would take seconds to drain.
        load.connections = 4;
    }
    let window = create_window(ctx);
    let summaries = interleave(&[load], 1, window).await;
    let loaded = child.memory().context("reading the child's memory")?;
    if let Some(create) = summaries.first() {
        ctx.record("create", create);
    }
    ctx.figure("peak_rss", loaded.peak_kib as f64 / 1024.0, "MiB");
    ctx.figure("rss_after_create", loaded.rss_kib as f64 / 1024.0, "MiB");
    let stopped = child.stop().await?;
    ctx.figure("stop", stopped.as_secs_f64() * 1000.0, "ms");

    let again = Child::start(&binary, data_dir, url).await?;
    ctx.figure(
        "restart_to_ready",
        again.start_to_ready.as_secs_f64() * 1000.0,
        "ms",
    );
    again.stop().await?;
    drop(storage);
    Ok(())
}

/// The size of a stripped copy of `binary` (`strip` from binutils), if `strip` is there.
async fn stripped_size(binary: &std::path::Path) -> Option<u64> {
    let dir = tempfile::tempdir().ok()?;
    let copy = dir.path().join("kassa");
    let status = tokio::process::Command::new("strip")
        .arg("-o")
        .arg(&copy)
        .arg(binary)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await
        .ok()?;
    if !status.success() {
        return None;
    }
    Some(std::fs::metadata(&copy).ok()?.len())
}

/// Waits until `/status` counts one healthy cashier session (the demo cashier's login
/// follows the listener by a moment).
async fn wait_for_healthy_cashier(child: &Child) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + crate::child::START_TIMEOUT;
    loop {
        if let Ok((_, body)) = get_once(child.addr, "/api/v1/status", None).await {
            let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            if json["kaspi"]["sessions"]["healthy"].as_u64() >= Some(1) {
                return Ok(());
            }
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!(
                "the demo cashier was not logged in within {} s; kassa serve said:\n{}",
                crate::child::START_TIMEOUT.as_secs(),
                child.tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
