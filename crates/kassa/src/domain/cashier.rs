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

/// A phone for display: the first three and the last four digits (`700***4567`).
pub fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    if chars.len() < 8 {
        return "***".into();
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}***{tail}")
}
