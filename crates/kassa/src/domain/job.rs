//! The kinds of background work that are rows in the `jobs` table.

use super::invoice::spelled;

/// What a job does; `ref_id` of the job names the row it is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobKind {
    /// Ask Kaspi for the status of a sent invoice (`ref_id`: the invoice).
    PollInvoice,
    /// Find out whether an invoice whose create had no known outcome reached Kaspi (`ref_id`:
    /// the invoice).
    ReconcileInvoice,
    /// Send a refund to Kaspi, or find out what became of one sent (`ref_id`: the refund).
    Refund,
    /// Read an organization's Kaspi operations history (`ref_id`: the organization).
    SyncHistory,
    /// Bill a subscription's due period or retry, or end its grace period (`ref_id`: the
    /// subscription).
    BillSubscription,
}

spelled!(JobKind {
    PollInvoice = "poll_invoice",
    ReconcileInvoice = "reconcile_invoice",
    Refund = "refund",
    SyncHistory = "sync_history",
    BillSubscription = "bill_subscription",
});

#[cfg(test)]
mod tests {
    use super::JobKind;

    #[test]
    fn every_kind_reads_back_from_its_spelling() {
        for kind in JobKind::ALL {
            assert_eq!(JobKind::parse(kind.as_str()), Some(*kind));
        }
        assert_eq!(JobKind::parse("poll"), None);
    }
}
