//! Refunds: reserved against the invoice with a conditional UPDATE (so two racing refunds can
//! never both fit, on either database), then moved `pending` → `processing` → `completed` or
//! `failed` with compare-and-set, each end writing its event in the same transaction.

use super::DomainColumns as _;
use crate::db::{DbError, Row, Tx, Value};
use crate::domain::Money;
use crate::store::RefundRepo;

use super::audit::{note, Change};
use super::invoice_counts::{add_to_counts_tx, CountDelta};
use super::invoices::{invoice_by_id_tx, INVOICE_COLUMNS};
use super::jobs::{delete_job, schedule_job_later};
use super::{EventKind, Invoice, InvoiceStatus, JobKind, Refund, RefundStatus, StoreError};

const REFUND_COLUMNS: &str = "id, refund_id, org_id, invoice_id, amount, reason, status, \
     fail_reason, kaspi_refund_id, initiated_by, created_at, updated_at, completed_at, is_sandbox";

fn refund_from_row(row: &Row) -> Result<Refund, DbError> {
    Ok(Refund {
        id: row.i64("id")?,
        refund_id: row.text("refund_id")?,
        org_id: row.i64("org_id")?,
        invoice_id: row.i64("invoice_id")?,
        amount: row.money("amount")?,
        reason: row.opt_text("reason")?,
        status: row.parsed("status", RefundStatus::parse)?,
        fail_reason: row.opt_text("fail_reason")?,
        kaspi_refund_id: row.opt_text("kaspi_refund_id")?,
        initiated_by: row.text("initiated_by")?,
        created_at: row.i64("created_at")?,
        updated_at: row.i64("updated_at")?,
        completed_at: row.opt_i64("completed_at")?,
        is_sandbox: row.bool("is_sandbox")?,
    })
}

fn refund_by_id_tx(tx: &mut dyn Tx, id: i64) -> Result<Option<Refund>, DbError> {
    let sql = format!("SELECT {REFUND_COLUMNS} FROM refunds WHERE id = $1");
    tx.query_opt(&sql, &[id.into()])?
        .as_ref()
        .map(refund_from_row)
        .transpose()
}

/// A refund to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRefund {
    /// A fresh UUID made by the caller.
    pub refund_id: String,
    pub org_id: i64,
    pub invoice_id: i64,
    /// In tiyn; `None` refunds everything still refundable.
    pub amount: Option<Money>,
    pub reason: Option<String>,
    pub initiated_by: String,
    pub at_ms: i64,
    /// When the refund job runs if the caller does not finish the refund first.
    pub job_at_ms: i64,
    /// The idempotent request asking for the refund: linked to it in the same transaction.
    pub idempotency: Option<super::IdemLink>,
    /// Cart lines to take back, as `(catalog_item_id, count)`: the refund is then their share
    /// of what was paid (`amount` must be `None`).
    pub return_items: Vec<(i64, i64)>,
}

/// One line a refund took back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundItem {
    pub catalog_item_id: Option<i64>,
    pub count: i64,
    /// Its share of what was paid.
    pub amount: Money,
}

/// Why a refund was not recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundRefusal {
    /// The invoice is not paid.
    NotPaid(InvoiceStatus),
    /// Nothing is left to refund.
    FullyRefunded,
    /// More than what is left was asked; `left` in tiyn.
    TooMuch { left: Money },
    /// Zero or negative.
    BadAmount,
    /// `return_items` for an invoice that was not made from a cart.
    NoCart,
    /// `return_items` names a catalog item the invoice did not sell.
    NotSold { catalog_item_id: i64 },
    /// More of a catalog item than is left to take back.
    TooManyReturned { catalog_item_id: i64, left: i64 },
    /// Items were taken back but did not fit what is left (another refund came first).
    ItemsDoNotFit(String),
}

/// `net × to / count − net × from / count` (each floored): the share of a line's `net` paid
/// for its units `from..to` of `count`. The shares of all its units add up to `net` exactly.
fn units_share(net: i64, count: i64, from: i64, to: i64) -> i64 {
    if count <= 0 {
        return 0;
    }
    let part = |n: i64| (i128::from(net) * i128::from(n)).div_euclid(i128::from(count));
    i64::try_from(part(to) - part(from)).unwrap_or(0)
}

/// Takes back `wanted` `(catalog_item_id, count)` of invoice `invoice_id`'s lines inside the
/// caller's transaction: each line's `returned_count` moved by one conditional UPDATE (so two
/// refunds racing never take back more than was sold; the loser's transaction is rolled back
/// with `Conflict`), and what they come to. Checked against what was read first, so a plain
/// refusal writes nothing.
fn take_back_tx(
    tx: &mut dyn Tx,
    invoice_id: i64,
    wanted: &[(i64, i64)],
) -> Result<Result<Vec<(i64, RefundItem)>, RefundRefusal>, StoreError> {
    let lines = tx.query(
        "SELECT id, catalog_item_id, price, count, discount, returned_count FROM invoice_items \
         WHERE invoice_id = $1 ORDER BY position",
        &[invoice_id.into()],
    )?;
    if lines.is_empty() {
        return Ok(Err(RefundRefusal::NoCart));
    }
    struct Line {
        id: i64,
        catalog_item_id: Option<i64>,
        net: i64,
        count: i64,
        returned: i64,
    }
    let mut lines: Vec<Line> = lines
        .iter()
        .map(|row| {
            let price = row.i64("price")?;
            let count = row.i64("count")?;
            Ok(Line {
                id: row.i64("id")?,
                catalog_item_id: row.opt_i64("catalog_item_id")?,
                net: price.saturating_mul(count) - row.i64("discount")?,
                count,
                returned: row.i64("returned_count")?,
            })
        })
        .collect::<Result<_, DbError>>()?;
    // Each catalog item once, its counts added up.
    let mut asked: Vec<(i64, i64)> = Vec::new();
    for &(id, n) in wanted {
        match asked.iter_mut().find(|(a, _)| *a == id) {
            Some((_, total)) => *total = total.saturating_add(n),
            None => asked.push((id, n)),
        }
    }
    let mut plan: Vec<(usize, i64)> = Vec::new();
    for &(catalog_item_id, n) in &asked {
        let sold: Vec<usize> = (0..lines.len())
            .filter(|&i| lines[i].catalog_item_id == Some(catalog_item_id))
            .collect();
        if sold.is_empty() {
            return Ok(Err(RefundRefusal::NotSold { catalog_item_id }));
        }
        let left: i64 = sold
            .iter()
            .map(|&i| lines[i].count - lines[i].returned)
            .sum();
        if n > left {
            return Ok(Err(RefundRefusal::TooManyReturned {
                catalog_item_id,
                left,
            }));
        }
        let mut rest = n;
        for i in sold {
            let take = rest.min(lines[i].count - lines[i].returned);
            if take > 0 {
                plan.push((i, take));
                rest -= take;
            }
        }
    }
    let mut taken = Vec::with_capacity(plan.len());
    for (i, take) in plan {
        let line = &mut lines[i];
        let row = tx.query_opt(
            "UPDATE invoice_items SET returned_count = returned_count + $2 \
             WHERE id = $1 AND returned_count + $2 <= count RETURNING returned_count",
            &[line.id.into(), take.into()],
        )?;
        let Some(row) = row else {
            return Err(StoreError::Conflict(
                "another refund took these items back meanwhile".into(),
            ));
        };
        let to = row.i64("returned_count")?;
        let amount = units_share(line.net, line.count, to - take, to);
        line.returned = to;
        taken.push((
            line.id,
            RefundItem {
                catalog_item_id: line.catalog_item_id,
                count: take,
                amount: Money::from_tiyn(amount),
            },
        ));
    }
    Ok(Ok(taken))
}

/// The outcome of [`crate::store::RefundRepo::create_refund`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundCreated {
    Created {
        refund: Box<Refund>,
        invoice: Box<Invoice>,
    },
    Refused(RefundRefusal),
}

/// A page of refunds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefundFilter {
    pub statuses: Vec<RefundStatus>,
    pub invoice_id: Option<i64>,
    /// The xPayment face's UUID of the payment.
    pub payment_id: Option<String>,
    /// Inclusive, unix ms.
    pub created_from: Option<i64>,
    /// Exclusive, unix ms.
    pub created_to: Option<i64>,
}

/// `'pending', 'processing'`: the statuses a refund may move to `to` from (the domain's rule,
/// [`RefundStatus::can_move_to`]), for the `WHERE` of that move.
fn moving_to(to: RefundStatus) -> String {
    RefundStatus::ALL
        .iter()
        .filter(|from| from.can_move_to(to))
        .map(|from| format!("'{from}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl RefundRepo {
    /// Reserves `new.amount` (or all that is left) of a paid invoice and records the refund
    /// `pending` with its job, in one transaction. Never more than what was paid, also when
    /// refunds race: the reservation is one conditional UPDATE.
    pub async fn create_refund(&self, new: NewRefund) -> Result<RefundCreated, StoreError> {
        let reserve = format!(
            "UPDATE invoices SET refund_reserved = refund_reserved + $3, updated_at = $4 \
             WHERE id = $1 AND org_id = $2 AND status = 'paid' \
             AND refund_reserved + $3 <= amount RETURNING {INVOICE_COLUMNS}"
        );
        let insert = format!(
            "INSERT INTO refunds (refund_id, org_id, invoice_id, amount, reason, status, \
             initiated_by, created_at, updated_at, is_sandbox) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9) RETURNING {REFUND_COLUMNS}"
        );
        let actor = crate::audit::current();
        self.db
            .write(move |tx| {
                let invoice = invoice_by_id_tx(tx, new.invoice_id)?
                    .filter(|i| i.org_id == new.org_id)
                    .ok_or(StoreError::NotFound)?;
                if invoice.status != InvoiceStatus::Paid {
                    return Ok(RefundCreated::Refused(RefundRefusal::NotPaid(
                        invoice.status,
                    )));
                }
                let left = invoice.refundable();
                if left == Money::ZERO {
                    return Ok(RefundCreated::Refused(RefundRefusal::FullyRefunded));
                }
                let taken = if new.return_items.is_empty() {
                    Vec::new()
                } else {
                    match take_back_tx(tx, new.invoice_id, &new.return_items)? {
                        Ok(taken) => taken,
                        Err(refusal) => return Ok(RefundCreated::Refused(refusal)),
                    }
                };
                let amount = if taken.is_empty() {
                    new.amount.unwrap_or(left)
                } else {
                    Money::from_tiyn(taken.iter().map(|(_, t)| t.amount.tiyn()).sum())
                };
                if !taken.is_empty() && amount > left {
                    // Lines were taken back above: undo them with the transaction.
                    return Err(StoreError::Conflict(format!(
                        "the items come to more than what is left to refund ({})",
                        left.to_decimal_string()
                    )));
                }
                if amount <= Money::ZERO {
                    return Ok(RefundCreated::Refused(RefundRefusal::BadAmount));
                }
                let Some(row) = tx.query_opt(
                    &reserve,
                    &[
                        new.invoice_id.into(),
                        new.org_id.into(),
                        amount.into(),
                        new.at_ms.into(),
                    ],
                )?
                else {
                    if !taken.is_empty() {
                        return Err(StoreError::Conflict(
                            "another refund reserved the rest meanwhile".into(),
                        ));
                    }
                    return Ok(RefundCreated::Refused(RefundRefusal::TooMuch { left }));
                };
                let invoice = super::invoices::invoice_from_row(&row)?;
                let params: [Value; 9] = [
                    (&new.refund_id).into(),
                    new.org_id.into(),
                    new.invoice_id.into(),
                    amount.into(),
                    new.reason.as_ref().into(),
                    RefundStatus::Pending.as_str().into(),
                    (&new.initiated_by).into(),
                    new.at_ms.into(),
                    invoice.is_sandbox.into(),
                ];
                let refund = refund_from_row(&tx.query_one(&insert, &params)?)?;
                for (line_id, item) in &taken {
                    tx.execute(
                        "INSERT INTO refund_items (refund_id, invoice_item_id, catalog_item_id, \
                         count, amount) VALUES ($1, $2, $3, $4, $5)",
                        &[
                            refund.id.into(),
                            (*line_id).into(),
                            item.catalog_item_id.into(),
                            item.count.into(),
                            item.amount.into(),
                        ],
                    )?;
                }
                schedule_job_later(tx, JobKind::Refund, refund.id, new.job_at_ms, new.at_ms)?;
                let change = Change::new(
                    new.org_id,
                    "refund.created",
                    format!("refund:{}", refund.refund_id),
                )
                .with(serde_json::json!({
                    "invoice": format!("invoice:{}", new.invoice_id),
                    "amount": amount.to_decimal_string(),
                    "items": taken.len(),
                }));
                note(tx, actor.as_ref(), new.at_ms, &change)?;
                if let Some(link) = &new.idempotency {
                    super::idempotency::link_tx(tx, link, super::Resource::Refund(refund.id))?;
                }
                Ok(RefundCreated::Created {
                    refund: Box::new(refund),
                    invoice: Box::new(invoice),
                })
            })
            .await
    }

    /// `pending` → `processing` (about to be sent to Kaspi); `None` when it was not pending.
    pub async fn start_refund(&self, id: i64, at_ms: i64) -> Result<Option<Refund>, StoreError> {
        let sql = format!(
            "UPDATE refunds SET status = '{}', updated_at = $2 \
             WHERE id = $1 AND status IN ({}) RETURNING {REFUND_COLUMNS}",
            RefundStatus::Processing.as_str(),
            moving_to(RefundStatus::Processing)
        );
        self.db
            .write(move |tx| {
                let row = tx.query_opt(&sql, &[id.into(), at_ms.into()])?;
                Ok(row.as_ref().map(refund_from_row).transpose()?)
            })
            .await
            .inspect(|started| {
                if started.is_some() {
                    crate::metrics::refund_status_changed(RefundStatus::Processing);
                }
            })
    }

    /// `processing` → `pending` again: the attempt never reached Kaspi.
    pub async fn requeue_refund(&self, id: i64, at_ms: i64) -> Result<bool, StoreError> {
        let sql = format!(
            "UPDATE refunds SET status = '{}', updated_at = $2 WHERE id = $1 AND status IN ({})",
            RefundStatus::Pending.as_str(),
            moving_to(RefundStatus::Pending)
        );
        self.db
            .write(move |tx| {
                let n = tx.execute(&sql, &[id.into(), at_ms.into()])?;
                Ok(n == 1)
            })
            .await
            .inspect(|&requeued| {
                if requeued {
                    crate::metrics::refund_status_changed(RefundStatus::Pending);
                }
            })
    }

    /// `processing` → `completed`: the invoice's `total_refunded` grows and the
    /// `invoice.refunded` event is written, in one transaction. `None` when it was not
    /// processing (already ended).
    pub async fn complete_refund(
        &self,
        id: i64,
        kaspi_refund_id: Option<&str>,
        at_ms: i64,
    ) -> Result<Option<(Refund, Invoice)>, StoreError> {
        let kaspi_refund_id = kaspi_refund_id.map(str::to_owned);
        let sql = format!(
            "UPDATE refunds SET status = '{}', kaspi_refund_id = COALESCE($2, kaspi_refund_id), \
             updated_at = $3, completed_at = $3 \
             WHERE id = $1 AND status IN ({}) RETURNING {REFUND_COLUMNS}",
            RefundStatus::Completed.as_str(),
            moving_to(RefundStatus::Completed)
        );
        self.outbox
            .write(move |tx| {
                let Some(row) = tx.query_opt(
                    &sql,
                    &[id.into(), kaspi_refund_id.as_ref().into(), at_ms.into()],
                )?
                else {
                    return Ok(None);
                };
                let refund = refund_from_row(&row)?;
                tx.execute(
                    "UPDATE invoices SET total_refunded = total_refunded + $2, updated_at = $3 \
                     WHERE id = $1",
                    &[refund.invoice_id.into(), refund.amount.into(), at_ms.into()],
                )?;
                let invoice = end_refund_tx(tx, &refund, EventKind::Refunded, at_ms)?;
                add_to_counts_tx(tx, &[CountDelta::refunded(&invoice, refund.amount.tiyn())])?;
                Ok(Some((refund, invoice)))
            })
            .await
            .inspect(|ended| {
                if let Some((refund, invoice)) = ended {
                    crate::metrics::refund_status_changed(RefundStatus::Completed);
                    tracing::info!(
                        org_id = refund.org_id,
                        refund = refund.id,
                        invoice = refund.invoice_id,
                        amount_kzt = %refund.amount.to_decimal_string(),
                        total_refunded_kzt = %invoice.total_refunded.to_decimal_string(),
                        "refund completed"
                    );
                }
            })
    }

    /// `pending` or `processing` → `failed` with `reason`: the reservation is released and the
    /// `invoice.refund_failed` event written, in one transaction. `None` when it had ended.
    pub async fn fail_refund(
        &self,
        id: i64,
        reason: &str,
        at_ms: i64,
    ) -> Result<Option<(Refund, Invoice)>, StoreError> {
        let reason = reason.to_owned();
        let sql = format!(
            "UPDATE refunds SET status = '{}', fail_reason = $2, updated_at = $3 \
             WHERE id = $1 AND status IN ({}) RETURNING {REFUND_COLUMNS}",
            RefundStatus::Failed.as_str(),
            moving_to(RefundStatus::Failed)
        );
        self.outbox
            .write(move |tx| {
                let Some(row) = tx.query_opt(&sql, &[id.into(), (&reason).into(), at_ms.into()])?
                else {
                    return Ok(None);
                };
                let refund = refund_from_row(&row)?;
                tx.execute(
                    "UPDATE invoices SET refund_reserved = refund_reserved - $2, updated_at = $3 \
                     WHERE id = $1",
                    &[refund.invoice_id.into(), refund.amount.into(), at_ms.into()],
                )?;
                // The lines it took back can be taken back again.
                for row in tx.query(
                    "SELECT invoice_item_id, count FROM refund_items WHERE refund_id = $1",
                    &[refund.id.into()],
                )? {
                    tx.execute(
                        "UPDATE invoice_items SET returned_count = returned_count - $2 WHERE id = $1",
                        &[row.i64("invoice_item_id")?.into(), row.i64("count")?.into()],
                    )?;
                }
                let invoice = end_refund_tx(tx, &refund, EventKind::RefundFailed, at_ms)?;
                Ok(Some((refund, invoice)))
            })
            .await
            .inspect(|ended| {
                if let Some((refund, _)) = ended {
                    crate::metrics::refund_status_changed(RefundStatus::Failed);
                    tracing::warn!(
                        org_id = refund.org_id,
                        refund = refund.id,
                        invoice = refund.invoice_id,
                        amount_kzt = %refund.amount.to_decimal_string(),
                        reason = refund.fail_reason.as_deref().unwrap_or("-"),
                        "refund failed"
                    );
                }
            })
    }

    /// The lines refund `id` took back, if it took back lines.
    pub async fn refund_items(&self, id: i64) -> Result<Vec<RefundItem>, StoreError> {
        self.db
            .read(move |tx| {
                let rows = tx.query(
                    "SELECT catalog_item_id, count, amount FROM refund_items WHERE refund_id = $1 \
                     ORDER BY id",
                    &[id.into()],
                )?;
                Ok(rows
                    .iter()
                    .map(|row| {
                        Ok(RefundItem {
                            catalog_item_id: row.opt_i64("catalog_item_id")?,
                            count: row.i64("count")?,
                            amount: row.money("amount")?,
                        })
                    })
                    .collect::<Result<_, DbError>>()?)
            })
            .await
    }

    /// The refund `id` whatever its organization: for background work only.
    pub async fn refund_by_id(&self, id: i64) -> Result<Option<Refund>, StoreError> {
        self.db.read(move |tx| Ok(refund_by_id_tx(tx, id)?)).await
    }

    /// The refund `id` of `org_id`.
    pub async fn refund(&self, org_id: i64, id: i64) -> Result<Option<Refund>, StoreError> {
        Ok(self.refund_by_id(id).await?.filter(|r| r.org_id == org_id))
    }

    /// The refund of `org_id` with the UUID `refund_id`.
    pub async fn refund_by_uuid(
        &self,
        org_id: i64,
        refund_id: &str,
    ) -> Result<Option<Refund>, StoreError> {
        let sql =
            format!("SELECT {REFUND_COLUMNS} FROM refunds WHERE org_id = $1 AND refund_id = $2");
        let refund_id = refund_id.to_owned();
        self.db
            .read(move |tx| {
                let row = tx.query_opt(&sql, &[org_id.into(), refund_id.into()])?;
                Ok(row.as_ref().map(refund_from_row).transpose()?)
            })
            .await
    }

    /// One page (newest first) of `org_id`'s refunds matching `filter`, and how many match.
    pub async fn list_refunds(
        &self,
        org_id: i64,
        filter: &RefundFilter,
        page: u32,
        per_page: u32,
    ) -> Result<(Vec<Refund>, i64), StoreError> {
        let (condition, mut params) = refund_condition(org_id, filter);
        let count_sql = format!("SELECT COUNT(*) AS n FROM refunds r WHERE {condition}");
        let per_page = per_page.clamp(1, 100);
        let offset = i64::from(page.max(1) - 1) * i64::from(per_page);
        let page_sql = format!(
            "SELECT {} FROM refunds r WHERE {condition} ORDER BY r.id DESC LIMIT ${} OFFSET ${}",
            prefixed(REFUND_COLUMNS),
            params.len() + 1,
            params.len() + 2,
        );
        self.db
            .read(move |tx| {
                let total = tx.query_one(&count_sql, &params)?.i64("n")?;
                params.push(i64::from(per_page).into());
                params.push(offset.into());
                let rows = tx.query(&page_sql, &params)?;
                let refunds = rows.iter().map(refund_from_row).collect::<Result<_, _>>()?;
                Ok((refunds, total))
            })
            .await
    }

    /// Up to `limit` of `org_id`'s refunds matching `filter` with ids below `before_id`
    /// (newest first): keyset pages that stay stable while refunds are added.
    pub async fn list_refunds_before(
        &self,
        org_id: i64,
        filter: &RefundFilter,
        before_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Refund>, StoreError> {
        let (mut condition, mut params) = refund_condition(org_id, filter);
        if let Some(before) = before_id {
            params.push(before.into());
            condition.push_str(&format!(" AND r.id < ${}", params.len()));
        }
        params.push(i64::from(limit).into());
        let sql = format!(
            "SELECT {} FROM refunds r WHERE {condition} ORDER BY r.id DESC LIMIT ${}",
            prefixed(REFUND_COLUMNS),
            params.len()
        );
        self.db
            .read(move |tx| {
                let rows = tx.query(&sql, &params)?;
                Ok(rows.iter().map(refund_from_row).collect::<Result<_, _>>()?)
            })
            .await
    }
}

/// Writes the refund's event and ends its job; the invoice as it now is.
fn end_refund_tx(
    tx: &mut dyn Tx,
    refund: &Refund,
    kind: EventKind,
    at_ms: i64,
) -> Result<Invoice, StoreError> {
    let invoice = invoice_by_id_tx(tx, refund.invoice_id)?.ok_or(StoreError::NotFound)?;
    tx.execute(
        "INSERT INTO invoice_events (org_id, invoice_id, kind, from_status, to_status, at, refund_id) \
         VALUES ($1, $2, $3, $4, $4, $5, $6)",
        &[
            refund.org_id.into(),
            refund.invoice_id.into(),
            kind.as_str().into(),
            invoice.status.as_str().into(),
            at_ms.into(),
            refund.id.into(),
        ],
    )?;
    delete_job(tx, JobKind::Refund, refund.id)?;
    Ok(invoice)
}

/// `r.`-prefixed column list.
fn prefixed(columns: &str) -> String {
    columns
        .split(',')
        .map(|c| format!("r.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn refund_condition(org_id: i64, filter: &RefundFilter) -> (String, Vec<Value>) {
    let mut params: Vec<Value> = vec![org_id.into()];
    let mut parts = vec!["r.org_id = $1".to_owned()];
    if !filter.statuses.is_empty() {
        let mut list = Vec::new();
        for status in &filter.statuses {
            params.push(status.as_str().into());
            list.push(format!("${}", params.len()));
        }
        parts.push(format!("r.status IN ({})", list.join(", ")));
    }
    if let Some(invoice_id) = filter.invoice_id {
        params.push(invoice_id.into());
        parts.push(format!("r.invoice_id = ${}", params.len()));
    }
    if let Some(payment_id) = &filter.payment_id {
        params.push(payment_id.into());
        parts.push(format!(
            "r.invoice_id IN (SELECT id FROM invoices WHERE org_id = $1 AND payment_id = ${})",
            params.len()
        ));
    }
    if let Some(from) = filter.created_from {
        params.push(from.into());
        parts.push(format!("r.created_at >= ${}", params.len()));
    }
    if let Some(to) = filter.created_to {
        params.push(to.into());
        parts.push(format!("r.created_at < ${}", params.len()));
    }
    (parts.join(" AND "), params)
}
