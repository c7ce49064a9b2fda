//! ApiPay invoices: the invoice, its lines and cart, lists and their queries, stats, the status check.

use utoipa::{IntoParams, ToSchema};

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
