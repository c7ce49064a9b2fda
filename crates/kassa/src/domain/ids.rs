//! Identifiers that are easy to mix up when they are bare integers.

use std::fmt;

/// Kaspi's id of an operation (an invoice, a QR payment, a refund at Kaspi): an integer Kaspi
/// writes as a number or as text; stored as BIGINT everywhere.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct KaspiOperationId(i64);

impl KaspiOperationId {
    pub const fn new(id: i64) -> KaspiOperationId {
        KaspiOperationId(id)
    }

    pub const fn get(self) -> i64 {
        self.0
    }

    /// The id Kaspi wrote as text (`"14526557409"`), if it is one.
    pub fn parse(text: &str) -> Option<KaspiOperationId> {
        text.trim().parse().ok().map(KaspiOperationId)
    }
}

impl From<u64> for KaspiOperationId {
    /// Kaspi's ids fit an `i64` by far; a larger one saturates (and matches nothing).
    fn from(id: u64) -> KaspiOperationId {
        KaspiOperationId(i64::try_from(id).unwrap_or(i64::MAX))
    }
}

impl fmt::Display for KaspiOperationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for KaspiOperationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KaspiOperationId({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::KaspiOperationId;

    #[test]
    fn an_operation_id_reads_from_kaspi_text_and_prints_back() {
        let id = KaspiOperationId::parse(" 14526557409 ").expect("numeric");
        assert_eq!(id.get(), 14_526_557_409);
        assert_eq!(id.to_string(), "14526557409");
        assert_eq!(KaspiOperationId::from(14_526_557_409_u64), id);
        assert_eq!(KaspiOperationId::parse("op-1"), None);
    }
}
