//! ApiPay refunds: a refund, its lines, the request, lists.

use utoipa::{IntoParams, ToSchema};

use super::*;

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
    /// Made in a test mode or a sandbox deployment (as its invoice).
    pub is_sandbox: bool,
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
