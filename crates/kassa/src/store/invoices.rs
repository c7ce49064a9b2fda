//! Invoices: creation in steps (`sending` → `sent` | `unknown` | `failed`), status changes with
//! their `invoice_events` row in the same transaction (listing and stats: `invoice_list.rs`).
//!
//! Every read takes the organization: another organization's invoice is simply not found.

use super::DomainColumns as _;
use crate::db::{DbError, Row, Tx, Value};
use crate::domain::KaspiOperationId;
use crate::store::InvoiceRepo;

use super::audit::{self, Change as AuditChange};
use super::invoice_counts::{add_to_counts_tx, CountDelta, COUNTED_COLUMNS};
use super::jobs::{delete_job, delete_jobs, schedule_job_at, schedule_job_later};
use super::{
    conflict_on_unique, Cart, CreateState, EventKind, Invoice, InvoiceItem, InvoiceKind,
    InvoiceSent, InvoiceStatus, JobKind, NewInvoice, NewInvoiceItem, Resource, StoreError,
};

pub(super) const INVOICE_COLUMNS: &str =
    "id, payment_id, org_id, kind, amount, phone, description, \
     external_order_id, status, kaspi_status, kaspi_operation_id, client_name, total_refunded, \
     is_sandbox, create_state, last_error, created_at, updated_at, paid_at, cancelled_at, \
     expires_at, metadata, cancel_reason, qr_token, ext_tran_id, refund_reserved, kaspi_ref, \
     subscription_id, subtotal, discount_percentage, discount_sum";

pub(super) fn invoice_from_row(row: &Row) -> Result<Invoice, DbError> {
    Ok(Invoice {
        id: row.i64("id")?,
        payment_id: row.text("payment_id")?,
        org_id: row.i64("org_id")?,
        kind: row.parsed("kind", InvoiceKind::parse)?,
        amount: row.money("amount")?,
        phone: row.opt_phone("phone")?,
        description: row.opt_text("description")?,
        external_order_id: row.opt_text("external_order_id")?,
        status: row.parsed("status", InvoiceStatus::parse)?,
        kaspi_status: row.opt_text("kaspi_status")?,
        kaspi_operation_id: row.opt_operation_id("kaspi_operation_id")?,
        client_name: row.opt_text("client_name")?,
        total_refunded: row.money("total_refunded")?,
        is_sandbox: row.bool("is_sandbox")?,
        create_state: row.parsed("create_state", CreateState::parse)?,
        last_error: row.opt_text("last_error")?,
        created_at: row.i64("created_at")?,
        updated_at: row.i64("updated_at")?,
        paid_at: row.opt_i64("paid_at")?,
        cancelled_at: row.opt_i64("cancelled_at")?,
        expires_at: row.opt_i64("expires_at")?,
        metadata: row.opt_text("metadata")?,
        cancel_reason: row.opt_text("cancel_reason")?,
        qr_token: row.opt_text("qr_token")?,
        ext_tran_id: row.opt_text("ext_tran_id")?,
        refund_reserved: row.money("refund_reserved")?,
        kaspi_ref: row.opt_text("kaspi_ref")?,
        subscription_id: row.opt_i64("subscription_id")?,
        subtotal: row.opt_money("subtotal")?,
        discount_percentage: row.opt_i64("discount_percentage")?,
        discount_sum: row.opt_money("discount_sum")?,
    })
}

pub(super) fn invoice_by_id_tx(tx: &mut dyn Tx, id: i64) -> Result<Option<Invoice>, DbError> {
    let sql = format!("SELECT {INVOICE_COLUMNS} FROM invoices WHERE id = $1");
    tx.query_opt(&sql, &[id.into()])?
        .as_ref()
        .map(invoice_from_row)
        .transpose()
}

const ITEM_COLUMNS: &str = "id, invoice_id, position, catalog_item_id, name, price, \
     original_price, count, unit_id, discount, item_type, nomenclature_id, nomenclature_history_id";

fn item_from_row(row: &Row) -> Result<InvoiceItem, DbError> {
    Ok(InvoiceItem {
        id: row.i64("id")?,
        invoice_id: row.i64("invoice_id")?,
        position: row.i64("position")?,
        item: NewInvoiceItem {
            catalog_item_id: row.opt_i64("catalog_item_id")?,
            name: row.text("name")?,
            price: row.money("price")?,
            original_price: row.money("original_price")?,
            count: row.i64("count")?,
            unit_id: row.opt_i64("unit_id")?,
            discount: row.money("discount")?,
            item_type: row.opt_text("item_type")?,
            nomenclature_id: row.opt_i64("nomenclature_id")?,
            nomenclature_history_id: row.opt_i64("nomenclature_history_id")?,
        },
    })
}

/// Stores the lines of `invoice`, in order, inside the caller's transaction.
fn insert_items_tx(
    tx: &mut dyn Tx,
    invoice: &Invoice,
    items: &[NewInvoiceItem],
) -> Result<(), DbError> {
    for (position, item) in items.iter().enumerate() {
        tx.execute(
            "INSERT INTO invoice_items (invoice_id, org_id, position, catalog_item_id, name, \
             price, original_price, count, unit_id, discount, item_type, nomenclature_id, \
             nomenclature_history_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            &[
                invoice.id.into(),
                invoice.org_id.into(),
                i64::try_from(position).unwrap_or(i64::MAX).into(),
                item.catalog_item_id.into(),
                (&item.name).into(),
                item.price.into(),
                item.original_price.into(),
                item.count.into(),
                item.unit_id.into(),
                item.discount.into(),
                item.item_type.as_ref().into(),
                item.nomenclature_id.into(),
                item.nomenclature_history_id.into(),
            ],
        )?;
    }
    Ok(())
}

/// The end of one Kaspi operation, as the history shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationEnd {
    pub kaspi_operation_id: KaspiOperationId,
    pub to: InvoiceStatus,
    pub kaspi_status: Option<String>,
    pub client_name: Option<String>,
}

/// The status change of one invoice, applied inside a caller's transaction.
struct Change<'a> {
    to: InvoiceStatus,
    kaspi_status: Option<&'a str>,
    client_name: Option<&'a str>,
    cancel_reason: Option<&'a str>,
    at_ms: i64,
}

/// Moves the invoice to `change.to` if that is allowed from its current status, writing the
/// event row; `None` (and no write) when not allowed or already there.
///
/// The UPDATE compares the status it read, so of two transactions making the same change only
/// one changes the row (PostgreSQL re-checks the WHERE after waiting for the other's lock) and
/// only that one writes the event.
fn apply_status_tx(
    tx: &mut dyn Tx,
    invoice_id: i64,
    change: &Change<'_>,
) -> Result<Option<Invoice>, DbError> {
    let Some(current) = invoice_by_id_tx(tx, invoice_id)? else {
        return Ok(None);
    };
    let Some(updated) = update_status_tx(tx, &current, change)? else {
        return Ok(None);
    };
    record_changes_tx(tx, &[(&current, change)])?;
    Ok(Some(updated))
}

/// The UPDATE of [`apply_status_tx`] from `current` (as read in this transaction); `None`
/// when the move is not allowed or the row is no longer in `current`'s status. The caller
/// records the change with [`record_changes_tx`].
fn update_status_tx(
    tx: &mut dyn Tx,
    current: &Invoice,
    change: &Change<'_>,
) -> Result<Option<Invoice>, DbError> {
    if !current.status.can_move_to(change.to) {
        return Ok(None);
    }
    let paid_at = (change.to == InvoiceStatus::Paid).then_some(change.at_ms);
    let cancelled_at = (change.to == InvoiceStatus::Cancelled).then_some(change.at_ms);
    let sql = format!(
        "UPDATE invoices SET status = $3, kaspi_status = COALESCE($4, kaspi_status), \
         client_name = COALESCE($5, client_name), updated_at = $6, \
         paid_at = COALESCE($7, paid_at), cancelled_at = COALESCE($8, cancelled_at), \
         cancel_reason = COALESCE($9, cancel_reason) \
         WHERE id = $1 AND status = $2 RETURNING {INVOICE_COLUMNS}"
    );
    let row = tx.query_opt(
        &sql,
        &[
            current.id.into(),
            current.status.as_str().into(),
            change.to.as_str().into(),
            change.kaspi_status.into(),
            change.client_name.into(),
            change.at_ms.into(),
            paid_at.into(),
            cancelled_at.into(),
            change.cancel_reason.into(),
        ],
    )?;
    row.as_ref().map(invoice_from_row).transpose()
}

/// Writes the event row of each change made by [`update_status_tx`] (one statement), moves
/// the changed invoices between the kept counts of their statuses (one more), and ends the
/// poll jobs of the invoices that reached a final status (one more).
fn record_changes_tx(tx: &mut dyn Tx, changes: &[(&Invoice, &Change<'_>)]) -> Result<(), DbError> {
    if changes.is_empty() {
        return Ok(());
    }
    const WIDTH: usize = 6;
    let mut params: Vec<Value> = Vec::with_capacity(changes.len() * WIDTH);
    for (before, change) in changes {
        params.extend([
            before.org_id.into(),
            before.id.into(),
            EventKind::StatusChanged.as_str().into(),
            before.status.as_str().into(),
            change.to.as_str().into(),
            change.at_ms.into(),
        ]);
    }
    tx.defer(
        &format!(
            "INSERT INTO invoice_events (org_id, invoice_id, kind, from_status, to_status, at) \
             VALUES {}",
            super::value_rows(1, changes.len(), WIDTH)
        ),
        &params,
    )?;
    let moved: Vec<CountDelta> = changes
        .iter()
        .flat_map(|(before, change)| CountDelta::moved(before, change.to))
        .collect();
    add_to_counts_tx(tx, &moved)?;
    for (before, change) in changes {
        super::subscriptions::invoice_ended_tx(tx, before, change.to, change.at_ms)?;
    }
    let ended: Vec<i64> = changes
        .iter()
        .filter(|(_, change)| change.to.is_final())
        .map(|(before, _)| before.id)
        .collect();
    delete_jobs(tx, JobKind::PollInvoice, &ended)
}

/// Records the ends of many invoices of `org_id` at once, found by Kaspi operation id (as one
/// history page shows them), inside the caller's transaction: each allowed change with its
/// event, as [`crate::store::InvoiceRepo::apply_status`] would. The invoices are read with one statement, their
/// events written with one, their poll jobs ended with one; each change is its own conditional
/// UPDATE. The invoices that changed, as they now are (for the log, once committed).
pub(super) fn settle_operations_tx(
    tx: &mut dyn Tx,
    org_id: i64,
    ends: &[OperationEnd],
    at_ms: i64,
) -> Result<Vec<Invoice>, DbError> {
    if ends.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT {INVOICE_COLUMNS} FROM invoices WHERE org_id = $1 AND kaspi_operation_id IN ({})",
        super::placeholders(2, ends.len())
    );
    let mut params: Vec<Value> = Vec::with_capacity(ends.len() + 1);
    params.push(org_id.into());
    params.extend(ends.iter().map(|end| end.kaspi_operation_id.into()));
    let current: Vec<Invoice> = tx
        .query(&sql, &params)?
        .iter()
        .map(invoice_from_row)
        .collect::<Result<_, _>>()?;
    let mut changed = Vec::new();
    let mut updated = Vec::new();
    for end in ends {
        let Some(before) = current
            .iter()
            .find(|i| i.kaspi_operation_id == Some(end.kaspi_operation_id))
        else {
            continue;
        };
        let change = Change {
            to: end.to,
            kaspi_status: end.kaspi_status.as_deref(),
            client_name: end.client_name.as_deref(),
            cancel_reason: None,
            at_ms,
        };
        if let Some(now) = update_status_tx(tx, before, &change)? {
            changed.push((before, change));
            updated.push(now);
        }
    }
    let records: Vec<(&Invoice, &Change<'_>)> = changed.iter().map(|(b, c)| (*b, c)).collect();
    record_changes_tx(tx, &records)?;
    Ok(updated)
}

/// The log line of a committed status change, whoever found it (a poll, a sandbox payer, the
/// history, a cancel, a create Kaspi refused), written in the finder's span once the change is
/// committed: amounts in tenge, never the phone.
pub(super) fn log_status_change(invoice: &Invoice) {
    tracing::info!(
        org_id = invoice.org_id,
        invoice = invoice.id,
        status = invoice.status.as_str(),
        kaspi_status = invoice.kaspi_status.as_deref(),
        amount_kzt = %invoice.amount.to_decimal_string(),
        "invoice status changed"
    );
    crate::metrics::invoice_status_changed(invoice.status);
}

/// Records a new invoice as `pending`, `sending`, inside the caller's transaction: with its
/// kept counts, its reconciliation job (`reconcile_at`) and its idempotency link, as
/// [`InvoiceRepo::insert_invoice`] says; `subscription_id` names the subscription billing it.
pub(super) fn insert_invoice_tx(
    tx: &mut dyn Tx,
    new: &NewInvoice,
    subscription_id: Option<i64>,
    cart: Option<&Cart>,
) -> Result<Invoice, StoreError> {
    let sql = format!(
        "INSERT INTO invoices (payment_id, org_id, kind, amount, phone, description, \
         external_order_id, status, is_sandbox, create_state, created_at, updated_at, \
         expires_at, metadata, kaspi_ref, subscription_id, subtotal, discount_percentage, \
         discount_sum) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12, $13, $14, $15, $16, \
         $17, $18) RETURNING {INVOICE_COLUMNS}"
    );
    let params: [Value; 18] = [
        (&new.payment_id).into(),
        new.org_id.into(),
        new.kind.as_str().into(),
        new.amount.into(),
        new.phone.as_ref().into(),
        new.description.as_ref().into(),
        new.external_order_id.as_ref().into(),
        InvoiceStatus::Pending.as_str().into(),
        new.is_sandbox.into(),
        CreateState::Sending.as_str().into(),
        new.created_at.into(),
        new.expires_at.into(),
        new.metadata.as_ref().into(),
        new.kaspi_ref.as_ref().into(),
        subscription_id.into(),
        cart.map(|c| c.subtotal).into(),
        cart.and_then(|c| c.discount_percentage).into(),
        cart.map(|c| c.discount_sum).into(),
    ];
    let invoice = invoice_from_row(&tx.query_one(&sql, &params)?)?;
    if let Some(cart) = cart {
        insert_items_tx(tx, &invoice, &cart.items)?;
    }
    add_to_counts_tx(tx, &[CountDelta::of(&invoice, 1)])?;
    if let Some(at) = new.reconcile_at {
        schedule_job_later(
            tx,
            JobKind::ReconcileInvoice,
            invoice.id,
            at,
            new.created_at,
        )?;
    }
    if let Some(link) = &new.idempotency {
        super::idempotency::link_tx(tx, link, Resource::Invoice(invoice.id))?;
    }
    Ok(invoice)
}

impl InvoiceRepo {
    /// Records a new invoice as `pending`, `sending`; with `reconcile_at`, its reconciliation
    /// job is scheduled in the same transaction (so a create whose process dies while Kaspi is
    /// asked is finished by a later one), and with `idempotency` the request's record names
    /// the invoice. `Conflict` when the payment id exists.
    pub async fn insert_invoice(&self, new: NewInvoice) -> Result<Invoice, StoreError> {
        self.insert_invoice_with_cart(new, None).await
    }

    /// [`InvoiceRepo::insert_invoice`] with the cart that made its amount: its lines are stored
    /// in the same transaction.
    pub async fn insert_invoice_with_cart(
        &self,
        new: NewInvoice,
        cart: Option<Cart>,
    ) -> Result<Invoice, StoreError> {
        let actor = crate::audit::current();
        let inserted = self
            .db
            .write(move |tx| {
                let invoice = insert_invoice_tx(tx, &new, None, cart.as_ref())?;
                let change = AuditChange::new(
                    invoice.org_id,
                    "invoice.created",
                    format!("invoice:{}", invoice.id),
                )
                .with(serde_json::json!({
                    "kind": invoice.kind.as_str(),
                    "amount": invoice.amount.to_decimal_string(),
                    "external_order_id": invoice.external_order_id,
                }));
                audit::note(tx, actor.as_ref(), invoice.created_at, &change)?;
                Ok(invoice)
            })
            .await;
        conflict_on_unique(inserted, "an invoice with this payment id exists")
    }

    /// The lines of invoice `invoice_id` of `org_id`, in order (none for a flat amount).
    pub async fn items(
        &self,
        org_id: i64,
        invoice_id: i64,
    ) -> Result<Vec<InvoiceItem>, StoreError> {
        self.db
            .read(move |tx| {
                let rows = tx.query(
                    &format!(
                        "SELECT {ITEM_COLUMNS} FROM invoice_items WHERE org_id = $1 \
                         AND invoice_id = $2 ORDER BY position"
                    ),
                    &[org_id.into(), invoice_id.into()],
                )?;
                Ok(rows.iter().map(item_from_row).collect::<Result<_, _>>()?)
            })
            .await
    }

    /// Kaspi accepted the invoice: records its operation id and schedules the first status
    /// poll, in one transaction. Also accepted after `unknown` (reconciliation found it).
    /// `NotFound` when there is no such invoice still being created; `Conflict` when the
    /// operation id already belongs to another invoice of the organization.
    pub async fn mark_invoice_sent(
        &self,
        invoice_id: i64,
        sent: InvoiceSent,
    ) -> Result<Invoice, StoreError> {
        self.mark_invoice_sent_by(invoice_id, sent, None).await
    }

    /// [`InvoiceRepo::mark_invoice_sent`] noting the cashier (terminal id) whose call made
    /// the operation, when known (its cancel and refunds go through it).
    pub async fn mark_invoice_sent_by(
        &self,
        invoice_id: i64,
        sent: InvoiceSent,
        terminal_id: Option<i64>,
    ) -> Result<Invoice, StoreError> {
        let sql = format!(
            "UPDATE invoices SET create_state = $2, kaspi_operation_id = $3, \
             kaspi_status = COALESCE($4, kaspi_status), client_name = COALESCE($5, client_name), \
             last_error = NULL, updated_at = $6, qr_token = COALESCE($7, qr_token), \
             ext_tran_id = COALESCE($8, ext_tran_id), expires_at = COALESCE($9, expires_at), \
             terminal_id = COALESCE($10, terminal_id) \
             WHERE id = $1 AND create_state IN ('sending', 'unknown') \
             RETURNING {INVOICE_COLUMNS}"
        );
        let marked = self
            .db
            .write(move |tx| {
                let params: [Value; 10] = [
                    invoice_id.into(),
                    CreateState::Sent.as_str().into(),
                    sent.kaspi_operation_id.into(),
                    sent.kaspi_status.as_ref().into(),
                    sent.client_name.as_ref().into(),
                    sent.at_ms.into(),
                    sent.qr_token.as_ref().into(),
                    sent.ext_tran_id.as_ref().into(),
                    sent.expires_at.into(),
                    terminal_id.into(),
                ];
                let row = tx.query_opt(&sql, &params)?.ok_or(StoreError::NotFound)?;
                let invoice = invoice_from_row(&row)?;
                delete_job(tx, JobKind::ReconcileInvoice, invoice_id)?;
                schedule_job_later(
                    tx,
                    JobKind::PollInvoice,
                    invoice_id,
                    sent.poll_at_ms,
                    sent.at_ms,
                )?;
                Ok(invoice)
            })
            .await;
        conflict_on_unique(marked, "this Kaspi operation is already another invoice")
    }

    /// The request to Kaspi may or may not have arrived: marks the invoice `unknown` and
    /// schedules its reconciliation at `reconcile_at_ms`, in one transaction.
    pub async fn mark_invoice_create_unknown(
        &self,
        invoice_id: i64,
        error: &str,
        at_ms: i64,
        reconcile_at_ms: i64,
    ) -> Result<Invoice, StoreError> {
        let error = error.to_owned();
        let sql = format!(
            "UPDATE invoices SET create_state = $2, last_error = $3, updated_at = $4 \
             WHERE id = $1 AND create_state IN ('sending', 'unknown') \
             RETURNING {INVOICE_COLUMNS}"
        );
        self.db
            .write(move |tx| {
                let params: [Value; 4] = [
                    invoice_id.into(),
                    CreateState::Unknown.as_str().into(),
                    (&error).into(),
                    at_ms.into(),
                ];
                let row = tx.query_opt(&sql, &params)?.ok_or(StoreError::NotFound)?;
                // The insert scheduled it for later (in case this process died): sooner now.
                schedule_job_at(
                    tx,
                    JobKind::ReconcileInvoice,
                    invoice_id,
                    reconcile_at_ms,
                    at_ms,
                    false,
                )?;
                Ok(invoice_from_row(&row)?)
            })
            .await
    }

    /// Kaspi refused the invoice: `failed`, with the status change and its event recorded,
    /// and any reconciliation job finished.
    pub async fn mark_invoice_create_failed(
        &self,
        invoice_id: i64,
        error: &str,
        at_ms: i64,
    ) -> Result<Invoice, StoreError> {
        let error = error.to_owned();
        self.outbox
            .write(move |tx| {
                let changed = tx.execute(
                    "UPDATE invoices SET create_state = $2, last_error = $3, updated_at = $4 \
                     WHERE id = $1 AND create_state IN ('sending', 'unknown')",
                    &[
                        invoice_id.into(),
                        CreateState::Failed.as_str().into(),
                        (&error).into(),
                        at_ms.into(),
                    ],
                )?;
                if changed == 0 {
                    return Err(StoreError::NotFound);
                }
                delete_job(tx, JobKind::ReconcileInvoice, invoice_id)?;
                let change = Change {
                    to: InvoiceStatus::Failed,
                    kaspi_status: None,
                    client_name: None,
                    cancel_reason: None,
                    at_ms,
                };
                let changed = apply_status_tx(tx, invoice_id, &change)?;
                let invoice = invoice_by_id_tx(tx, invoice_id)?.ok_or(StoreError::NotFound)?;
                Ok((invoice, changed.is_some()))
            })
            .await
            .map(|(invoice, changed)| {
                if changed {
                    log_status_change(&invoice);
                }
                invoice
            })
    }

    /// Moves the invoice to `status` if allowed (pending → anything else; cancelled, expired
    /// or failed → paid), with its event row and, when final, the end of its poll job, in one
    /// transaction. `None` when nothing changed: already there, not allowed, or no invoice.
    pub async fn apply_status(
        &self,
        invoice_id: i64,
        status: InvoiceStatus,
        kaspi_status: Option<&str>,
        at_ms: i64,
        client_name: Option<&str>,
    ) -> Result<Option<Invoice>, StoreError> {
        let kaspi_status = kaspi_status.map(str::to_owned);
        let client_name = client_name.map(str::to_owned);
        self.outbox
            .write(move |tx| {
                let change = Change {
                    to: status,
                    kaspi_status: kaspi_status.as_deref(),
                    client_name: client_name.as_deref(),
                    cancel_reason: None,
                    at_ms,
                };
                Ok(apply_status_tx(tx, invoice_id, &change)?)
            })
            .await
            .inspect(|changed| changed.iter().for_each(log_status_change))
    }

    /// Moves a pending invoice to `cancelled` with the merchant's `reason`, like
    /// [`crate::store::InvoiceRepo::apply_status`].
    pub async fn cancel_invoice(
        &self,
        invoice_id: i64,
        reason: Option<&str>,
        at_ms: i64,
    ) -> Result<Option<Invoice>, StoreError> {
        let reason = reason.map(str::to_owned);
        let actor = crate::audit::current();
        self.outbox
            .write(move |tx| {
                let change = Change {
                    to: InvoiceStatus::Cancelled,
                    kaspi_status: None,
                    client_name: None,
                    cancel_reason: reason.as_deref(),
                    at_ms,
                };
                let changed = apply_status_tx(tx, invoice_id, &change)?;
                if let Some(invoice) = &changed {
                    let change = AuditChange::new(
                        invoice.org_id,
                        "invoice.cancelled",
                        format!("invoice:{}", invoice.id),
                    )
                    .with(serde_json::json!({ "reason": reason }));
                    audit::note(tx, actor.as_ref(), at_ms, &change)?;
                }
                Ok(changed)
            })
            .await
            .inspect(|changed| changed.iter().for_each(log_status_change))
    }

    /// The invoice `id` of `org_id`.
    pub async fn invoice(&self, org_id: i64, id: i64) -> Result<Option<Invoice>, StoreError> {
        let sql = format!("SELECT {INVOICE_COLUMNS} FROM invoices WHERE org_id = $1 AND id = $2");
        let row = self
            .db
            .query_opt(sql, vec![org_id.into(), id.into()])
            .await?;
        Ok(row.as_ref().map(invoice_from_row).transpose()?)
    }

    /// The invoice `id` whatever its organization: for background work only, never for a
    /// request.
    pub async fn invoice_by_id(&self, id: i64) -> Result<Option<Invoice>, StoreError> {
        self.db.read(move |tx| Ok(invoice_by_id_tx(tx, id)?)).await
    }

    /// The invoice of `org_id` that holds Kaspi operation `operation_id`.
    pub async fn invoice_by_operation_id(
        &self,
        org_id: i64,
        operation_id: KaspiOperationId,
    ) -> Result<Option<Invoice>, StoreError> {
        let sql = format!(
            "SELECT {INVOICE_COLUMNS} FROM invoices WHERE org_id = $1 AND kaspi_operation_id = $2"
        );
        self.db
            .read(move |tx| {
                let row = tx.query_opt(&sql, &[org_id.into(), operation_id.into()])?;
                Ok(row.as_ref().map(invoice_from_row).transpose()?)
            })
            .await
    }

    /// Removes an invoice that never reached Kaspi (still `sending`, no event, no job): its
    /// request was answered with an error, so it must not exist. `false` when it had moved on.
    pub async fn delete_unsent_invoice(&self, id: i64) -> Result<bool, StoreError> {
        self.db
            .write(move |tx| {
                let deleted = tx.query_opt(
                    &format!(
                        "DELETE FROM invoices WHERE id = $1 AND create_state = 'sending' \
                         AND NOT EXISTS (SELECT 1 FROM invoice_events e WHERE e.invoice_id = $1) \
                         RETURNING {COUNTED_COLUMNS}"
                    ),
                    &[id.into()],
                )?;
                let Some(row) = deleted else {
                    return Ok(false);
                };
                add_to_counts_tx(tx, &[CountDelta::from_row(&row, -1)?])?;
                delete_job(tx, JobKind::ReconcileInvoice, id)?;
                Ok(true)
            })
            .await
    }

    /// Ids of pending sandbox invoices created before `before_ms` (when the sandbox Kaspi lost
    /// its saved state, it no longer knows them).
    pub async fn pending_sandbox_invoices(&self, before_ms: i64) -> Result<Vec<i64>, StoreError> {
        self.db
            .read(move |tx| {
                let rows = tx.query(
                    "SELECT id FROM invoices WHERE status = 'pending' AND is_sandbox = 1 \
                     AND created_at < $1 ORDER BY id",
                    &[before_ms.into()],
                )?;
                Ok(rows.iter().map(|r| r.i64("id")).collect::<Result<_, _>>()?)
            })
            .await
    }

    /// Whether `org_id` has an invoice still pending.
    pub async fn has_pending_invoices(&self, org_id: i64) -> Result<bool, StoreError> {
        self.db
            .read(move |tx| {
                Ok(tx
                    .query_opt(
                        "SELECT id FROM invoices WHERE org_id = $1 AND status = 'pending' LIMIT 1",
                        &[org_id.into()],
                    )?
                    .is_some())
            })
            .await
    }

    /// The invoice of `org_id` with the UUID `payment_id`.
    pub async fn invoice_by_payment_id(
        &self,
        org_id: i64,
        payment_id: &str,
    ) -> Result<Option<Invoice>, StoreError> {
        let sql =
            format!("SELECT {INVOICE_COLUMNS} FROM invoices WHERE org_id = $1 AND payment_id = $2");
        let payment_id = payment_id.to_owned();
        self.db
            .read(move |tx| {
                let row = tx.query_opt(&sql, &[org_id.into(), payment_id.into()])?;
                Ok(row.as_ref().map(invoice_from_row).transpose()?)
            })
            .await
    }

    /// The events of one invoice, oldest first, as `(from_status, to_status, at)` (its
    /// subscription's events aside).
    pub async fn invoice_events(
        &self,
        org_id: i64,
        invoice_id: i64,
    ) -> Result<Vec<(Option<InvoiceStatus>, InvoiceStatus, i64)>, StoreError> {
        self.db
            .read(move |tx| {
                let rows = tx.query(
                    "SELECT from_status, to_status, at FROM invoice_events \
                     WHERE org_id = $1 AND invoice_id = $2 AND subscription_id IS NULL ORDER BY id",
                    &[org_id.into(), invoice_id.into()],
                )?;
                let mut events = Vec::with_capacity(rows.len());
                for row in &rows {
                    let from = match row.opt_text("from_status")? {
                        Some(text) => Some(InvoiceStatus::parse(&text).ok_or_else(|| {
                            DbError::decode("from_status", format!("unknown value `{text}`"))
                        })?),
                        None => None,
                    };
                    let to = row.parsed("to_status", InvoiceStatus::parse)?;
                    events.push((from, to, row.i64("at")?));
                }
                Ok(events)
            })
            .await
    }
}
