//! ApiPay subscriptions: a subscription, its cart, invoices, requests, lists.

use utoipa::{IntoParams, ToSchema};

use super::*;

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BillingPeriod {
    Daily,
    Weekly,
    Biweekly,
    Monthly,
    Quarterly,
    Yearly,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    Active,
    Paused,
    Cancelled,
    Expired,
}

/// A subscription: the fields of both of ApiPay's doc versions (`next_billing_date` of the
/// first, `next_billing_at` of the current one).
#[derive(ToSchema)]
pub struct Subscription {
    pub id: i64,
    pub amount: String,
    #[schema(example = "87001234567")]
    pub phone_number: String,
    #[schema(required = true)]
    pub subscriber_name: Option<String>,
    #[schema(required = true)]
    pub external_subscriber_id: Option<String>,
    #[schema(required = true)]
    pub description: Option<String>,
    pub billing_period: BillingPeriod,
    /// Day of the month billed (1–28) for monthly, quarterly and yearly periods.
    pub billing_day: u8,
    pub status: SubscriptionStatus,
    #[schema(format = Date)]
    pub started_at: String,
    /// `null` once it ended.
    #[schema(required = true, format = Date)]
    pub next_billing_date: Option<String>,
    #[schema(required = true, format = DateTime)]
    pub next_billing_at: Option<String>,
    pub failed_attempts: i64,
    pub in_grace_period: bool,
    #[schema(required = true, format = DateTime)]
    pub grace_period_ends_at: Option<String>,
    pub max_retry_attempts: i64,
    pub retry_interval_hours: i64,
    pub grace_period_days: i64,
    /// The client's own object, as given.
    #[schema(required = true, value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    pub is_sandbox: bool,
    #[schema(required = true, format = DateTime)]
    pub paused_at: Option<String>,
    #[schema(required = true, format = DateTime)]
    pub cancelled_at: Option<String>,
    #[schema(required = true, format = DateTime)]
    pub expired_at: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// What each period sells (empty for a flat amount).
    pub cart_items: Vec<SubscriptionCartLine>,
}

/// One line of a subscription's cart.
#[derive(ToSchema)]
pub struct SubscriptionCartLine {
    #[schema(required = true)]
    pub catalog_item_id: Option<i64>,
    pub name: String,
    pub price: String,
    pub count: i64,
    #[schema(required = true)]
    pub unit_id: Option<i64>,
}

/// An answer about one subscription: its fields at the top level (ApiPay's first docs) and
/// under `subscription` (the current ones), with `message` (changes) or `stats` and
/// `last_payment` (`GET /subscriptions/{id}`).
#[derive(ToSchema)]
pub struct SubscriptionAnswer {
    #[serde(flatten)]
    pub fields: Subscription,
    pub subscription: Subscription,
    /// `Subscription created`, `… updated`, `… paused`, `… resumed`, `… cancelled`.
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub stats: SubscriptionStats,
    /// The newest paid invoice.
    #[serde(default)]
    pub last_payment: Option<LastPayment>,
}

/// What a subscription collected (`total_amount` and `total_collected` are the same sum).
#[derive(ToSchema)]
pub struct SubscriptionStats {
    pub total_payments: i64,
    pub successful_payments: i64,
    pub failed_payments: i64,
    pub total_amount: String,
    pub total_collected: String,
}

#[derive(ToSchema)]
pub struct LastPayment {
    pub id: i64,
    pub invoice_id: i64,
    pub amount: String,
    pub status: InvoiceStatus,
    #[schema(required = true, format = DateTime)]
    pub paid_at: Option<String>,
}

/// A page of subscriptions.
#[derive(ToSchema)]
pub struct SubscriptionPage {
    pub data: Vec<Subscription>,
    pub meta: PageMeta,
}

/// An invoice a subscription made: the invoice (its `id` is the invoice's) with the billing
/// period it pays.
#[derive(ToSchema)]
pub struct SubscriptionInvoice {
    #[serde(flatten)]
    pub invoice: Invoice,
    pub invoice_id: i64,
    #[schema(format = Date)]
    pub billing_period_start: String,
    #[schema(format = Date)]
    pub billing_period_end: String,
    pub billing_period_label: String,
    pub attempt_number: i64,
    /// The status in Russian, for people.
    pub status_label: String,
    pub status_color: String,
    #[schema(required = true)]
    pub failure_reason: Option<String>,
    #[serde(rename = "invoice")]
    pub invoice_ref: SubscriptionInvoiceRef,
}

#[derive(ToSchema)]
pub struct SubscriptionInvoiceRef {
    pub id: i64,
    #[schema(required = true)]
    pub kaspi_invoice_id: Option<String>,
    pub status: InvoiceStatus,
}

/// A page of a subscription's invoices.
#[derive(ToSchema)]
pub struct SubscriptionInvoicePage {
    pub data: Vec<SubscriptionInvoice>,
    pub meta: PageMeta,
}

/// A new subscription: the payer is billed each period by an invoice to their phone.
#[derive(ToSchema)]
pub struct CreateSubscriptionRequest {
    /// `8` and the ten digits of a Kazakhstan mobile number (`7XX XXX XX XX`).
    #[schema(pattern = r"^87[0-9]{9}$", example = "87001234567")]
    pub phone_number: String,
    /// Tenge, 100–1000000; required unless `cart_items` is given (whose sum it then is).
    #[schema(minimum = 100, maximum = 1_000_000, example = 5000)]
    pub amount: Option<f64>,
    pub billing_period: BillingPeriod,
    #[schema(min_items = 1, max_items = 100)]
    pub cart_items: Option<Vec<CartItem>>,
    /// The first billing day, today (Asia/Almaty) or later; today by default.
    #[schema(format = Date)]
    pub started_at: Option<String>,
    /// Bill the first period now rather than on `started_at`.
    pub bill_immediately: Option<bool>,
    #[serde(flatten)]
    pub common: SubscriptionFields,
}

/// Fields a subscription is made with and changed by.
#[derive(ToSchema)]
pub struct SubscriptionFields {
    #[schema(max_length = 255)]
    pub description: Option<String>,
    #[schema(max_length = 255)]
    pub subscriber_name: Option<String>,
    #[schema(max_length = 255)]
    pub external_subscriber_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    #[schema(minimum = 1, maximum = 28)]
    pub billing_day: Option<i64>,
    /// Retries of a failed payment, 3 by default.
    #[schema(minimum = 1, maximum = 10)]
    pub max_retry_attempts: Option<i64>,
    /// 24 by default.
    #[schema(minimum = 1, maximum = 168)]
    pub retry_interval_hours: Option<i64>,
    /// Days of grace after the last retry, 3 by default.
    #[schema(minimum = 1, maximum = 30)]
    pub grace_period_days: Option<i64>,
    /// ApiPay's dashboard webhook; checked, not used (every endpoint gets the events it wants).
    #[schema(minimum = 1)]
    pub webhook_id: Option<i64>,
}

/// A change of a subscription: the fields given change. `phone_number`, `billing_period` and
/// `started_at` cannot change (422). A new `amount` ends billing from a cart; new
/// `cart_items` set the amount.
#[derive(ToSchema)]
pub struct UpdateSubscriptionRequest {
    #[schema(minimum = 100, maximum = 1_000_000)]
    pub amount: Option<f64>,
    #[schema(min_items = 1, max_items = 100)]
    pub cart_items: Option<Vec<CartItem>>,
    #[serde(flatten)]
    pub common: SubscriptionFields,
}

/// The filters of `GET /subscriptions`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SubscriptionListQuery {
    pub page: Option<i64>,
    /// 1–100, 20 by default.
    #[param(minimum = 1, maximum = 100)]
    pub per_page: Option<i64>,
    #[param(inline)]
    pub status: Option<SubscriptionStatus>,
    /// A Kazakhstan mobile number (`87001234567`, `+77001234567`).
    #[param(max_length = 32)]
    pub phone_number: Option<String>,
    #[param(max_length = 255)]
    pub external_subscriber_id: Option<String>,
    #[param(max_length = 100)]
    pub search: Option<String>,
    #[param(inline)]
    pub billing_period: Option<BillingPeriod>,
    #[param(inline)]
    pub sort_by: Option<SubscriptionSort>,
    #[param(inline)]
    pub sort_order: Option<SortOrder>,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionSort {
    Id,
    Amount,
    SubscriberName,
    NextBillingAt,
    CreatedAt,
}

/// A page of a list: `page` and `per_page`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    pub page: Option<i64>,
    /// 1–100, 20 by default.
    #[param(minimum = 1, maximum = 100)]
    pub per_page: Option<i64>,
}
