//! The `kassa` command: parse the command line, start logging (`kassa::logging`: text or
//! JSON), run the chosen command. The administration commands (`org`, `api-key`, `terminal`,
//! `webhook`, `user`, `kaspi`) live in `kassa::cli`; an error ends the process with `error: …`
//! on stderr and exit code 1, naming what failed (the address a server cannot listen on, the
//! settings file that is not valid, the database that is not there).
//!
//! Each command's `--help` shows the options it uses, with their defaults: the global ones
//! (`--data-dir`, `--database-url`, `--config`, `--log-format`) are accepted before or after
//! the command's name, and hidden from the commands that do not use them.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, Context as _};
use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};
use kassa::app::App;
use kassa::config::{Config, ServeArgs, StorageArgs};
use kassa::logging::{self, LogArgs};

/// mimalloc instead of the system allocator: a profile of the create benchmark spent ~15 % of
/// its CPU in glibc's malloc and free. Built without its transparent-huge-page advice (the `no_thp` feature):
/// with it, an idle gateway's few MiB of heap sat in 2 MiB pages.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "kassa", version, about = "Self-hosted Kaspi Pay gateway")]
struct Cli {
    #[command(flatten, next_help_heading = "Global options")]
    storage: StorageArgs,
    #[command(flatten, next_help_heading = "Global options")]
    log: LogArgs,
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start: the size of the largest variant (every serve setting) costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the gateway (sandbox Kaspi and SQLite in ./kassa-data unless told otherwise).
    Serve(ServeArgs),
    /// Apply the database migrations and exit (a missing SQLite database is created).
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
    /// Print the shell completion script of `kassa` (bash, zsh, fish, …).
    ///
    /// For example: `kassa completions bash > ~/.local/share/bash-completion/completions/kassa`,
    /// `kassa completions zsh > ~/.zfunc/_kassa`,
    /// `kassa completions fish > ~/.config/fish/completions/kassa.fish`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    #[command(flatten)]
    Admin(kassa::cli::AdminCommand),
}

/// The global options each command does not use: accepted there, hidden from its help.
const UNUSED_GLOBALS: [(&str, &[&str]); 2] = [
    ("kaspi-sim", &["data_dir", "database_url", "config"]),
    (
        "completions",
        &["data_dir", "database_url", "config", "log_format"],
    ),
];

/// The command line of `kassa`, as parsed and as shown by `--help` and the completions.
fn command() -> clap::Command {
    let mut command = Cli::command();
    // Built first, so that the global options are on every command and can be hidden there.
    command.build();
    for (name, unused) in UNUSED_GLOBALS {
        command = command.mut_subcommand(name, |sub| {
            sub.mut_args(|arg| {
                let hide = unused.contains(&arg.get_id().as_str());
                arg.hide(hide)
            })
        });
    }
    command
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::from_arg_matches(&command().get_matches()).unwrap_or_else(|e| e.exit());
    logging::init(cli.log.log_format);
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            logging::fatal(&e);
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(serve) => {
            let config = Config::resolve(&cli.storage, &serve)?;
            let listen = config.listen;
            let app = App::build(config)
                .await
                .map_err(|e| explain_listen_error(e, listen))?;
            let addr = app.local_addr();
            logging::log_start(&app.state().config, addr);
            logging::notice(&format!("kassa listening on http://{addr}"));
            app.run_until_stopped(shutdown_signal()).await?;
            tracing::info!("kassa stopped");
        }
        Command::Migrate => {
            let config = Config::resolve(&cli.storage, &ServeArgs::default())?;
            kassa::datadir::prepare(&config)?;
            let database = logging::redact_url(&config.database_url);
            let db = kassa::db::Db::open(&config.database_url, kassa::db::DbOptions::default())
                .await
                .with_context(|| format!("opening the database {database}"))?;
            db.migrate()
                .await
                .with_context(|| format!("migrating the database {database}"))?;
            eprintln!("migrations applied to {database}");
        }
        Command::KaspiSim {
            listen,
            seed,
            state,
        } => kaspi_sim_alone(listen, seed, state).await?,
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command(), "kassa", &mut script);
            let mut out = std::io::stdout().lock();
            match out.write_all(&script).and_then(|()| out.flush()) {
                // A reader that went away (`| head`) is not an error.
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e.into()),
                _ => {}
            }
        }
        Command::Admin(command) => kassa::cli::run(&cli.storage, command).await?,
    }
    Ok(())
}

/// A start error in words that name what failed: a listener that cannot be bound names its
/// address and what to do (`error` as it is otherwise).
fn explain_listen_error(error: anyhow::Error, listen: SocketAddr) -> anyhow::Error {
    use std::io::ErrorKind;
    let in_chain = error.chain().find_map(|cause| {
        let io = cause.downcast_ref::<std::io::Error>()?;
        matches!(
            io.kind(),
            ErrorKind::AddrInUse | ErrorKind::AddrNotAvailable
        )
        .then_some(io)
    });
    // Permission is also what a file may lack: only the listener's own error counts, bare.
    let io = in_chain.or_else(|| {
        error
            .downcast_ref::<std::io::Error>()
            .filter(|io| io.kind() == ErrorKind::PermissionDenied && listen.port() < 1024)
    });
    let Some(io) = io else {
        return error;
    };
    let why = match io.kind() {
        ErrorKind::AddrInUse => {
            "the address is already in use (by another `kassa serve` or another program); \
             stop that one, or choose another address with --listen or KASSA_LISTEN"
        }
        ErrorKind::AddrNotAvailable => {
            "this machine has no such address; choose one of its own with --listen or \
             KASSA_LISTEN (127.0.0.1 for this machine only, 0.0.0.0 for every interface)"
        }
        _ => "ports below 1024 need privileges; choose a higher port with --listen or KASSA_LISTEN",
    };
    anyhow!("cannot listen on {listen}: {why} ({io})")
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
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| explain_listen_error(e.into(), listen))?;
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

/// Resolves on Ctrl-C or SIGTERM, saying which came.
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
    let signal = tokio::select! {
        () = ctrl_c => "SIGINT",
        () = term => "SIGTERM",
    };
    tracing::info!(
        signal,
        "stopping: finishing the requests and the work in hand"
    );
}
