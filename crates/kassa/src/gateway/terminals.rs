//! The organizations' Kaspi terminals: logging a cashier in, keeping the device and session
//! sealed in the store, and running Kaspi calls with the current session.
//!
//! Every call reads the terminal row (one point select) and rebuilds the client only when the
//! row's `version` changed, so a `kassa terminal connect` made by another process is picked up
//! by the next call. A dead session is refreshed once (sign-in-lite) and the refreshed session
//! stored with compare-and-set on `version`; when refresh is refused the terminal is marked
//! `needs_login`, the log says which command to run, and calls answer
//! [`GatewayError::SessionInvalid`] until a person logs in again. A session Kaspi ended because
//! the cashier's phone logged in on another device is not refreshed at all (it cannot be): the
//! terminal goes `needs_login` with the reason [`SIGNED_IN_ELSEWHERE`]. An app build Kaspi
//! refuses is noted for the whole gateway (`app_build.rs`).
//!
//! Each terminal keeps its own device identity, reused when the same phone logs in again, so
//! Kaspi sees one device per cashier and one cashier's login never evicts another's.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kaspi::{Client, ClientConfig, DeviceIdentity, LoginPrompt, Phone, Session};

use super::app_build::{AppBuild, AppBuildState};
use super::GatewayError;
use crate::secrets::MasterKey;
use crate::store::{JobKind, Store, Terminal, TerminalState};

/// Why a terminal needs a login when Kaspi ended its session for a login on another device.
pub const SIGNED_IN_ELSEWHERE: &str = "signed in on another device: Kaspi ended the cashier's \
     session because the same phone logged in on another device, and a refresh cannot bring it \
     back";

/// A terminal ready for calls: its client (device) and session, at one version of the row.
pub struct Loaded {
    pub version: i64,
    pub client: Client,
    pub session: Session,
}

/// Spaces the Kaspi calls of each cashier so that Kassa stays under Kaspi's throttle: a
/// generic cell rate: `per_sec` calls a second on average, `burst` at once.
struct Budget {
    interval: Duration,
    burst_window: Duration,
    /// Per organization: when the next call would be due at the steady rate.
    next: Mutex<HashMap<i64, Instant>>,
}

impl Budget {
    fn new(per_sec: u32, burst: u32) -> Budget {
        let interval = Duration::from_secs(1) / per_sec.max(1);
        Budget {
            interval,
            burst_window: interval * burst.max(1).saturating_sub(1),
            next: Mutex::new(HashMap::new()),
        }
    }

    /// Reserves the next call of `org_id`; when it may go.
    fn reserve(&self, org_id: i64, now: Instant) -> Instant {
        let Ok(mut next) = self.next.lock() else {
            return now;
        };
        let tat = next.entry(org_id).or_insert(now);
        let due = (*tat).max(now);
        *tat = due + self.interval;
        due.checked_sub(self.burst_window)
            .map_or(now, |t| t.max(now))
    }

    /// Reserves a call of `org_id` only if one may go now at the steady rate, without using
    /// the burst: what can wait (polling one invoice) takes only slots nobody else needs, and
    /// never pushes a create or a history page back.
    fn try_reserve(&self, org_id: i64, now: Instant) -> bool {
        let Ok(mut next) = self.next.lock() else {
            return false;
        };
        let tat = next.entry(org_id).or_insert(now);
        if *tat > now {
            return false;
        }
        *tat = now + self.interval;
        true
    }

    /// How many calls of `org_id` could go at once at `now` without waiting (for metrics).
    fn left(&self, org_id: i64, now: Instant) -> u32 {
        let Ok(next) = self.next.lock() else {
            return 0;
        };
        let ahead = next
            .get(&org_id)
            .map_or(Duration::ZERO, |tat| tat.saturating_duration_since(now));
        let Some(slack) = self.burst_window.checked_sub(ahead) else {
            return 0;
        };
        let calls = slack.as_nanos() / self.interval.as_nanos().max(1) + 1;
        u32::try_from(calls).unwrap_or(u32::MAX)
    }
}

/// The terminals of every organization, as this process uses them.
pub struct Terminals {
    store: Store,
    master_key: MasterKey,
    client_config: ClientConfig,
    http: reqwest::Client,
    cache: Mutex<HashMap<i64, Arc<Loaded>>>,
    /// Serialises refreshes per organization within this process.
    refreshing: tokio::sync::Mutex<()>,
    budget: Budget,
    /// The app version and build presented, as the settings say.
    app_build: AppBuild,
}

fn device_context(org_id: i64) -> String {
    format!("terminal-device:{org_id}")
}

fn session_context(org_id: i64) -> String {
    format!("terminal-session:{org_id}")
}

/// Logs the cashier with `phone` in for `org_id` (asking `prompt` for the password, SMS code or
/// app confirmation) and stores the device and session, sealed. A new login replaces the old
/// terminal; the device identity is kept when the phone is the same, so Kaspi sees one device.
pub async fn connect_terminal(
    store: &Store,
    master_key: &MasterKey,
    client_config: ClientConfig,
    org_id: i64,
    phone: &Phone,
    prompt: &mut impl LoginPrompt,
) -> Result<Terminal, GatewayError> {
    // The app build stored by `kassa kaspi app-build set`, also in a process that only logs in.
    AppBuild::new(client_config.app.clone(), Duration::ZERO)
        .sync(store)
        .await?;
    let existing = store.orgs().terminal_for_org(org_id).await?;
    let device = match existing.filter(|t| t.phone == phone.as_str()) {
        Some(t) => open_device(master_key, org_id, &t.device_sealed)?,
        None => DeviceIdentity::generate(),
    };
    let client = Client::new(client_config, device).map_err(GatewayError::from_kaspi)?;
    let session = client
        .login(phone, prompt)
        .await
        .map_err(GatewayError::from_kaspi)?;
    let device_sealed = master_key.seal(
        client.device().to_json().as_bytes(),
        &device_context(org_id),
    );
    let session_sealed = master_key.seal(session.to_json().as_bytes(), &session_context(org_id));
    let terminal = store
        .orgs()
        .upsert_terminal(
            org_id,
            phone.as_str(),
            &device_sealed,
            Some(&session_sealed),
            TerminalState::Active,
        )
        .await?;
    // Work that waited for this login resumes: the history sync (which settles open invoices)
    // runs at once.
    let now = store.now_ms();
    store
        .jobs()
        .pull_job_forward(JobKind::SyncHistory, org_id, now, now)
        .await?;
    tracing::info!(org_id, terminal = terminal.id, "cashier logged in to Kaspi");
    Ok(terminal)
}

/// Opens a sealed JSON secret of `org_id`; `what` names it in errors (never its content).
fn open_sealed(
    master_key: &MasterKey,
    context: &str,
    sealed: &[u8],
    what: &str,
) -> Result<String, GatewayError> {
    let bytes = master_key
        .open(sealed, context)
        .map_err(|e| GatewayError::Internal(format!("{what}: {e}")))?;
    String::from_utf8(bytes).map_err(|_| GatewayError::Internal(format!("{what}: not UTF-8")))
}

fn open_device(
    master_key: &MasterKey,
    org_id: i64,
    sealed: &[u8],
) -> Result<DeviceIdentity, GatewayError> {
    let what = format!("terminal device of org {org_id}");
    let text = open_sealed(master_key, &device_context(org_id), sealed, &what)?;
    DeviceIdentity::from_json(&text).map_err(|e| GatewayError::Internal(format!("{what}: {e}")))
}

fn open_session(
    master_key: &MasterKey,
    org_id: i64,
    sealed: &[u8],
) -> Result<Session, GatewayError> {
    let what = format!("terminal session of org {org_id}");
    let text = open_sealed(master_key, &session_context(org_id), sealed, &what)?;
    // The serde error could quote the session's text: say only that it is unreadable.
    Session::from_json(&text).map_err(|_| GatewayError::Internal(format!("{what}: unreadable")))
}

impl Terminals {
    /// `calls_per_sec`: the most Kaspi calls a second this process makes for one cashier.
    pub fn new(
        store: Store,
        master_key: MasterKey,
        client_config: ClientConfig,
        calls_per_sec: u32,
        settings_every: Duration,
    ) -> Terminals {
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
                let terminals = self.store.orgs().list_terminals().await.unwrap_or_default();
                for t in terminals {
                    if let Err(e) = self
                        .store
                        .jobs()
                        .pull_job_forward(JobKind::SyncHistory, t.org_id, now, now)
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

    /// Waits for the cashier's next call slot, for call `what`.
    async fn pace(&self, org_id: i64, what: &'static str) {
        let now = Instant::now();
        let at = self.budget.reserve(org_id, now);
        if at > now {
            tokio::time::sleep_until(at.into()).await;
        }
        crate::metrics::kaspi_throttle_wait(what, at.saturating_duration_since(now));
    }

    /// How many Kaspi calls `org_id`'s cashier could make at once now, within this process's
    /// budget (`--kaspi-calls-per-sec`).
    pub fn calls_left(&self, org_id: i64) -> u32 {
        self.budget.left(org_id, Instant::now())
    }

    /// How Kaspi is reached.
    pub fn client_config(&self) -> &ClientConfig {
        &self.client_config
    }

    /// The terminal of `org_id`, ready for calls; an error when there is none or it needs a
    /// login.
    pub async fn load(&self, org_id: i64) -> Result<Arc<Loaded>, GatewayError> {
        self.sync_app_build().await;
        let terminal = self
            .store
            .orgs()
            .terminal_for_org(org_id)
            .await?
            .ok_or(GatewayError::NoTerminal)?;
        self.load_row(&terminal)
    }

    fn load_row(&self, terminal: &Terminal) -> Result<Arc<Loaded>, GatewayError> {
        let org_id = terminal.org_id;
        if terminal.state == TerminalState::NeedsLogin {
            return Err(GatewayError::SessionInvalid(
                terminal
                    .state_reason
                    .clone()
                    .unwrap_or_else(|| "the cashier must log in again".into()),
            ));
        }
        if let Some(hit) = self.cached(org_id, terminal.version) {
            return Ok(hit);
        }
        let sealed = terminal
            .session_sealed
            .as_deref()
            .ok_or_else(|| GatewayError::SessionInvalid("no session stored".into()))?;
        let session = open_session(&self.master_key, org_id, sealed)?;
        let device = open_device(&self.master_key, org_id, &terminal.device_sealed)?;
        let client =
            Client::with_http_client(self.client_config.clone(), device, self.http.clone());
        let loaded = Arc::new(Loaded {
            version: terminal.version,
            client,
            session,
        });
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(org_id, loaded.clone());
        }
        Ok(loaded)
    }

    fn cached(&self, org_id: i64, version: i64) -> Option<Arc<Loaded>> {
        let cache = self.cache.lock().ok()?;
        cache.get(&org_id).filter(|l| l.version == version).cloned()
    }

    /// Runs `call` with `org_id`'s session; when Kaspi says the session is dead, refreshes it
    /// once and runs `call` again. `what` names the call in the metrics (`crate::metrics`).
    ///
    /// `call` gets the terminal by value (an `Arc`) so that its future borrows nothing of it:
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
        let loaded = self.load(org_id).await?;
        self.call_with(org_id, loaded, what, call).await
    }

    /// [`Terminals::call`] with a terminal already loaded by [`Terminals::load`].
    pub async fn call_with<T, F, Fut>(
        &self,
        org_id: i64,
        loaded: Arc<Loaded>,
        what: &'static str,
        call: F,
    ) -> Result<T, GatewayError>
    where
        F: Fn(Arc<Loaded>) -> Fut,
        Fut: Future<Output = Result<T, kaspi::Error>>,
    {
        self.pace(org_id, what).await;
        self.call_loaded(org_id, loaded, what, call).await
    }

    /// Like [`Terminals::call`], but only on a call slot nobody else needs now: `None` (and
    /// no call) when the cashier's calls are spaced out, for work that can come back later.
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
        let loaded = self.load(org_id).await?;
        if !self.budget.try_reserve(org_id, Instant::now()) {
            crate::metrics::kaspi_spare_missed(what);
            return Ok(None);
        }
        self.call_loaded(org_id, loaded, what, call).await.map(Some)
    }

    /// Makes `call` now with `loaded`; refreshes the session once if Kaspi says it is dead.
    async fn call_loaded<T, F, Fut>(
        &self,
        org_id: i64,
        loaded: Arc<Loaded>,
        what: &'static str,
        call: F,
    ) -> Result<T, GatewayError>
    where
        F: Fn(Arc<Loaded>) -> Fut,
        Fut: Future<Output = Result<T, kaspi::Error>>,
    {
        let answer = match crate::metrics::kaspi_call(what, call(loaded.clone())).await {
            Err(e) if e.is_session() => {
                tracing::info!(org_id, error = %e, "Kaspi session rejected; refreshing");
                let refreshed = self.refresh(org_id, &loaded).await?;
                self.pace(org_id, what).await;
                match crate::metrics::kaspi_call(what, call(refreshed.clone())).await {
                    Err(e) if e.is_session() => {
                        tracing::warn!(org_id, error = %e, "Kaspi rejected a freshly refreshed session");
                        return Err(GatewayError::SessionInvalid(e.to_string()));
                    }
                    other => other.map_err(|e| (e, refreshed.version)),
                }
            }
            other => other.map_err(|e| (e, loaded.version)),
        };
        match answer {
            Ok(value) => {
                self.app_build.accepted(&self.store).await;
                Ok(value)
            }
            Err((e, version)) => Err(self.failed(org_id, version, e).await),
        }
    }

    /// What a failed call means here: an evicted session puts the terminal (at `version`) in
    /// `needs_login`; a refused app build is noted for the gateway.
    async fn failed(&self, org_id: i64, version: i64, e: kaspi::Error) -> GatewayError {
        match e {
            kaspi::Error::SessionEvicted { .. } => {
                tracing::warn!(org_id, error = %e, "Kaspi ended the cashier's session: signed in on another device");
                match self.needs_login(org_id, version, SIGNED_IN_ELSEWHERE).await {
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

    /// Marks the terminal of `org_id` (seen at `version`) as needing a login for `reason`,
    /// says in the log which command to run, and gives the error calls answer now.
    async fn needs_login(
        &self,
        org_id: i64,
        version: i64,
        reason: &str,
    ) -> Result<GatewayError, GatewayError> {
        self.store
            .orgs()
            .update_terminal_session(
                org_id,
                version,
                None,
                TerminalState::NeedsLogin,
                Some(reason),
            )
            .await?;
        let slug = self
            .store
            .orgs()
            .org_by_id(org_id)
            .await
            .ok()
            .flatten()
            .map_or_else(|| org_id.to_string(), |o| o.slug);
        let phone = self
            .store
            .orgs()
            .terminal_for_org(org_id)
            .await
            .ok()
            .flatten()
            .map_or_else(String::new, |t| t.phone);
        tracing::error!(
            org_id,
            reason,
            "the Kaspi cashier of organization `{slug}` must log in again: run \
             `kassa terminal connect --org {slug} --phone {phone}`"
        );
        Ok(GatewayError::SessionInvalid(reason.to_owned()))
    }

    /// Refreshes the session seen at `stale.version`. If another task or process already
    /// replaced it, that newer session is used instead.
    async fn refresh(&self, org_id: i64, stale: &Loaded) -> Result<Arc<Loaded>, GatewayError> {
        let _one_at_a_time = self.refreshing.lock().await;
        let current = self
            .store
            .orgs()
            .terminal_for_org(org_id)
            .await?
            .ok_or(GatewayError::NoTerminal)?;
        if current.version != stale.version {
            return self.load_row(&current);
        }
        match crate::metrics::kaspi_call("refresh_session", stale.client.refresh(&stale.session))
            .await
        {
            Ok(session) => {
                let sealed = self
                    .master_key
                    .seal(session.to_json().as_bytes(), &session_context(org_id));
                let stored = self
                    .store
                    .orgs()
                    .update_terminal_session(
                        org_id,
                        stale.version,
                        Some(&sealed),
                        TerminalState::Active,
                        None,
                    )
                    .await?;
                if stored {
                    tracing::info!(org_id, "Kaspi session refreshed");
                }
                self.load(org_id).await
            }
            Err(e) if e.is_session() || matches!(e, kaspi::Error::Kaspi { .. }) => {
                let reason = format!("Kaspi refused to refresh the session: {e}");
                Err(self.needs_login(org_id, stale.version, &reason).await?)
            }
            Err(e) => Err(self.failed(org_id, stale.version, e).await),
        }
    }
}
