//! The shapes of the JSON Kassa reads and answers, for the OpenAPI document only. The handlers
//! build their answers with `json!` (each surface's `views`), so these types are never made or
//! read: each one describes, field by field, what a view writes.
//!
//! Conventions of the derives: a field that is always there but may be `null` is an `Option`
//! with `required = true`; a field that is left out when it has no value is a plain type with
//! `#[serde(default)]` (not required, never `null`).
#![allow(dead_code)] // Descriptions only: no value of these types is ever made.

use std::collections::BTreeMap;

use utoipa::{IntoParams, ToSchema};

// ---------------------------------------------------------------------------------------------
// Error bodies.

/// ApiPay's validation error (422): a general message and, for each field, what is wrong with
/// it. Query parameters, JSON body fields (`cart_items.0.price`), the `Idempotency-Key` header
/// (`idempotency_key`) and a NUL character (U+0000) anywhere are all reported this way.
#[derive(ToSchema)]
#[schema(example = json!({
    "message": "Validation failed",
    "errors": {"phone_number": ["Phone number must be in format 8XXXXXXXXXX."]}
}))]
pub struct ApiPayValidationError {
    /// Always `Validation failed`.
    pub message: String,
    /// Field name → its messages.
    pub errors: BTreeMap<String, Vec<String>>,
}

/// ApiPay's plain error: 401 (`Invalid API key`), 404 (`Invoice not found.`, `Not found.`),
/// 405 and 500 (`Internal server error.`).
#[derive(ToSchema)]
#[schema(example = json!({"message": "Invoice not found."}))]
pub struct ApiPayMessage {
    pub message: String,
}

/// ApiPay's coded error: a stable machine code and a sentence, e.g. 400
/// `invoice_not_cancellable`, 409 `idempotency_key_in_use`, 413 `payload_too_large`, 502
/// `kaspi_unavailable`, 503 `kaspi_session_invalid`.
#[derive(ToSchema)]
#[schema(example = json!({
    "error": "invoice_not_cancellable",
    "message": "Only pending invoices can be cancelled; this invoice is paid."
}))]
pub struct ApiPayCodedError {
    pub error: String,
    pub message: String,
}

/// ApiPay's 429: the API key's requests per minute are spent (the `Retry-After` header says
/// the same).
#[derive(ToSchema)]
#[schema(example = json!({
    "message": "Too many requests. Please retry after 12 seconds.",
    "retry_after": 12
}))]
pub struct ApiPayRateLimited {
    pub message: String,
    /// Whole seconds to wait, at least 1.
    #[schema(minimum = 1)]
    pub retry_after: u64,
}

/// xPayment's error, for every status: a machine code (`VALIDATION_ERROR`, `UNAUTHORIZED`,
/// `PAYMENT_NOT_FOUND`, `PAYMENT_NOT_CANCELABLE`, `IDEMPOTENCY_CONFLICT`, `RATE_LIMITED`,
/// `KASPI_ERROR`, `KASPI_SESSION_INVALID`, `INTERNAL_ERROR`, …) and a message. A validation
/// error names each field in the message (`payer_phone: must be a string; amount is
/// required`).
#[derive(ToSchema)]
#[schema(example = json!({"error": "PAYMENT_NOT_FOUND", "message": "Payment not found"}))]
pub struct XPaymentError {
    pub error: String,
    pub message: String,
}

// ---------------------------------------------------------------------------------------------
// ApiPay: invoices.

/// An invoice's status as ApiPay names it: `processing` while Kaspi's answer to the create is
/// not known yet, `error` when Kaspi did not take it (see `error_message`), `cancelled` also
/// when the payer declined; a paid invoice is `partially_refunded` or `refunded` once refunds
/// completed.
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceStatus {
    Pending,
    Processing,
    Paid,
    PartiallyRefunded,
    Refunded,
    Error,
    Cancelled,
    Expired,
}

/// An invoice as ApiPay shows it. Amounts are text with two decimals; times are RFC 3339 in
/// UTC.
#[derive(ToSchema)]
pub struct Invoice {
    pub id: i64,
    #[schema(example = "10000.00")]
    pub amount: String,
    #[schema(required = true)]
    pub description: Option<String>,
    #[schema(required = true)]
    pub external_order_id: Option<String>,
    pub status: InvoiceStatus,
    /// The payer's name as Kaspi gave it.
    #[schema(required = true)]
    pub client_name: Option<String>,
    /// Always `null` (Kaspi gives none).
    #[schema(required = true)]
    pub client_comment: Option<String>,
    pub is_sandbox: bool,
    #[schema(example = "0.00")]
    pub total_refunded: String,
    pub is_fully_refunded: bool,
    #[schema(required = true, format = DateTime)]
    pub paid_at: Option<String>,
    #[schema(required = true, format = DateTime)]
    pub expires_at: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// Made by a subscription.
    pub is_recurring: bool,
    #[schema(required = true)]
    pub subscription_id: Option<i64>,
    /// Why Kaspi did not take it (status `error`), else `null`.
    #[schema(required = true)]
    pub error_message: Option<String>,
    /// `8` and ten digits; left out for a QR payment.
    #[serde(default)]
    #[schema(example = "87001234567")]
    pub phone_number: String,
    /// Kaspi's id of the invoice, once Kaspi answered.
    #[serde(default)]
    pub kaspi_invoice_id: String,
    /// With a cart or a discount: the sum before the discount.
    #[serde(default)]
    pub subtotal: String,
    /// With a discount.
    #[serde(default)]
    pub discount_sum: String,
    /// With a discount: whole percent, as text.
    #[serde(default)]
    pub discount_percentage: String,
    /// The invoice's lines (empty for a flat amount); in the answers about one invoice (create,
    /// get), not in lists.
    #[serde(default)]
    pub items: Vec<InvoiceItem>,
}

/// An invoice and the message of its cancellation.
#[derive(ToSchema)]
pub struct CancelledInvoice {
    #[serde(flatten)]
    pub invoice: Invoice,
    #[schema(example = "Invoice cancelled.")]
    pub message: String,
}

/// One line of an invoice: a catalog item's (current shape) or a Kaspi-native line as sent
/// (the seed's shape, with `Type`, `NomenclatureId` and `NomenclatureHistoryId`).
#[derive(ToSchema)]
pub struct InvoiceItem {
    pub id: i64,
    pub invoice_id: i64,
    #[schema(required = true)]
    pub catalog_item_id: Option<i64>,
    pub name: String,
    /// The unit price charged.
    pub price: String,
    pub count: i64,
    #[schema(required = true)]
    pub unit_id: Option<i64>,
    /// The catalog's price.
    pub original_price: String,
    /// This line's share of the invoice's discount.
    pub discount: String,
    /// `price` × `count`.
    pub total: String,
    /// `CATALOGUE` or `FAST_SALE`, for a Kaspi-native line.
    #[serde(default, rename = "Type")]
    pub item_type: String,
    #[serde(default, rename = "NomenclatureId")]
    pub nomenclature_id: Option<i64>,
    #[serde(default, rename = "NomenclatureHistoryId")]
    pub nomenclature_history_id: Option<i64>,
}

/// `meta` of a page.
#[derive(ToSchema)]
pub struct PageMeta {
    pub current_page: i64,
    pub last_page: i64,
    pub per_page: i64,
    pub total: i64,
}

/// A page of invoices, newest first unless sorted otherwise.
#[derive(ToSchema)]
pub struct InvoicePage {
    pub data: Vec<Invoice>,
    pub meta: PageMeta,
}

/// A new invoice by phone: a flat `amount`, or `cart_items` (not both), less an optional
/// `discount_percentage`.
#[derive(ToSchema)]
pub struct CreateInvoiceRequest {
    /// Tenge, 0.01–99999999.99, at most two decimals (a numeric string is read too). Required
    /// unless `cart_items` is given.
    #[schema(minimum = 0.01, maximum = 99_999_999.99, example = 10000)]
    pub amount: Option<f64>,
    /// `8` and the ten digits of a Kazakhstan mobile number (`7XX XXX XX XX`).
    #[schema(pattern = r"^87[0-9]{9}$", example = "87001234567")]
    pub phone_number: String,
    #[schema(max_length = 500)]
    pub description: Option<String>,
    #[schema(max_length = 255)]
    pub external_order_id: Option<String>,
    /// What is sold, 1–100 lines; the invoice's amount is their sum.
    #[schema(min_items = 1, max_items = 100)]
    pub cart_items: Option<Vec<CartItem>>,
    /// Whole percent off the amount or the cart.
    #[schema(minimum = 1, maximum = 99)]
    pub discount_percentage: Option<i64>,
}

/// A cart line: an item of the organization's catalog, or a Kaspi-native line.
#[derive(ToSchema)]
#[serde(untagged)]
pub enum CartItem {
    Catalog(CatalogCartItem),
    Kaspi(KaspiCartItem),
}

/// An item of the catalog (`GET /catalog`), at its price unless `price` overrides it.
#[derive(ToSchema)]
pub struct CatalogCartItem {
    #[schema(minimum = 1)]
    pub catalog_item_id: i64,
    #[schema(minimum = 1, maximum = 100_000)]
    pub count: i64,
    #[schema(minimum = 0.01, maximum = 99_999_999.99)]
    pub price: Option<f64>,
}

/// A Kaspi-native line, priced as sent (its ids are Kaspi's).
#[derive(ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct KaspiCartItem {
    #[schema(min_length = 1, max_length = 255)]
    pub name: String,
    #[schema(minimum = 0.01, maximum = 99_999_999.99)]
    pub price: f64,
    #[schema(minimum = 1, maximum = 100_000)]
    pub count: i64,
    pub nomenclature_id: i64,
    /// `CATALOGUE` or `FAST_SALE`.
    #[schema(pattern = "^(CATALOGUE|FAST_SALE)$")]
    pub r#type: String,
    #[schema(minimum = 0)]
    pub unit_id: i64,
    /// Required when `Type` is `CATALOGUE`.
    pub nomenclature_history_id: Option<i64>,
}

/// The invoices whose status to check (Kassa's `POST /invoices/status/check`).
#[derive(ToSchema)]
pub struct StatusCheckRequest {
    #[schema(min_items = 1, max_items = 100, inline)]
    pub invoice_ids: Vec<PositiveId>,
}

/// A positive integer id.
#[derive(ToSchema)]
#[schema(minimum = 1)]
pub struct PositiveId(i64);

/// The current status of each invoice asked about that the caller has (others are left out).
#[derive(ToSchema)]
pub struct StatusCheckAnswer {
    pub invoices: Vec<InvoiceStatusLine>,
}

/// One invoice's status.
#[derive(ToSchema)]
pub struct InvoiceStatusLine {
    pub id: i64,
    pub status: InvoiceStatus,
    #[schema(required = true)]
    pub kaspi_invoice_id: Option<String>,
    pub amount: String,
    #[schema(required = true)]
    pub error_message: Option<String>,
    #[schema(required = true, format = DateTime)]
    pub paid_at: Option<String>,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

/// The filters of `GET /invoices`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InvoiceListQuery {
    /// Page, from 1 (a smaller number is the first page).
    pub page: Option<i64>,
    /// 1–100, 10 by default.
    #[param(minimum = 1, maximum = 100)]
    pub per_page: Option<i64>,
    /// In the description, external order id, phone or payer's name.
    #[param(max_length = 100)]
    pub search: Option<String>,
    /// Statuses to include (`status[]=paid&status[]=pending` works too).
    #[param(style = Form, explode, inline)]
    pub status: Option<Vec<InvoiceStatusFilter>>,
    /// First day (Asia/Almaty) of the creation dates.
    #[param(format = Date)]
    pub date_from: Option<String>,
    /// Last day (Asia/Almaty), on or after `date_from`.
    #[param(format = Date)]
    pub date_to: Option<String>,
    #[param(inline)]
    pub sort_by: Option<InvoiceSort>,
    #[param(inline)]
    pub sort_order: Option<SortOrder>,
}

/// An invoice status a filter takes.
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceStatusFilter {
    Pending,
    Processing,
    Paid,
    Cancelled,
    Error,
    Expired,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceSort {
    Id,
    Amount,
    ClientName,
    Status,
    CreatedAt,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SortOrder {
    Asc,
    Desc,
}

/// The period of `GET /invoices/stats`: `period`, or `start_date` with `end_date`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// Today, this week (from Monday), this month or this year, up to today (Asia/Almaty).
    #[param(inline)]
    pub period: Option<StatsPeriod>,
    /// First day; needs `end_date`.
    #[param(format = Date)]
    pub start_date: Option<String>,
    /// Last day, on or after `start_date`; needs `start_date`.
    #[param(format = Date)]
    pub end_date: Option<String>,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StatsPeriod {
    Today,
    Week,
    Month,
    Year,
}

/// The invoice statistics of a period (Asia/Almaty days).
#[derive(ToSchema)]
pub struct InvoiceStats {
    pub period: StatsRange,
    pub total_count: i64,
    pub total_amount: String,
    pub paid_count: i64,
    pub paid_amount: String,
    pub total_refunded: String,
    /// Percent of the invoices paid, two decimals.
    pub conversion_rate: f64,
    pub by_status: StatsByStatus,
}

/// The days of a statistics answer.
#[derive(ToSchema)]
pub struct StatsRange {
    #[schema(format = Date)]
    pub start: String,
    #[schema(format = Date)]
    pub end: String,
}

/// Counts and amounts by status (`processing` is among `pending`, `error` among `cancelled`).
#[derive(ToSchema)]
pub struct StatsByStatus {
    pub pending: StatusTotals,
    pub paid: StatusTotals,
    pub cancelled: StatusTotals,
    pub expired: StatusTotals,
}

#[derive(ToSchema)]
pub struct StatusTotals {
    pub count: i64,
    pub amount: String,
}

// ---------------------------------------------------------------------------------------------
// ApiPay: refunds.

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RefundStatus {
    Pending,
    Processing,
    Completed,
    Failed,
}

/// A refund as ApiPay shows it, with its invoice and the lines it took back.
#[derive(ToSchema)]
pub struct Refund {
    pub id: i64,
    pub invoice_id: i64,
    pub amount: String,
    #[schema(required = true)]
    pub reason: Option<String>,
    pub status: RefundStatus,
    #[schema(required = true)]
    pub fail_reason: Option<String>,
    /// The same as `fail_reason` (ApiPay's current name).
    #[schema(required = true)]
    pub error_message: Option<String>,
    #[schema(required = true)]
    pub kaspi_refund_id: Option<String>,
    /// Always `null`.
    #[schema(required = true)]
    pub kaspi_status: Option<String>,
    /// `api`, `xpayment`, `dashboard`, …: what asked for it.
    pub initiated_by: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    #[schema(required = true, format = DateTime)]
    pub completed_at: Option<String>,
    #[schema(required = true)]
    pub invoice: Option<RefundInvoice>,
    pub items: Vec<RefundItem>,
}

/// The invoice of a refund.
#[derive(ToSchema)]
pub struct RefundInvoice {
    pub id: i64,
    #[schema(required = true)]
    pub external_order_id: Option<String>,
    pub amount: String,
    pub status: InvoiceStatus,
    #[schema(required = true)]
    pub kaspi_invoice_id: Option<String>,
}

/// A line a refund took back.
#[derive(ToSchema)]
pub struct RefundItem {
    #[schema(required = true)]
    pub catalog_item_id: Option<i64>,
    pub count: i64,
    /// Its share of what was paid.
    pub amount: String,
}

/// A refund of a paid invoice: the whole rest (no body, or no `amount`), a part (`amount`), or
/// lines of its cart (`return_items`, which make the amount).
#[derive(ToSchema)]
pub struct RefundInvoiceRequest {
    /// Tenge, at most what is left to refund; the whole rest when left out.
    #[schema(minimum = 0.01, maximum = 99_999_999.99)]
    pub amount: Option<f64>,
    #[schema(max_length = 500)]
    pub reason: Option<String>,
    /// Lines of the invoice's cart to take back (not with `amount`).
    #[schema(min_items = 1, max_items = 100)]
    pub return_items: Option<Vec<ReturnItem>>,
}

#[derive(ToSchema)]
pub struct ReturnItem {
    #[schema(minimum = 1)]
    pub catalog_item_id: i64,
    #[schema(minimum = 1, maximum = 100_000)]
    pub count: i64,
}

/// A refund was asked of Kaspi: it completes (or fails) later, as its status and the
/// `invoice.refunded` webhook tell.
#[derive(ToSchema)]
pub struct RefundCreated {
    #[schema(example = "Refund initiated successfully")]
    pub message: String,
    pub refund: Refund,
    pub invoice: RefundedInvoice,
}

/// The refunded invoice's sums after the refund was asked.
#[derive(ToSchema)]
pub struct RefundedInvoice {
    pub id: i64,
    pub amount: String,
    pub status: InvoiceStatus,
    pub total_refunded: String,
    pub available_for_refund: String,
    /// Tenge asked but not completed yet, as a number.
    pub pending_refund_amount: f64,
}

/// An invoice's refunds, newest first.
#[derive(ToSchema)]
pub struct InvoiceRefunds {
    pub data: Vec<Refund>,
}

/// A page of refunds, newest first.
#[derive(ToSchema)]
pub struct RefundPage {
    pub data: Vec<Refund>,
    pub meta: PageMeta,
}

/// The filters of `GET /refunds`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RefundListQuery {
    pub page: Option<i64>,
    /// 1–100, 10 by default.
    #[param(minimum = 1, maximum = 100)]
    pub per_page: Option<i64>,
    #[param(style = Form, explode, inline)]
    pub status: Option<Vec<RefundStatus>>,
    /// One invoice's refunds.
    pub invoice_id: Option<i64>,
    #[param(format = Date)]
    pub date_from: Option<String>,
    #[param(format = Date)]
    pub date_to: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// ApiPay: subscriptions.

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

// ---------------------------------------------------------------------------------------------
// ApiPay: catalog.

/// A unit of measure.
#[derive(ToSchema)]
pub struct Unit {
    pub id: i64,
    pub name: String,
    pub name_kaz: String,
}

/// The units a catalog item may have.
#[derive(ToSchema)]
pub struct UnitList {
    pub data: Vec<Unit>,
}

/// A catalog item (Kassa's own catalog: usable at once, `status` always `active`).
#[derive(ToSchema)]
pub struct CatalogItem {
    pub id: i64,
    pub name: String,
    /// Tenge, as a number.
    pub selling_price: f64,
    pub unit_id: i64,
    #[schema(required = true)]
    pub unit: Option<Unit>,
    #[schema(required = true)]
    pub image_id: Option<String>,
    /// Where the image is served (`GET /catalog/images/{file}`).
    #[schema(required = true)]
    pub image_url: Option<String>,
    #[schema(required = true)]
    pub barcode: Option<String>,
    #[schema(example = "active")]
    pub status: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

/// A page of the catalog, by name.
#[derive(ToSchema)]
pub struct CatalogPage {
    pub data: Vec<CatalogItem>,
    pub meta: PageMeta,
}

/// The filters of `GET /catalog`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CatalogListQuery {
    pub page: Option<i64>,
    /// 1–200, 50 by default.
    #[param(minimum = 1, maximum = 200)]
    pub per_page: Option<i64>,
    /// In the name.
    #[param(max_length = 255)]
    pub search: Option<String>,
    #[param(max_length = 50)]
    pub barcode: Option<String>,
    /// Names starting with this character (of a longer text, its first).
    #[param(max_length = 255)]
    pub first_char: Option<String>,
}

/// Items to add to the catalog, 1–50.
#[derive(ToSchema)]
pub struct CreateCatalogItemsRequest {
    #[schema(min_items = 1, max_items = 50)]
    pub items: Vec<NewCatalogItem>,
}

#[derive(ToSchema)]
pub struct NewCatalogItem {
    #[schema(min_length = 1, max_length = 255)]
    pub name: String,
    #[schema(minimum = 0.01, maximum = 99_999_999.99)]
    pub selling_price: f64,
    /// One of `GET /catalog/units`.
    #[schema(minimum = 1)]
    pub unit_id: i64,
    /// An image uploaded with `POST /catalog/upload-image`.
    #[schema(format = "uuid")]
    pub image_id: Option<String>,
    #[schema(max_length = 50)]
    pub barcode: Option<String>,
}

/// The items made.
#[derive(ToSchema)]
pub struct CatalogItemsCreated {
    #[schema(example = "Catalog items created")]
    pub message: String,
    pub data: Vec<CatalogItem>,
}

/// A change of a catalog item: the fields given change.
#[derive(ToSchema)]
pub struct UpdateCatalogItemRequest {
    #[schema(min_length = 1, max_length = 255)]
    pub name: Option<String>,
    #[schema(minimum = 0.01, maximum = 99_999_999.99)]
    pub selling_price: Option<f64>,
    #[schema(minimum = 1)]
    pub unit_id: Option<i64>,
    #[schema(format = "uuid")]
    pub image_id: Option<String>,
    /// `null` or empty removes it.
    #[schema(max_length = 50)]
    pub barcode: Option<String>,
    /// Removes the item's image.
    pub is_image_deleted: Option<bool>,
}

/// The changed item, at the top level and under `data`.
#[derive(ToSchema)]
pub struct CatalogItemUpdated {
    #[serde(flatten)]
    pub item: CatalogItem,
    pub data: CatalogItem,
    pub catalog_item_id: i64,
    #[schema(example = "Catalog item updated")]
    pub message: String,
}

#[derive(ToSchema)]
pub struct CatalogItemDeleted {
    #[schema(example = "Catalog item deleted")]
    pub message: String,
    pub catalog_item_id: i64,
}

/// An image for catalog items: JPEG, PNG, GIF or WebP, at most 10 MB; stored as PNG.
#[derive(ToSchema)]
pub struct ImageUpload {
    #[schema(value_type = String, format = Binary)]
    pub image: Vec<u8>,
}

#[derive(ToSchema)]
pub struct ImageUploaded {
    #[schema(format = "uuid")]
    pub image_id: String,
    #[schema(example = "/api/v1/catalog/images/0b8f3c1e-5d2a-4c1b-9a57-3f1e2d4c5b6a.png")]
    pub image_url: String,
}

// ---------------------------------------------------------------------------------------------
// ApiPay: sandbox.

/// The sandbox clock: Kassa's and the sandbox Kaspi's time.
#[derive(ToSchema)]
pub struct SandboxClock {
    #[schema(format = DateTime)]
    pub now: String,
    #[schema(format = DateTime)]
    pub now_almaty: String,
    /// Today in Asia/Almaty.
    #[schema(format = Date)]
    pub today: String,
    pub is_sandbox: bool,
}

/// How far to move the sandbox clock: `days` or `seconds` (one of them), at most ten years.
#[derive(ToSchema)]
pub struct ClockAdvanceRequest {
    #[schema(minimum = 1, maximum = 3660)]
    pub days: Option<i64>,
    #[schema(minimum = 1, maximum = 316_224_000)]
    pub seconds: Option<i64>,
}

/// The clock after the move, and how much due work (polls, billing, webhooks) was done on the
/// way.
#[derive(ToSchema)]
pub struct ClockAdvanced {
    #[serde(flatten)]
    pub clock: SandboxClock,
    pub advanced_by_seconds: u64,
    pub work_done: u64,
}

// ---------------------------------------------------------------------------------------------
// ApiPay: webhooks (Kassa's own).

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    Apipay,
    Xpayment,
}

/// A webhook endpoint (never its secret).
#[derive(ToSchema)]
pub struct Webhook {
    pub id: i64,
    /// The UUID the xPayment surface names the endpoint by.
    #[schema(format = "uuid")]
    pub subscription_id: String,
    pub url: String,
    /// Event names, or `["*"]` for all.
    pub events: Vec<String>,
    pub format: WebhookFormat,
    #[schema(required = true)]
    pub description: Option<String>,
    pub is_active: bool,
    /// Why Kassa disabled it (410, failing for days).
    #[schema(required = true)]
    pub disabled_reason: Option<String>,
    /// Since when every attempt failed.
    #[schema(required = true, format = DateTime)]
    pub failing_since: Option<String>,
    /// Until when the secret before the last rotation still signs too.
    #[schema(required = true, format = DateTime)]
    pub previous_secret_expires_at: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

/// A webhook endpoint with its signing secret: shown only when made or rotated.
#[derive(ToSchema)]
pub struct WebhookWithSecret {
    #[serde(flatten)]
    pub webhook: Webhook,
    /// Standard Webhooks secret (`whsec_…`).
    pub secret: String,
}

#[derive(ToSchema)]
pub struct WebhookList {
    pub data: Vec<Webhook>,
}

/// A new webhook endpoint. Events of ApiPay's format: `invoice.status_changed`,
/// `invoice.refunded`, `subscription.payment_succeeded`, `subscription.payment_failed`,
/// `subscription.grace_period_started`, `subscription.expired`; of xPayment's:
/// `payment.completed`, `payment.expired`, `payment.cancelled`, `payment.failed`,
/// `payment.refunded`, `payment.refund_failed`.
#[derive(ToSchema)]
pub struct CreateWebhookRequest {
    /// `https://` (or `http://` where the server allows it); private and loopback addresses
    /// are refused unless the server allows them.
    #[schema(format = "uri", max_length = 2048)]
    pub url: String,
    /// Event names, or `"*"` / `["*"]` for all (the default).
    pub events: Option<Vec<String>>,
    /// The body's format, `apipay` by default.
    pub format: Option<WebhookFormat>,
    pub description: Option<String>,
    pub is_active: Option<bool>,
}

/// A change of an endpoint: the fields given change; `is_active: true` re-enables one Kassa
/// disabled; `description: null` clears it.
#[derive(ToSchema)]
pub struct UpdateWebhookRequest {
    #[schema(format = "uri", max_length = 2048)]
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub format: Option<WebhookFormat>,
    pub description: Option<String>,
    pub is_active: Option<bool>,
}

#[derive(ToSchema)]
pub struct WebhookDeleted {
    #[schema(example = "Webhook deleted.")]
    pub message: String,
}

/// A new secret; the old one keeps signing for `grace_period_secs`.
#[derive(ToSchema)]
pub struct RotateSecretRequest {
    /// 86400 (a day) by default; 0 ends the old secret now.
    #[schema(minimum = 0)]
    pub grace_period_secs: Option<u64>,
}

/// Whether the test event (`webhook.test`) arrived.
#[derive(ToSchema)]
pub struct WebhookTestResult {
    pub event: String,
    pub url: String,
    pub success: bool,
    #[schema(required = true)]
    pub error: Option<String>,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Sending,
    Delivered,
    Failed,
}

/// One event's delivery to an endpoint, with its attempts.
#[derive(ToSchema)]
pub struct WebhookDelivery {
    pub id: i64,
    /// The `webhook-id` header sent (the same on every attempt).
    #[schema(format = "uuid")]
    pub webhook_id: String,
    pub event: String,
    #[schema(required = true)]
    pub event_id: Option<i64>,
    pub is_test: bool,
    pub status: DeliveryStatus,
    pub attempts: i64,
    #[schema(required = true, format = DateTime)]
    pub next_attempt_at: Option<String>,
    #[schema(required = true)]
    pub last_status: Option<i64>,
    #[schema(required = true)]
    pub last_error: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(required = true, format = DateTime)]
    pub delivered_at: Option<String>,
    pub attempt_log: Vec<WebhookAttempt>,
}

/// One attempt of a delivery.
#[derive(ToSchema)]
pub struct WebhookAttempt {
    pub attempt: i64,
    #[schema(format = DateTime)]
    pub at: String,
    /// The answer's status; `null` when none came.
    #[schema(required = true)]
    pub status: Option<i64>,
    pub latency_ms: i64,
    /// The first bytes of the answer.
    #[schema(required = true)]
    pub response: Option<String>,
    #[schema(required = true)]
    pub error: Option<String>,
}

/// A page of an endpoint's deliveries, newest first.
#[derive(ToSchema)]
pub struct WebhookDeliveryPage {
    pub data: Vec<WebhookDelivery>,
    pub meta: PageMeta,
}

// ---------------------------------------------------------------------------------------------
// Status.

/// `GET /api/v1/status`: whether the gateway answers, and the state of its Kaspi cashiers.
#[derive(ToSchema)]
pub struct GatewayStatus {
    #[schema(example = "ok")]
    pub status: String,
    #[schema(format = DateTime)]
    pub timestamp: String,
    pub kaspi: KaspiStatus,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KaspiMode {
    Sandbox,
    Live,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KaspiState {
    Ok,
    NeedsLogin,
    AppBuildOutdated,
}

/// The Kaspi side: a monitor alerts on `state` other than `ok`.
#[derive(ToSchema)]
pub struct KaspiStatus {
    pub mode: KaspiMode,
    /// `null` when the terminals could not be read.
    #[schema(required = true)]
    pub sessions: Option<KaspiSessions>,
    /// Left out when the terminals could not be read.
    #[serde(default)]
    pub state: Option<KaspiState>,
    /// What to do, when `state` is not `ok`.
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub app: KaspiApp,
}

/// Cashier sessions that work and that need a login, with the distinct reasons.
#[derive(ToSchema)]
pub struct KaspiSessions {
    pub healthy: i64,
    pub needs_login: i64,
    pub reasons: Vec<String>,
}

/// The Kaspi app version and build Kassa presents.
#[derive(ToSchema)]
pub struct KaspiApp {
    pub version: String,
    pub build: String,
    /// `settings` or `config`.
    pub source: String,
}

// ---------------------------------------------------------------------------------------------
// xPayment.

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    Pending,
    Completed,
    Cancelled,
    Failed,
    Expired,
}

/// A payment as xPayment shows it (`handler.paymentObject`): the same row ApiPay shows as an
/// invoice. Amounts are numbers of tenge; fields without a value are left out.
#[derive(ToSchema)]
pub struct Payment {
    #[schema(format = "uuid")]
    pub payment_id: String,
    #[schema(example = 1500)]
    pub amount: f64,
    #[schema(example = "KZT")]
    pub currency: String,
    pub status: PaymentStatus,
    /// `+7` and ten digits; left out for a QR payment.
    #[serde(default)]
    #[schema(example = "+77001234567")]
    pub payer_phone: String,
    #[serde(default)]
    pub comment: String,
    #[serde(default)]
    pub merchant_order_id: String,
    /// The client's own object (`{}` when none).
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    pub is_recurring: bool,
    /// The ApiPay subscription that billed it.
    #[serde(default)]
    pub subscription_id: i64,
    #[serde(default)]
    pub cancel_reason: String,
    #[serde(default)]
    #[schema(format = DateTime)]
    pub cancelled_at: String,
    #[serde(default)]
    #[schema(format = DateTime)]
    pub completed_at: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// The organization's slug.
    pub user_id: String,
    /// For a QR payment: the link the payer opens.
    #[serde(default)]
    pub qr_token: String,
    #[serde(default)]
    pub kaspi_operation_id: String,
}

/// A page of payments, newest first; `next_cursor` (empty at the end) asks for the next.
#[derive(ToSchema)]
pub struct PaymentPage {
    pub data: Vec<Payment>,
    pub has_more: bool,
    pub next_cursor: String,
}

/// A new payment: an invoice to the payer's phone.
#[derive(ToSchema)]
pub struct CreatePaymentRequest {
    /// A Kazakhstan mobile number: `+77001234567`, `87001234567`, `7001234567` (spaces,
    /// parentheses and dashes are ignored).
    #[schema(example = "+77001234567")]
    pub payer_phone: String,
    /// Tenge, 0.01–99999999.99, at most two decimals (a numeric string is read too).
    #[schema(minimum = 0.01, maximum = 99_999_999.99, example = 1500)]
    pub amount: f64,
    #[schema(max_length = 500)]
    pub comment: Option<String>,
    #[schema(max_length = 255)]
    pub merchant_order_id: Option<String>,
    /// Kept and shown back, at most 8 KiB of JSON.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
}

/// A new payment link: a QR payment the payer scans.
#[derive(ToSchema)]
pub struct CreateLinkRequest {
    #[schema(minimum = 0.01, maximum = 99_999_999.99, example = 1500)]
    pub amount: f64,
    #[schema(max_length = 255)]
    pub merchant_order_id: Option<String>,
    #[schema(max_length = 500)]
    pub comment: Option<String>,
}

/// The QR payment made (its QR code: `GET /payments/{payment_id}/qr.svg` or `qr.png`).
#[derive(ToSchema)]
pub struct PaymentLink {
    #[schema(format = "uuid")]
    pub payment_id: String,
    /// The link the payer opens (the QR code's text).
    #[serde(default)]
    pub qr_token: String,
    #[serde(default)]
    pub qr_operation_id: i64,
    #[serde(default)]
    pub ext_tran_id: String,
    #[serde(default)]
    #[schema(format = DateTime)]
    pub expire_date: String,
    /// Kaspi's status of the QR payment.
    #[serde(default)]
    pub status: String,
}

/// Why the payment is cancelled (optional).
#[derive(ToSchema)]
pub struct CancelPaymentRequest {
    #[schema(max_length = 500)]
    pub reason: Option<String>,
}

/// A refund: the whole rest when `amount` is left out.
#[derive(ToSchema)]
pub struct RefundPaymentRequest {
    #[schema(minimum = 0.01, maximum = 99_999_999.99)]
    pub amount: Option<f64>,
    #[schema(max_length = 500)]
    pub reason: Option<String>,
}

/// A refund as xPayment shows it (`handler.refundObject`).
#[derive(ToSchema)]
pub struct XPaymentRefund {
    #[schema(format = "uuid")]
    pub refund_id: String,
    pub payment_id: String,
    pub amount: f64,
    pub status: RefundStatus,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub fail_reason: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    #[serde(default)]
    #[schema(format = DateTime)]
    pub completed_at: String,
    pub user_id: String,
}

/// A page of refunds, newest first.
#[derive(ToSchema)]
pub struct XPaymentRefundPage {
    pub data: Vec<XPaymentRefund>,
    pub has_more: bool,
    pub next_cursor: String,
}

/// The filters of `GET /payments`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PaymentListQuery {
    /// `pending`, `completed`, `cancelled`, `failed` or `expired`; any other matches nothing.
    pub status: Option<String>,
    /// A Kazakhstan mobile number.
    pub payer_phone: Option<String>,
    #[param(max_length = 255)]
    pub merchant_order_id: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// 1–100, 20 by default.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
}

/// The filters of `GET /refunds`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct XPaymentRefundListQuery {
    /// `pending`, `processing`, `completed` or `failed`; any other matches nothing.
    pub status: Option<String>,
    #[param(max_length = 64)]
    pub payment_id: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// 1–100, 20 by default.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
}

/// A payment to the shop's static QR, from the synced Kaspi history
/// (`handler.staticQrPaymentObject`); fields Kaspi did not give are left out.
#[derive(ToSchema)]
pub struct StaticQrPayment {
    pub id: i64,
    pub kaspi_operation_id: i64,
    #[serde(default)]
    pub amount: f64,
    #[serde(default)]
    pub client_short_name: String,
    #[serde(default)]
    pub comment: String,
    #[serde(default)]
    pub features: i64,
    #[serde(default)]
    pub operation_method: i64,
    #[serde(default)]
    pub operation_type: i64,
    #[serde(default)]
    pub order_number: String,
    #[serde(default)]
    pub order_reg_date: String,
    #[serde(default)]
    pub sale_id: i64,
    #[serde(default)]
    pub sale_type: String,
    #[serde(default)]
    pub source_type: String,
    #[serde(default)]
    pub status: String,
    #[schema(format = DateTime)]
    pub synced_at: String,
}

/// A made-up event to send now, signed as usual, with `"test": true` and the header
/// `webhook-test: true`.
#[derive(ToSchema)]
pub struct SimulateRequest {
    pub event: XPaymentEvent,
    #[schema(max_length = 255)]
    pub merchant_order_id: Option<String>,
    /// The endpoint to send to (active or not); every active one when left out.
    #[schema(max_length = 255)]
    pub subscription_id: Option<String>,
}

/// One of xPayment's six event types.
#[derive(ToSchema)]
pub enum XPaymentEvent {
    #[serde(rename = "payment.completed")]
    Completed,
    #[serde(rename = "payment.expired")]
    Expired,
    #[serde(rename = "payment.cancelled")]
    Cancelled,
    #[serde(rename = "payment.failed")]
    Failed,
    #[serde(rename = "payment.refunded")]
    Refunded,
    #[serde(rename = "payment.refund_failed")]
    RefundFailed,
}

/// What each endpoint answered.
#[derive(ToSchema)]
pub struct SimulateResults {
    pub results: Vec<SimulateResult>,
}

#[derive(ToSchema)]
pub struct SimulateResult {
    #[schema(format = "uuid")]
    pub subscription_id: String,
    pub url: String,
    pub event: String,
    pub success: bool,
    /// Why it did not arrive.
    #[serde(default)]
    pub error: String,
}

/// The organization's endpoints of the xPayment format.
#[derive(ToSchema)]
pub struct WebhookSubscriptions {
    pub subscriptions: Vec<WebhookSubscription>,
}

/// An endpoint as `handler.subscriptionObject`, without its secret (shown only when made).
#[derive(ToSchema)]
pub struct WebhookSubscription {
    #[schema(format = "uuid")]
    pub id: String,
    /// The organization's slug.
    pub organization_id: String,
    pub url: String,
    pub events: Vec<String>,
    #[serde(default)]
    pub description: String,
    pub is_active: bool,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

// ---------------------------------------------------------------------------------------------
// Other bodies.

/// Bytes of a file (an image).
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct Binary(Vec<u8>);
