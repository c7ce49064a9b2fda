//! A subscription's due period or retry billed as one invoice in the transaction that moves
//! the schedule on, a grace period ended, and the billing job released.

use super::outcomes::event_tx;
use super::*;

/// The lines invoice `invoice_id` sold, as a subscription's cart.
fn period_lines_tx(tx: &mut dyn Tx, invoice_id: i64) -> Result<Vec<CartLine>, DbError> {
    let rows = tx.query(
        "SELECT catalog_item_id, name, price, original_price, count, unit_id FROM invoice_items \
         WHERE invoice_id = $1 ORDER BY position",
        &[invoice_id.into()],
    )?;
    rows.iter()
        .map(|row| {
            Ok(CartLine {
                catalog_item_id: row.opt_i64("catalog_item_id")?,
                name: row.text("name")?,
                price: row.i64("price")?,
                original_price: row.i64("original_price")?,
                count: row.i64("count")?,
                unit_id: row.opt_i64("unit_id")?,
            })
        })
        .collect()
}

/// The newest invoice a subscription made, if any.
fn newest_invoice_id(tx: &mut dyn Tx, subscription_id: i64) -> Result<Option<i64>, DbError> {
    tx.query_opt(
        "SELECT invoice_id FROM subscription_invoices WHERE subscription_id = $1 \
         ORDER BY id DESC LIMIT 1",
        &[subscription_id.into()],
    )?
    .map(|row| row.i64("invoice_id"))
    .transpose()
}

/// The subscription's invoices still pending.
pub(super) fn open_invoices_tx(
    tx: &mut dyn Tx,
    subscription_id: i64,
) -> Result<Vec<Invoice>, DbError> {
    let sql = format!(
        "SELECT {} FROM invoices WHERE subscription_id = $1 AND status = $2 ORDER BY id",
        crate::store::invoices::INVOICE_COLUMNS
    );
    tx.query(
        &sql,
        &[
            subscription_id.into(),
            InvoiceStatus::Pending.as_str().into(),
        ],
    )?
    .iter()
    .map(crate::store::invoices::invoice_from_row)
    .collect()
}
impl SubscriptionRepo {
    /// Bills what is due of subscription `id` at `now_ms`, in one transaction: ends a grace
    /// period run out (`expired`, with its event), or stores the invoice of the next attempt
    /// at the current period or of the next period, with its `subscription_invoices` row (the
    /// unique key makes it once per subscription, period and attempt) and the schedule moved
    /// on. Periods whose billing moment passed while billing was held or stopped are skipped.
    pub async fn bill_due(
        &self,
        id: i64,
        now_ms: i64,
        template: BillingTemplate,
    ) -> Result<Billed, StoreError> {
        let billed = self
            .outbox
            .write(move |tx| {
                let Some(mut sub) = read_for_update(tx, id)? else {
                    return Ok(Billed::Nothing);
                };
                if sub.status != SubscriptionStatus::Active {
                    return Ok(Billed::Nothing);
                }
                if sub.grace_until.is_some_and(|end| end <= now_ms) {
                    sub.status = SubscriptionStatus::Expired;
                    sub.expired_at = Some(now_ms);
                    sub.next_billing_on = None;
                    sub.next_billing_at = None;
                    sub.retry_at = None;
                    sub.grace_until = None;
                    save_tx(tx, &sub, now_ms)?;
                    if let Some(invoice_id) = newest_invoice_id(tx, sub.id)? {
                        let facts = SubscriptionEventFacts {
                            invoice_id: Some(invoice_id),
                            ..SubscriptionEventFacts::default()
                        };
                        event_tx(
                            tx,
                            &sub,
                            EventKind::SubscriptionExpired,
                            invoice_id,
                            facts,
                            now_ms,
                        )?;
                    }
                    return Ok(Billed::Expired(open_invoices_tx(tx, sub.id)?));
                }
                let calendar = sub.calendar();
                let (period, attempt, amount, cart) = match (sub.retry_at, sub.period_on) {
                    (Some(at), Some(period)) if at <= now_ms => {
                        // A retry sells what the period's first invoice sold.
                        let first = tx.query_opt(
                            "SELECT amount, invoice_id FROM subscription_invoices \
                             WHERE subscription_id = $1 AND period_start = $2 \
                             ORDER BY attempt_number LIMIT 1",
                            &[sub.id.into(), period.into()],
                        )?;
                        let (amount, cart) = match first {
                            Some(row) => {
                                let amount = row.money("amount")?;
                                let lines = period_lines_tx(tx, row.i64("invoice_id")?)?;
                                (amount, cart_of(&lines, amount))
                            }
                            None => (sub.amount, cart_of(&sub.cart, sub.amount)),
                        };
                        sub.retry_at = None;
                        (period, sub.attempt + 1, amount, cart)
                    }
                    _ => match (sub.next_billing_on, sub.next_billing_at) {
                        (Some(on), Some(at)) if sub.failed_attempts == 0 && at <= now_ms => {
                            let next = calendar.next_due(on, now_ms);
                            sub.next_billing_on = Some(next);
                            sub.next_billing_at = Some(billing_moment(next));
                            (on, 1, sub.amount, cart_of(&sub.cart, sub.amount))
                        }
                        _ => return Ok(Billed::Nothing),
                    },
                };
                sub.period_on = Some(period);
                sub.attempt = attempt;
                let new = NewInvoice {
                    payment_id: template.payment_id.clone(),
                    org_id: sub.org_id,
                    kind: crate::store::InvoiceKind::Remote,
                    amount,
                    phone: Some(sub.phone.clone()),
                    description: sub.description.clone(),
                    external_order_id: None,
                    is_sandbox: sub.is_sandbox,
                    created_at: now_ms,
                    expires_at: Some(template.expires_at),
                    metadata: None,
                    kaspi_ref: Some(template.kaspi_ref.clone()),
                    reconcile_at: Some(template.reconcile_at),
                    idempotency: None,
                };
                let invoice = insert_invoice_tx(tx, &new, Some(sub.id), cart.as_ref())?;
                tx.execute(
                    "INSERT INTO subscription_invoices (subscription_id, org_id, invoice_id, \
                     period_start, period_end, attempt_number, amount, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    &[
                        sub.id.into(),
                        sub.org_id.into(),
                        invoice.id.into(),
                        period.into(),
                        calendar.period_end(period).into(),
                        attempt.into(),
                        amount.into(),
                        now_ms.into(),
                    ],
                )?;
                save_tx(tx, &sub, now_ms)?;
                Ok(Billed::Invoice(Box::new(invoice)))
            })
            .await;
        match billed {
            // Another process billed this period and attempt first.
            Err(StoreError::Db(DbError::UniqueViolation { .. })) => Ok(Billed::Nothing),
            other => other,
        }
    }

    /// Releases the leased billing job `job_id` of subscription `id`: due again at the
    /// subscription's [`Subscription::due_at`] as read now (under the row's lock, so a change
    /// committed meanwhile is seen), or ended when nothing is due.
    pub async fn release_billing_job(
        &self,
        job_id: i64,
        worker: &str,
        id: i64,
    ) -> Result<(), StoreError> {
        let worker = worker.to_owned();
        self.db
            .write(move |tx| {
                let due = read_for_update(tx, id)?.and_then(|s| s.due_at());
                match due {
                    Some(due) => tx.execute(
                        "UPDATE jobs SET run_at = $3, attempt = 0, last_error = NULL, \
                         locked_until = NULL, locked_by = NULL WHERE id = $1 AND locked_by = $2",
                        &[job_id.into(), (&worker).into(), due.into()],
                    )?,
                    None => tx.execute(
                        "DELETE FROM jobs WHERE id = $1 AND locked_by = $2",
                        &[job_id.into(), (&worker).into()],
                    )?,
                };
                Ok(())
            })
            .await
    }
}
