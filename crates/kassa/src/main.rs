//! The `kassa` command: parse the configuration, start tracing, run the chosen command.
//! The administration commands (`org`, `api-key`, `terminal`) live in `kassa::cli`; an error
//! ends the process with `error: …` on stderr and exit code 1.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kassa::app::App;
use kassa::config::{Config, ServeArgs, StorageArgs};

/// mimalloc instead of the system allocator: a profile of the create benchmark spent ~15 % of
/// its CPU in glibc's malloc and free.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "kassa", version, about = "Self-hosted Kaspi Pay gateway")]
struct Cli {
    #[command(flatten)]
    storage: StorageArgs,
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start: the size of the largest variant (every serve setting) costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the gateway (sandbox Kaspi and SQLite in ./kassa-data unless told otherwise).
    Serve(ServeArgs),
    /// Apply the database migrations and exit.
    Migrate,
    /// Run the Kaspi simulator alone (the same one sandbox mode mounts at /sandbox/kaspi).
    KaspiSim {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9000")]
        listen: SocketAddr,
        /// Seed of the simulator's random choices (a saved state keeps its own).
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Keep the simulator's state in FILE (made owner-only; read back at start), so a
        /// restart keeps its operations and sessions. Without it the state lives in memory.
        #[arg(long, value_name = "FILE")]
        state: Option<PathBuf>,
    },
    #[command(flatten)]
    Admin(kassa::cli::AdminCommand),
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(serve) => {
            let config = Config::resolve(&cli.storage, &serve)?;
            let app = App::build(config).await?;
            eprintln!("kassa listening on http://{}", app.local_addr());
            app.run_until_stopped(shutdown_signal()).await?;
        }
        Command::Migrate => {
            let config = Config::resolve(&cli.storage, &ServeArgs::default())?;
            kassa::datadir::prepare(&config)?;
            let db =
                kassa::db::Db::open(&config.database_url, kassa::db::DbOptions::default()).await?;
            db.migrate().await?;
            eprintln!("migrations applied");
        }
        Command::KaspiSim {
            listen,
            seed,
            state,
        } => kaspi_sim_alone(listen, seed, state).await?,
        Command::Admin(command) => kassa::cli::run(&cli.storage, command).await?,
    }
    Ok(())
}

/// `kassa kaspi-sim`: the simulator alone until Ctrl-C or SIGTERM, its state in `state` when
/// given (written once more on the way out).
async fn kaspi_sim_alone(
    listen: SocketAddr,
    seed: u64,
    state: Option<PathBuf>,
) -> anyhow::Result<()> {
    let config = kaspi_sim::SimConfig {
        seed,
        ..Default::default()
    };
    let (sim, saver) = match state {
        Some(path) => {
            let sim = kaspi_sim::Simulator::open(config, &path)?;
            let verb = if sim.restored() {
                "restored from"
            } else {
                "kept in"
            };
            eprintln!("Kaspi simulator state {verb} {}", path.display());
            let saver = sim.keep_saved(path, kaspi_sim::DEFAULT_SAVE_DELAY);
            (sim, Some(saver))
        }
        None => (kaspi_sim::Simulator::new(config), None),
    };
    let listener = tokio::net::TcpListener::bind(listen).await?;
    eprintln!(
        "Kaspi simulator on http://{0} (hosts {0}/entrance-pay, {0}/mtoken, {0}/qrpay; control {0}/_control)",
        listener.local_addr()?
    );
    axum::serve(listener, sim.router())
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    if let Some(saver) = saver {
        saver.stop().await?;
    }
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
