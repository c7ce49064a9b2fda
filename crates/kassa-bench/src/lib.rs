//! `kassa-bench`: measures Kassa on this machine against the machine's own limits (issue 6).
//!
//! - [`scenarios`]: one module per scenario behind one interface; each starts what it needs
//!   on 127.0.0.1, measures for a bounded time, stops it, and fills a report.
//! - [`load`]: the closed-loop HTTP/1.1 load generator and its latency histograms.
//! - [`target`]: Kassa in this process on its own runtime, on a fresh SQLite file or a fresh
//!   PostgreSQL database ([`postgres_db`]).
//! - [`child`]: Kassa as the release binary in a child process (footprint).
//! - [`cpu`]: CPU split between Kassa, the load generator and the rest of the machine.
//! - [`report`]: figures, goals and notes; the table and the JSON.
//!
//! [`run`] is what the binary does; tests call it too, with `quick` set.

pub mod child;
pub mod cpu;
pub mod load;
pub mod postgres_db;
pub mod report;
pub mod scenarios;
pub mod target;

use anyhow::Context as _;

use report::Report;
use target::Database;

/// Load generator threads. One: on two cores the generator then takes at most one, and
/// Kassa's runtime (two threads) competes with it for the other as a real neighbour would.
pub const LOAD_WORKER_THREADS: usize = 1;

/// Cores used by other programs before a scenario above which a note says the machine was
/// not quiet.
const BUSY_NEIGHBOURS: f64 = 0.2;

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Scenario names; empty means every implemented one.
    pub scenarios: Vec<String>,
    pub databases: Vec<Database>,
    /// Every scenario very briefly, to check the harness works.
    pub quick: bool,
    /// Where PostgreSQL databases are made.
    pub postgres_admin_url: String,
}

/// What a run found, and whether any scenario failed outright.
pub struct Outcome {
    pub report: Report,
    pub failed: usize,
}

/// Runs the scenarios on a load-generator runtime of its own (threads named
/// [`cpu::LOAD_THREAD_NAME`]); blocks until done.
pub fn run(options: &Options) -> anyhow::Result<Outcome> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(LOAD_WORKER_THREADS)
        .thread_name(cpu::LOAD_THREAD_NAME)
        .enable_all()
        .build()
        .context("building the load generator's runtime")?;
    let outcome = runtime.block_on(run_scenarios(options));
    runtime.shutdown_timeout(std::time::Duration::from_secs(10));
    outcome
}

async fn run_scenarios(options: &Options) -> anyhow::Result<Outcome> {
    let selected: Vec<&scenarios::Scenario> = if options.scenarios.is_empty() {
        scenarios::ALL.iter().filter(|s| s.run.is_some()).collect()
    } else {
        options
            .scenarios
            .iter()
            .map(|name| {
                scenarios::find(name).with_context(|| format!("no scenario named {name:?}"))
            })
            .collect::<anyhow::Result<_>>()?
    };
    let mut report = Report::default();
    let mut databases = options.databases.clone();
    if databases.contains(&Database::Postgres) {
        if let Err(e) = postgres_db::check(&options.postgres_admin_url) {
            let shown = postgres_db::redact(&options.postgres_admin_url);
            anyhow::ensure!(
                databases.len() > 1,
                "PostgreSQL is not reachable at {shown} ({e}); set KASSA_BENCH_POSTGRES_URL or run with --database sqlite"
            );
            report.note(format!(
                "PostgreSQL not reachable at {shown} ({e}): PostgreSQL figures skipped"
            ));
            databases.retain(|d| *d != Database::Postgres);
        }
    }
    eprintln!("{}", machine_line());
    let mut failed = 0;
    let mut interrupted = false;
    for scenario in selected {
        let Some(run) = scenario.run else {
            report.note(format!("{}: not yet implemented", scenario.name));
            continue;
        };
        for &database in &databases {
            eprintln!(
                "{} on {}: {}",
                scenario.name,
                database.name(),
                scenario.about
            );
            if let Some(busy) = neighbours_busy(options.quick).await {
                if busy > BUSY_NEIGHBOURS {
                    report.note(format!(
                        "{} on {}: before it started, other programs kept {busy:.2} cores busy; \
                         its figures are lower than on a quiet machine",
                        scenario.name,
                        database.name()
                    ));
                }
            }
            let mut ctx = scenarios::Ctx::new(
                scenario.name,
                database,
                &options.postgres_admin_url,
                options.quick,
            );
            let started = std::time::Instant::now();
            // On Ctrl-C the scenario is dropped: its server stops, its child is killed, its
            // PostgreSQL database is dropped, then the run ends with what it has.
            let result = tokio::select! {
                result = run(&mut ctx) => result,
                _ = tokio::signal::ctrl_c() => {
                    interrupted = true;
                    Err(anyhow::anyhow!("interrupted (Ctrl-C)"))
                }
            };
            eprintln!(
                "  ({} on {}: {:.1} s)",
                scenario.name,
                database.name(),
                started.elapsed().as_secs_f64()
            );
            absorb(&mut report, ctx.report);
            if let Err(e) = result {
                failed += 1;
                report.note(format!(
                    "{} on {} failed: {e:#}",
                    scenario.name,
                    database.name()
                ));
            }
            if interrupted {
                return Ok(Outcome { report, failed });
            }
        }
    }
    Ok(Outcome { report, failed })
}

/// Cores kept busy by other programs while this process is idle, measured over a moment
/// (PostgreSQL idles between scenarios, so this is the neighbours' share).
async fn neighbours_busy(quick: bool) -> Option<f64> {
    let from = cpu::Sample::take(cpu::Scope::InProcess)?;
    let moment = if quick { 100 } else { 1_000 };
    tokio::time::sleep(std::time::Duration::from_millis(moment)).await;
    let to = cpu::Sample::take(cpu::Scope::InProcess)?;
    from.until(&to).cores().map(|c| c.other)
}

/// Adds a scenario's findings; a figure of no database (the binary's size) and a note said
/// before only once.
fn absorb(report: &mut Report, found: Report) {
    for figure in found.figures {
        let repeated = figure.database == report::NO_DATABASE
            && report
                .figures
                .iter()
                .any(|f| f.scenario == figure.scenario && f.metric == figure.metric);
        if !repeated {
            report.figures.push(figure);
        }
    }
    report.goals.extend(found.goals);
    for note in found.notes {
        if !report.notes.contains(&note) {
            report.notes.push(note);
        }
    }
}

/// The machine, and how the cores are shared, for the top of the output.
pub fn machine_line() -> String {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!(
        "Machine: {cores} cores ({model}). Everything on 127.0.0.1; the load generator \
         ({LOAD_WORKER_THREADS} thread, {} connections, closed loop) shares these cores with \
         Kassa ({} runtime threads) and, when measured, PostgreSQL.",
        scenarios::CONNECTIONS,
        target::SERVER_WORKER_THREADS,
    )
}
