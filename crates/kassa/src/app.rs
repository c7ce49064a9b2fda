//! The running gateway: `App::build(config)` opens and migrates the database, mounts the
//! Kaspi simulator in sandbox mode, binds the listener; `run_until_stopped` serves until the
//! shutdown future resolves, then drains in-flight requests. Tests start it exactly as `main`.

use std::future::Future;
use std::net::SocketAddr;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::config::{Config, KaspiMode};
use crate::db::{Db, DbOptions};
use crate::secrets::MasterKey;

/// Where the sandbox Kaspi is mounted on the gateway's own listener.
pub const SANDBOX_PREFIX: &str = "/sandbox/kaspi";

/// What request handlers share.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub config: Config,
    pub master_key: MasterKey,
    /// The simulator, in sandbox mode.
    pub sandbox: Option<kaspi_sim::Simulator>,
}

/// A built, bound gateway.
pub struct App {
    listener: tokio::net::TcpListener,
    router: Router,
    state: AppState,
}

impl App {
    /// Opens and migrates the database, prepares secrets, binds the listener.
    pub async fn build(config: Config) -> anyhow::Result<App> {
        std::fs::create_dir_all(&config.data_dir)?;
        let master_key = MasterKey::load_or_create(&config.data_dir)?;
        let db = Db::open(&config.database_url, DbOptions::default()).await?;
        db.migrate().await?;
        let sandbox = match config.kaspi {
            KaspiMode::Sandbox => Some(kaspi_sim::Simulator::new(kaspi_sim::SimConfig::default())),
            KaspiMode::Live => None,
        };
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let state = AppState {
            db,
            config,
            master_key,
            sandbox,
        };
        let mut router = Router::new()
            .route("/api/v1/status", get(status))
            .with_state(state.clone());
        if let Some(sim) = &state.sandbox {
            router = router.nest(SANDBOX_PREFIX, sim.router());
        }
        Ok(App {
            listener,
            router,
            state,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves; requests in flight are finished.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
    }
}

/// `GET /api/v1/status`: no authentication, never a secret.
async fn status(State(state): State<AppState>) -> Json<Value> {
    let now = OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default();
    let mode = match state.config.kaspi {
        KaspiMode::Sandbox => "sandbox",
        KaspiMode::Live => "live",
    };
    Json(json!({"status": "ok", "timestamp": now, "kaspi": {"mode": mode}}))
}
