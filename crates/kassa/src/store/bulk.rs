//! Bulk seeding of invoices (load tests, imports): many rows per `INSERT … VALUES (…), (…)`,
//! thousands per transaction, written as already sent to Kaspi, with no status event and no
//! job, so nothing in the background picks them up; counted in `invoice_day_counts` as they go.
//!
//! One statement holds [`ROWS_PER_STATEMENT`] rows (19 parameters each: under SQLite's 32,766
//! bound parameters and PostgreSQL's 65,535); one transaction holds [`ROWS_PER_TRANSACTION`].

use crate::db::{DbError, Value};
use crate::domain::KaspiOperationId;
use crate::store::InvoiceRepo;

use super::invoice_counts::{add_to_counts_tx, CountDelta, COUNTED_COLUMNS};
use super::{conflict_on_unique, CreateState, InvoiceStatus, NewInvoice, StoreError};

/// Rows of one `INSERT` statement: 1,000 × 19 = 19,000 parameters.
pub const ROWS_PER_STATEMENT: usize = 1_000;
/// Rows of one transaction.
pub const ROWS_PER_TRANSACTION: usize = 5_000;

/// The columns written, in the order of each row's parameters.
const COLUMNS: &[&str] = &[
    "payment_id",
    "org_id",
    "kind",
    "amount",
    "phone",
    "description",
    "external_order_id",
    "status",
    "kaspi_status",
    "kaspi_operation_id",
    "client_name",
    "is_sandbox",
    "create_state",
    "created_at",
    "updated_at",
    "paid_at",
    "cancelled_at",
    "expires_at",
    "metadata",
];

/// One invoice as [`crate::store::InvoiceRepo::bulk_insert_invoices`] writes it: sent to Kaspi (create state
/// `sent`, its Kaspi operation id known), in `status` since `changed_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkInvoice {
    pub new: NewInvoice,
    pub status: InvoiceStatus,
    /// Unique within the organization.
    pub kaspi_operation_id: KaspiOperationId,
    pub kaspi_status: Option<String>,
    pub client_name: Option<String>,
    /// When it reached `status` (`paid_at` of a paid invoice, `cancelled_at` of a cancelled
    /// one, and `updated_at`); `None` means at creation.
    pub changed_at: Option<i64>,
}

impl BulkInvoice {
    /// A pending invoice sent to Kaspi as operation `kaspi_operation_id`.
    pub fn pending(new: NewInvoice, kaspi_operation_id: KaspiOperationId) -> BulkInvoice {
        BulkInvoice {
            new,
            status: InvoiceStatus::Pending,
            kaspi_operation_id,
            kaspi_status: None,
            client_name: None,
            changed_at: None,
        }
    }

    fn push_params(&self, params: &mut Vec<Value>) {
        let new = &self.new;
        let changed_at = self.changed_at.unwrap_or(new.created_at);
        let paid_at = (self.status == InvoiceStatus::Paid).then_some(changed_at);
        let cancelled_at = (self.status == InvoiceStatus::Cancelled).then_some(changed_at);
        params.extend([
            (&new.payment_id).into(),
            new.org_id.into(),
            new.kind.as_str().into(),
            new.amount.into(),
            new.phone.as_ref().into(),
            new.description.as_ref().into(),
            new.external_order_id.as_ref().into(),
            self.status.as_str().into(),
            self.kaspi_status.as_ref().into(),
            self.kaspi_operation_id.into(),
            self.client_name.as_ref().into(),
            new.is_sandbox.into(),
            CreateState::Sent.as_str().into(),
            new.created_at.into(),
            changed_at.into(),
            paid_at.into(),
            cancelled_at.into(),
            new.expires_at.into(),
            new.metadata.as_ref().into(),
        ]);
    }
}

/// `INSERT INTO invoices (…) VALUES ($1, …), (…)` for `rows` rows.
fn insert_sql(rows: usize) -> String {
    format!(
        "INSERT INTO invoices ({}) VALUES {}",
        COLUMNS.join(", "),
        super::value_rows(1, rows, COLUMNS.len())
    )
}

impl InvoiceRepo {
    /// Inserts `rows` as invoices sent to Kaspi, in their status, with no status event and no
    /// poll job: 1,000 rows per statement, 5,000 per transaction, one
    /// transaction after another (a failure leaves the transactions before it committed).
    /// How many rows were inserted. `Conflict` when a payment id or Kaspi operation id exists.
    pub async fn bulk_insert_invoices(&self, rows: Vec<BulkInvoice>) -> Result<u64, StoreError> {
        let full = std::sync::Arc::new(insert_sql(ROWS_PER_STATEMENT));
        let mut inserted = 0;
        let mut rows = rows;
        while !rows.is_empty() {
            let rest = rows.split_off(rows.len().min(ROWS_PER_TRANSACTION));
            let chunk = std::mem::replace(&mut rows, rest);
            let full = full.clone();
            let written = self
                .db
                .write(move |tx| {
                    let mut written = 0;
                    let mut params = Vec::with_capacity(ROWS_PER_STATEMENT * COLUMNS.len());
                    for statement in chunk.chunks(ROWS_PER_STATEMENT) {
                        params.clear();
                        for row in statement {
                            row.push_params(&mut params);
                        }
                        let sql = if statement.len() == ROWS_PER_STATEMENT {
                            &full
                        } else {
                            &insert_sql(statement.len())
                        };
                        let rows =
                            tx.query(&format!("{sql} RETURNING {COUNTED_COLUMNS}"), &params)?;
                        let made = rows
                            .iter()
                            .map(|r| CountDelta::from_row(r, 1))
                            .collect::<Result<Vec<_>, DbError>>()?;
                        add_to_counts_tx(tx, &made)?;
                        written += made.len() as u64;
                    }
                    Ok::<_, StoreError>(written)
                })
                .await;
            inserted += conflict_on_unique(written, "a payment id or Kaspi operation id exists")?;
        }
        Ok(inserted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_stay_under_both_parameter_limits() {
        let params = ROWS_PER_STATEMENT * COLUMNS.len();
        assert!(params <= 32_766, "{params}");
        let sql = insert_sql(2);
        let row = |from: usize| {
            let list: Vec<String> = (from..from + COLUMNS.len())
                .map(|n| format!("${n}"))
                .collect();
            format!("({})", list.join(", "))
        };
        assert!(
            sql.ends_with(&format!("VALUES {}, {}", row(1), row(20))),
            "{sql}"
        );
    }
}
