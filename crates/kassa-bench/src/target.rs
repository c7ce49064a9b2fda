//! The Kassa under measurement, in this process: started as `kassa serve` starts it (sandbox
//! Kaspi, the background workers running; rate limit off), on a fresh SQLite file in a
//! temporary directory or a fresh PostgreSQL database. The scenario chooses the
//! [`GatewaySettings`]: production's defaults unless it says why not.
//!
//! The server gets its own multi-threaded tokio runtime on its own thread, apart from the load
//! generator's, so each is scheduled by the OS rather than by one runtime that would favour
//! whoever queued first. Both share the machine's cores: the figures are what the machine does
//! with the load generator on it too.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use kassa::app::{App, AppState};
use kassa::config::{Config, ServeArgs, StorageArgs};
use kassa::gateway::{GatewaySettings, DEMO_ORG_SLUG};

use crate::postgres_db::PgDatabase;

/// Worker threads of the server's runtime: one per core of the machines Kassa runs on,
/// as `#[tokio::main]` would pick on them.
pub const SERVER_WORKER_THREADS: usize = 2;

/// The database behind a measured server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Database {
    Sqlite,
    Postgres,
}

impl Database {
    pub fn name(self) -> &'static str {
        match self {
            Database::Sqlite => "sqlite",
            Database::Postgres => "postgres",
        }
    }
}

/// Where one measured server keeps its data; removed when dropped.
pub struct Storage {
    dir: tempfile::TempDir,
    database_url: String,
    /// Dropped after the server has stopped (field order), removing the database.
    _postgres: Option<PgDatabase>,
}

impl Storage {
    /// A temporary data dir and a fresh database in it (SQLite) or on the server at
    /// `postgres_admin_url`.
    pub fn new(database: Database, postgres_admin_url: &str) -> anyhow::Result<Storage> {
        let dir = tempfile::Builder::new()
            .prefix("kassa-bench-")
            .tempdir()
            .context("a temporary data directory")?;
        let (database_url, postgres) = match database {
            Database::Sqlite => (
                format!("sqlite://{}", dir.path().join("kassa.db").display()),
                None,
            ),
            Database::Postgres => {
                let db = PgDatabase::create(postgres_admin_url)
                    .map_err(|e| anyhow::anyhow!("creating a PostgreSQL database: {e}"))?;
                (db.url().to_owned(), Some(db))
            }
        };
        Ok(Storage {
            dir,
            database_url,
            _postgres: postgres,
        })
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    pub fn database_url(&self) -> &str {
        &self.database_url
    }
}

/// What the server thread hands back once it listens.
type Ready = anyhow::Result<(SocketAddr, AppState, tokio::runtime::Handle)>;

/// A running in-process Kassa with the demo organization's cashier logged in and an API key
/// of it.
pub struct InProcess {
    pub addr: SocketAddr,
    pub org_id: i64,
    /// An API key of the demo organization (rate limit off).
    pub api_key: String,
    state: Option<AppState>,
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
    /// Last, so the database goes after the server.
    storage: Option<Storage>,
}

impl InProcess {
    /// Starts Kassa on `storage` with `settings` for its background work, waits for the
    /// sandbox's demo organization and makes a key.
    pub async fn start(storage: Storage, settings: GatewaySettings) -> anyhow::Result<InProcess> {
        InProcess::start_with_args(storage, settings, ServeArgs::default()).await
    }

    /// Like [`InProcess::start`], with `serve_args` as `kassa serve`'s flags (e.g.
    /// `webhook_allow_private`); where it leaves them unset, the listen address is
    /// 127.0.0.1 on a free port and the rate limit is off.
    pub async fn start_with_args(
        storage: Storage,
        settings: GatewaySettings,
        serve_args: ServeArgs,
    ) -> anyhow::Result<InProcess> {
        let config = Config::resolve(
            &StorageArgs {
                data_dir: Some(storage.data_dir().to_owned()),
                database_url: Some(storage.database_url().to_owned()),
                config: None,
            },
            &ServeArgs {
                listen: serve_args
                    .listen
                    .or(Some(SocketAddr::from(([127, 0, 0, 1], 0)))),
                rate_limit_per_minute: serve_args.rate_limit_per_minute.or(Some(0)),
                ..serve_args
            },
        )?;
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Ready>();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("kassa-server-main".into())
            .spawn(move || serve(config, settings, ready_tx, stopped))
            .context("starting the server thread")?;
        let mut server = InProcess {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            org_id: 0,
            api_key: String::new(),
            state: None,
            handle: tokio::runtime::Handle::current(),
            stop: Some(stop),
            thread: Some(thread),
            storage: Some(storage),
        };
        let (addr, state, handle) = match ready_rx.await {
            Ok(ready) => ready?,
            Err(_) => {
                server.stop.take();
                let ended = server.join().await;
                anyhow::bail!("the server thread ended before listening: {ended:?}");
            }
        };
        server.addr = addr;
        server.handle = handle;
        server.state = Some(state.clone());
        let (org_id, api_key) = server
            .on_server(async move { demo_org_and_key(&state).await })
            .await??;
        server.org_id = org_id;
        server.api_key = api_key;
        Ok(server)
    }

    /// The running app's state (store, gateway, simulator, master key).
    pub fn state(&self) -> &AppState {
        self.state
            .as_ref()
            .expect("the state is set at start and taken only by stop")
    }

    /// Runs `work` on the server's runtime (store calls run where the server's do).
    pub async fn on_server<T: Send + 'static>(
        &self,
        work: impl Future<Output = T> + Send + 'static,
    ) -> anyhow::Result<T> {
        self.handle
            .spawn(work)
            .await
            .map_err(|e| anyhow::anyhow!("work on the server runtime failed: {e}"))
    }

    /// Stops Kassa as Ctrl-C does (in-flight requests finish, workers stop after the job in
    /// hand), then removes its data.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.stop.take().map(|stop| stop.send(()));
        let served = self.join().await;
        self.state.take();
        let storage = self.storage.take();
        tokio::task::spawn_blocking(move || drop(storage))
            .await
            .context("removing the benchmark's data")?;
        served
    }

    async fn join(&mut self) -> anyhow::Result<()> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        match tokio::task::spawn_blocking(move || thread.join()).await {
            Ok(Ok(served)) => served,
            Ok(Err(_)) => anyhow::bail!("the server thread panicked"),
            Err(e) => anyhow::bail!("waiting for the server thread: {e}"),
        }
    }
}

impl Drop for InProcess {
    /// The error path: stop the server and wait for it, so its database can go.
    fn drop(&mut self) {
        self.stop.take().map(|stop| stop.send(()));
        self.state.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The server thread: its own runtime, the app on it until `stopped`.
fn serve(
    config: Config,
    settings: GatewaySettings,
    ready: tokio::sync::oneshot::Sender<Ready>,
    stopped: tokio::sync::oneshot::Receiver<()>,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(SERVER_WORKER_THREADS)
        .thread_name("kassa-server")
        .enable_all()
        .build()
        .context("building the server's runtime")?;
    let served = runtime.block_on(async move {
        let app = match App::build_with(config, settings).await {
            Ok(app) => app,
            Err(e) => {
                let _ = ready.send(Err(e.context("starting Kassa")));
                return Ok(());
            }
        };
        let state = app.state().clone();
        let _ = ready.send(Ok((
            app.local_addr(),
            state,
            tokio::runtime::Handle::current(),
        )));
        app.run_until_stopped(async {
            let _ = stopped.await;
        })
        .await
    });
    runtime.shutdown_timeout(Duration::from_secs(10));
    served.context("Kassa stopped with an error")
}

/// Waits for the sandbox's demo organization with its cashier logged in (made on first
/// start), then makes an API key of it as `kassa api-key create` does.
async fn demo_org_and_key(state: &AppState) -> anyhow::Result<(i64, String)> {
    let store = &state.store;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let org_id = loop {
        if let Some(org) = store.orgs().org_by_slug(DEMO_ORG_SLUG).await? {
            if store.orgs().terminal_for_org(org.id).await?.is_some() {
                break org.id;
            }
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("the demo organization was not set up within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (raw, prefix) = kassa::secrets::new_api_key();
    let hash = state.master_key.api_key_hash(&raw);
    store
        .orgs()
        .create_api_key(org_id, "bench", &prefix, &hash)
        .await
        .context("storing the benchmark's API key")?;
    Ok((org_id, raw))
}
