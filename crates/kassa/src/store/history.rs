//! Operations read from each cashier's Kaspi history (`kaspi_operations`) and where each
//! organization's sync stands (`history_sync`). Rows are upserted by Kaspi's operation id, so a
//! sync that reads an operation again (its status changed) updates it.

use crate::db::{DbError, Row, Tx, Value};
use crate::domain::{KaspiOperationId, Money};
use crate::store::InvoiceRepo;

use super::DomainColumns as _;

use super::invoices::settle_operations_tx;
use super::jobs::{delete_job, schedule_job_later};
use super::OperationEnd;
use super::{CreateState, JobKind};

use super::StoreError;

/// One operation of the history, as kept.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KaspiOperation {
    pub org_id: i64,
    pub kaspi_operation_id: KaspiOperationId,
    pub order_number: Option<String>,
    pub amount: Option<Money>,
    pub status: Option<String>,
    pub sale_id: Option<i64>,
    pub sale_type: Option<String>,
    pub source_type: Option<String>,
    pub operation_method: Option<i64>,
    pub operation_type: Option<i64>,
    pub features: Option<i64>,
    pub client_short_name: Option<String>,
    pub comment: Option<String>,
    pub order_reg_date: Option<String>,
    pub transaction_date: Option<String>,
    /// Set by the store when written; the row's id too.
    pub synced_at: i64,
    pub id: i64,
}

/// Where an organization's history sync stands.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HistoryMark {
    /// The newest transaction date read: everything newer is new.
    pub newest: Option<String>,
    /// A stretch older than that still to read.
    pub gap: Option<HistoryGap>,
}

/// A stretch of the history not read yet: from Kaspi's paging `cursor` down to the
/// transaction date `until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryGap {
    pub cursor: String,
    pub until: String,
}

const COLUMNS: &str = "id, org_id, kaspi_operation_id, order_number, amount, status, sale_id, \
     sale_type, source_type, operation_method, operation_type, features, client_short_name, \
     comment, order_reg_date, transaction_date, synced_at";

fn from_row(row: &Row) -> Result<KaspiOperation, DbError> {
    Ok(KaspiOperation {
        id: row.i64("id")?,
        org_id: row.i64("org_id")?,
        kaspi_operation_id: KaspiOperationId::new(row.i64("kaspi_operation_id")?),
        order_number: row.opt_text("order_number")?,
        amount: row.opt_money("amount")?,
        status: row.opt_text("status")?,
        sale_id: row.opt_i64("sale_id")?,
        sale_type: row.opt_text("sale_type")?,
        source_type: row.opt_text("source_type")?,
        operation_method: row.opt_i64("operation_method")?,
        operation_type: row.opt_i64("operation_type")?,
        features: row.opt_i64("features")?,
        client_short_name: row.opt_text("client_short_name")?,
        comment: row.opt_text("comment")?,
        order_reg_date: row.opt_text("order_reg_date")?,
        transaction_date: row.opt_text("transaction_date")?,
        synced_at: row.i64("synced_at")?,
    })
}

impl InvoiceRepo {
    /// Records one page of `org_id`'s history in one transaction: operations whose comment
    /// carries the marker of an invoice without an operation are given to it first (see
    /// `claim_operations_tx`), then the invoices the page ends are
    /// settled (each allowed change with its event, as [`crate::store::InvoiceRepo::apply_status`] would) and its operations written (new ones
    /// inserted, known ones updated). How many invoices changed, and how many operations were
    /// new.
    pub async fn record_history_page(
        &self,
        org_id: i64,
        ends: Vec<OperationEnd>,
        operations: Vec<KaspiOperation>,
        now_ms: i64,
    ) -> Result<(usize, usize), StoreError> {
        self.outbox
            .write(move |tx| {
                let marked: Vec<(&str, KaspiOperationId)> = operations
                    .iter()
                    .filter_map(|op| {
                        let marker = super::kaspi_ref_of(op.comment.as_deref()?)?;
                        Some((marker, op.kaspi_operation_id))
                    })
                    .collect();
                let claimed = claim_operations_tx(tx, org_id, &marked, now_ms)?;
                if claimed > 0 {
                    tracing::info!(
                        org_id,
                        claimed,
                        "creates whose answer was lost found in the history by their marker"
                    );
                }
                let settled = settle_operations_tx(tx, org_id, &ends, now_ms)?;
                let new = save_operations_tx(tx, org_id, &operations, now_ms)?;
                Ok((settled, new))
            })
            .await
            .map(|(settled, new)| {
                settled.iter().for_each(super::invoices::log_status_change);
                (settled.len(), new)
            })
    }

    /// Where the organization's history sync stands.
    pub async fn history_mark(&self, org_id: i64) -> Result<HistoryMark, StoreError> {
        self.db
            .read(move |tx| {
                let row = tx.query_opt(
                    "SELECT newest_date, gap_cursor, gap_until FROM history_sync \
                     WHERE org_id = $1",
                    &[org_id.into()],
                )?;
                let Some(row) = row else {
                    return Ok(HistoryMark::default());
                };
                let gap = match (row.opt_text("gap_cursor")?, row.opt_text("gap_until")?) {
                    (Some(cursor), Some(until)) => Some(HistoryGap { cursor, until }),
                    _ => None,
                };
                Ok(HistoryMark {
                    newest: row.opt_text("newest_date")?,
                    gap,
                })
            })
            .await
    }

    /// Moves the organization's sync mark to `mark` (the newest transaction date read; `None`
    /// keeps the current one) and records the stretch left to read, if any.
    pub async fn save_history_mark(
        &self,
        org_id: i64,
        mark: Option<String>,
        gap: Option<HistoryGap>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.db
            .write(move |tx| {
                let (cursor, until) = match &gap {
                    Some(gap) => (Some(gap.cursor.as_str()), Some(gap.until.as_str())),
                    None => (None, None),
                };
                tx.execute(
                    "INSERT INTO history_sync (org_id, newest_date, gap_cursor, gap_until, synced_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (org_id) DO UPDATE SET \
                     newest_date = COALESCE(excluded.newest_date, history_sync.newest_date), \
                     gap_cursor = excluded.gap_cursor, gap_until = excluded.gap_until, \
                     synced_at = excluded.synced_at",
                    &[
                        org_id.into(),
                        mark.as_ref().into(),
                        cursor.into(),
                        until.into(),
                        now_ms.into(),
                    ],
                )?;
                Ok(())
            })
            .await
    }

    /// The operation of `org_id` with `order_number` that is not one of Kassa's own invoices
    /// (a payment to the static QR, or made in the Kaspi app), if synced.
    pub async fn static_qr_payment(
        &self,
        org_id: i64,
        order_number: &str,
    ) -> Result<Option<KaspiOperation>, StoreError> {
        let order_number = order_number.to_owned();
        let sql = format!(
            "SELECT {COLUMNS} FROM kaspi_operations o WHERE org_id = $1 AND order_number = $2 \
             AND NOT EXISTS (SELECT 1 FROM invoices i WHERE i.org_id = o.org_id \
             AND i.kaspi_operation_id = o.kaspi_operation_id) \
             ORDER BY id DESC LIMIT 1"
        );
        self.db
            .read(move |tx| {
                let row = tx.query_opt(&sql, &[org_id.into(), order_number.into()])?;
                Ok(row.as_ref().map(from_row).transpose()?)
            })
            .await
    }
}

/// Columns written per operation by [`save_operations_tx`].
const WRITTEN: [&str; 16] = [
    "org_id",
    "kaspi_operation_id",
    "order_number",
    "amount",
    "status",
    "sale_id",
    "sale_type",
    "source_type",
    "operation_method",
    "operation_type",
    "features",
    "client_short_name",
    "comment",
    "order_reg_date",
    "transaction_date",
    "synced_at",
];

/// Upserts `operations` of `org_id` by Kaspi's operation id (one statement to find the known
/// ones, one to write them all); how many were new. An operation listed twice is written once,
/// as its last listing says.
fn save_operations_tx(
    tx: &mut dyn Tx,
    org_id: i64,
    operations: &[KaspiOperation],
    now_ms: i64,
) -> Result<usize, DbError> {
    let mut latest: Vec<&KaspiOperation> = Vec::with_capacity(operations.len());
    for op in operations {
        match latest
            .iter_mut()
            .find(|o| o.kaspi_operation_id == op.kaspi_operation_id)
        {
            Some(seen) => *seen = op,
            None => latest.push(op),
        }
    }
    if latest.is_empty() {
        return Ok(0);
    }
    let mut params: Vec<Value> = Vec::with_capacity(latest.len() + 1);
    params.push(org_id.into());
    params.extend(latest.iter().map(|op| Value::from(op.kaspi_operation_id)));
    let known = tx
        .query(
            &format!(
                "SELECT kaspi_operation_id FROM kaspi_operations \
                 WHERE org_id = $1 AND kaspi_operation_id IN ({})",
                super::placeholders(2, latest.len())
            ),
            &params,
        )?
        .len();
    let mut params: Vec<Value> = Vec::with_capacity(latest.len() * WRITTEN.len());
    for op in &latest {
        params.extend([
            org_id.into(),
            op.kaspi_operation_id.into(),
            op.order_number.as_ref().into(),
            op.amount.into(),
            op.status.as_ref().into(),
            op.sale_id.into(),
            op.sale_type.as_ref().into(),
            op.source_type.as_ref().into(),
            op.operation_method.into(),
            op.operation_type.into(),
            op.features.into(),
            op.client_short_name.as_ref().into(),
            op.comment.as_ref().into(),
            op.order_reg_date.as_ref().into(),
            op.transaction_date.as_ref().into(),
            now_ms.into(),
        ]);
    }
    tx.execute(
        &format!(
            "INSERT INTO kaspi_operations ({}) VALUES {} \
             ON CONFLICT (org_id, kaspi_operation_id) DO UPDATE SET \
             status = excluded.status, amount = excluded.amount, \
             transaction_date = excluded.transaction_date, synced_at = excluded.synced_at",
            WRITTEN.join(", "),
            super::value_rows(1, latest.len(), WRITTEN.len())
        ),
        &params,
    )?;
    Ok(latest.len() - known)
}

/// Gives the operations of `operations` whose comment carries a Kassa marker to the invoice
/// of `org_id` with that marker that has no operation yet (its create's answer was lost, also
/// across a crash): the operation id is recorded, the create is `sent`, its reconciliation
/// ends and a status poll is due. One read finds them (usually none); how many were given.
fn claim_operations_tx(
    tx: &mut dyn Tx,
    org_id: i64,
    operations: &[(&str, KaspiOperationId)],
    at_ms: i64,
) -> Result<usize, DbError> {
    if operations.is_empty() {
        return Ok(0);
    }
    let sql = format!(
        "SELECT id, kaspi_ref FROM invoices WHERE org_id = $1 AND kaspi_operation_id IS NULL \
         AND kaspi_ref IN ({})",
        super::placeholders(2, operations.len())
    );
    let mut params: Vec<Value> = Vec::with_capacity(operations.len() + 1);
    params.push(org_id.into());
    params.extend(operations.iter().map(|(marker, _)| Value::from(*marker)));
    let stranded = tx.query(&sql, &params)?;
    let mut claimed = 0;
    for row in &stranded {
        let (id, marker) = (row.i64("id")?, row.text("kaspi_ref")?);
        let Some(&(_, op)) = operations.iter().find(|(m, _)| *m == marker) else {
            continue;
        };
        let changed = tx.execute(
            "UPDATE invoices SET kaspi_operation_id = $2, create_state = $3, last_error = NULL, \
             updated_at = $4 WHERE id = $1 AND kaspi_operation_id IS NULL AND NOT EXISTS \
             (SELECT 1 FROM invoices o WHERE o.org_id = $5 AND o.kaspi_operation_id = $2)",
            &[
                id.into(),
                op.into(),
                CreateState::Sent.as_str().into(),
                at_ms.into(),
                org_id.into(),
            ],
        )?;
        if changed == 1 {
            delete_job(tx, JobKind::ReconcileInvoice, id)?;
            schedule_job_later(tx, JobKind::PollInvoice, id, at_ms, at_ms)?;
            claimed += 1;
        }
    }
    Ok(claimed)
}
