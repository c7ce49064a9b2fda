//! Errors of the client, as types a caller can act on.
//!
//! - [`Error::Transport`]: Kaspi was not reached or did not answer a call that is safe to retry.
//! - [`Error::OutcomeUnknown`]: a call that creates something (invoice, QR token, refund) was
//!   sent but its answer was lost. The operation may exist: look it up, never just retry.
//! - [`Error::Session`]: Kaspi no longer accepts the session (HTTP 401/403 or a dead-session
//!   code). Refresh it; [`Error::ReauthRequired`] means refresh failed and the cashier must log in.
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
    #[error("Kaspi closed the login process: {0}")]
    Closed(String),
    #[error("Kaspi asked for a login step this client does not support ({0}); finish it in the Kaspi Pay app or use another cashier")]
    Unsupported(String),
    #[error("the login was abandoned: {0}")]
    Abandoned(String),
    #[error("Kaspi's login answer lacks {0}")]
    Missing(&'static str),
}
