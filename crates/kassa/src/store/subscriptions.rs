//! Subscriptions: made, changed, listed; each due period billed as one invoice in the
//! transaction that advances the schedule; the end of each of their invoices recorded with
//! the subscription's change and its event in the invoice's own transaction.
//!
//! Exactly once: `subscription_invoices` has a unique key on (subscription, period, attempt),
//! inserted in the transaction that stores the invoice and moves the schedule on. Two
//! processes billing the same subscription at once cannot both commit; the one that loses
//! makes nothing. The subscription row is read `FOR UPDATE` on PostgreSQL wherever it is
//! changed from what was read.
//!
//! One job per subscription (`bill_subscription`, `ref_id` the subscription) is due at
//! [`Subscription::due_at`]; every change of the schedule moves it in the same transaction,
//! and the job's handler sets it from the row it reads when it is done
//! ([`SubscriptionRepo::release_billing_job`]).

use serde::{Deserialize, Serialize};
use time::Date;

use super::invoices::insert_invoice_tx;
use super::jobs::{delete_job, schedule_job_at};
use super::DomainColumns as _;
use super::{EventKind, Invoice, InvoiceStatus, JobKind, NewInvoice, StoreError};
use crate::db::{DbError, Row, Tx, Value};
use crate::domain::{
    almaty_date, billing_moment, BillingPeriod, Calendar, CreateState, Money, Phone,
    SubscriptionAction, SubscriptionStatus,
};
use crate::store::SubscriptionRepo;

const SUBSCRIPTION_COLUMNS: &str = "id, org_id, amount, phone, billing_period, billing_day, \
     description, subscriber_name, external_subscriber_id, metadata, started_on, \
     max_retry_attempts, retry_interval_hours, grace_period_days, status, next_billing_on, \
     next_billing_at, period_on, attempt, failed_attempts, retry_at, grace_until, is_sandbox, \
     created_at, updated_at, paused_at, cancelled_at, expired_at, cart";

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// A subscription as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub id: i64,
    pub org_id: i64,
    /// What each new period is billed.
    pub amount: Money,
    pub phone: Phone,
    pub period: BillingPeriod,
    /// The billing day given (monthly, quarterly, yearly default to the start's day).
    pub billing_day: Option<u8>,
    pub description: Option<String>,
    pub subscriber_name: Option<String>,
    pub external_subscriber_id: Option<String>,
    /// The client's JSON object, as given.
    pub metadata: Option<String>,
    pub started_on: Date,
    pub max_retry_attempts: i64,
    pub retry_interval_hours: i64,
    pub grace_period_days: i64,
    pub status: SubscriptionStatus,
    /// The next period to bill, and when (`None` once ended).
    pub next_billing_on: Option<Date>,
    pub next_billing_at: Option<i64>,
    /// The period billed last, and the attempt of its newest invoice.
    pub period_on: Option<Date>,
    pub attempt: i64,
    /// Invoices ended unpaid since the last payment.
    pub failed_attempts: i64,
    /// When the next attempt at the current period is made.
    pub retry_at: Option<i64>,
    /// Set while in the grace period: when it ends.
    pub grace_until: Option<i64>,
    pub is_sandbox: bool,
    pub created_at: i64,
    pub updated_at: i64,
    pub paused_at: Option<i64>,
    pub cancelled_at: Option<i64>,
    pub expired_at: Option<i64>,
    /// For a subscription billed from a cart: its lines, priced when it was made or changed.
    pub cart: Vec<CartLine>,
}

/// One line of a subscription's cart, as each period's invoice sells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartLine {
    pub catalog_item_id: Option<i64>,
    pub name: String,
    /// In tiyn.
    pub price: i64,
    pub original_price: i64,
    pub count: i64,
    pub unit_id: Option<i64>,
}

impl CartLine {
    /// The line of a priced cart.
    pub fn of(item: &super::NewInvoiceItem) -> CartLine {
        CartLine {
            catalog_item_id: item.catalog_item_id,
            name: item.name.clone(),
            price: item.price.tiyn(),
            original_price: item.original_price.tiyn(),
            count: item.count,
            unit_id: item.unit_id,
        }
    }

    fn item(&self) -> super::NewInvoiceItem {
        super::NewInvoiceItem {
            catalog_item_id: self.catalog_item_id,
            name: self.name.clone(),
            price: Money::from_tiyn(self.price),
            original_price: Money::from_tiyn(self.original_price),
            count: self.count,
            unit_id: self.unit_id,
            discount: Money::ZERO,
            item_type: None,
            nomenclature_id: None,
            nomenclature_history_id: None,
        }
    }
}

/// The cart of an invoice selling `lines` for `amount` (no discount on subscriptions).
fn cart_of(lines: &[CartLine], amount: Money) -> Option<super::Cart> {
    (!lines.is_empty()).then(|| super::Cart {
        subtotal: amount,
        discount_percentage: None,
        discount_sum: Money::ZERO,
        items: lines.iter().map(CartLine::item).collect(),
    })
}

fn cart_text(lines: &[CartLine]) -> Result<Option<String>, DbError> {
    if lines.is_empty() {
        return Ok(None);
    }
    serde_json::to_string(lines)
        .map(Some)
        .map_err(|e| DbError::decode("cart", format!("cannot write the cart: {e}")))
}

impl Subscription {
    /// The calendar of its billing dates.
    pub fn calendar(&self) -> Calendar {
        Calendar::new(self.period, self.billing_day, self.started_on)
    }

    /// The billing day its dates fall on (monthly, quarterly, yearly); for periods that
    /// count days, the one given, else the start date's day (at most 28), so that the answer
    /// is always the integer both doc versions show.
    pub fn effective_billing_day(&self) -> u8 {
        self.calendar().billing_day
    }

    pub fn in_grace_period(&self) -> bool {
        self.grace_until.is_some()
    }

    /// When its job has something to do: a retry, the end of grace, or the next period
    /// (held while a failed payment is still being collected). `None` unless active.
    pub fn due_at(&self) -> Option<i64> {
        if self.status != SubscriptionStatus::Active {
            return None;
        }
        let next = (self.failed_attempts == 0)
            .then_some(self.next_billing_at)
            .flatten();
        [self.retry_at, self.grace_until, next]
            .into_iter()
            .flatten()
            .min()
    }
}

fn subscription_from_row(row: &Row) -> Result<Subscription, DbError> {
    let day = row
        .opt_i64("billing_day")?
        .map(|d| u8::try_from(d).map_err(|_| DbError::decode("billing_day", format!("{d}"))))
        .transpose()?;
    Ok(Subscription {
        id: row.i64("id")?,
        org_id: row.i64("org_id")?,
        amount: row.money("amount")?,
        phone: row
            .opt_phone("phone")?
            .ok_or_else(|| DbError::decode("phone", "missing"))?,
        period: row.parsed("billing_period", BillingPeriod::parse)?,
        billing_day: day,
        description: row.opt_text("description")?,
        subscriber_name: row.opt_text("subscriber_name")?,
        external_subscriber_id: row.opt_text("external_subscriber_id")?,
        metadata: row.opt_text("metadata")?,
        started_on: row
            .opt_date("started_on")?
            .ok_or_else(|| DbError::decode("started_on", "missing"))?,
        max_retry_attempts: row.i64("max_retry_attempts")?,
        retry_interval_hours: row.i64("retry_interval_hours")?,
        grace_period_days: row.i64("grace_period_days")?,
        status: row.parsed("status", SubscriptionStatus::parse)?,
        next_billing_on: row.opt_date("next_billing_on")?,
        next_billing_at: row.opt_i64("next_billing_at")?,
        period_on: row.opt_date("period_on")?,
        attempt: row.i64("attempt")?,
        failed_attempts: row.i64("failed_attempts")?,
        retry_at: row.opt_i64("retry_at")?,
        grace_until: row.opt_i64("grace_until")?,
        is_sandbox: row.bool("is_sandbox")?,
        created_at: row.i64("created_at")?,
        updated_at: row.i64("updated_at")?,
        paused_at: row.opt_i64("paused_at")?,
        cancelled_at: row.opt_i64("cancelled_at")?,
        expired_at: row.opt_i64("expired_at")?,
        cart: match row.opt_text("cart")? {
            Some(text) => serde_json::from_str(&text)
                .map_err(|e| DbError::decode("cart", format!("not a cart: {e}")))?,
            None => Vec::new(),
        },
    })
}

/// What a surface asks for when it makes a subscription (validated).
#[derive(Debug, Clone)]
pub struct NewSubscription {
    pub org_id: i64,
    pub amount: Money,
    pub phone: Phone,
    pub period: BillingPeriod,
    pub billing_day: Option<u8>,
    pub description: Option<String>,
    pub subscriber_name: Option<String>,
    pub external_subscriber_id: Option<String>,
    pub metadata: Option<String>,
    /// Today or later (Almaty).
    pub started_on: Date,
    pub max_retry_attempts: i64,
    pub retry_interval_hours: i64,
    pub grace_period_days: i64,
    /// Bill the start date's period at once (on the start date, if that is later), instead
    /// of first on the next billing date after it.
    pub bill_immediately: bool,
    pub is_sandbox: bool,
    /// The idempotent request making it, if any: linked to it in the same transaction, so a
    /// retry after a crash answers from this subscription instead of making another.
    pub idempotency: Option<super::IdemLink>,
    /// The lines of a subscription billed from a cart (`amount` is their sum).
    pub cart: Vec<CartLine>,
}

/// What `PUT` changes; `None` leaves a field as it is, `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct SubscriptionUpdate {
    pub amount: Option<Money>,
    /// A new cart (with `amount` its sum); `Some(empty)` ends billing from a cart.
    pub cart: Option<Vec<CartLine>>,
    pub billing_day: Option<u8>,
    pub description: Option<Option<String>>,
    pub subscriber_name: Option<Option<String>>,
    pub external_subscriber_id: Option<Option<String>>,
    pub metadata: Option<Option<String>>,
    pub max_retry_attempts: Option<i64>,
    pub retry_interval_hours: Option<i64>,
    pub grace_period_days: Option<i64>,
}

/// A page of an organization's subscriptions.
#[derive(Debug, Clone, Default)]
pub struct SubscriptionFilter {
    pub page: i64,
    pub per_page: i64,
    pub status: Option<SubscriptionStatus>,
    /// Kaspi's 10 digits.
    pub phone: Option<String>,
    pub external_subscriber_id: Option<String>,
    /// In the subscriber's name or phone.
    pub search: Option<String>,
    pub period: Option<BillingPeriod>,
    /// One of `id`, `amount`, `subscriber_name`, `next_billing_at`, `created_at`.
    pub sort_by: Option<&'static str>,
    pub descending: bool,
}

/// An invoice a subscription made, with its period and attempt.
#[derive(Debug, Clone)]
pub struct SubscriptionInvoice {
    pub invoice: Invoice,
    pub period_start: Date,
    pub period_end: Date,
    pub attempt_number: i64,
    pub amount: Money,
    pub failure_reason: Option<String>,
    pub created_at: i64,
}

/// Totals of a subscription's invoices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubscriptionStats {
    /// Invoices made.
    pub total_payments: i64,
    pub successful_payments: i64,
    pub failed_payments: i64,
    pub total_collected: Money,
}

/// What a subscription event says besides the subscription itself, as it was when the event
/// happened (stored with the event as JSON; the webhook body is made from it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionEventFacts {
    pub status: String,
    pub failed_attempts: i64,
    pub in_grace_period: bool,
    pub next_billing_at: Option<i64>,
    pub amount: i64,
    pub invoice_id: Option<i64>,
    pub invoice_amount: Option<i64>,
    pub invoice_status: Option<String>,
    pub reason: Option<String>,
    pub attempt_number: Option<i64>,
    pub paid_at: Option<i64>,
    pub grace_period_days: Option<i64>,
    pub expires_at: Option<i64>,
    pub retry_attempts_remaining: Option<i64>,
}

impl SubscriptionEventFacts {
    fn of(sub: &Subscription) -> SubscriptionEventFacts {
        SubscriptionEventFacts {
            status: sub.status.as_str().to_owned(),
            failed_attempts: sub.failed_attempts,
            in_grace_period: sub.in_grace_period(),
            next_billing_at: sub.next_billing_at,
            amount: sub.amount.tiyn(),
            ..SubscriptionEventFacts::default()
        }
    }
}

/// The fresh identity of an invoice the billing makes (UUID and Kaspi marker come from the
/// gateway, like every invoice's).
#[derive(Debug, Clone)]
pub struct BillingTemplate {
    pub payment_id: String,
    pub kaspi_ref: String,
    pub expires_at: i64,
    pub reconcile_at: i64,
}

/// What the billing of a due subscription did.
#[derive(Debug)]
pub enum Billed {
    /// An invoice was stored (still to be sent to Kaspi).
    Invoice(Box<Invoice>),
    /// The grace period ended unpaid: now `expired`; its invoices still open (to cancel).
    Expired(Vec<Invoice>),
    /// Nothing was due (or another process billed it first).
    Nothing,
}

/// Why a status action was refused.
#[derive(Debug)]
pub enum ActError {
    NotFound,
    /// The action makes no sense from the current status.
    NotAllowed(SubscriptionStatus),
    Store(StoreError),
}

fn read_for_update(tx: &mut dyn Tx, id: i64) -> Result<Option<Subscription>, DbError> {
    let sql = format!(
        "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE id = $1{}",
        tx.dialect().for_update()
    );
    tx.query_opt(&sql, &[id.into()])?
        .as_ref()
        .map(subscription_from_row)
        .transpose()
}

/// Writes the schedule and status fields of `sub`, and moves its job to [`Subscription::due_at`]
/// (made if missing; ended when nothing is due), in the caller's transaction.
fn save_tx(tx: &mut dyn Tx, sub: &Subscription, now_ms: i64) -> Result<(), DbError> {
    tx.execute(
        "UPDATE subscriptions SET amount = $2, billing_day = $3, description = $4, \
         subscriber_name = $5, external_subscriber_id = $6, metadata = $7, \
         max_retry_attempts = $8, retry_interval_hours = $9, grace_period_days = $10, \
         status = $11, next_billing_on = $12, next_billing_at = $13, period_on = $14, \
         attempt = $15, failed_attempts = $16, retry_at = $17, grace_until = $18, \
         updated_at = $19, paused_at = $20, cancelled_at = $21, expired_at = $22, cart = $23 \
         WHERE id = $1",
        &[
            sub.id.into(),
            sub.amount.into(),
            sub.billing_day.map(i64::from).into(),
            sub.description.as_ref().into(),
            sub.subscriber_name.as_ref().into(),
            sub.external_subscriber_id.as_ref().into(),
            sub.metadata.as_ref().into(),
            sub.max_retry_attempts.into(),
            sub.retry_interval_hours.into(),
            sub.grace_period_days.into(),
            sub.status.as_str().into(),
            sub.next_billing_on.into(),
            sub.next_billing_at.into(),
            sub.period_on.into(),
            sub.attempt.into(),
            sub.failed_attempts.into(),
            sub.retry_at.into(),
            sub.grace_until.into(),
            now_ms.into(),
            sub.paused_at.into(),
            sub.cancelled_at.into(),
            sub.expired_at.into(),
            cart_text(&sub.cart)?.into(),
        ],
    )?;
    match sub.due_at() {
        Some(due) => schedule_job_at(tx, JobKind::BillSubscription, sub.id, due, now_ms),
        None => delete_job(tx, JobKind::BillSubscription, sub.id),
    }
}

/// Writes a subscription event about `sub` (as it is now) and invoice `invoice_id`, with its
/// `facts`, into the outbox.
fn event_tx(
    tx: &mut dyn Tx,
    sub: &Subscription,
    kind: EventKind,
    invoice_id: i64,
    mut facts: SubscriptionEventFacts,
    at_ms: i64,
) -> Result<(), DbError> {
    let now = SubscriptionEventFacts::of(sub);
    facts.status = now.status;
    facts.failed_attempts = now.failed_attempts;
    facts.in_grace_period = now.in_grace_period;
    facts.next_billing_at = now.next_billing_at;
    facts.amount = now.amount;
    let data = serde_json::to_string(&facts)
        .map_err(|e| DbError::decode("data", format!("cannot write event facts: {e}")))?;
    tx.execute(
        "INSERT INTO invoice_events (org_id, invoice_id, kind, from_status, to_status, at, \
         subscription_id, data) VALUES ($1, $2, $3, NULL, $4, $5, $6, $7)",
        &[
            sub.org_id.into(),
            invoice_id.into(),
            kind.as_str().into(),
            sub.status.as_str().into(),
            at_ms.into(),
            sub.id.into(),
            data.into(),
        ],
    )?;
    Ok(())
}

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
fn open_invoices_tx(tx: &mut dyn Tx, subscription_id: i64) -> Result<Vec<Invoice>, DbError> {
    let sql = format!(
        "SELECT {} FROM invoices WHERE subscription_id = $1 AND status = $2 ORDER BY id",
        super::invoices::INVOICE_COLUMNS
    );
    tx.query(
        &sql,
        &[
            subscription_id.into(),
            InvoiceStatus::Pending.as_str().into(),
        ],
    )?
    .iter()
    .map(super::invoices::invoice_from_row)
    .collect()
}

/// Why an invoice ended unpaid, for people.
fn failure_reason(invoice: &Invoice, to: InvoiceStatus) -> String {
    match to {
        InvoiceStatus::Expired => "Invoice expired".to_owned(),
        InvoiceStatus::Cancelled => "Invoice cancelled".to_owned(),
        _ if invoice.create_state == CreateState::Failed => match &invoice.last_error {
            Some(error) => format!("Kaspi refused the invoice: {error}"),
            None => "Kaspi refused the invoice".to_owned(),
        },
        _ => "Payment declined".to_owned(),
    }
}

/// Records what the end of a subscription's invoice means for the subscription, in the
/// transaction that records the invoice's status change: a payment resets the failures (the
/// schedule goes on from its own dates); an unpaid end of the newest attempt schedules a retry,
/// or once the retries are spent starts the grace period (with one last invoice). Each with its
/// event. `before` is the invoice as it was before the change.
pub(super) fn invoice_ended_tx(
    tx: &mut dyn Tx,
    before: &Invoice,
    to: InvoiceStatus,
    at_ms: i64,
) -> Result<(), DbError> {
    let Some(subscription_id) = before.subscription_id else {
        return Ok(());
    };
    let Some(mut sub) = read_for_update(tx, subscription_id)? else {
        return Ok(());
    };
    let link = tx.query_opt(
        "SELECT period_start, attempt_number FROM subscription_invoices WHERE invoice_id = $1",
        &[before.id.into()],
    )?;
    let Some(link) = link else {
        return Ok(());
    };
    let period_start = link.opt_date("period_start")?;
    let attempt_number = link.i64("attempt_number")?;
    if to == InvoiceStatus::Paid {
        if matches!(
            sub.status,
            SubscriptionStatus::Active | SubscriptionStatus::Paused
        ) {
            sub.failed_attempts = 0;
            sub.retry_at = None;
            sub.grace_until = None;
            save_tx(tx, &sub, at_ms)?;
        }
        let facts = SubscriptionEventFacts {
            invoice_id: Some(before.id),
            invoice_amount: Some(before.amount.tiyn()),
            invoice_status: Some(InvoiceStatus::Paid.as_str().to_owned()),
            paid_at: Some(at_ms),
            attempt_number: Some(attempt_number),
            ..SubscriptionEventFacts::default()
        };
        return event_tx(
            tx,
            &sub,
            EventKind::SubscriptionPaymentSucceeded,
            before.id,
            facts,
            at_ms,
        );
    }
    if before.status != InvoiceStatus::Pending {
        return Ok(());
    }
    let reason = failure_reason(before, to);
    tx.execute(
        "UPDATE subscription_invoices SET failure_reason = $2 WHERE invoice_id = $1",
        &[before.id.into(), (&reason).into()],
    )?;
    if sub.status != SubscriptionStatus::Active {
        // Paused or ended by the merchant: nothing is retried.
        return Ok(());
    }
    let newest = period_start == sub.period_on && attempt_number == sub.attempt;
    let mut grace_started = false;
    if newest {
        sub.failed_attempts += 1;
        if sub.grace_until.is_some() {
            // The last invoice of the grace period: the grace period runs out by itself.
        } else if attempt_number <= sub.max_retry_attempts {
            sub.retry_at = Some(at_ms.saturating_add(sub.retry_interval_hours * HOUR_MS));
        } else {
            sub.grace_until = Some(at_ms.saturating_add(sub.grace_period_days * DAY_MS));
            // One more invoice at once, for the payer to pay during the grace period.
            sub.retry_at = Some(at_ms);
            grace_started = true;
        }
        save_tx(tx, &sub, at_ms)?;
    }
    let remaining = (sub.max_retry_attempts + 1 - attempt_number).max(0);
    let facts = SubscriptionEventFacts {
        invoice_id: Some(before.id),
        invoice_amount: Some(before.amount.tiyn()),
        invoice_status: Some(to.as_str().to_owned()),
        reason: Some(reason),
        attempt_number: Some(attempt_number),
        retry_attempts_remaining: Some(remaining),
        ..SubscriptionEventFacts::default()
    };
    event_tx(
        tx,
        &sub,
        EventKind::SubscriptionPaymentFailed,
        before.id,
        facts,
        at_ms,
    )?;
    if grace_started {
        let facts = SubscriptionEventFacts {
            invoice_id: Some(before.id),
            grace_period_days: Some(sub.grace_period_days),
            expires_at: sub.grace_until,
            retry_attempts_remaining: Some(0),
            ..SubscriptionEventFacts::default()
        };
        event_tx(
            tx,
            &sub,
            EventKind::SubscriptionGracePeriodStarted,
            before.id,
            facts,
            at_ms,
        )?;
    }
    Ok(())
}

impl SubscriptionRepo {
    /// Stores a new active subscription with its first billing date and its job (and, with
    /// `idempotency`, the request's record naming it).
    pub async fn create(&self, new: NewSubscription) -> Result<Subscription, StoreError> {
        let now = self.now_ms();
        let calendar = Calendar::new(new.period, new.billing_day, new.started_on);
        let (next_on, next_at) = if new.bill_immediately {
            let at = if new.started_on <= almaty_date(now) {
                now
            } else {
                billing_moment(new.started_on)
            };
            (new.started_on, at)
        } else {
            let on = calendar.next_due(new.started_on, now);
            (on, billing_moment(on))
        };
        let sql = format!(
            "INSERT INTO subscriptions (org_id, amount, phone, billing_period, billing_day, \
             description, subscriber_name, external_subscriber_id, metadata, started_on, \
             max_retry_attempts, retry_interval_hours, grace_period_days, status, \
             next_billing_on, next_billing_at, is_sandbox, created_at, updated_at, cart) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
             $17, $18, $18, $19) RETURNING {SUBSCRIPTION_COLUMNS}"
        );
        self.db
            .write(move |tx| {
                let params: Vec<Value> = vec![
                    new.org_id.into(),
                    new.amount.into(),
                    (&new.phone).into(),
                    new.period.as_str().into(),
                    new.billing_day.map(i64::from).into(),
                    new.description.as_ref().into(),
                    new.subscriber_name.as_ref().into(),
                    new.external_subscriber_id.as_ref().into(),
                    new.metadata.as_ref().into(),
                    new.started_on.into(),
                    new.max_retry_attempts.into(),
                    new.retry_interval_hours.into(),
                    new.grace_period_days.into(),
                    SubscriptionStatus::Active.as_str().into(),
                    next_on.into(),
                    next_at.into(),
                    new.is_sandbox.into(),
                    now.into(),
                    cart_text(&new.cart)?.into(),
                ];
                let sub = subscription_from_row(&tx.query_one(&sql, &params)?)?;
                if let Some(due) = sub.due_at() {
                    schedule_job_at(tx, JobKind::BillSubscription, sub.id, due, now)?;
                }
                if let Some(link) = &new.idempotency {
                    super::idempotency::link_tx(tx, link, super::Resource::Subscription(sub.id))?;
                }
                Ok(sub)
            })
            .await
    }

    /// Subscription `id` of `org_id`.
    pub async fn subscription(
        &self,
        org_id: i64,
        id: i64,
    ) -> Result<Option<Subscription>, StoreError> {
        let sql = format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE org_id = $1 AND id = $2"
        );
        self.db
            .read(move |tx| {
                Ok(tx
                    .query_opt(&sql, &[org_id.into(), id.into()])?
                    .as_ref()
                    .map(subscription_from_row)
                    .transpose()?)
            })
            .await
    }

    /// Subscriptions by id whatever their organization: for background work only.
    pub async fn subscriptions_by_id(
        &self,
        ids: Vec<i64>,
    ) -> Result<Vec<Subscription>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE id IN ({})",
            super::placeholders(1, ids.len())
        );
        self.db
            .read(move |tx| {
                let params: Vec<Value> = ids.iter().map(|&id| id.into()).collect();
                Ok(super::all_rows(tx, &sql, &params, subscription_from_row)?)
            })
            .await
    }

    /// One page of `org_id`'s subscriptions matching `filter`, and how many match in all.
    pub async fn list(
        &self,
        org_id: i64,
        filter: SubscriptionFilter,
    ) -> Result<(Vec<Subscription>, i64), StoreError> {
        let mut params: Vec<Value> = vec![org_id.into()];
        let mut parts = vec!["org_id = $1".to_owned()];
        let param = |params: &mut Vec<Value>, value: Value| {
            params.push(value);
            format!("${}", params.len())
        };
        if let Some(status) = filter.status {
            parts.push(format!(
                "status = {}",
                param(&mut params, status.as_str().into())
            ));
        }
        if let Some(phone) = &filter.phone {
            parts.push(format!("phone = {}", param(&mut params, phone.into())));
        }
        if let Some(external) = &filter.external_subscriber_id {
            parts.push(format!(
                "external_subscriber_id = {}",
                param(&mut params, external.into())
            ));
        }
        if let Some(period) = filter.period {
            parts.push(format!(
                "billing_period = {}",
                param(&mut params, period.as_str().into())
            ));
        }
        if let Some(search) = &filter.search {
            let pattern = param(
                &mut params,
                format!("%{}%", super::invoices::escape_like(search)).into(),
            );
            parts.push(format!(
                "(subscriber_name LIKE {pattern} ESCAPE '\\' OR phone LIKE {pattern} ESCAPE '\\')"
            ));
        }
        let condition = parts.join(" AND ");
        let direction = if filter.descending { "DESC" } else { "ASC" };
        let column = filter.sort_by.unwrap_or("id");
        let order = match column {
            "subscriber_name" | "next_billing_at" => format!(
                "CASE WHEN {column} IS NULL THEN 1 ELSE 0 END, {column} {direction}, id {direction}"
            ),
            "id" => format!("id {direction}"),
            _ => format!("{column} {direction}, id {direction}"),
        };
        let per_page = filter.per_page.clamp(1, 100);
        let offset = (filter.page.max(1) - 1).saturating_mul(per_page);
        let count_sql = format!("SELECT COUNT(*) AS n FROM subscriptions WHERE {condition}");
        let page_sql = format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE {condition} ORDER BY {order} \
             LIMIT ${} OFFSET ${}",
            params.len() + 1,
            params.len() + 2
        );
        self.db
            .read(move |tx| {
                Ok(super::counted_page(
                    tx,
                    &count_sql,
                    &page_sql,
                    params.clone(),
                    per_page,
                    offset,
                    subscription_from_row,
                )?)
            })
            .await
    }

    /// Changes what `update` names; from the next period on (an invoice made is not changed).
    /// A new billing day moves the next billing date to the first date of the new calendar on
    /// or after the one already due, so the current period is never cut short. `NotFound` for
    /// another organization's or a missing subscription.
    pub async fn update(
        &self,
        org_id: i64,
        id: i64,
        update: SubscriptionUpdate,
    ) -> Result<Subscription, StoreError> {
        let now = self.now_ms();
        self.db
            .write(move |tx| {
                let mut sub = read_for_update(tx, id)?
                    .filter(|s| s.org_id == org_id)
                    .ok_or(StoreError::NotFound)?;
                if let Some(amount) = update.amount {
                    sub.amount = amount;
                }
                if let Some(cart) = &update.cart {
                    sub.cart = cart.clone();
                }
                if let Some(day) = update.billing_day {
                    sub.billing_day = Some(day);
                    if let (true, Some(next)) = (sub.period.uses_billing_day(), sub.next_billing_on)
                    {
                        let on = sub.calendar().on_or_after(next);
                        sub.next_billing_on = Some(on);
                        sub.next_billing_at = Some(billing_moment(on));
                    }
                }
                if let Some(v) = &update.description {
                    sub.description = v.clone();
                }
                if let Some(v) = &update.subscriber_name {
                    sub.subscriber_name = v.clone();
                }
                if let Some(v) = &update.external_subscriber_id {
                    sub.external_subscriber_id = v.clone();
                }
                if let Some(v) = &update.metadata {
                    sub.metadata = v.clone();
                }
                if let Some(v) = update.max_retry_attempts {
                    sub.max_retry_attempts = v;
                }
                if let Some(v) = update.retry_interval_hours {
                    sub.retry_interval_hours = v;
                }
                if let Some(v) = update.grace_period_days {
                    sub.grace_period_days = v;
                }
                save_tx(tx, &sub, now)?;
                sub.updated_at = now;
                Ok(sub)
            })
            .await
    }

    /// Pauses, resumes or cancels: pausing drops a retry or grace period under way (nothing
    /// is billed while paused); resuming bills next on the first billing date whose moment is
    /// still ahead (no back-billing); cancelling is final. Answers the subscription and its
    /// invoices still open (the caller cancels them at Kaspi on `cancel`).
    pub async fn act(
        &self,
        org_id: i64,
        id: i64,
        action: SubscriptionAction,
    ) -> Result<(Subscription, Vec<Invoice>), ActError> {
        let now = self.now_ms();
        self.db
            .write(move |tx| {
                let Some(mut sub) = read_for_update(tx, id)?.filter(|s| s.org_id == org_id) else {
                    return Ok(Err(ActError::NotFound));
                };
                let Some(to) = action.apply(sub.status) else {
                    return Ok(Err(ActError::NotAllowed(sub.status)));
                };
                sub.status = to;
                match action {
                    SubscriptionAction::Pause => {
                        sub.paused_at = Some(now);
                        sub.retry_at = None;
                        sub.grace_until = None;
                        sub.failed_attempts = 0;
                    }
                    SubscriptionAction::Resume => {
                        let after = almaty_date(now).previous_day().unwrap_or(Date::MIN);
                        let on = sub.calendar().next_due(after, now);
                        sub.next_billing_on = Some(on);
                        sub.next_billing_at = Some(billing_moment(on));
                        sub.paused_at = None;
                    }
                    SubscriptionAction::Cancel => {
                        sub.cancelled_at = Some(now);
                        sub.next_billing_on = None;
                        sub.next_billing_at = None;
                        sub.retry_at = None;
                        sub.grace_until = None;
                    }
                }
                save_tx(tx, &sub, now)?;
                sub.updated_at = now;
                let open = if action == SubscriptionAction::Cancel {
                    open_invoices_tx(tx, sub.id)?
                } else {
                    Vec::new()
                };
                Ok(Ok((sub, open)))
            })
            .await
            .unwrap_or_else(|e| Err(ActError::Store(e)))
    }

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
            .db
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
                    kind: super::InvoiceKind::Remote,
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

    /// A page of the invoices subscription `id` of `org_id` made, newest first, and their count.
    pub async fn invoices(
        &self,
        org_id: i64,
        id: i64,
        page: i64,
        per_page: i64,
    ) -> Result<(Vec<SubscriptionInvoice>, i64), StoreError> {
        let columns = super::invoices::INVOICE_COLUMNS
            .split(", ")
            .map(|c| format!("i.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ");
        let per_page = per_page.clamp(1, 100);
        let offset = (page.max(1) - 1).saturating_mul(per_page);
        let sql = format!(
            "SELECT {columns}, s.period_start, s.period_end, s.attempt_number, \
             s.amount AS period_amount, s.failure_reason, s.created_at AS linked_at \
             FROM subscription_invoices s JOIN invoices i ON i.id = s.invoice_id \
             WHERE s.subscription_id = $1 AND s.org_id = $2 ORDER BY s.id DESC LIMIT $3 OFFSET $4"
        );
        self.db
            .read(move |tx| {
                let total = tx
                    .query_one(
                        "SELECT COUNT(*) AS n FROM subscription_invoices \
                         WHERE subscription_id = $1 AND org_id = $2",
                        &[id.into(), org_id.into()],
                    )?
                    .i64("n")?;
                let rows = tx.query(
                    &sql,
                    &[id.into(), org_id.into(), per_page.into(), offset.into()],
                )?;
                let mut out = Vec::with_capacity(rows.len());
                for row in &rows {
                    out.push(SubscriptionInvoice {
                        invoice: super::invoices::invoice_from_row(row)?,
                        period_start: row
                            .opt_date("period_start")?
                            .ok_or_else(|| DbError::decode("period_start", "missing"))?,
                        period_end: row
                            .opt_date("period_end")?
                            .ok_or_else(|| DbError::decode("period_end", "missing"))?,
                        attempt_number: row.i64("attempt_number")?,
                        amount: row.money("period_amount")?,
                        failure_reason: row.opt_text("failure_reason")?,
                        created_at: row.i64("linked_at")?,
                    });
                }
                Ok((out, total))
            })
            .await
    }

    /// The totals of subscription `id`'s invoices, and its newest paid one.
    pub async fn stats(&self, id: i64) -> Result<(SubscriptionStats, Option<Invoice>), StoreError> {
        let last_sql = format!(
            "SELECT {} FROM invoices WHERE subscription_id = $1 AND status = 'paid' \
             ORDER BY paid_at DESC, id DESC LIMIT 1",
            super::invoices::INVOICE_COLUMNS
        );
        self.db
            .read(move |tx| {
                let row = tx.query_one(
                    "SELECT COUNT(*) AS n, \
                     CAST(COALESCE(SUM(CASE WHEN status = 'paid' THEN 1 ELSE 0 END), 0) AS BIGINT) AS paid, \
                     CAST(COALESCE(SUM(CASE WHEN status IN ('failed', 'expired', 'cancelled') THEN 1 ELSE 0 END), 0) AS BIGINT) AS failed, \
                     CAST(COALESCE(SUM(CASE WHEN status = 'paid' THEN amount ELSE 0 END), 0) AS BIGINT) AS collected \
                     FROM invoices WHERE subscription_id = $1",
                    &[id.into()],
                )?;
                let stats = SubscriptionStats {
                    total_payments: row.i64("n")?,
                    successful_payments: row.i64("paid")?,
                    failed_payments: row.i64("failed")?,
                    total_collected: row.money("collected")?,
                };
                let last = tx
                    .query_opt(&last_sql, &[id.into()])?
                    .as_ref()
                    .map(super::invoices::invoice_from_row)
                    .transpose()?;
                Ok((stats, last))
            })
            .await
    }
}
