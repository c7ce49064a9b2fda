//! The organizations' Kaspi cashiers (terminals): running Kaspi calls with their current
//! sessions, spread over each organization's cashiers. Logging a cashier in and the sealing
//! of devices and sessions are in `connect.rs`.
//!
//! An organization may have several cashiers (Kaspi lets an organization add cashiers, and
//! Kaspi throttles each cashier on its own). Every call reads the organization's terminal rows
//! (one select) and rebuilds a client only when its row's `version` changed, so a
//! `kassa terminal connect` made by another process is picked up by the next call. The call
//! goes to the usable cashier whose budget (`budget.rs`, per cashier) lets it go soonest:
//! creates, polls and history pages alike, since a Kaspi organization's cashiers all see and
//! act on the organization's operations. A cancel or a refund goes through the cashier that
//! created the invoice while it is usable ([`Terminals::call_preferring`]): what is known of
//! Kaspi does not say whether another cashier may, and the simulator allows it, so the
//! organization's other cashiers are the fallback.
//!
//! A call Kaspi throttles anyway (HTTP 429: nothing was done) goes again on the cashier's next
//! slot, a few times, rather than failing the request.
//!
//! A dead session is refreshed once (sign-in-lite) and the refreshed session stored with
//! compare-and-set on `version`; when refresh is refused the cashier is marked `needs_login`,
//! the log says which command to run, and the call goes to the organization's next usable
//! cashier. Only when no cashier is usable do calls answer [`GatewayError::SessionInvalid`]
//! until a person logs in again. A session Kaspi ended because the cashier's phone logged in
//! on another device is not refreshed at all (it cannot be): the cashier goes `needs_login`
//! with the reason [`SIGNED_IN_ELSEWHERE`]. An app build Kaspi refuses is noted for the whole
//! gateway (`app_build.rs`).
//!
//! Which Kaspi a cashier's client reaches is its organization's: an organization's test mode
//! (its twin, `store::orgs`) always reaches the in-process sandbox Kaspi, also in a live
//! deployment; every other organization reaches the deployment's Kaspi. A test twin with no
//! cashier yet gets one logged in to the sandbox when it first needs Kaspi
//! ([`Terminals::load`]), so a test key made by the CLI works at once.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kaspi::{Client, ClientConfig, Session};

use super::app_build::{AppBuild, AppBuildState};
use super::budget::Budget;
use super::connect::{connect_terminal, open_device, open_session, seal_session};
use super::{GatewayError, SandboxPrompt};
use crate::secrets::MasterKey;
use crate::store::{JobKind, Store, Terminal, TerminalState};

/// Why a terminal needs a login when Kaspi ended its session for a login on another device.
pub const SIGNED_IN_ELSEWHERE: &str = "signed in on another device: Kaspi ended the cashier's \
     session because the same phone logged in on another device, and a refresh cannot bring it \
     back";

/// How many times a call Kaspi throttled is made again (see [`Terminals::attempt`]).
const THROTTLED_RETRIES: u32 = 3;
/// The longest `Retry-After` of Kaspi's that a call waits for before going again.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(2);

/// One cashier ready for calls: its client (device) and session, at one version of its row.
pub struct Loaded {
    /// The terminal row's id: the cashier's budget and cache key.
    pub terminal_id: i64,
    pub org_id: i64,
    pub phone: String,
    pub version: i64,
    pub client: Client,
    pub session: Session,
}

/// The usable cashiers of one organization, as loaded for one piece of work (never empty).
pub struct Cashiers {
    pub org_id: i64,
    usable: Vec<Arc<Loaded>>,
}

impl Cashiers {
    /// The cashiers that can make calls now, in the order they were connected.
    pub fn usable(&self) -> &[Arc<Loaded>] {
        &self.usable
    }
}

/// The sandbox Kaspi in this process: the simulator and how a client reaches it.
#[derive(Clone)]
pub struct SandboxKaspi {
    pub sim: kaspi_sim::Simulator,
    /// Its endpoints on the gateway's own listener.
    pub client_config: ClientConfig,
}

/// Where Kaspi is: the deployment's, and the sandbox test organizations reach.
#[derive(Clone)]
pub struct KaspiSetup {
    /// The deployment's Kaspi (in a sandbox deployment, the sandbox's endpoints).
    pub client_config: ClientConfig,
    pub sandbox: SandboxKaspi,
    /// The whole deployment is the sandbox (`--kaspi sandbox`): every organization reaches it.
    pub sandbox_deployment: bool,
}

/// The cashiers of every organization, as this process uses them.
pub struct Terminals {
    store: Store,
    master_key: MasterKey,
    client_config: ClientConfig,
    sandbox: SandboxKaspi,
    sandbox_deployment: bool,
    /// Whether an organization is a test twin, by id (it never changes).
    test_orgs: Mutex<HashMap<i64, bool>>,
    /// Serialises the sandbox logins of test twins' first cashiers within this process.
    first_logins: tokio::sync::Mutex<()>,
    http: reqwest::Client,
    /// By terminal id.
    cache: Mutex<HashMap<i64, Arc<Loaded>>>,
    /// Serialises refreshes within this process.
    refreshing: tokio::sync::Mutex<()>,
    budget: Budget,
    /// The app version and build presented, as the settings say.
    app_build: AppBuild,
}

impl Terminals {
    /// `calls_per_sec`: the most Kaspi calls a second this process makes for one cashier.
    pub fn new(
        store: Store,
        master_key: MasterKey,
        kaspi: KaspiSetup,
        calls_per_sec: u32,
        settings_every: Duration,
    ) -> Terminals {
        let client_config = kaspi.client_config;
        let http = reqwest::Client::builder()
            .connect_timeout(client_config.connect_timeout)
            .timeout(client_config.request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Terminals {
            store,
            master_key,
            http,
            cache: Mutex::new(HashMap::new()),
            refreshing: tokio::sync::Mutex::new(()),
            budget: Budget::new(calls_per_sec, calls_per_sec.div_ceil(2)),
            app_build: AppBuild::new(client_config.app.clone(), settings_every),
            client_config,
            sandbox: kaspi.sandbox,
            sandbox_deployment: kaspi.sandbox_deployment,
            test_orgs: Mutex::new(HashMap::new()),
            first_logins: tokio::sync::Mutex::new(()),
        }
    }

    /// Takes up a newer app version and build set meanwhile (at most every few seconds); when
    /// they changed, every history sync runs at once, so work stopped by an outdated build
    /// resumes.
    pub async fn sync_app_build(&self) {
        match self.app_build.sync(&self.store).await {
            Ok(false) => {}
            Ok(true) => {
                let now = self.store.now_ms();
                let mut orgs: Vec<i64> = self
                    .store
                    .orgs()
                    .list_terminals()
                    .await
                    .unwrap_or_default()
                    .into_iter()
                    .map(|t| t.org_id)
                    .collect();
                orgs.dedup();
                for org_id in orgs {
                    if let Err(e) = self
                        .store
                        .jobs()
                        .pull_job_forward(JobKind::SyncHistory, org_id, now, now)
                        .await
                    {
                        tracing::warn!(error = %e, "cannot schedule a history sync");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the settings"),
        }
    }

    /// The app version and build in use, and whether Kaspi refuses them.
    pub(crate) async fn app_build_state(&self) -> Result<AppBuildState, GatewayError> {
        self.app_build.state(&self.store).await
    }

    /// How many Kaspi calls cashier `terminal_id` could make at once now, within this
    /// process's budget (`--kaspi-calls-per-sec`, per cashier).
    pub fn calls_left(&self, terminal_id: i64) -> u32 {
        self.budget.left(terminal_id, Instant::now())
    }

    /// How the deployment's Kaspi is reached.
    pub fn client_config(&self) -> &ClientConfig {
        &self.client_config
    }

    /// The sandbox Kaspi in this process (the deployment's Kaspi in a sandbox deployment).
    pub fn sandbox(&self) -> &SandboxKaspi {
        &self.sandbox
    }

    /// Whether the whole deployment is the sandbox.
    pub fn sandbox_deployment(&self) -> bool {
        self.sandbox_deployment
    }

    /// Whether `org_id` is an organization's test mode (a twin); `NotFound` when there is no
    /// such organization. Read once per process: it never changes.
    pub async fn is_test_org(&self, org_id: i64) -> Result<bool, GatewayError> {
        if let Some(test) = self
            .test_orgs
            .lock()
            .ok()
            .and_then(|known| known.get(&org_id).copied())
        {
            return Ok(test);
        }
        let org = self
            .store
            .orgs()
            .org_by_id(org_id)
            .await?
            .ok_or(GatewayError::NotFound)?;
        if let Ok(mut known) = self.test_orgs.lock() {
            known.insert(org_id, org.is_test());
        }
        Ok(org.is_test())
    }

    /// Whether `org_id` works against the sandbox Kaspi: a test twin, or any organization of
    /// a sandbox deployment.
    pub async fn uses_sandbox(&self, org_id: i64) -> Result<bool, GatewayError> {
        Ok(self.sandbox_deployment || self.is_test_org(org_id).await?)
    }

    /// How `org_id`'s cashiers reach Kaspi: the sandbox for a test twin, else the
    /// deployment's Kaspi.
    pub async fn client_config_for(&self, org_id: i64) -> Result<&ClientConfig, GatewayError> {
        Ok(if self.is_test_org(org_id).await? {
            &self.sandbox.client_config
        } else {
            &self.client_config
        })
    }

    /// The sandbox cashier phone of test twin `org_id`: one per twin, so that twins are
    /// separate organizations in the sandbox Kaspi (`79` and eight digits of the id).
    pub fn sandbox_cashier_phone(org_id: i64) -> String {
        format!("79{:08}", org_id.rem_euclid(100_000_000))
    }

    /// Logs `phone`, a cashier of `org_id`, in to the sandbox Kaspi (the simulator answers its
    /// own login questions).
    pub async fn sandbox_login(&self, org_id: i64, phone: &str) -> Result<Terminal, GatewayError> {
        let phone = kaspi::phone::normalize(phone).map_err(|_| {
            GatewayError::Internal(format!("sandbox cashier phone {phone:?} is invalid"))
        })?;
        let mut prompt = SandboxPrompt {
            sim: self.sandbox.sim.clone(),
            phone: phone.as_str().to_owned(),
        };
        connect_terminal(
            &self.store,
            &self.master_key,
            self.sandbox.client_config.clone(),
            org_id,
            &phone,
            &mut prompt,
        )
        .await
    }

    /// The terminal rows of `org_id`; a test twin that has none gets its sandbox cashier now.
    async fn rows_for(&self, org_id: i64) -> Result<Vec<Terminal>, GatewayError> {
        let rows = self.store.orgs().terminals_for_org(org_id).await?;
        if !rows.is_empty() || !self.is_test_org(org_id).await? {
            return Ok(rows);
        }
        let _one_at_a_time = self.first_logins.lock().await;
        let rows = self.store.orgs().terminals_for_org(org_id).await?;
        if !rows.is_empty() {
            return Ok(rows);
        }
        let terminal = self
            .sandbox_login(org_id, &Terminals::sandbox_cashier_phone(org_id))
            .await?;
        tracing::info!(
            org_id,
            "logged the test mode's cashier in to the sandbox Kaspi"
        );
        Ok(vec![terminal])
    }

    /// The usable cashiers of `org_id`, ready for calls: [`GatewayError::NoTerminal`] when it
    /// has none, the first one's reason when none is usable. A cashier that needs a login is
    /// left out (its `needs_login` was logged when it happened).
    pub async fn load(&self, org_id: i64) -> Result<Arc<Cashiers>, GatewayError> {
        self.sync_app_build().await;
        let rows = self.rows_for(org_id).await?;
        let config = self.client_config_for(org_id).await?;
        let mut usable = Vec::with_capacity(rows.len());
        let mut first_error = None;
        for row in &rows {
            match self.load_row(row, config) {
                Ok(loaded) => usable.push(loaded),
                Err(e) => {
                    if matches!(e, GatewayError::Internal(_)) {
                        tracing::warn!(org_id, terminal = row.id, error = %e, "a cashier cannot be used");
                    }
                    first_error.get_or_insert(e);
                }
            }
        }
        if usable.is_empty() {
            return Err(first_error.unwrap_or(GatewayError::NoTerminal));
        }
        Ok(Arc::new(Cashiers { org_id, usable }))
    }

    /// Cashier `terminal` ready for calls, its client reaching Kaspi as `config` says.
    fn load_row(
        &self,
        terminal: &Terminal,
        config: &ClientConfig,
    ) -> Result<Arc<Loaded>, GatewayError> {
        if terminal.state == TerminalState::NeedsLogin {
            return Err(GatewayError::SessionInvalid(
                terminal
                    .state_reason
                    .clone()
                    .unwrap_or_else(|| "the cashier must log in again".into()),
            ));
        }
        if let Some(hit) = self.cached(terminal.id, terminal.version) {
            return Ok(hit);
        }
        let sealed = terminal
            .session_sealed
            .as_deref()
            .ok_or_else(|| GatewayError::SessionInvalid("no session stored".into()))?;
        let session = open_session(&self.master_key, terminal, sealed)?;
        let device = open_device(&self.master_key, terminal)?;
        let client = Client::with_http_client(config.clone(), device, self.http.clone());
        let loaded = Arc::new(Loaded {
            terminal_id: terminal.id,
            org_id: terminal.org_id,
            phone: terminal.phone.clone(),
            version: terminal.version,
            client,
            session,
        });
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(terminal.id, loaded.clone());
        }
        Ok(loaded)
    }

    fn cached(&self, terminal_id: i64, version: i64) -> Option<Arc<Loaded>> {
        let cache = self.cache.lock().ok()?;
        cache
            .get(&terminal_id)
            .filter(|l| l.version == version)
            .cloned()
    }

    /// Runs `call` with one of `org_id`'s cashiers (the one free soonest); when Kaspi says
    /// the session is dead, refreshes it once and runs `call` again; when that cashier cannot
    /// be used, with the next. `what` names the call in the metrics (`crate::metrics`).
    ///
    /// `call` gets the cashier by value (an `Arc`) so that its future borrows nothing of it:
    /// `|k| async move { k.client.invoice_details(&k.session, op).await }`.
    pub async fn call<T, F, Fut>(
        &self,
        org_id: i64,
        what: &'static str,
        call: F,
    ) -> Result<T, GatewayError>
    where
        F: Fn(Arc<Loaded>) -> Fut,
        Fut: Future<Output = Result<T, kaspi::Error>>,
    {
        let cashiers = self.load(org_id).await?;
        self.call_preferring(&cashiers, None, what, call).await
    }

    /// [`Terminals::call`] with the cashiers already loaded by [`Terminals::load`].
    pub async fn call_with<T, F, Fut>(
        &self,
        cashiers: &Cashiers,
        what: &'static str,
        call: F,
    ) -> Result<T, GatewayError>
    where
        F: Fn(Arc<Loaded>) -> Fut,
        Fut: Future<Output = Result<T, kaspi::Error>>,
    {
        self.call_preferring(cashiers, None, what, call).await
    }

    /// [`Terminals::call`] for invoice `invoice_id` of `org_id` at Kaspi (its cancel, a
    /// refund): through the cashier that created it while that one is usable.
    /// `cashiers` are `org_id`'s, loaded by [`Terminals::load`].
    pub async fn call_on_invoice<T, F, Fut>(
        &self,
        cashiers: &Cashiers,
        org_id: i64,
        invoice_id: i64,
        what: &'static str,
        call: F,
    ) -> Result<T, GatewayError>
    where
        F: Fn(Arc<Loaded>) -> Fut,
        Fut: Future<Output = Result<T, kaspi::Error>>,
    {
        let creator = self
            .store
            .orgs()
            .invoice_terminal(org_id, invoice_id)
            .await?;
        self.call_preferring(cashiers, creator, what, call).await
    }

    /// [`Terminals::call_with`] through cashier `preferred` (a terminal id) while it is
    /// usable, else as any call: for what concerns an operation that cashier made.
    pub async fn call_preferring<T, F, Fut>(
        &self,
        cashiers: &Cashiers,
        preferred: Option<i64>,
        what: &'static str,
        call: F,
    ) -> Result<T, GatewayError>
    where
        F: Fn(Arc<Loaded>) -> Fut,
        Fut: Future<Output = Result<T, kaspi::Error>>,
    {
        let mut left: Vec<Arc<Loaded>> = cashiers.usable.clone();
        loop {
            let chosen = preferred.and_then(|id| left.iter().position(|k| k.terminal_id == id));
            let loaded = match chosen {
                Some(i) => {
                    let loaded = left.swap_remove(i);
                    self.pace(&[loaded.terminal_id], what).await;
                    loaded
                }
                None => {
                    let ids: Vec<i64> = left.iter().map(|k| k.terminal_id).collect();
                    let i = self.pace(&ids, what).await;
                    left.swap_remove(i)
                }
            };
            match self.call_loaded(loaded.clone(), what, &call).await {
                Err(GatewayError::SessionInvalid(why)) if !left.is_empty() => {
                    // Nothing was done at Kaspi with a dead session: another cashier may.
                    tracing::warn!(
                        org_id = loaded.org_id,
                        terminal = loaded.terminal_id,
                        reason = %why,
                        "a Kaspi cashier cannot be used; the call goes to another cashier of the organization"
                    );
                }
                other => return other,
            }
        }
    }

    /// Like [`Terminals::call`], but only on a call slot nobody else needs now (of any of the
    /// organization's cashiers): `None` (and no call) when all their calls are spaced out,
    /// for work that can come back later.
    pub async fn call_spare<T, F, Fut>(
        &self,
        org_id: i64,
        what: &'static str,
        call: F,
    ) -> Result<Option<T>, GatewayError>
    where
        F: Fn(Arc<Loaded>) -> Fut,
        Fut: Future<Output = Result<T, kaspi::Error>>,
    {
        let cashiers = self.load(org_id).await?;
        let ids: Vec<i64> = cashiers.usable.iter().map(|k| k.terminal_id).collect();
        let Some(i) = self.budget.try_reserve_any(&ids, Instant::now()) else {
            crate::metrics::kaspi_spare_missed(what);
            return Ok(None);
        };
        let loaded = cashiers.usable[i].clone();
        self.call_loaded(loaded, what, &call).await.map(Some)
    }

    /// Waits for the next call slot of one of `cashiers` (terminal ids, not empty), for call
    /// `what`; the index of the cashier whose slot it is.
    async fn pace(&self, cashiers: &[i64], what: &'static str) -> usize {
        let now = Instant::now();
        let (i, at) = self.budget.reserve_soonest(cashiers, now);
        if at > now {
            tokio::time::sleep_until(at.into()).await;
        }
        crate::metrics::kaspi_throttle_wait(what, at.saturating_duration_since(now));
        i
    }

    /// Makes `call` now with `loaded`; refreshes the session once if Kaspi says it is dead.
    async fn call_loaded<T, F, Fut>(
        &self,
        loaded: Arc<Loaded>,
        what: &'static str,
        call: &F,
    ) -> Result<T, GatewayError>
    where
        F: Fn(Arc<Loaded>) -> Fut,
        Fut: Future<Output = Result<T, kaspi::Error>>,
    {
        let org_id = loaded.org_id;
        let answer = match self.attempt(&loaded, what, call).await {
            Err(e) if e.is_session() => {
                tracing::info!(org_id, terminal = loaded.terminal_id, error = %e, "Kaspi session rejected; refreshing");
                let refreshed = self.refresh(&loaded).await?;
                self.pace(&[refreshed.terminal_id], what).await;
                match self.attempt(&refreshed, what, call).await {
                    Err(e) if e.is_session() => {
                        tracing::warn!(org_id, terminal = loaded.terminal_id, error = %e, "Kaspi rejected a freshly refreshed session");
                        return Err(GatewayError::SessionInvalid(e.to_string()));
                    }
                    other => other.map_err(|e| (e, refreshed)),
                }
            }
            other => other.map_err(|e| (e, loaded)),
        };
        match answer {
            Ok(value) => {
                self.app_build.accepted(&self.store).await;
                Ok(value)
            }
            Err((e, at)) => Err(self.failed(&at, e).await),
        }
    }

    /// Makes `call` with `loaded`. A call Kaspi throttled (HTTP 429) did nothing there, so it
    /// is made again on the cashier's next slot (after Kaspi's `Retry-After`, when it says
    /// one), at most [`THROTTLED_RETRIES`] times: a create is not failed for Kaspi's
    /// throttle when waiting a moment gets it through.
    async fn attempt<T, F, Fut>(
        &self,
        loaded: &Arc<Loaded>,
        what: &'static str,
        call: &F,
    ) -> Result<T, kaspi::Error>
    where
        F: Fn(Arc<Loaded>) -> Fut,
        Fut: Future<Output = Result<T, kaspi::Error>>,
    {
        let mut retries = 0;
        loop {
            match crate::metrics::kaspi_call(what, call(loaded.clone())).await {
                Err(kaspi::Error::Throttled { retry_after }) if retries < THROTTLED_RETRIES => {
                    retries += 1;
                    tracing::debug!(
                        org_id = loaded.org_id,
                        terminal = loaded.terminal_id,
                        call = what,
                        "Kaspi throttled the cashier; the call goes again on its next slot"
                    );
                    if let Some(wait) = retry_after {
                        tokio::time::sleep(wait.min(MAX_RETRY_AFTER)).await;
                    }
                    self.pace(&[loaded.terminal_id], what).await;
                }
                other => return other,
            }
        }
    }

    /// What a failed call of cashier `at` means here: an evicted session puts the cashier (at
    /// its version) in `needs_login`; a refused app build is noted for the gateway.
    async fn failed(&self, at: &Loaded, e: kaspi::Error) -> GatewayError {
        match e {
            kaspi::Error::SessionEvicted { .. } => {
                tracing::warn!(org_id = at.org_id, terminal = at.terminal_id, error = %e, "Kaspi ended the cashier's session: signed in on another device");
                match self.needs_login(at, SIGNED_IN_ELSEWHERE).await {
                    Ok(e) | Err(e) => e,
                }
            }
            kaspi::Error::AppBuildOutdated { build, message } => {
                self.app_build.refused(&self.store, &build, &message).await;
                GatewayError::AppBuildOutdated { build }
            }
            other => GatewayError::from_kaspi(other),
        }
    }

    /// Marks cashier `at` (seen at its version) as needing a login for `reason`, says in the
    /// log which command to run, and gives the error its calls answer now.
    async fn needs_login(&self, at: &Loaded, reason: &str) -> Result<GatewayError, GatewayError> {
        self.store
            .orgs()
            .update_terminal_session(
                at.terminal_id,
                at.version,
                None,
                TerminalState::NeedsLogin,
                Some(reason),
            )
            .await?;
        let slug = self
            .store
            .orgs()
            .org_by_id(at.org_id)
            .await
            .ok()
            .flatten()
            .map_or_else(|| at.org_id.to_string(), |o| o.slug);
        tracing::error!(
            org_id = at.org_id,
            terminal = at.terminal_id,
            reason,
            "a Kaspi cashier of organization `{slug}` must log in again: run \
             `kassa terminal connect --org {slug} --phone {}`",
            at.phone
        );
        Ok(GatewayError::SessionInvalid(reason.to_owned()))
    }

    /// Refreshes the session of cashier `stale` (seen at its version). If another task or
    /// process already replaced it, that newer session is used instead.
    async fn refresh(&self, stale: &Loaded) -> Result<Arc<Loaded>, GatewayError> {
        let _one_at_a_time = self.refreshing.lock().await;
        let current = self.row(stale).await?;
        let config = self.client_config_for(stale.org_id).await?;
        if current.version != stale.version {
            return self.load_row(&current, config);
        }
        match crate::metrics::kaspi_call("refresh_session", stale.client.refresh(&stale.session))
            .await
        {
            Ok(session) => {
                let sealed = seal_session(&self.master_key, &current, &session);
                let stored = self
                    .store
                    .orgs()
                    .update_terminal_session(
                        stale.terminal_id,
                        stale.version,
                        Some(&sealed),
                        TerminalState::Active,
                        None,
                    )
                    .await?;
                if stored {
                    tracing::info!(
                        org_id = stale.org_id,
                        terminal = stale.terminal_id,
                        "Kaspi session refreshed"
                    );
                }
                self.load_row(&self.row(stale).await?, config)
            }
            Err(e) if e.is_session() || matches!(e, kaspi::Error::Kaspi { .. }) => {
                let reason = format!("Kaspi refused to refresh the session: {e}");
                Err(self.needs_login(stale, &reason).await?)
            }
            Err(e) => Err(self.failed(stale, e).await),
        }
    }

    /// The row of cashier `of` as it is now; [`GatewayError::NoTerminal`] when it was removed.
    async fn row(&self, of: &Loaded) -> Result<Terminal, GatewayError> {
        self.store
            .orgs()
            .terminals_for_org(of.org_id)
            .await?
            .into_iter()
            .find(|t| t.id == of.terminal_id)
            .ok_or(GatewayError::NoTerminal)
    }
}
