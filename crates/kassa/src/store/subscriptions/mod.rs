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
//!
//! - `manage.rs`: made, read, listed, changed, paused/resumed/cancelled; their invoices and stats.
//! - `billing.rs`: a due period or retry billed, a grace period ended, the job released.
//! - `outcomes.rs`: what the end of a subscription's invoice means, with its events.

mod billing;
mod manage;
mod outcomes;

pub(in crate::store) use outcomes::invoice_ended_tx;
pub use outcomes::SubscriptionEventFacts;

use serde::{Deserialize, Serialize};
use time::Date;

use crate::db::{DbError, Row, Tx, Value};
use crate::domain::{
    almaty_date, billing_moment, BillingPeriod, Calendar, CreateState, Money, Phone,
    SubscriptionAction, SubscriptionStatus,
};
use crate::store::invoices::insert_invoice_tx;
use crate::store::jobs::{delete_job, schedule_job_at};
use crate::store::DomainColumns as _;
use crate::store::SubscriptionRepo;
use crate::store::{EventKind, Invoice, InvoiceStatus, JobKind, NewInvoice, StoreError};

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
    pub fn of(item: &crate::store::NewInvoiceItem) -> CartLine {
        CartLine {
            catalog_item_id: item.catalog_item_id,
            name: item.name.clone(),
            price: item.price.tiyn(),
            original_price: item.original_price.tiyn(),
            count: item.count,
            unit_id: item.unit_id,
        }
    }

    fn item(&self) -> crate::store::NewInvoiceItem {
        crate::store::NewInvoiceItem {
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
fn cart_of(lines: &[CartLine], amount: Money) -> Option<crate::store::Cart> {
    (!lines.is_empty()).then(|| crate::store::Cart {
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
    pub idempotency: Option<crate::store::IdemLink>,
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

impl SubscriptionUpdate {
    /// The names of the fields this update sets (for the audit log).
    pub fn named_fields(&self) -> Vec<&'static str> {
        crate::store::audit::fields_set(&[
            ("amount", self.amount.is_some()),
            ("cart", self.cart.is_some()),
            ("billing_day", self.billing_day.is_some()),
            ("description", self.description.is_some()),
            ("subscriber_name", self.subscriber_name.is_some()),
            (
                "external_subscriber_id",
                self.external_subscriber_id.is_some(),
            ),
            ("metadata", self.metadata.is_some()),
            ("max_retry_attempts", self.max_retry_attempts.is_some()),
            ("retry_interval_hours", self.retry_interval_hours.is_some()),
            ("grace_period_days", self.grace_period_days.is_some()),
        ])
    }
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
        Some(due) => schedule_job_at(tx, JobKind::BillSubscription, sub.id, due, now_ms, false),
        None => delete_job(tx, JobKind::BillSubscription, sub.id),
    }
}

/// One event of a subscription, as its page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionEvent {
    pub kind: EventKind,
    /// The subscription's status right after the event.
    pub status: String,
    /// The invoice the event is about.
    pub invoice_id: i64,
    pub at: i64,
}

impl SubscriptionRepo {
    /// The events of subscription `id` of `org_id` (payments succeeded and failed, grace
    /// started, expired), newest first, at most `limit`.
    pub async fn subscription_events(
        &self,
        org_id: i64,
        id: i64,
        limit: u32,
    ) -> Result<Vec<SubscriptionEvent>, StoreError> {
        self.db
            .read(move |tx| {
                let rows = tx.query(
                    "SELECT kind, to_status, invoice_id, at FROM invoice_events \
                     WHERE org_id = $1 AND subscription_id = $2 AND invoice_id IN \
                     (SELECT invoice_id FROM subscription_invoices WHERE subscription_id = $2) \
                     ORDER BY id DESC LIMIT $3",
                    &[org_id.into(), id.into(), limit.into()],
                )?;
                let mut events = Vec::with_capacity(rows.len());
                for row in &rows {
                    events.push(SubscriptionEvent {
                        kind: row.parsed("kind", EventKind::parse)?,
                        status: row.text("to_status")?,
                        invoice_id: row.i64("invoice_id")?,
                        at: row.i64("at")?,
                    });
                }
                Ok(events)
            })
            .await
    }
}
