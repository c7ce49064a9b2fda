//! Operations read from each cashier's Kaspi history (`kaspi_operations`) and where each
//! organization's sync stands (`history_sync`). Rows are upserted by Kaspi's operation id, so a
//! sync that reads an operation again (its status changed) updates it.

use crate::db::{DbError, Row, Value};

use super::{Store, StoreError};

/// One operation of the history, as kept.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KaspiOperation {
    pub org_id: i64,
    pub kaspi_operation_id: i64,
    pub order_number: Option<String>,
    /// In tiyn.
    pub amount: Option<i64>,
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

const COLUMNS: &str = "id, org_id, kaspi_operation_id, order_number, amount, status, sale_id, \
     sale_type, source_type, operation_method, operation_type, features, client_short_name, \
     comment, order_reg_date, transaction_date, synced_at";

fn from_row(row: &Row) -> Result<KaspiOperation, DbError> {
    Ok(KaspiOperation {
        id: row.i64("id")?,
        org_id: row.i64("org_id")?,
        kaspi_operation_id: row.i64("kaspi_operation_id")?,
        order_number: row.opt_text("order_number")?,
        amount: row.opt_i64("amount")?,
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

impl Store {
    /// Writes `operations` of `org_id` (new ones inserted, known ones updated) and moves the
    /// organization's sync mark to `newest_date`, in one transaction; how many were new.
    pub async fn save_history(
        &self,
        org_id: i64,
        operations: Vec<KaspiOperation>,
        newest_date: Option<String>,
        now_ms: i64,
    ) -> Result<usize, StoreError> {
        let upsert = "INSERT INTO kaspi_operations (org_id, kaspi_operation_id, order_number, \
             amount, status, sale_id, sale_type, source_type, operation_method, operation_type, \
             features, client_short_name, comment, order_reg_date, transaction_date, synced_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
             ON CONFLICT (org_id, kaspi_operation_id) DO UPDATE SET \
             status = excluded.status, amount = excluded.amount, \
             transaction_date = excluded.transaction_date, synced_at = excluded.synced_at";
        self.db
            .write(move |tx| {
                let mut new = 0;
                for op in &operations {
                    let known = tx
                        .query_opt(
                            "SELECT id FROM kaspi_operations \
                             WHERE org_id = $1 AND kaspi_operation_id = $2",
                            &[org_id.into(), op.kaspi_operation_id.into()],
                        )?
                        .is_some();
                    let params: [Value; 16] = [
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
                    ];
                    tx.execute(upsert, &params)?;
                    if !known {
                        new += 1;
                    }
                }
                tx.execute(
                    "INSERT INTO history_sync (org_id, newest_date, synced_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (org_id) DO UPDATE SET \
                     newest_date = COALESCE(excluded.newest_date, history_sync.newest_date), \
                     synced_at = excluded.synced_at",
                    &[org_id.into(), newest_date.as_ref().into(), now_ms.into()],
                )?;
                Ok(new)
            })
            .await
    }

    /// The newest transaction date the organization's history sync has seen.
    pub async fn history_mark(&self, org_id: i64) -> Result<Option<String>, StoreError> {
        self.db
            .read(move |tx| {
                let row = tx.query_opt(
                    "SELECT newest_date FROM history_sync WHERE org_id = $1",
                    &[org_id.into()],
                )?;
                Ok(match row {
                    Some(row) => row.opt_text("newest_date")?,
                    None => None,
                })
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
             AND i.kaspi_operation_id = CAST(o.kaspi_operation_id AS TEXT)) \
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
