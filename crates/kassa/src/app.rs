//! The running gateway: `App::build(config)` locks the data dir (`crate::datadir`, held until
//! the server stops), opens and migrates the database, mounts the Kaspi simulator (every
//! organization's Kaspi in sandbox mode, the test modes' in live mode; its state kept in the
//! data dir, so a restart changes nothing a user sees), binds the
//! listener; `run_until_stopped` serves until the shutdown future resolves, then drains
//! in-flight requests. Tests start it exactly as `main`.

use std::future::Future;
use std::net::SocketAddr;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;

use std::sync::Arc;

use crate::api::{self, ApiPay, AuthState, ErrorFormat, RateLimiter, XPayment};
use crate::clock::Clock;
use crate::config::{Config, KaspiMode};
use crate::dashboard::{self, Dashboard};
use crate::datadir::DataDirLock;
use crate::db::{Db, DbOptions};
use crate::gateway::{Gateway, GatewaySettings, KaspiSetup, SandboxKaspi};
use crate::jobs::Jobs;
use crate::secrets::MasterKey;
use crate::store::Store;
use crate::webhooks::Webhooks;

/// Where the sandbox Kaspi is mounted on the gateway's own listener.
pub const SANDBOX_PREFIX: &str = "/sandbox/kaspi";

/// The sandbox Kaspi's state in the data dir (owner-only: it holds the cashier's session).
pub const SANDBOX_STATE_FILE: &str = "sandbox-kaspi.json";

/// What request handlers share.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    /// Every "now" of the gateway, its jobs, webhooks and store (see [`crate::clock`]).
    pub clock: Clock,
    pub config: Config,
    pub master_key: MasterKey,
    /// The simulator, in sandbox mode (in live mode it runs for the test modes only:
    /// `Gateway::sandbox_for`).
    pub sandbox: Option<kaspi_sim::Simulator>,
    pub store: Store,
    pub gateway: Gateway,
    /// Webhook endpoints and delivery.
    pub webhooks: Webhooks,
    /// Turns true once the server's startup work is done (the sandbox's demo organization and
    /// the recovery of a lost sandbox, a stopped predecessor's leases released).
    pub started: tokio::sync::watch::Receiver<bool>,
}

impl AppState {
    /// Waits until the server's startup work is done (at once if it is).
    pub async fn wait_started(&self) {
        let mut started = self.started.clone();
        // An error means the server is gone: nothing more will start.
        let _ = started.wait_for(|done| *done).await;
    }
}

/// A built, bound gateway.
pub struct App {
    listener: tokio::net::TcpListener,
    router: Router,
    state: AppState,
    /// Held until the server has stopped (see [`crate::datadir`]).
    lock: DataDirLock,
    /// Keeps the sandbox Kaspi's state file up to date.
    sandbox_saver: kaspi_sim::StateSaver,
    /// Says when the startup work is done (see [`AppState::started`]).
    started: tokio::sync::watch::Sender<bool>,
    /// Whether the background work runs (tests that step it with
    /// [`Jobs::run_until_idle`] turn it off).
    background: bool,
}

impl App {
    /// Opens and migrates the database, prepares secrets, binds the listener.
    pub async fn build(config: Config) -> anyhow::Result<App> {
        let settings = GatewaySettings {
            kaspi_calls_per_sec: config.kaspi_calls_per_sec,
            audit_retention: config.audit_retention,
            ..GatewaySettings::default()
        };
        App::build_with(config, settings).await
    }

    /// [`App::build`] with the background work tuned (tests shorten the schedules).
    pub async fn build_with(config: Config, settings: GatewaySettings) -> anyhow::Result<App> {
        App::build_with_clock(config, settings, Clock::system()).await
    }

    /// [`App::build_with`] on `clock` (tests pass a manual clock and step it).
    pub async fn build_with_clock(
        config: Config,
        settings: GatewaySettings,
        clock: Clock,
    ) -> anyhow::Result<App> {
        crate::datadir::prepare(&config)?;
        let mut lock = DataDirLock::acquire(&config.data_dir)?;
        let master_key = MasterKey::load_or_create(&config.data_dir)?;
        let db = Db::open(&config.database_url, DbOptions::default()).await?;
        db.migrate().await?;
        // The sandbox Kaspi runs in both modes: in sandbox mode every organization reaches it,
        // in live mode the organizations' test modes do.
        let path = config.data_dir.join(SANDBOX_STATE_FILE);
        // The seed counts only for a new sandbox (a saved one keeps its own): fresh, as its
        // operation ids derive from it and the database may hold ids of another.
        let sim = kaspi_sim::Simulator::open(
            kaspi_sim::SimConfig {
                seed: rand::random(),
                ..kaspi_sim::SimConfig::default()
            },
            &path,
        )?;
        let sandbox_saver = sim.keep_saved(path, kaspi_sim::DEFAULT_SAVE_DELAY);
        let sandbox_deployment = config.kaspi == KaspiMode::Sandbox;
        let sandbox = sandbox_deployment.then(|| sim.clone());
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        lock.record_listen(listener.local_addr()?)?;
        let store = Store::with_clock(db.clone(), clock.clone());
        let gateway = Gateway::new(
            store.clone(),
            master_key.clone(),
            KaspiSetup {
                client_config: config.kaspi_client_config(listener.local_addr()?),
                sandbox: SandboxKaspi {
                    sim: sim.clone(),
                    client_config: config.sandbox_client_config(listener.local_addr()?),
                },
                sandbox_deployment,
            },
            settings,
        );
        let webhooks = Webhooks::new(store.clone(), master_key.clone(), config.webhooks.clone())?;
        let (started, started_rx) = tokio::sync::watch::channel(false);
        let state = AppState {
            db,
            clock,
            started: started_rx,
            config,
            master_key,
            sandbox,
            store,
            gateway,
            webhooks,
        };
        let limiter = Arc::new(RateLimiter::per_minute(
            state.store.clone(),
            state.config.rate_limit_per_minute,
        ));
        let auth = AuthState::new(
            state.store.clone(),
            state.master_key.clone(),
            limiter,
            ErrorFormat::ApiPay,
        );
        let xpayment_auth = auth.for_surface(ErrorFormat::XPayment);
        let apipay_routes = api::apipay::routes(
            state.gateway.clone(),
            state.sandbox.as_ref().map(|_| {
                Jobs::new(
                    state.gateway.clone(),
                    state.webhooks.clone(),
                    format!("kassa-sandbox-clock-{}", uuid::Uuid::new_v4().simple()),
                )
            }),
        )
        .merge(api::webhooks::routes(state.webhooks.clone()));
        // The dashboard calls the same handlers in process, as its signed-in user's
        // organization (see `crate::dashboard`).
        let dashboard = Dashboard::new(state.clone(), apipay_routes.clone());
        let apipay = api::protect(apipay_routes, auth, api::scopes::APIPAY);
        // xPayment's paths at the root, as its spec names them, and under `/v1`, its real base.
        let xpayment = api::protect(
            api::xpayment::routes(state.gateway.clone())
                .merge(api::webhook_simulate::routes(state.webhooks.clone())),
            xpayment_auth,
            api::scopes::XPAYMENT,
        )
        .method_not_allowed_fallback(api::method_not_allowed::<XPayment>);
        let api_v1 = Router::new()
            .route("/status", get(status))
            .with_state(state.clone())
            .merge(apipay)
            .fallback(api::not_found::<ApiPay>)
            .method_not_allowed_fallback(api::method_not_allowed::<ApiPay>);
        let router = Router::new()
            .nest("/api/v1", api_v1)
            .nest("/v1", xpayment.clone().fallback(api::not_found::<XPayment>))
            .merge(xpayment)
            .merge(api::openapi::routes())
            .nest(dashboard::PREFIX, dashboard::routes(dashboard.clone()))
            .merge(dashboard::root_route(dashboard))
            // Outside the API's auth: its own optional bearer token (`--metrics-token`).
            .route(
                "/metrics",
                get(crate::metrics::scrape).with_state(state.clone()),
            )
            .fallback(api::not_found::<ApiPay>);
        let sim_routes = if sandbox_deployment {
            sim.router()
        } else {
            // Beside live Kaspi the sandbox serves the test modes only: its control API (which
            // pays, declines and expires sandbox invoices by hand) answers this machine alone.
            sim.router()
                .layer(axum::middleware::from_fn(control_from_loopback_only))
        };
        let router = router.nest(SANDBOX_PREFIX, sim_routes);
        // Every route's requests counted and timed by the route's pattern (see `crate::metrics`).
        let router = router.layer(axum::middleware::from_fn(crate::metrics::track_http));
        let router = with_request_ids(router);
        Ok(App {
            listener,
            router,
            state,
            lock,
            sandbox_saver,
            started,
            background: true,
        })
    }

    /// Serves without background work: no job, no webhook runs unless someone steps them with
    /// [`Jobs::run_until_idle`] (tests, on a manual clock).
    pub fn without_background_work(mut self) -> App {
        self.background = false;
        self
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

    /// Serves until `shutdown` resolves; requests in flight are finished, then the background
    /// workers stop after the jobs in hand. On first start in sandbox mode it makes the `demo`
    /// organization with a logged-in sandbox cashier (the login goes over this listener).
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let address = self.local_addr();
        let server = tokio::spawn(crate::server::serve(
            self.listener,
            self.router,
            self.state.config.http,
            shutdown,
        ));
        let gateway = self.state.gateway.clone();
        match gateway.bootstrap_sandbox().await {
            Ok(Some(org)) => {
                tracing::info!(org = %org.slug, "made the demo organization with a sandbox cashier");
                let dashboard = match demo_owner_link(&self.state.store, org.id).await {
                    Ok(link) => format!(
                        "Open the dashboard as its owner (this link works once):\n    \
                         http://{address}{link}\n"
                    ),
                    Err(e) => {
                        tracing::warn!(error = %format!("{e:#}"), "no dashboard user for the demo organization");
                        String::new()
                    }
                };
                crate::logging::notice(&format!(
                    "First start: organization `{slug}` is ready with a sandbox Kaspi cashier.\n\
                     {dashboard}\
                     Make an API key for it with:\n    kassa api-key create --org {slug}\n\
                     (add the same --data-dir/--database-url as this server if you changed them)",
                    slug = org.slug
                ));
            }
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "could not set up the demo organization"),
        }
        // Worker ids start with the data dir's id. Holding the data dir's lock, this is the only
        // server on it, so leases under that prefix belong to a predecessor that died (kill -9,
        // a crash): released now, its work is taken up at once instead of when they run out.
        let node = match crate::datadir::node_id(&self.state.config.data_dir) {
            Ok(node) => {
                let prefix = format!("kassa-{node}-");
                match self.state.store.jobs().release_leases_of(&prefix).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(leases = n, "took up the work a stopped server held"),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot release a stopped server's leases")
                    }
                }
                node
            }
            Err(e) => {
                tracing::warn!(error = %e, "no data dir id; a stopped server's leases run out by themselves");
                "nodeless".to_owned()
            }
        };
        let worker_id = format!(
            "kassa-{node}-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        );
        // Startup is done: work of a predecessor is free to take, the sandbox is ready.
        self.started.send_replace(true);
        let stop = tokio_util::sync::CancellationToken::new();
        let jobs = Jobs::new(gateway, self.state.webhooks.clone(), worker_id);
        let jobs = self.background.then(|| jobs.start(stop.clone()));
        let served = server
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        stop.cancel();
        if let Some(jobs) = jobs {
            let _ = jobs.await;
        }
        // The last changes to the sandbox Kaspi; a failure is logged by the saver.
        let _ = self.sandbox_saver.stop().await;
        drop(self.lock);
        served
    }
}

/// Refuses the sandbox's control API (`/_control/…`) to clients other than this machine (404,
/// as if it were not there).
async fn control_from_loopback_only(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let control = request.uri().path().starts_with("/_control");
    let local = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .is_some_and(|axum::extract::ConnectInfo(peer)| peer.ip().is_loopback());
    if control && !local {
        tracing::warn!("sandbox control API refused to a remote client in a live deployment");
        return axum::http::StatusCode::NOT_FOUND.into_response();
    }
    next.run(request).await
}

/// The e-mail of the demo organization's owner, made on first start in sandbox mode.
pub const DEMO_OWNER_EMAIL: &str = "demo@example.com";

/// Makes the demo organization's owner (no password: the link signs in, and `kassa user
/// login-link --email demo@example.com` makes another) and a one-time sign-in link's path.
async fn demo_owner_link(store: &Store, org_id: i64) -> anyhow::Result<String> {
    let user = store
        .users()
        .create_user(org_id, DEMO_OWNER_EMAIL, None, crate::domain::Role::Owner)
        .await?;
    crate::dashboard::issue_login_link(store, user.id).await
}

/// The header that carries a request's id: the client's own when it sends one (a visible
/// ASCII value of at most 64 characters), else a new UUID; always in the answer.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Gives every request an id and a tracing span (`request`: method, route, id), so the log of
/// one request can be followed, the jobs it schedules included; the answer carries the id.
fn with_request_ids(router: Router) -> Router {
    use axum::extract::MatchedPath;
    use axum::http::{HeaderName, Request};
    use tower_http::request_id::{
        MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
    };
    use tower_http::trace::TraceLayer;

    /// A new UUID unless the client sent a usable id of its own.
    #[derive(Clone, Copy)]
    struct Ids;
    impl MakeRequestId for Ids {
        fn make_request_id<B>(&mut self, _request: &Request<B>) -> Option<RequestId> {
            let id = uuid::Uuid::new_v4().to_string();
            axum::http::HeaderValue::from_str(&id)
                .ok()
                .map(RequestId::new)
        }
    }

    let header = HeaderName::from_static(REQUEST_ID_HEADER);
    let trace = TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map_or("(unrouted)", MatchedPath::as_str);
        let id = request
            .headers()
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        tracing::info_span!(
            "request",
            method = %request.method(),
            route,
            request_id = id,
            // Filled in by the gateway when the request makes one (the jobs that follow it
            // log the same id as `ref_id`).
            invoice = tracing::field::Empty,
            refund = tracing::field::Empty,
        )
    });
    // Outermost last: an unusable client id is dropped, an id is set, the span opens, and
    // the answer gets the id.
    router
        .layer(PropagateRequestIdLayer::new(header.clone()))
        .layer(trace)
        .layer(SetRequestIdLayer::new(header, Ids))
        .layer(axum::middleware::from_fn(keep_usable_request_id))
}

/// Drops a client's `x-request-id` that is not a visible ASCII value of at most 64 characters
/// (it would go into logs as it is), so a new one is made for the request.
async fn keep_usable_request_id(
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let usable = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .map(|v| !v.is_empty() && v.len() <= 64 && v.as_bytes().iter().all(u8::is_ascii_graphic));
    if usable == Some(false) {
        request.headers_mut().remove(REQUEST_ID_HEADER);
    }
    next.run(request).await
}

/// `GET /api/v1/status`: no authentication, never a secret. `status` is `ok` while the
/// gateway answers (as ApiPay's health check); `kaspi.sessions` counts cashier sessions that
/// work and that need a login (with the distinct reasons, e.g. "signed in on another device"),
/// so a monitor can alert on `needs_login > 0`; `kaspi.state` is `ok`, `needs_login` (an
/// organization has no working cashier left; one of several down is only counted) or
/// `app_build_outdated` (Kaspi refuses the app build: `kaspi.app` and `action` say what to set).
async fn status(State(state): State<AppState>) -> Json<Value> {
    let now = state.clock.now().format(&Rfc3339).unwrap_or_default();
    let mode = match state.config.kaspi {
        KaspiMode::Sandbox => "sandbox",
        KaspiMode::Live => "live",
    };
    let mut kaspi = json!({"mode": mode});
    match state.gateway.health().await {
        Ok(health) => {
            let healthy = health.iter().filter(|h| h.healthy).count();
            let mut reasons: Vec<&str> = health
                .iter()
                .filter(|h| !h.healthy)
                .filter_map(|h| h.reason.as_deref())
                .collect();
            reasons.sort_unstable();
            reasons.dedup();
            kaspi["sessions"] = json!({
                "healthy": healthy,
                "needs_login": health.len() - healthy,
                "reasons": reasons,
            });
            kaspi["state"] = json!("ok");
            // An organization with a working cashier still reaches Kaspi (its dead cashiers
            // show in `needs_login` above); the state is `needs_login` when one has none.
            if health
                .iter()
                .any(|h| !crate::gateway::org_usable(&health, h.org_id))
            {
                kaspi["state"] = json!("needs_login");
                kaspi["action"] = json!("a Kaspi cashier must log in again: run `kassa terminal status`, then `kassa terminal connect`");
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "status: cannot read terminals");
            kaspi["sessions"] = Value::Null;
        }
    }
    match state.gateway.app_build().await {
        Ok(app) => {
            kaspi["app"] =
                json!({"version": app.version, "build": app.build, "source": app.source});
            if app.outdated {
                kaspi["state"] = json!("app_build_outdated");
                kaspi["action"] = json!(app.action());
            }
        }
        Err(e) => tracing::error!(error = %e, "status: cannot read the settings"),
    }
    Json(json!({"status": "ok", "timestamp": now, "kaspi": kaspi}))
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::extract::ConnectInfo;
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt as _;

    use super::control_from_loopback_only;

    async fn status(path: &str, peer: &str) -> StatusCode {
        let router = Router::new()
            .route("/_control/sms/{phone}", get(|| async { "1234" }))
            .route("/entrance-pay/ping", get(|| async { "pong" }))
            .layer(axum::middleware::from_fn(control_from_loopback_only));
        let mut request = Request::get(path).body(Body::empty()).expect("request");
        let peer: std::net::SocketAddr = peer.parse().expect("address");
        request.extensions_mut().insert(ConnectInfo(peer));
        router.oneshot(request).await.expect("answer").status()
    }

    #[tokio::test]
    async fn the_live_sandbox_control_api_answers_this_machine_only() {
        assert_eq!(
            status("/_control/sms/7001234567", "127.0.0.1:5000").await,
            StatusCode::OK
        );
        assert_eq!(
            status("/_control/sms/7001234567", "[::1]:5000").await,
            StatusCode::OK
        );
        assert_eq!(
            status("/_control/sms/7001234567", "203.0.113.9:5000").await,
            StatusCode::NOT_FOUND
        );
        // Kaspi's own routes (the test modes' cashiers log in through them) stay open.
        assert_eq!(
            status("/entrance-pay/ping", "203.0.113.9:5000").await,
            StatusCode::OK
        );
    }
}
