//! The kinds of background work that are rows in the `jobs` table.

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
}

impl JobKind {
    /// Every kind.
    pub const ALL: [JobKind; 4] = [
        JobKind::PollInvoice,
        JobKind::ReconcileInvoice,
        JobKind::Refund,
        JobKind::SyncHistory,
    ];

    /// The spelling in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::PollInvoice => "poll_invoice",
            JobKind::ReconcileInvoice => "reconcile_invoice",
            JobKind::Refund => "refund",
            JobKind::SyncHistory => "sync_history",
        }
    }

    /// The kind spelled `text`.
    pub fn parse(text: &str) -> Option<JobKind> {
        JobKind::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

impl std::fmt::Display for JobKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::JobKind;

    #[test]
    fn every_kind_reads_back_from_its_spelling() {
        for kind in JobKind::ALL {
            assert_eq!(JobKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(JobKind::parse("poll"), None);
    }
}
