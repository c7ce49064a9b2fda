//! The people of an organization who use the dashboard, and what each may do.

use super::invoice::spelled;

/// What a dashboard user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Everything the dashboard offers.
    Owner,
    /// Sees everything, changes nothing (the server refuses every change, not only the buttons).
    Viewer,
}

spelled!(Role {
    Owner = "owner",
    Viewer = "viewer",
});

impl Role {
    /// Whether this role may change anything (create, cancel, refund, configure).
    pub fn may_change(self) -> bool {
        matches!(self, Role::Owner)
    }
}
