//! Each cashier's operations history, synced into the store by a job per organization: newest
//! first, page by page with Kaspi's cursor, until operations already seen at the last mark.
//! Static QR payments are found there; so are payments of open invoices, which are recorded
//! at once (one history page settles many invoices, where polling would ask for each).

use kaspi::wire::HistoryOperation;
use kaspi::Amount;

use super::{now_ms, Gateway, GatewayError};
use crate::store::{InvoiceStatus, KaspiOperation};

/// At most this many pages per sync run.
const MAX_PAGES: usize = 20;

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
            for op in &page.operations {
                if let (Some(seen), Some(date)) = (mark.as_deref(), op.transaction_date.as_deref())
                {
                    // ISO 8601 dates of one zone compare as text.
                    if date < seen {
                        reached_mark = true;
                        continue;
                    }
                }
                self.settle_from_history(org_id, op).await?;
                rows.extend(kept(org_id, op));
            }
            saved += self
                .store()
                .save_history(org_id, rows, newest.clone(), now_ms())
                .await?;
            match page.next_cursor {
                Some(next) if !reached_mark && !page.operations.is_empty() => cursor = next,
                _ => break,
            }
        }
        Ok(saved)
    }

    /// Records the end of an open invoice of ours that `op` shows as final (paid, declined,
    /// expired); a payment also ends a cancelled or expired one (it wins).
    async fn settle_from_history(
        &self,
        org_id: i64,
        op: &HistoryOperation,
    ) -> Result<(), GatewayError> {
        let (Some(id), Some(status)) = (op.operation_id(), op.status.as_ref()) else {
            return Ok(());
        };
        let Some(to) = super::invoices::status_of(status) else {
            return Ok(());
        };
        let Some(invoice) = self
            .store()
            .invoice_by_operation_id(org_id, &id.to_string())
            .await?
        else {
            return Ok(());
        };
        if !invoice.status.can_move_to(to) {
            return Ok(());
        }
        let client_name = (to == InvoiceStatus::Paid)
            .then_some(op.client_short_name.as_deref())
            .flatten();
        let changed = self
            .store()
            .apply_status(invoice.id, to, Some(status.as_str()), now_ms(), client_name)
            .await?;
        if changed.is_some() {
            tracing::info!(
                invoice = invoice.id,
                status = to.as_str(),
                "invoice end found in Kaspi's history"
            );
        }
        Ok(())
    }
}
