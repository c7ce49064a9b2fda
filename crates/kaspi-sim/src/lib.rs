//! A Kaspi Pay simulator speaking the POS private protocol (`shared/kaspi/PROTOCOL.md`, as
//! pykaspi 0.1.2 drives it), so the gateway's sandbox and every test exercise the real
//! client over real HTTP.
//!
//! One [`Simulator`] serves the three Kaspi hosts under one listener, at `/entrance-pay`,
//! `/mtoken` and `/qrpay`, plus a control API at `/_control`; its [`Simulator::router`] can
//! be served alone ([`serve`], [`spawn`]) or nested under a prefix in another server.
//!
//! How a request flows:
//! - `faults` counts the call and, for mtoken and qrpay, may delay, fail or lose it;
//! - `entrance` (login), `mtoken` (org context, refresh) and `qrpay` (payments, with
//!   `history`) take the request; `auth` checks the session, `X-Sign` and the MAC;
//! - every handler locks the one `state::State`, first applying the time-driven changes
//!   due on the sim clock (`ops::State::tick`), then the rules in `ops`;
//! - `control` and the Rust methods below move the world: payers, clock, sessions, faults.
//!
//! `persist` keeps the state in a file across restarts ([`Simulator::open`],
//! [`Simulator::keep_saved`]); without it the state lives in memory only.
//!
//! `people` holds the scripted payers (magic phone numbers) and the generated names and
//! organizations; `clock` the sim clock and date formats; `envelope` the answer envelope.

mod auth;
mod clock;
mod control;
mod entrance;
pub mod envelope;
mod faults;
mod history;
mod mtoken;
mod ops;
mod people;
mod persist;
mod qrpay;
mod state;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::middleware::from_fn_with_state;
use axum::Router;
use kaspi::{Amount, Phone};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub use faults::{Faults, LostMode};
pub use people::CashierProfile;
pub use persist::{StateFileError, StateSaver, DEFAULT_SAVE_DELAY, STATE_FORMAT_VERSION};

use ops::{Change, ChangeError};
use state::{CashierSetup, SessionState, State};

/// The login error codes Kaspi was seen to answer (2026), which
/// [`Simulator::refuse_next_login`] can script.
pub const LOGIN_ERROR_CODES: &[&str] = &[
    "AccountTemporaryBlocked",
    "AccountAlreadyTemporaryBlocked",
    "TemporaryBlocked",
    "OtpAttemptsExceeded",
    "EnterOtpAttemptsExceeded",
    "PasswordAttemptsExceeded",
    "PasswordIsEmpty",
    "KaspiPayCheckSecurityFailed",
    "ContextNotFound",
    "BadIncomingRequest",
];

/// What the control API shows of one session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionInfo {
    /// The `installId` of the device that logged in.
    pub install_id: String,
    /// `live`, `expired`, `revoked` or `evicted`.
    pub state: String,
}

/// The password of cashiers whose password was not set through the control API.
pub const DEFAULT_PASSWORD: &str = "sandbox";

/// How a cashier is asked to prove who they are at login.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Challenge {
    /// An SMS code (`view.code` `EnterOtp`).
    #[default]
    Sms,
    /// The password (`KPEnterLoginPassword`), then an SMS code.
    PasswordSms,
    /// Confirmation in the Kaspi Pay app (`KPMobileCall`).
    App,
}

/// How the simulator behaves.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Seed of every random choice (ids, codes, names, faults).
    pub seed: u64,
    /// An unpaid remote invoice expires this long after it was made (sim clock).
    pub invoice_ttl: Duration,
    /// An unpaid QR token expires this long after it was made.
    pub qr_ttl: Duration,
    /// Items per page of the operations history.
    pub history_page_size: usize,
    /// The challenge of cashiers not set up through the control API.
    pub login_challenge: Challenge,
    /// Digits of an SMS code.
    pub sms_code_len: usize,
    /// Wrong passwords or codes after which a login process is closed.
    pub max_wrong_answers: u32,
    /// qrpay calls per second allowed to one cashier; above it HTTP 429.
    pub cashier_rate_limit_per_sec: Option<u32>,
    /// Operations older than this (since payment, sim clock) can no longer be refunded.
    pub refund_window: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            invoice_ttl: Duration::from_secs(24 * 3600),
            qr_ttl: Duration::from_secs(5 * 60),
            history_page_size: 50,
            login_challenge: Challenge::Sms,
            sms_code_len: 4,
            max_wrong_answers: 3,
            cashier_rate_limit_per_sec: None,
            refund_window: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// Why a control action was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// Unknown operation, phone or login (HTTP 404).
    #[error("not found: {0}")]
    NotFound(String),
    /// The thing is not in a state that allows it, e.g. an operation that is not open (409).
    #[error("conflict: {0}")]
    Conflict(String),
    /// Malformed input (400).
    #[error("bad request: {0}")]
    BadRequest(String),
}

/// What the control API shows of one operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OperationInfo {
    pub id: u64,
    /// `Remote`, `Link`, `Static` or `Return`.
    pub sale_type: String,
    pub status: String,
    pub status_desc: String,
    pub amount: Amount,
    pub returned_amount: Amount,
    pub comment: String,
    pub client_mobile: Option<String>,
    pub client_name: Option<String>,
    pub parent_operation_id: Option<u64>,
    pub transaction_date: String,
    /// The phone of the cashier whose call made it (`None`: made without a cashier's call).
    pub cashier_phone: Option<String>,
}

struct Inner {
    state: Mutex<State>,
    calls: AtomicU64,
    /// Answers held back by a `timeout` fault right now.
    held: AtomicUsize,
    /// Woken when the state changed in a way a restart must keep (the saver waits on it).
    changed: tokio::sync::Notify,
    /// The state was read from a file at start.
    restored: bool,
    /// Held while the state is written to its file.
    writing: Mutex<()>,
}

/// Counts an answer held back while it lives.
pub(crate) struct Held(Arc<Inner>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.held.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The simulator: cheap to clone, all clones share one state.
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<Inner>,
}

impl Simulator {
    /// A simulator that keeps its state in memory only (see [`Simulator::open`] for one that
    /// survives a restart).
    pub fn new(config: SimConfig) -> Self {
        Self::from_state(State::new(config), false)
    }

    fn from_state(state: State, restored: bool) -> Self {
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(state),
                calls: AtomicU64::new(0),
                held: AtomicUsize::new(0),
                changed: tokio::sync::Notify::new(),
                restored,
                writing: Mutex::new(()),
            }),
        }
    }

    /// The router of the three hosts and the control API, ready to serve or nest.
    pub fn router(&self) -> Router {
        let kaspi_host = |routes: Router<Simulator>, faulty: bool| {
            let routes = if faulty {
                routes.layer(from_fn_with_state(self.clone(), faults::inject))
            } else {
                routes
            };
            routes
                .layer(from_fn_with_state(self.clone(), faults::count_calls))
                .layer(axum::middleware::from_fn(request_span))
        };
        Router::new()
            .route("/qrpay/receipt/{id}", axum::routing::get(qrpay::receipt))
            .nest("/entrance-pay", kaspi_host(entrance::routes(), false))
            .nest("/mtoken", kaspi_host(mtoken::routes(), true))
            .nest("/qrpay", kaspi_host(qrpay::routes(), true))
            .nest("/_control", control::routes())
            .with_state(self.clone())
    }

    /// Runs `f` on the state after applying every change due on the sim clock.
    pub(crate) fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        // A panic while holding the lock is a bug already reported; keep serving.
        let mut state = self
            .inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.tick();
        let answer = f(&mut state);
        if state.changed {
            self.inner.changed.notify_one();
        }
        answer
    }

    pub(crate) fn count_call(&self) {
        self.inner.calls.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn hold(&self) -> Held {
        self.inner.held.fetch_add(1, Ordering::Relaxed);
        Held(self.inner.clone())
    }

    /// Answers held back by a `timeout` fault right now: the hold ends when the client
    /// goes away, so after a client timed out this drops back to 0.
    pub fn held_answers(&self) -> usize {
        self.inner.held.load(Ordering::Relaxed)
    }

    /// Kaspi calls served so far (entrance, mtoken, qrpay; not the control API).
    pub fn call_count(&self) -> u64 {
        self.inner.calls.load(Ordering::Relaxed)
    }

    /// The configuration the simulator runs with.
    pub fn config(&self) -> SimConfig {
        self.with_state(|st| st.cfg.clone())
    }

    fn change(&self, op_id: u64, change: Change) -> Result<(), ControlError> {
        self.with_state(|st| {
            let now = st.clock.now_ms();
            st.change(op_id, change, now).map_err(|e| match e {
                ChangeError::NotFound => ControlError::NotFound(format!("operation {op_id}")),
                ChangeError::NotOpen(status) => ControlError::Conflict(format!(
                    "operation {op_id} is {status}, not open for this change"
                )),
            })
        })
    }

    /// The payer pays an open invoice or QR token (`Processed`).
    pub fn pay(&self, op_id: u64) -> Result<(), ControlError> {
        self.change(op_id, Change::Pay)
    }

    /// The payer declines (`RemotePaymentRejected`, or `CancelledByUser` for QR).
    pub fn decline(&self, op_id: u64) -> Result<(), ControlError> {
        self.change(op_id, Change::Decline)
    }

    /// The operation expires now (`Expired`).
    pub fn expire(&self, op_id: u64) -> Result<(), ControlError> {
        self.change(op_id, Change::Expire)
    }

    /// A payer scans a QR token and has not confirmed yet (`Wait`; QR tokens only).
    pub fn scan(&self, op_id: u64) -> Result<(), ControlError> {
        self.change(op_id, Change::Scan)
    }

    /// What the control API shows of an operation.
    pub fn operation(&self, op_id: u64) -> Option<OperationInfo> {
        self.with_state(|st| st.ops.get(&op_id).map(|op| history::info(op)))
    }

    /// Throttles each cashier's qrpay calls above `per_sec` a second (HTTP 429), as Kaspi does;
    /// `None` turns it off.
    pub fn set_cashier_rate_limit(&self, per_sec: Option<u32>) {
        self.with_state(|st| st.cfg.cashier_rate_limit_per_sec = per_sec);
    }

    /// Sets how many operations one history page lists (at least 1).
    pub fn set_history_page_size(&self, size: usize) {
        self.with_state(|st| st.cfg.history_page_size = size.max(1));
    }

    /// A remote invoice from the merchant of `cashier_phone` to `client_phone`, made without a
    /// client call (to set up load tests); its operation id. The payer behaves by its phone
    /// like any other (see `people.rs`).
    pub fn create_remote_invoice(
        &self,
        cashier_phone: &str,
        client_phone: &str,
        amount: Amount,
        comment: &str,
    ) -> Result<u64, ControlError> {
        let cashier = parse_phone(cashier_phone)?;
        let client = parse_phone(client_phone)?;
        self.with_state(|st| {
            let org = st.profile_of(&cashier).organization_id;
            st.create_remote(org, client, amount, comment.to_owned())
                .map_err(|e| ControlError::BadRequest(e.message))
        })
    }

    /// Every operation, oldest first, as the control API shows them.
    pub fn operations(&self) -> Vec<OperationInfo> {
        self.with_state(|st| st.ops.values().map(|op| history::info(op)).collect())
    }

    /// The last SMS code sent to a cashier phone (any usual form of the number).
    pub fn last_sms(&self, phone: &str) -> Option<String> {
        let phone = kaspi::phone::normalize(phone).ok()?;
        self.with_state(|st| st.sms.get(phone.as_str()).cloned())
    }

    /// The cashier confirms the login waiting for app confirmation.
    pub fn confirm_in_app(&self, phone: &str) -> Result<(), ControlError> {
        let phone = parse_phone(phone)?;
        self.with_state(|st| entrance::confirm_in_app(st, &phone))
    }

    /// Sets how a cashier logs in; answers the cashier's profile and organization.
    pub fn set_cashier(
        &self,
        phone: &str,
        challenge: Challenge,
        password: Option<String>,
    ) -> Result<CashierProfile, ControlError> {
        let phone = parse_phone(phone)?;
        self.with_state(|st| {
            let password = password.unwrap_or_else(|| st.setup_of(&phone).password);
            st.cashiers.insert(
                phone.as_str().to_owned(),
                CashierSetup {
                    challenge,
                    password,
                    organization_of: st.setup_of(&phone).organization_of,
                },
            );
            st.touch();
            Ok(st.profile_of(&phone))
        })
    }

    /// The organization of cashier `owner` adds cashier `phone`, as Kaspi lets an organization
    /// add cashiers: `phone`'s next login is into `owner`'s organization, where it sees and
    /// acts on the organization's operations like `owner`. Answers `phone`'s profile.
    pub fn add_cashier_to(&self, phone: &str, owner: &str) -> Result<CashierProfile, ControlError> {
        let phone = parse_phone(phone)?;
        let owner = parse_phone(owner)?;
        self.with_state(|st| {
            let mut setup = st.setup_of(&phone);
            // The owner's own organization: a chain of additions ends at one organization.
            setup.organization_of = Some(
                st.setup_of(&owner)
                    .organization_of
                    .unwrap_or_else(|| owner.as_str().to_owned()),
            );
            st.cashiers.insert(phone.as_str().to_owned(), setup);
            st.touch();
            Ok(st.profile_of(&phone))
        })
    }

    /// The profile and organization a cashier phone logs in to.
    pub fn cashier_profile(&self, phone: &str) -> Result<CashierProfile, ControlError> {
        let phone = parse_phone(phone)?;
        Ok(self.with_state(|st| st.profile_of(&phone)))
    }

    fn set_sessions(&self, to: SessionState) -> usize {
        self.with_state(|st| {
            let mut n = 0;
            for session in st.sessions.values_mut() {
                if session.state == SessionState::Live
                    || (to == SessionState::Revoked && session.state == SessionState::Expired)
                {
                    session.state = to;
                    n += 1;
                }
            }
            if n > 0 {
                st.touch();
            }
            n
        })
    }

    /// The cashier of `phone` logs in on another device, as Kaspi sees it: every session of
    /// that phone ends (qrpay `StatusCode` -101001; refresh answers the same). Returns how
    /// many changed.
    pub fn evict_sessions(&self, phone: &str) -> Result<usize, ControlError> {
        let phone = parse_phone(phone)?;
        Ok(self.with_state(|st| {
            let mut n = 0;
            for session in st.sessions.values_mut() {
                if session.phone == phone
                    && matches!(session.state, SessionState::Live | SessionState::Expired)
                {
                    session.state = SessionState::Evicted;
                    n += 1;
                }
            }
            if n > 0 {
                st.touch();
            }
            n
        }))
    }

    /// The sessions of a cashier phone, oldest first as far as the simulator knows.
    pub fn sessions(&self, phone: &str) -> Result<Vec<SessionInfo>, ControlError> {
        let phone = parse_phone(phone)?;
        Ok(self.with_state(|st| {
            let mut found: Vec<SessionInfo> = st
                .sessions
                .values()
                .filter(|s| s.phone == phone)
                .map(|s| SessionInfo {
                    install_id: s.install_id.clone(),
                    state: match s.state {
                        SessionState::Live => "live",
                        SessionState::Expired => "expired",
                        SessionState::Revoked => "revoked",
                        SessionState::Evicted => "evicted",
                    }
                    .to_owned(),
                })
                .collect();
            found.sort_by(|a, b| (&a.install_id, &a.state).cmp(&(&b.install_id, &b.state)));
            found
        }))
    }

    /// Kaspi raises (or with `None` drops) its minimum app build: below it the login start
    /// answers the `OldVersionToUpdate` alarm and mtoken and qrpay calls a non-zero
    /// `StatusCode` with it.
    pub fn set_min_app_build(&self, build: Option<u64>) {
        self.with_state(|st| {
            st.min_app_build = build;
            st.touch();
        });
    }

    /// The minimum app build in force.
    pub fn min_app_build(&self) -> Option<u64> {
        self.with_state(|st| st.min_app_build)
    }

    /// Blocks the account of a cashier phone for `minutes` of the sim clock: its logins answer
    /// `AccountTemporaryBlocked` (with the minutes left) at the phone step. 0 unblocks.
    pub fn block_account(&self, phone: &str, minutes: u64) -> Result<(), ControlError> {
        let phone = parse_phone(phone)?;
        self.with_state(|st| {
            if minutes == 0 {
                st.blocked_until.remove(phone.as_str());
            } else {
                let ms = i64::try_from(minutes.saturating_mul(60_000)).unwrap_or(i64::MAX);
                let until = st.clock.now_ms().saturating_add(ms);
                st.blocked_until.insert(phone.as_str().to_owned(), until);
            }
            st.touch();
        });
        Ok(())
    }

    /// The next login of a cashier phone answers the login error `code` (one of
    /// [`LOGIN_ERROR_CODES`]) at its phone step, once.
    pub fn refuse_next_login(&self, phone: &str, code: &str) -> Result<(), ControlError> {
        let phone = parse_phone(phone)?;
        if !LOGIN_ERROR_CODES.contains(&code) {
            return Err(ControlError::BadRequest(format!(
                "unknown login error code {code:?}; use one of {}",
                LOGIN_ERROR_CODES.join(", ")
            )));
        }
        self.with_state(|st| {
            st.login_refusals
                .insert(phone.as_str().to_owned(), code.to_owned())
        });
        Ok(())
    }

    /// Every live session expires (qrpay 401 `SessionExpired`; sign-in-lite still works).
    /// Returns how many changed.
    pub fn expire_sessions(&self) -> usize {
        self.set_sessions(SessionState::Expired)
    }

    /// Every session is revoked (a new SMS login is needed). Returns how many changed.
    pub fn revoke_sessions(&self) -> usize {
        self.set_sessions(SessionState::Revoked)
    }

    /// Puts faults in force for mtoken and qrpay calls.
    pub fn set_faults(&self, faults: Faults) -> Result<(), ControlError> {
        faults.validate().map_err(ControlError::BadRequest)?;
        self.with_state(|st| st.faults = faults);
        Ok(())
    }

    /// No more faults.
    pub fn clear_faults(&self) {
        self.with_state(|st| st.faults = Faults::default());
    }

    /// The faults in force (`count` shows what is left).
    pub fn faults(&self) -> Faults {
        self.with_state(|st| st.faults.clone())
    }

    /// Moves the sim clock forward and applies every change that became due.
    pub fn advance_clock(&self, by: Duration) {
        self.with_state(|st| {
            st.clock.advance(by);
            st.touch();
            st.tick();
        });
    }

    /// Now on the sim clock (Kazakhstan time).
    pub fn now(&self) -> OffsetDateTime {
        self.with_state(|st| clock::at(st.clock.now_ms()))
    }

    /// A payment to the static QR of the merchant whose cashier logged in last.
    pub fn add_static_qr_payment(
        &self,
        amount: Amount,
        comment: &str,
    ) -> Result<u64, ControlError> {
        self.with_state(|st| {
            let phone = st.last_login.clone().ok_or_else(|| {
                ControlError::Conflict(
                    "no cashier has logged in yet: name the merchant's cashier phone".into(),
                )
            })?;
            add_static(st, &phone, amount, comment)
        })
    }

    /// A payment to the static QR of the merchant of `cashier_phone`.
    pub fn add_static_qr_payment_for(
        &self,
        cashier_phone: &str,
        amount: Amount,
        comment: &str,
    ) -> Result<u64, ControlError> {
        let phone = parse_phone(cashier_phone)?;
        self.with_state(|st| add_static(st, &phone, amount, comment))
    }
}

fn add_static(
    st: &mut State,
    phone: &Phone,
    amount: Amount,
    comment: &str,
) -> Result<u64, ControlError> {
    let org = st.profile_of(phone).organization_id;
    st.add_static(org, amount, comment.to_owned())
        .map_err(|e| ControlError::BadRequest(e.message))
}

fn parse_phone(phone: &str) -> Result<Phone, ControlError> {
    kaspi::phone::normalize(phone).map_err(|e| ControlError::BadRequest(e.to_string()))
}

/// Runs a Kaspi request inside a debug span naming it, so that the debug line of a refused
/// request (`kaspi-sim refused …`) says which request it was.
async fn request_span(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use tracing::Instrument as _;
    let span = tracing::debug_span!(
        "kaspi-sim",
        method = %req.method(),
        path = %req.uri().path()
    );
    next.run(req).instrument(span).await
}

/// Serves the simulator on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, sim: Simulator) -> std::io::Result<()> {
    axum::serve(listener, sim.router()).await
}

/// Serves the simulator on `127.0.0.1:0` in a background task; returns its base URL
/// (`http://127.0.0.1:PORT`, the hosts are `{base}/qrpay` etc.). For tests: the task lives
/// as long as the Tokio runtime.
pub async fn spawn(sim: Simulator) -> std::io::Result<String> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = serve(listener, sim).await {
            tracing::error!(error = %e, "kaspi simulator stopped");
        }
    });
    Ok(format!("http://{addr}"))
}
