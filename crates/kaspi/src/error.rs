//! Errors of the client, as types a caller can act on.
//!
//! - [`Error::Transport`]: Kaspi was not reached or did not answer a call that is safe to retry.
//! - [`Error::OutcomeUnknown`]: a call that creates something (invoice, QR token, refund) was
//!   sent but its answer was lost. The operation may exist: look it up, never just retry.
//! - [`Error::Session`]: Kaspi no longer accepts the session (HTTP 401/403 or a dead-session
//!   code). Refresh it; [`Error::ReauthRequired`] means refresh failed and the cashier must log in.
//! - [`Error::SessionEvicted`]: the cashier's phone logged in on another device, which ended
//!   this session (`StatusCode` -101001). Refresh does not help: the cashier must log in again.
//! - [`Error::AppBuildOutdated`]: Kaspi no longer accepts the app build presented
//!   (`OldVersionToUpdate`); a newer build must be set (it affects every cashier at once).
//! - [`Error::Kaspi`]: a business refusal (non-zero `StatusCode`, with `Message` and `Code`).
//! - [`Error::Throttled`], [`Error::Http`], [`Error::Decode`], [`Error::Login`].
//!
//! No variant carries a secret: messages hold Kaspi's own text, codes and HTTP statuses only.

use std::fmt;
use std::time::Duration;

/// How a request failed to get an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// No answer in time.
    Timeout,
    /// The connection was refused: the request was never sent.
    Refused,
    /// The connection was reset or closed before a whole answer came.
    Reset,
    /// Anything else (DNS, TLS, …).
    Other,
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransportKind::Timeout => "timeout",
            TransportKind::Refused => "connection refused",
            TransportKind::Reset => "connection reset",
            TransportKind::Other => "transport error",
        })
    }
}

/// Codes Kaspi uses for a session that is dead even when the HTTP status is 200.
pub const DEAD_SESSION_CODES: &[&str] = &[
    "SessionExpired",
    "SessionRevoked",
    "SessionNotFound",
    "InvalidTokenMac",
    "TokenExpired",
    "Unauthorized",
];

/// `StatusCode` of a session ended by a login of the same phone on another device.
pub const STATUS_SESSION_EVICTED: i64 = -101_001;

/// The code of Kaspi's alarm for an app build below its minimum.
pub const OLD_VERSION_TO_UPDATE: &str = "OldVersionToUpdate";

/// An error of a Kaspi call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kaspi was not reached ({kind}): {detail}")]
    Transport { kind: TransportKind, detail: String },

    #[error("outcome unknown: the answer to {call} was lost ({cause}); look the operation up before trying again")]
    OutcomeUnknown { call: &'static str, cause: String },

    #[error("the Kaspi session is no longer valid ({reason})")]
    Session {
        reason: String,
        http_status: Option<u16>,
        code: Option<String>,
    },

    #[error("the cashier must log in to Kaspi again: {0}")]
    ReauthRequired(String),

    #[error("Kaspi ended the session because the cashier's phone signed in on another device; the cashier must log in again (a refresh does not help){}", quoted(.message))]
    SessionEvicted { message: String },

    #[error("Kaspi no longer accepts app build {build}: it asks for a newer app{}; a newer app version and build must be set", quoted(.message))]
    AppBuildOutdated { build: String, message: String },

    #[error("Kaspi refused: {message} (StatusCode {status_code}{})", code.as_deref().map(|c| format!(", Code {c}")).unwrap_or_default())]
    Kaspi {
        status_code: i64,
        code: Option<String>,
        message: String,
    },

    #[error("Kaspi is throttling this cashier")]
    Throttled { retry_after: Option<Duration> },

    #[error("Kaspi answered HTTP {status}: {message}")]
    Http { status: u16, message: String },

    #[error("Kaspi's answer could not be read: {0}")]
    Decode(String),

    #[error("login: {0}")]
    Login(#[from] LoginError),
}

/// `: Kaspi says "…"` when Kaspi said something.
fn quoted(message: &str) -> String {
    if message.trim().is_empty() {
        String::new()
    } else {
        format!("; Kaspi says \"{}\"", message.trim())
    }
}

impl Error {
    /// Whether the session must be refreshed (or the cashier log in again).
    pub fn is_session(&self) -> bool {
        matches!(self, Error::Session { .. } | Error::ReauthRequired(_))
    }

    /// Whether a later retry of the same read may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Transport { .. }
                | Error::Throttled { .. }
                | Error::Http {
                    status: 500..=599,
                    ..
                }
        )
    }
}

/// A request that could not be signed was never sent, so it is safe to retry: it reads as a
/// transport failure ([`TransportKind::Other`]).
impl From<crate::sign::SignError> for Error {
    fn from(e: crate::sign::SignError) -> Self {
        Error::Transport {
            kind: TransportKind::Other,
            detail: format!("the request could not be signed: {e}"),
        }
    }
}

/// Why a login did not finish.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("Kaspi rejected the login: {0}")]
    Rejected(String),
    /// A refusal Kaspi names with a known code; `said` is its label and description.
    #[error("{}{}", .refusal.advice(), quoted(.said))]
    Refused { refusal: LoginRefusal, said: String },
    #[error("Kaspi closed the login process: {0}")]
    Closed(String),
    #[error("Kaspi asked for a login step this client does not support ({0}); finish it in the Kaspi Pay app or use another cashier")]
    Unsupported(String),
    #[error("the login was abandoned: {0}")]
    Abandoned(String),
    #[error("Kaspi's login answer lacks {0}")]
    Missing(&'static str),
}

/// The login refusals Kaspi names by code (seen in 2026), each with what the cashier can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginRefusal {
    AccountTemporaryBlocked,
    AccountAlreadyTemporaryBlocked,
    TemporaryBlocked,
    OtpAttemptsExceeded,
    EnterOtpAttemptsExceeded,
    PasswordAttemptsExceeded,
    PasswordIsEmpty,
    KaspiPayCheckSecurityFailed,
    ContextNotFound,
    BadIncomingRequest,
}

impl LoginRefusal {
    /// Every refusal, for tests and documentation.
    pub const ALL: [LoginRefusal; 10] = [
        LoginRefusal::AccountTemporaryBlocked,
        LoginRefusal::AccountAlreadyTemporaryBlocked,
        LoginRefusal::TemporaryBlocked,
        LoginRefusal::OtpAttemptsExceeded,
        LoginRefusal::EnterOtpAttemptsExceeded,
        LoginRefusal::PasswordAttemptsExceeded,
        LoginRefusal::PasswordIsEmpty,
        LoginRefusal::KaspiPayCheckSecurityFailed,
        LoginRefusal::ContextNotFound,
        LoginRefusal::BadIncomingRequest,
    ];

    /// Kaspi's code of the refusal.
    pub fn code(self) -> &'static str {
        match self {
            LoginRefusal::AccountTemporaryBlocked => "AccountTemporaryBlocked",
            LoginRefusal::AccountAlreadyTemporaryBlocked => "AccountAlreadyTemporaryBlocked",
            LoginRefusal::TemporaryBlocked => "TemporaryBlocked",
            LoginRefusal::OtpAttemptsExceeded => "OtpAttemptsExceeded",
            LoginRefusal::EnterOtpAttemptsExceeded => "EnterOtpAttemptsExceeded",
            LoginRefusal::PasswordAttemptsExceeded => "PasswordAttemptsExceeded",
            LoginRefusal::PasswordIsEmpty => "PasswordIsEmpty",
            LoginRefusal::KaspiPayCheckSecurityFailed => "KaspiPayCheckSecurityFailed",
            LoginRefusal::ContextNotFound => "ContextNotFound",
            LoginRefusal::BadIncomingRequest => "BadIncomingRequest",
        }
    }

    /// The refusal Kaspi names `code`, if it is one of these.
    pub fn from_code(code: &str) -> Option<LoginRefusal> {
        LoginRefusal::ALL.into_iter().find(|r| r.code() == code)
    }

    /// What happened and what the cashier can do, for people.
    pub fn advice(self) -> &'static str {
        match self {
            LoginRefusal::AccountTemporaryBlocked => {
                "Kaspi has temporarily blocked this cashier's account after too many login \
                 attempts: wait until the block ends (Kaspi's message says how long), then log in \
                 again; trying earlier can extend the block"
            }
            LoginRefusal::AccountAlreadyTemporaryBlocked => {
                "this cashier's account is still temporarily blocked by Kaspi: wait until the \
                 block ends (Kaspi's message says how long), then log in again"
            }
            LoginRefusal::TemporaryBlocked => {
                "Kaspi is temporarily refusing logins of this cashier: wait a while (Kaspi's \
                 message may say how long), then log in again"
            }
            LoginRefusal::OtpAttemptsExceeded => {
                "Kaspi has sent this phone too many SMS codes: wait before asking for a new code \
                 (Kaspi's message may say how long), then start the login again"
            }
            LoginRefusal::EnterOtpAttemptsExceeded => {
                "a wrong SMS code was entered too many times: start the login again to get a new \
                 code, and type it carefully"
            }
            LoginRefusal::PasswordAttemptsExceeded => {
                "a wrong Kaspi Pay password was entered too many times: wait, check or reset the \
                 password in the Kaspi Pay app, then log in again"
            }
            LoginRefusal::PasswordIsEmpty => {
                "the Kaspi Pay password was empty: log in again and type the cashier's password"
            }
            LoginRefusal::KaspiPayCheckSecurityFailed => {
                "Kaspi's security check refused this login: open the Kaspi Pay app on the \
                 cashier's phone (or call Kaspi support) to clear it, then log in again"
            }
            LoginRefusal::ContextNotFound => {
                "Kaspi no longer knows this login (it took too long or was started again \
                 elsewhere): start the login again"
            }
            LoginRefusal::BadIncomingRequest => {
                "Kaspi did not accept the login request as sent: check that the app version \
                 and build presented to Kaspi are current, then try again"
            }
        }
    }
}
