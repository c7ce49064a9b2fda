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
    /// A subscription's invoice was paid (the event carries its body).
    SubscriptionPaymentSucceeded,
    /// A subscription's invoice ended unpaid.
    SubscriptionPaymentFailed,
    /// A subscription's retries ran out: its grace period began.
    SubscriptionGracePeriodStarted,
    /// A subscription's grace period ended unpaid.
    SubscriptionExpired,
}

spelled!(EventKind {
    StatusChanged = "invoice.status_changed",
    Refunded = "invoice.refunded",
    RefundFailed = "invoice.refund_failed",
    SubscriptionPaymentSucceeded = "subscription.payment_succeeded",
    SubscriptionPaymentFailed = "subscription.payment_failed",
    SubscriptionGracePeriodStarted = "subscription.grace_period_started",
    SubscriptionExpired = "subscription.expired",
});

impl EventKind {
    /// Whether the event is about a subscription (its body is stored with it).
    pub fn is_subscription(self) -> bool {
        matches!(
            self,
            EventKind::SubscriptionPaymentSucceeded
                | EventKind::SubscriptionPaymentFailed
                | EventKind::SubscriptionGracePeriodStarted
                | EventKind::SubscriptionExpired
        )
    }
}

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
