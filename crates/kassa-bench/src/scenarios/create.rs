//! Scenario 2, create: `POST /api/v1/invoices` with a new `Idempotency-Key` each, 64
//! connections, on a gateway whose background workers run as in production (each created
//! invoice is polled at Kaspi 2 s later, then on the backoff schedule, so the poller works
//! through the invoices made in the first seconds while creates go on). Every create goes to
//! the sandbox Kaspi over HTTP, signed, as it would go to Kaspi.
//!
//! The per-cashier Kaspi call budget (`GatewaySettings::kaspi_calls_per_sec`, 15 by default,
//! under Kaspi's throttle of about 20) is lifted here: with it, one organization's creates are
//! capped near 15/s whatever Kassa can do, and this scenario measures what Kassa can do. The
//! sandbox Kaspi does not throttle. Every other setting is production's. The footprint
//! scenario runs the release binary with every default, budget included.
//!
//! The floor is measured on the same server first, before any invoice exists.

use std::sync::Arc;
use std::time::Duration;

use http::{StatusCode, Uri};
use kassa::gateway::GatewaySettings;

use super::{key_header, post_json, status_load, Ctx, Running, Scenario, CONNECTIONS};
use crate::cpu;
use crate::load::{interleave, Counter, Load, Window};

pub const SCENARIO: Scenario = Scenario {
    name: "create",
    about: "POST /api/v1/invoices with an Idempotency-Key, 64 connections, workers running, per-cashier Kaspi call budget lifted",
    run: Some(start),
};

/// What each create sends (a payer who neither pays nor declines: the invoice stays open
/// and keeps being polled).
pub const CREATE_BODY: &[u8] = br#"{"amount": 100, "phone_number": "87001234567"}"#;

/// The issue's goals.
const GOAL_SQLITE_RATE: f64 = 3_000.0;
const GOAL_POSTGRES_RATE: f64 = 2_000.0;
const GOAL_P99_MS: f64 = 30.0;

fn start(ctx: &mut Ctx) -> Running<'_> {
    Box::pin(run(ctx))
}

/// The create load against a server at `addr`; `kaspi_calls` reads how many calls the sandbox
/// Kaspi has answered, when it is in reach.
pub fn create_load(
    addr: std::net::SocketAddr,
    api_key: &str,
    cpu_scope: cpu::Scope,
    kaspi_calls: Option<Counter>,
) -> anyhow::Result<Load> {
    Ok(Load {
        label: "create",
        what: "POST /api/v1/invoices".into(),
        addr,
        connections: CONNECTIONS,
        expect: StatusCode::CREATED,
        make: post_json(
            Uri::from_static("/api/v1/invoices"),
            key_header(api_key)?,
            CREATE_BODY,
        ),
        cpu_scope,
        counter: kaspi_calls,
    })
}

/// Create runs longer than the reads: 2 s of warm-up, 10 s measured (the background work
/// grows during it).
pub fn create_window(ctx: &Ctx) -> Window {
    if ctx.quick {
        ctx.window()
    } else {
        Window {
            warmup: Duration::from_secs(2),
            measure: Duration::from_secs(10),
        }
    }
}

/// Kaspi calls a second per cashier with the budget lifted: far above anything reachable.
const LIFTED_BUDGET: u32 = 1_000_000;

async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    let defaults = GatewaySettings::default();
    ctx.report.note(format!(
        "create on {}: measured with the per-cashier Kaspi call budget lifted (default {} \
         calls/s, which caps one organization near that many creates a second; the sandbox \
         does not throttle)",
        ctx.database.name(),
        defaults.kaspi_calls_per_sec
    ));
    let server = ctx
        .start_in_process_with(GatewaySettings {
            kaspi_calls_per_sec: LIFTED_BUDGET,
            ..defaults
        })
        .await?;
    let floor = status_load(server.addr, cpu::Scope::InProcess);
    let floor_window = Window {
        measure: ctx.window().measure * ctx.rounds(),
        ..ctx.window()
    };
    let floor = interleave(&[floor], 1, floor_window).await;
    let kaspi_calls = server.state().sandbox.clone().map(|sim| Counter {
        name: "kaspi_calls",
        read: Arc::new(move || sim.call_count()),
    });
    let create = create_load(
        server.addr,
        &server.api_key,
        cpu::Scope::InProcess,
        kaspi_calls,
    )?;
    let create = interleave(&[create], 1, create_window(ctx)).await;
    server.stop().await?;
    let (Some(floor), Some(create)) = (floor.first(), create.first()) else {
        anyhow::bail!("one summary per load");
    };
    ctx.record("status", floor);
    ctx.record("create", create);
    ctx.ratio_to_floor("create", create, floor);
    let goal_rate = match ctx.database {
        crate::target::Database::Sqlite => GOAL_SQLITE_RATE,
        crate::target::Database::Postgres => GOAL_POSTGRES_RATE,
    };
    let rate = create.rate();
    let p99 = create.percentile_ms(0.99);
    let clean = create.errors() == 0;
    ctx.goal(
        format!("create ≥ {goal_rate:.0} req/s"),
        format!("{rate:.0} req/s"),
        rate >= goal_rate && clean,
    );
    ctx.goal(
        format!("create p99 ≤ {GOAL_P99_MS:.0} ms"),
        format!("{p99:.1} ms"),
        p99 <= GOAL_P99_MS && clean,
    );
    Ok(())
}
