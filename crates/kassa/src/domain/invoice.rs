//! An invoice's kind, its status as the APIs show it (with the moves it allows), and how far
//! its create at Kaspi got.

/// Declares `as_str`/`parse` for a plain enum from one table of spellings (the database's and
/// the API's), so the two directions cannot disagree.
macro_rules! spelled {
    ($name:ident { $($variant:ident = $text:literal),* $(,)? }) => {
        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The spelling stored in the database and shown by the APIs.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),*
                }
            }

            /// The value spelled `text`, if any.
            pub fn parse(text: &str) -> Option<$name> {
                $name::ALL.iter().copied().find(|value| value.as_str() == text)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use spelled;

/// How the customer is asked to pay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InvoiceKind {
    /// A payment request sent to the customer's phone.
    Remote,
    /// A QR code the customer scans.
    Qr,
}

spelled!(InvoiceKind { Remote = "remote", Qr = "qr" });

/// The invoice's status as the APIs show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InvoiceStatus {
    Pending,
    Paid,
    Cancelled,
    Expired,
    Failed,
}

spelled!(InvoiceStatus {
    Pending = "pending",
    Paid = "paid",
    Cancelled = "cancelled",
    Expired = "expired",
    Failed = "failed",
});

impl InvoiceStatus {
    /// Whether an invoice may move from `self` to `to`: pending moves anywhere else, and a
    /// payment that arrives after cancelled, expired or failed still wins (the money moved).
    pub fn can_move_to(self, to: InvoiceStatus) -> bool {
        use InvoiceStatus::{Cancelled, Expired, Failed, Paid, Pending};
        match (self, to) {
            (Pending, Pending) => false,
            (Pending, Paid | Cancelled | Expired | Failed) => true,
            (Cancelled | Expired | Failed, Paid) => true,
            (Paid | Cancelled | Expired | Failed, _) => false,
        }
    }

    /// Whether no further change is expected by polling (a late payment is still accepted).
    pub fn is_final(self) -> bool {
        !matches!(self, InvoiceStatus::Pending)
    }
}

/// How far creating the invoice at Kaspi got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CreateState {
    /// The request to Kaspi is being made (stored first, with its reconciliation job).
    Sending,
    /// Kaspi accepted it; its operation id is known.
    Sent,
    /// The request may or may not have reached Kaspi: to be reconciled.
    Unknown,
    /// Kaspi refused it, or never received it.
    Failed,
}

spelled!(CreateState {
    Sending = "sending",
    Sent = "sent",
    Unknown = "unknown",
    Failed = "failed",
});

impl CreateState {
    /// Whether Kaspi's answer to the create is still missing (the reconciliation looks for it).
    pub fn awaits_kaspi(self) -> bool {
        matches!(self, CreateState::Sending | CreateState::Unknown)
    }
}

#[cfg(test)]
mod tests {
    use super::{CreateState, InvoiceKind, InvoiceStatus};

    #[test]
    fn spellings_read_back() {
        for status in InvoiceStatus::ALL {
            assert_eq!(InvoiceStatus::parse(status.as_str()), Some(*status));
        }
        for state in CreateState::ALL {
            assert_eq!(CreateState::parse(&state.to_string()), Some(*state));
        }
        assert_eq!(InvoiceKind::parse("qr"), Some(InvoiceKind::Qr));
        assert_eq!(InvoiceStatus::parse("Paid"), None);
    }

    #[test]
    fn a_payment_wins_over_every_other_end_and_nothing_else_moves_an_end() {
        use InvoiceStatus::{Cancelled, Expired, Failed, Paid, Pending};
        for end in [Cancelled, Expired, Failed] {
            assert!(Pending.can_move_to(end));
            assert!(end.can_move_to(Paid), "{end} → paid");
            for other in [Pending, Cancelled, Expired, Failed] {
                assert!(!end.can_move_to(other), "{end} → {other}");
            }
        }
        assert!(InvoiceStatus::ALL.iter().all(|to| !Paid.can_move_to(*to)));
        assert!(!Pending.can_move_to(Pending));
        assert!(!Pending.is_final() && Paid.is_final() && Expired.is_final());
    }

    #[test]
    fn only_a_create_without_kaspi_s_answer_awaits_it() {
        use CreateState::{Failed, Sending, Sent, Unknown};
        assert!(Sending.awaits_kaspi() && Unknown.awaits_kaspi());
        assert!(!Sent.awaits_kaspi() && !Failed.awaits_kaspi());
    }
}
