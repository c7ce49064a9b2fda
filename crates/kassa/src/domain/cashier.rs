//! Whether a cashier's Kaspi session can be used.

use super::invoice::spelled;

/// Whether a terminal's Kaspi session can be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TerminalState {
    Active,
    /// The session is gone or refused: a person has to log in again.
    NeedsLogin,
}

spelled!(TerminalState {
    Active = "active",
    NeedsLogin = "needs_login",
});
