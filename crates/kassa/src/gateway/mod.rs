//! What the gateway does behind its HTTP surfaces: invoices sent to Kaspi and followed to their
//! end, the cashiers' sessions, the sandbox's payer. The background work that follows them is in `crate::jobs`.
//!
//! - `terminals.rs`: Kaspi calls spread over each organization's cashiers, refresh on session
//!   death; `budget.rs`: each cashier's budget of calls; `connect.rs`: logging a cashier in,
//!   sealed devices and sessions.
//! - `invoices.rs`: create (stored first, then sent; a lost answer is reconciled, never sent
//!   twice), cancel, one status check, the sandbox payer's actions.
//! - `refunds.rs`: refunds queued, sent by their job, and confirmed when an answer was lost.
//! - `qr.rs`: Kaspi QR payment links.
//! - `history.rs`: each cashier's operations history synced into the store.
//! - `bootstrap.rs`: the `demo` organization with a logged-in sandbox cashier on first start;
//!   cashiers logged in again if the sandbox Kaspi lost its saved state.
//! - `app_build.rs`: the Kaspi app version and build as run-time settings, and the
//!   `app_build_outdated` state when Kaspi refuses the build in use.
//!
//! Both API surfaces call the same [`Gateway`] methods, so a payment behaves the same
//! whichever face created it.

mod app_build;
mod bootstrap;
mod budget;
mod connect;
mod history;
mod invoices;
mod qr;
mod refunds;
mod subscriptions;
mod terminals;

use std::sync::Arc;
use std::time::Duration;

pub(crate) use app_build::AppBuild;
pub use app_build::{
    AppBuildState, SETTING_APP_BUILD, SETTING_APP_BUILD_REFUSED, SETTING_APP_VERSION,
};
pub use bootstrap::{SandboxPrompt, DEMO_CASHIER_PHONE, DEMO_ORG_SLUG};
pub use connect::connect_terminal;
pub(crate) use invoices::{Checked, Refused};
pub use invoices::{NewRemoteInvoice, SandboxAction};
pub use qr::NewQrPayment;
pub use refunds::RefundRequest;
pub(crate) use refunds::RefundStep;
pub use subscriptions::SubscriptionActError;
pub use terminals::{Cashiers, KaspiSetup, Loaded, SandboxKaspi, Terminals, SIGNED_IN_ELSEWHERE};

use crate::secrets::MasterKey;
use crate::store::{InvoiceStatus, RefundRefusal, Store, StoreError, TerminalState};

/// What a refused refund says.
fn refusal_message(refusal: &RefundRefusal) -> String {
    match refusal {
        RefundRefusal::NotPaid(status) => {
            format!(
                "only paid invoices can be refunded; this one is {}",
                status.as_str()
            )
        }
        RefundRefusal::FullyRefunded => "the invoice is already fully refunded".into(),
        RefundRefusal::TooMuch { left } => format!(
            "the refund is more than what is left to refund ({})",
            left.to_decimal_string()
        ),
        RefundRefusal::BadAmount => "the refund amount must be positive".into(),
        RefundRefusal::NoCart => "this invoice was not made from a cart: refund an amount".into(),
        RefundRefusal::NotSold { catalog_item_id } => {
            format!("this invoice did not sell catalog item {catalog_item_id}")
        }
        RefundRefusal::TooManyReturned {
            catalog_item_id,
            left,
        } => format!("only {left} of catalog item {catalog_item_id} can still be returned"),
        RefundRefusal::ItemsDoNotFit(why) => why.clone(),
    }
}

/// Why a gateway action did not happen.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// No such row in this organization.
    #[error("not found")]
    NotFound,
    /// Only a pending invoice can be cancelled.
    #[error("the invoice is {} and cannot be cancelled", status.as_str())]
    NotCancellable { status: InvoiceStatus },
    /// The invoice has no Kaspi operation yet (its creation is being reconciled).
    #[error("the invoice is still being created at Kaspi; try again in a few seconds")]
    NotAtKaspiYet,
    /// The organization has no cashier logged in.
    #[error("no Kaspi cashier is connected for this organization; run `kassa terminal connect`")]
    NoTerminal,
    /// The cashier's session is dead and could not be refreshed; why, for people.
    #[error("the Kaspi cashier session is no longer valid; the cashier must log in again with `kassa terminal connect` ({0})")]
    SessionInvalid(String),
    /// Kaspi refuses the app build presented (`OldVersionToUpdate`), for every cashier.
    #[error("Kaspi no longer accepts app build {build} (it asks for a newer app); set a newer one with `kassa kaspi app-build set <build> --version <version>` (setting kaspi.app_build), which takes effect without a restart")]
    AppBuildOutdated { build: String },
    /// Kaspi knows no client with this phone number.
    #[error("Kaspi has no client with this phone number")]
    KaspiClientNotFound,
    /// Kaspi refused the request.
    #[error("Kaspi refused: {0}")]
    KaspiRefused(String),
    /// The cashier's login did not finish: what happened and what to do.
    #[error("{0}")]
    LoginFailed(String),
    /// The request to Kaspi may or may not have taken effect: its answer was lost.
    #[error("{0}")]
    OutcomeUnknown(String),
    /// Kaspi could not be reached or answered with an error that may pass.
    #[error("Kaspi is unavailable: {0}")]
    KaspiUnavailable(String),
    /// The refund cannot be made (not paid, nothing or not that much left).
    #[error("{}", refusal_message(.0))]
    NotRefundable(RefundRefusal),
    /// The sandbox payer cannot do that (not sandbox mode, or the operation is not open).
    #[error("{0}")]
    Sandbox(String),
    /// A fault of ours; the detail is logged, not shown.
    #[error("internal error: {0}")]
    Internal(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl GatewayError {
    /// Whether the error waits for a person (a cashier login, a newer app build): work that
    /// met it waits and is tried again later, it is not failed.
    pub fn waits_for_person(&self) -> bool {
        matches!(
            self,
            GatewayError::SessionInvalid(_)
                | GatewayError::NoTerminal
                | GatewayError::AppBuildOutdated { .. }
        )
    }

    /// Sorts a Kaspi error into what the API surfaces answer.
    pub fn from_kaspi(e: kaspi::Error) -> GatewayError {
        use kaspi::Error as K;
        match e {
            K::Session { .. } | K::ReauthRequired(_) => GatewayError::SessionInvalid(e.to_string()),
            K::SessionEvicted { .. } => GatewayError::SessionInvalid(SIGNED_IN_ELSEWHERE.into()),
            K::AppBuildOutdated { build, .. } => GatewayError::AppBuildOutdated { build },
            K::Kaspi { ref code, .. } if code.as_deref() == Some("ClientNotFound") => {
                GatewayError::KaspiClientNotFound
            }
            K::Kaspi { message, .. } => GatewayError::KaspiRefused(message),
            K::Login(login) => GatewayError::LoginFailed(login.to_string()),
            K::OutcomeUnknown { .. } => GatewayError::OutcomeUnknown(e.to_string()),
            K::Transport { .. } | K::Throttled { .. } | K::Http { .. } | K::Decode(_) => {
                GatewayError::KaspiUnavailable(e.to_string())
            }
        }
    }
}

/// Tuning of the gateway's background work. The defaults suit production; tests shorten them.
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    /// Delays between status checks of an open invoice, by attempt; the last one repeats.
    pub poll_schedule: Vec<Duration>,
    /// How long an invoice is given at Kaspi before Kassa stops expecting payment.
    pub invoice_ttl: Duration,
    /// How often the workers look for due jobs.
    pub tick: Duration,
    /// How long a claimed job is leased; the worker renews the lease every third of this
    /// while the job runs, so a job whose process died is taken up again within one lease.
    pub lease: Duration,
    /// Jobs claimed at once.
    pub batch: u32,
    /// Delays between history look-ups of a create whose answer was lost; after the last one
    /// the invoice is failed (Kaspi never received it).
    pub reconcile_schedule: Vec<Duration>,
    /// How long after a create starts its reconciliation first runs if the create itself
    /// never got to record an outcome (its process died while Kaspi was asked): longer than a
    /// create takes.
    pub create_grace: Duration,
    /// After a cancel or an expiry, one more check this much later, so a payment made in the
    /// meantime is still recorded.
    pub late_check: Duration,
    /// How often each cashier's operations history is synced while the organization has
    /// open invoices: one history page settles many invoices at once, so this, not polling
    /// each invoice, is how payments are detected at scale.
    pub history_every: Duration,
    /// How often it is synced otherwise (static QR payments can still appear).
    pub history_idle_every: Duration,
    /// The most Kaspi calls a second this process makes for one cashier (Kaspi throttles
    /// above about 20); an organization with several cashiers has this for each.
    pub kaspi_calls_per_sec: u32,
    /// How often run-time settings (the Kaspi app build) are read again.
    pub settings_every: Duration,
    /// How often the webhook dispatcher looks for events committed by other processes
    /// sharing the database; those of this process wake it at once.
    pub webhook_poll: Duration,
    /// How long audit log entries are kept.
    pub audit_retention: Duration,
}

impl Default for GatewaySettings {
    fn default() -> GatewaySettings {
        let s = Duration::from_secs;
        GatewaySettings {
            // Individual look-ups are the slow safety net for what the history sync has not
            // settled (it settles open invoices within about `history_every`).
            poll_schedule: vec![s(60), s(120), s(300), s(600)],
            invoice_ttl: s(24 * 3600),
            tick: Duration::from_millis(250),
            lease: s(3),
            batch: 64,
            reconcile_schedule: vec![s(2), s(5), s(15), s(30), s(60)],
            create_grace: s(30),
            late_check: s(10),
            history_every: Duration::from_secs(1),
            history_idle_every: s(30),
            kaspi_calls_per_sec: crate::config::DEFAULT_KASPI_CALLS_PER_SEC,
            settings_every: s(3),
            webhook_poll: crate::webhooks::DISPATCH_POLL,
            audit_retention: crate::config::DEFAULT_AUDIT_RETENTION,
        }
    }
}

/// The health of one cashier's session, as `/status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerminalHealth {
    pub org_id: i64,
    /// The cashier (terminal id).
    pub terminal_id: i64,
    pub phone: String,
    pub healthy: bool,
    /// Why not, for people (never a secret).
    pub reason: Option<String>,
}

/// Whether organization `org_id` has a cashier whose session works (it can reach Kaspi).
pub fn org_usable(health: &[TerminalHealth], org_id: i64) -> bool {
    health.iter().any(|h| h.org_id == org_id && h.healthy)
}

/// The gateway; cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    history_pulls: RecentlyDone,
    /// Organizations' slugs by id (a slug never changes).
    slugs: std::sync::Mutex<std::collections::HashMap<i64, Arc<str>>>,
    store: Store,
    terminals: Terminals,
    settings: GatewaySettings,
}

impl Gateway {
    /// A gateway over `store` reaching Kaspi as `kaspi` says (the deployment's Kaspi, and the
    /// sandbox test organizations reach).
    pub fn new(
        store: Store,
        master_key: MasterKey,
        kaspi: KaspiSetup,
        settings: GatewaySettings,
    ) -> Gateway {
        let terminals = Terminals::new(
            store.clone(),
            master_key,
            kaspi,
            settings.kaspi_calls_per_sec,
            settings.settings_every,
        );
        Gateway {
            inner: Arc::new(Inner {
                history_pulls: RecentlyDone::default(),
                slugs: std::sync::Mutex::default(),
                store,
                terminals,
                settings,
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The clock every decision of the gateway is made by (the store's).
    pub fn clock(&self) -> &crate::clock::Clock {
        self.inner.store.clock()
    }

    /// Now on [`Gateway::clock`], in unix milliseconds.
    pub(crate) fn now_ms(&self) -> i64 {
        self.inner.store.now_ms()
    }

    pub fn terminals(&self) -> &Terminals {
        &self.inner.terminals
    }

    /// The simulator, in a sandbox deployment (test organizations reach it in any
    /// deployment: [`Gateway::sandbox_for`]).
    pub fn sandbox(&self) -> Option<&kaspi_sim::Simulator> {
        let terminals = &self.inner.terminals;
        terminals
            .sandbox_deployment()
            .then_some(&terminals.sandbox().sim)
    }

    /// The sandbox Kaspi `org_id` works against: `Some` for an organization's test mode and
    /// for every organization of a sandbox deployment, `None` for a live organization of a
    /// live deployment.
    pub async fn sandbox_for(
        &self,
        org_id: i64,
    ) -> Result<Option<&kaspi_sim::Simulator>, GatewayError> {
        let terminals = &self.inner.terminals;
        Ok(terminals
            .uses_sandbox(org_id)
            .await?
            .then_some(&terminals.sandbox().sim))
    }

    /// Whether `org_id`'s objects are sandbox ones (`is_sandbox`): it works against the
    /// sandbox Kaspi (see [`Gateway::sandbox_for`]).
    pub async fn is_sandbox(&self, org_id: i64) -> Result<bool, GatewayError> {
        self.inner.terminals.uses_sandbox(org_id).await
    }

    /// The test mode (twin) of live organization `live_org_id`, made now unless it exists,
    /// with its cashier logged in to the sandbox Kaspi. The bool: whether it was made now.
    pub async fn test_mode_of(
        &self,
        live_org_id: i64,
    ) -> Result<(crate::store::Organization, bool), GatewayError> {
        let (twin, made) = self.store().orgs().make_test_twin(live_org_id).await?;
        // Logs its cashier in if it has none yet (a call to Kaspi would do it too).
        self.inner.terminals.load(twin.id).await?;
        Ok((twin, made))
    }

    pub fn settings(&self) -> &GatewaySettings {
        &self.inner.settings
    }

    /// The slug of organization `org_id` (read once per process: slugs never change);
    /// `NotFound` when there is no such organization.
    pub async fn org_slug(&self, org_id: i64) -> Result<Arc<str>, GatewayError> {
        if let Some(slug) = self
            .inner
            .slugs
            .lock()
            .ok()
            .and_then(|slugs| slugs.get(&org_id).cloned())
        {
            return Ok(slug);
        }
        let org = self
            .inner
            .store
            .orgs()
            .org_by_id(org_id)
            .await?
            .ok_or(GatewayError::NotFound)?;
        let slug: Arc<str> = org.slug.into();
        if let Ok(mut slugs) = self.inner.slugs.lock() {
            slugs.insert(org_id, slug.clone());
        }
        Ok(slug)
    }

    /// The Kaspi app version and build in use, and whether Kaspi refuses them.
    pub async fn app_build(&self) -> Result<AppBuildState, GatewayError> {
        self.inner.terminals.app_build_state().await
    }

    /// The health of every cashier's session, by organization.
    pub async fn health(&self) -> Result<Vec<TerminalHealth>, GatewayError> {
        let terminals = self.inner.store.orgs().list_terminals().await?;
        Ok(terminals
            .into_iter()
            .map(|t| TerminalHealth {
                org_id: t.org_id,
                terminal_id: t.id,
                phone: t.phone,
                healthy: t.state == TerminalState::Active && t.session_sealed.is_some(),
                reason: t.state_reason,
            })
            .collect())
    }
}

/// Remembers, per organization, when something was last done, so that it is done at most once
/// per interval by this process.
#[derive(Default)]
struct RecentlyDone(std::sync::Mutex<std::collections::HashMap<i64, i64>>);

impl RecentlyDone {
    /// Whether it is time to do it again for `org_id` at `now_ms` (on the gateway's clock; if
    /// so, notes that it is done then).
    fn due(&self, org_id: i64, every: Duration, now_ms: i64) -> bool {
        let Ok(mut last) = self.0.lock() else {
            return true;
        };
        let now = now_ms;
        match last.get(&org_id) {
            Some(at) if now.saturating_sub(*at) < ms(every) => false,
            _ => {
                last.insert(org_id, now);
                true
            }
        }
    }
}

pub(crate) use crate::clock::ms;

/// Names the invoice a request made in that request's span (see `app::with_request_ids`), so
/// its log can be followed into the jobs that work on the invoice (their spans carry `ref_id`).
pub(crate) fn traced_invoice(id: i64) {
    tracing::Span::current().record("invoice", id);
}

/// Names the refund a request made in that request's span, as [`traced_invoice`] does.
pub(crate) fn traced_refund(id: i64) {
    tracing::Span::current().record("refund", id);
}
