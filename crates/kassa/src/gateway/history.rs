//! Each cashier's operations history, synced into the store by a job per organization: newest
//! first, page by page with Kaspi's cursor, until operations already seen at the last mark.
//! Static QR payments are found there; so are payments of open invoices, which are recorded
//! at once (one history page settles many invoices, where polling would ask for each).

use kaspi::wire::HistoryOperation;
use kaspi::Amount;

use super::{now_ms, Gateway, GatewayError};
use crate::store::{InvoiceStatus, KaspiOperation, OperationEnd};

/// At most this many pages per sync run.
const MAX_PAGES: usize = 100;

fn kept(org_id: i64, op: &HistoryOperation) -> Option<KaspiOperation> {
    Some(KaspiOperation {
        org_id,
        kaspi_operation_id: op.operation_id()?,
        order_number: op.order_number.clone(),
        amount: op.amount.map(Amount::tiyn),
        status: op.status.as_ref().map(|s| s.as_str().to_owned()),
        sale_id: op.sale_id,
        sale_type: op.sale_type.clone(),
        source_type: op.source_type.clone(),
        operation_method: op.operation_method,
        operation_type: op.operation_type,
        features: op.features,
        client_short_name: op.client_short_name.clone(),
        comment: op.comment.clone(),
        order_reg_date: op.order_reg_date.clone(),
        transaction_date: op.transaction_date.clone(),
        synced_at: 0,
        id: 0,
    })
}

impl Gateway {
    /// Syncs `org_id`'s history since the last mark; how many operations were new.
    pub async fn sync_history(&self, org_id: i64) -> Result<usize, GatewayError> {
        let mark = self.store().history_mark(org_id).await?;
        let today = time::OffsetDateTime::now_utc()
            .to_offset(time::UtcOffset::from_hms(5, 0, 0).unwrap_or(time::UtcOffset::UTC))
            .date();
        let mut cursor = String::new();
        let mut newest: Option<String> = None;
        let mut saved = 0;
        let mut complete = false;
        for _ in 0..MAX_PAGES {
            let page_cursor = cursor.clone();
            let page = self
                .terminals()
                .call(org_id, |k| {
                    let cursor = page_cursor.clone();
                    async move { k.client.operations(&k.session, today, &cursor).await }
                })
                .await?;
            if newest.is_none() {
                newest = page
                    .operations
                    .first()
                    .and_then(|op| op.transaction_date.clone());
            }
            let mut reached_mark = false;
            let mut rows = Vec::with_capacity(page.operations.len());
            let mut ends = Vec::new();
            for op in &page.operations {
                if let (Some(seen), Some(date)) = (mark.as_deref(), op.transaction_date.as_deref())
                {
                    // ISO 8601 dates of one zone compare as text.
                    if date < seen {
                        reached_mark = true;
                        continue;
                    }
                }
                ends.extend(end_of(op));
                rows.extend(kept(org_id, op));
            }
            // The page's ends in one transaction: one commit settles many invoices.
            if !ends.is_empty() {
                let changed = self
                    .store()
                    .settle_operations(org_id, ends, now_ms())
                    .await?;
                if changed > 0 {
                    tracing::debug!(org_id, changed, "invoice ends found in Kaspi's history");
                }
            }
            saved += self
                .store()
                .save_history(org_id, rows, None, now_ms())
                .await?;
            match page.next_cursor {
                Some(next) if !reached_mark && !page.operations.is_empty() => cursor = next,
                _ => {
                    complete = true;
                    break;
                }
            }
        }
        // The mark moves only when everything since the last one was read; after a backlog
        // longer than one run, the next run reads from the newest again.
        // The first sync of a cashier reads only the newest pages: what is older than them
        // predates Kassa's invoices there.
        if complete || mark.is_none() {
            self.store()
                .save_history(org_id, Vec::new(), newest, now_ms())
                .await?;
        } else {
            tracing::warn!(
                org_id,
                "history backlog longer than {MAX_PAGES} pages; continuing next run"
            );
        }
        Ok(saved)
    }
}

/// What `op` says of the invoice it belongs to, when its status is final.
fn end_of(op: &HistoryOperation) -> Option<OperationEnd> {
    let status = op.status.as_ref()?;
    let to = super::invoices::status_of(status)?;
    Some(OperationEnd {
        kaspi_operation_id: op.operation_id()?.to_string(),
        to,
        kaspi_status: Some(status.as_str().to_owned()),
        client_name: (to == InvoiceStatus::Paid)
            .then(|| op.client_short_name.clone())
            .flatten(),
    })
}
