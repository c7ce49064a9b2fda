//! Scenario 1, the floor: `GET /api/v1/status` with 64 connections, the ceiling the other
//! figures are compared with. `/status` reads the terminals table once per request, so a
//! second floor is measured too: an unknown path answered 404 by the router's fallback,
//! with no database at all. The two are interleaved on one server.

use http::{StatusCode, Uri};

use super::{get, status_load, Ctx, Running, Scenario, CONNECTIONS};
use crate::cpu;
use crate::load::{interleave, Load};

pub const SCENARIO: Scenario = Scenario {
    name: "floor",
    about: "GET /api/v1/status (one terminals read) and an unknown path (404, no database), 64 connections",
    run: Some(start),
};

fn start(ctx: &mut Ctx) -> Running<'_> {
    Box::pin(run(ctx))
}

async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    let server = ctx.start_in_process().await?;
    let loads = [
        status_load(server.addr, cpu::Scope::InProcess),
        Load {
            label: "not_found",
            what: "GET /no-such-path (404)".into(),
            addr: server.addr,
            connections: CONNECTIONS,
            expect: StatusCode::NOT_FOUND,
            make: get(Uri::from_static("/no-such-path"), None),
            cpu_scope: cpu::Scope::InProcess,
            counter: None,
        },
    ];
    let summaries = interleave(&loads, ctx.rounds(), ctx.window()).await;
    server.stop().await?;
    let [status, not_found] = &summaries[..] else {
        anyhow::bail!("one summary per load");
    };
    ctx.record("status", status);
    ctx.record("not_found", not_found);
    let share = if not_found.rate() > 0.0 {
        100.0 * status.rate() / not_found.rate()
    } else {
        0.0
    };
    ctx.figure("status.of_not_found", share, "%");
    Ok(())
}
