//! `kassa-bench`: runs the chosen scenarios, prints the table, writes the JSON. See the
//! library's docs for what is measured and how.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::builder::{PossibleValue, PossibleValuesParser};
use clap::{Parser, ValueEnum};
use kassa_bench::scenarios;
use kassa_bench::target::Database;

/// mimalloc instead of the system allocator: a profile of the create benchmark spent ~15 % of
/// its CPU in glibc's malloc and free.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "kassa-bench",
    about = "Measures Kassa on this machine: starts it on 127.0.0.1, loads it for a bounded time, \
             stops it, prints a table and writes the figures as JSON.",
    after_help = "Build the kassa binary first for the footprint scenario: \
                  cargo build --release -p kassa. PostgreSQL figures use \
                  KASSA_BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres), \
                  where a database kassa_bench_<random> is made and dropped per measurement."
)]
struct Cli {
    /// A scenario to run (repeatable; default: every implemented one).
    #[arg(long = "scenario", value_name = "NAME", value_parser = scenario_names())]
    scenarios: Vec<String>,
    /// Also write the figures to FILE as JSON: [{"scenario","database","metric","value","unit"}].
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Which database Kassa runs on.
    #[arg(long, value_enum, default_value_t = DatabaseChoice::Both)]
    database: DatabaseChoice,
    /// Run every scenario very briefly (a few seconds in all), to check the harness works.
    #[arg(long)]
    quick: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum DatabaseChoice {
    Sqlite,
    Postgres,
    Both,
}

fn scenario_names() -> PossibleValuesParser {
    PossibleValuesParser::new(
        scenarios::ALL
            .iter()
            .map(|s| PossibleValue::new(s.name).help(s.about)),
    )
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    for name in &cli.scenarios {
        if scenarios::find(name).is_some_and(|s| s.run.is_none()) {
            eprintln!("error: scenario {name} is not yet implemented");
            return ExitCode::from(2);
        }
    }
    let options = kassa_bench::Options {
        scenarios: cli.scenarios,
        databases: match cli.database {
            DatabaseChoice::Sqlite => vec![Database::Sqlite],
            DatabaseChoice::Postgres => vec![Database::Postgres],
            DatabaseChoice::Both => vec![Database::Sqlite, Database::Postgres],
        },
        quick: cli.quick,
        postgres_admin_url: kassa_bench::postgres_db::admin_url_from_env(),
    };
    let outcome = match kassa_bench::run(&options) {
        Ok(outcome) => outcome,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    println!();
    println!("{}", kassa_bench::machine_line());
    println!();
    print!("{}", outcome.report.table());
    if let Some(path) = &cli.json {
        let text = match serde_json::to_string_pretty(&outcome.report.to_json()) {
            Ok(text) => text,
            Err(e) => {
                eprintln!("error: encoding the figures: {e}");
                return ExitCode::FAILURE;
            }
        };
        if let Err(e) = std::fs::write(path, text + "\n") {
            eprintln!("error: writing {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        eprintln!("figures written to {}", path.display());
    }
    if outcome.failed > 0 {
        eprintln!(
            "error: {} scenario run(s) failed (see the notes)",
            outcome.failed
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
