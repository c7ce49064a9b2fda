//! Kaspi operation statuses and the one mapping to a normalized outcome.
//!
//! `Processed` is the only status that proves payment. An unknown status stays open: it is
//! never taken as final, and the client logs it once.

use std::fmt;

/// What a status means for the payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Still waiting for the payer: keep polling.
    Open,
    /// Paid (only `Processed`).
    Paid,
    /// Declined, cancelled, rejected or failed.
    Failed,
    /// Expired or discarded without payment.
    Expired,
}

impl Outcome {
    pub fn is_final(self) -> bool {
        !matches!(self, Outcome::Open)
    }
}

macro_rules! kaspi_statuses {
    ($($name:ident => $outcome:ident),* $(,)?) => {
        /// A status as Kaspi names it, remote invoices and QR together.
        #[derive(Clone, PartialEq, Eq, Hash)]
        pub enum Status {
            $($name,)*
            /// A status this client does not know. Never final.
            Unknown(String),
        }

        impl Status {
            /// Reads Kaspi's name of a status.
            pub fn parse(name: &str) -> Status {
                match name {
                    $(stringify!($name) => Status::$name,)*
                    other => Status::Unknown(other.to_owned()),
                }
            }

            /// Kaspi's name of the status.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Status::$name => stringify!($name),)*
                    Status::Unknown(name) => name,
                }
            }

            /// The normalized outcome. Exhaustive: a new variant must be classified here.
            pub fn outcome(&self) -> Outcome {
                match self {
                    $(Status::$name => Outcome::$outcome,)*
                    Status::Unknown(_) => Outcome::Open,
                }
            }

            /// Every known status (the simulator and tests walk them).
            pub const KNOWN: &'static [&'static str] = &[$(stringify!($name)),*];
        }
    };
}

kaspi_statuses! {
    // Remote invoices (payment by phone).
    RemotePaymentCreated => Open,
    RemotePaymentCanceled => Failed,
    RemotePaymentRejected => Failed,
    // QR tokens.
    QrTokenCreated => Open,
    Wait => Open,
    CancelledByUser => Failed,
    NotConfirmedByUser => Failed,
    CancelledByExternalSource => Failed,
    ProcessingFailed => Failed,
    Rejected => Failed,
    InsufficientFunds => Failed,
    InsufficientFundsError => Failed,
    Error => Failed,
    IrisSrcBlockCode1 => Failed,
    IrisSrcBlockCode3 => Failed,
    IrisSrcBlockCode9 => Failed,
    IrisDestBlockCode3 => Failed,
    IrisDestBlockCode5 => Failed,
    IrisDestBlockCode7 => Failed,
    IrisDestBlockCode10 => Failed,
    QrTokenDiscarded => Expired,
    // Both.
    Processed => Paid,
    Expired => Expired,
}

impl Status {
    pub fn is_unknown(&self) -> bool {
        matches!(self, Status::Unknown(_))
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Status({})", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_processed_is_paid_and_unknown_stays_open() {
        for name in Status::KNOWN {
            let status = Status::parse(name);
            assert!(!status.is_unknown(), "{name}");
            assert_eq!(status.as_str(), *name);
            assert_eq!(
                status.outcome() == Outcome::Paid,
                *name == "Processed",
                "{name}"
            );
        }
        let odd = Status::parse("SomethingNew");
        assert_eq!(odd.outcome(), Outcome::Open);
        assert!(!odd.outcome().is_final());
        assert_eq!(
            Status::parse("RemotePaymentCreated").outcome(),
            Outcome::Open
        );
        assert_eq!(Status::parse("Wait").outcome(), Outcome::Open);
        assert_eq!(
            Status::parse("RemotePaymentRejected").outcome(),
            Outcome::Failed
        );
        assert_eq!(
            Status::parse("QrTokenDiscarded").outcome(),
            Outcome::Expired
        );
        assert_eq!(Status::parse("Expired").outcome(), Outcome::Expired);
        assert_eq!(
            Status::parse("IrisDestBlockCode10").outcome(),
            Outcome::Failed
        );
    }
}
