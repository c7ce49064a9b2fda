//! Each cashier's operations history, synced into the store by a job per organization: newest
//! first, page by page with Kaspi's cursor, until operations already seen at the last mark.
//! Static QR payments are found there; so are payments of open invoices, which are recorded
//! at once (one history page settles many invoices, where polling would ask for each).

use crate::domain::{KaspiOperationId, Money};
use kaspi::wire::HistoryOperation;

use super::{Gateway, GatewayError};
use crate::store::{HistoryGap, InvoiceStatus, KaspiOperation, OperationEnd};

/// At most this many of the newest pages per sync run.
const TOP_PAGES: usize = 10;
/// At most this many pages of an unread stretch per sync run, after the newest.
const GAP_PAGES: usize = 5;

fn kept(org_id: i64, op: &HistoryOperation) -> Option<KaspiOperation> {
    Some(KaspiOperation {
        org_id,
        kaspi_operation_id: KaspiOperationId::new(op.operation_id()?),
        order_number: op.order_number.clone(),
        amount: op.amount.map(Money::from),
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

/// What reading one stretch of the history gave.
#[derive(Default)]
struct Read {
    /// The newest transaction date of the first page.
    newest: Option<String>,
    /// Kaspi's cursor where reading stopped before the end of the stretch, if it did.
    unread_from: Option<String>,
    pages: usize,
    new: usize,
    settled: usize,
}

impl Gateway {
    /// Syncs `org_id`'s history since the last mark. `true` when there is more to do soon: the
    /// run settled invoices (payments are flowing) or left a gap to read.
    ///
    /// A run reads the newest pages down to the mark (at most [`TOP_PAGES`]), so what was
    /// paid a moment ago is found first however much is unread below it. What the run could
    /// not reach is kept as a gap, read [`GAP_PAGES`] at a time by the following runs after
    /// their newest pages. A new gap while one is open becomes one gap down to the older end
    /// (the stretch between is read twice; reading is idempotent).
    pub async fn sync_history(&self, org_id: i64) -> Result<bool, GatewayError> {
        let started = std::time::Instant::now();
        let mark = self.store().invoices().history_mark(org_id).await?;
        let top = self
            .read_history(org_id, String::new(), mark.newest.as_deref(), TOP_PAGES)
            .await?;
        let mut gap = mark.gap;
        let mut below = Read::default();
        match (&top.unread_from, &mark.newest) {
            (Some(cursor), Some(until)) => {
                let until = gap.take().map_or_else(|| until.clone(), |old| old.until);
                gap = Some(HistoryGap {
                    cursor: cursor.clone(),
                    until,
                });
            }
            // The first sync of a cashier (no mark) leaves no gap: what is older than its
            // newest pages predates Kassa's invoices there.
            (Some(_), None) => {}
            (None, _) => {
                if let Some(open) = gap.take() {
                    below = self
                        .read_history(org_id, open.cursor, Some(&open.until), GAP_PAGES)
                        .await?;
                    gap = below.unread_from.clone().map(|cursor| HistoryGap {
                        cursor,
                        until: open.until,
                    });
                }
            }
        }
        let gap_open = gap.is_some();
        self.store()
            .invoices()
            .save_history_mark(org_id, top.newest, gap, self.now_ms())
            .await?;
        tracing::debug!(
            org_id,
            pages = top.pages,
            gap_pages = below.pages,
            new = top.new + below.new,
            settled = top.settled + below.settled,
            gap_open,
            ms = started.elapsed().as_millis(),
            "history synced"
        );
        Ok(gap_open || top.settled + below.settled > 0)
    }

    /// Reads `org_id`'s history from `cursor` (empty: the newest) down to the transaction
    /// date `until` (exclusive; `None`: to the end), at most `max_pages` pages, recording
    /// each page's operations and settling the invoices they end in one transaction.
    async fn read_history(
        &self,
        org_id: i64,
        mut cursor: String,
        until: Option<&str>,
        max_pages: usize,
    ) -> Result<Read, GatewayError> {
        let today = self
            .clock()
            .now()
            .to_offset(time::UtcOffset::from_hms(5, 0, 0).unwrap_or(time::UtcOffset::UTC))
            .date();
        let mut read = Read::default();
        loop {
            if read.pages == max_pages {
                read.unread_from = Some(cursor);
                return Ok(read);
            }
            read.pages += 1;
            let page_cursor = cursor.clone();
            let page = self
                .terminals()
                .call(org_id, "operations_history", |k| {
                    let cursor = page_cursor.clone();
                    async move { k.client.operations(&k.session, today, &cursor).await }
                })
                .await?;
            if read.pages == 1 {
                read.newest = page
                    .operations
                    .first()
                    .and_then(|op| op.transaction_date.clone());
            }
            let mut reached_end = false;
            let mut rows = Vec::with_capacity(page.operations.len());
            let mut ends = Vec::new();
            for op in &page.operations {
                if let (Some(until), Some(date)) = (until, op.transaction_date.as_deref()) {
                    // ISO 8601 dates of one zone compare as text.
                    if date < until {
                        reached_end = true;
                        continue;
                    }
                }
                ends.extend(end_of(op));
                rows.extend(kept(org_id, op));
            }
            // The page in one transaction: one commit settles many invoices.
            let (settled, new) = self
                .store()
                .invoices()
                .record_history_page(org_id, ends, rows, self.now_ms())
                .await?;
            read.settled += settled;
            read.new += new;
            match page.next_cursor {
                Some(next) if !reached_end && !page.operations.is_empty() => cursor = next,
                _ => return Ok(read),
            }
        }
    }
}

/// What `op` says of the invoice it belongs to, when its status is final.
fn end_of(op: &HistoryOperation) -> Option<OperationEnd> {
    let status = op.status.as_ref()?;
    let to = super::invoices::status_of(status)?;
    Some(OperationEnd {
        kaspi_operation_id: KaspiOperationId::new(op.operation_id()?),
        to,
        kaspi_status: Some(status.as_str().to_owned()),
        client_name: (to == InvoiceStatus::Paid)
            .then(|| op.client_short_name.clone())
            .flatten(),
    })
}
