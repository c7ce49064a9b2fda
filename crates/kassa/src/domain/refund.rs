//! Where a refund is, and the moves it allows.

use super::invoice::spelled;

/// Where a refund is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefundStatus {
    /// Recorded, not yet sent to Kaspi.
    Pending,
    /// Sent to Kaspi; the answer is awaited or was lost (then it is checked, never resent).
    Processing,
    Completed,
    /// Kaspi refused it, or it could not be confirmed; the refund says why.
    Failed,
}

spelled!(RefundStatus {
    Pending = "pending",
    Processing = "processing",
    Completed = "completed",
    Failed = "failed",
});

impl RefundStatus {
    /// Whether a refund may move from `self` to `to`: it is sent (pending → processing), put
    /// back when Kaspi surely did not get it (processing → pending), completed once confirmed,
    /// and failed while not completed. Completed and failed are ends.
    pub fn can_move_to(self, to: RefundStatus) -> bool {
        use RefundStatus::{Completed, Failed, Pending, Processing};
        matches!(
            (self, to),
            (Pending, Processing | Failed) | (Processing, Pending | Completed | Failed)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::RefundStatus::{self, Completed, Failed, Pending, Processing};

    #[test]
    fn a_refund_completes_only_after_it_was_sent_and_ends_stay() {
        assert!(Pending.can_move_to(Processing));
        assert!(!Pending.can_move_to(Completed), "never completed unsent");
        assert!(Processing.can_move_to(Completed) && Processing.can_move_to(Pending));
        for end in [Completed, Failed] {
            assert!(RefundStatus::ALL.iter().all(|to| !end.can_move_to(*to)));
        }
        assert_eq!(RefundStatus::parse("processing"), Some(Processing));
    }
}
