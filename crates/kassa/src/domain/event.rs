//! What happened to an invoice, as its outbox event (`invoice_events.kind`) records it; each
//! webhook format names it its own way.

use super::invoice::spelled;

/// The kind of an outbox event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// The invoice's status changed (from → to are on the event).
    StatusChanged,
    /// A refund completed (the event names it).
    Refunded,
    /// A refund failed (the event names it).
    RefundFailed,
}

spelled!(EventKind {
    StatusChanged = "invoice.status_changed",
    Refunded = "invoice.refunded",
    RefundFailed = "invoice.refund_failed",
});

#[cfg(test)]
mod tests {
    use super::EventKind;

    #[test]
    fn event_kinds_keep_their_stored_spelling() {
        assert_eq!(EventKind::StatusChanged.as_str(), "invoice.status_changed");
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(*kind));
        }
        assert_eq!(EventKind::parse("payment.completed"), None);
    }
}
