//! xPayment.kz: payments, payment links, refunds, static QR payments.

use utoipa::{IntoParams, ToSchema};

use super::*;

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
    /// Kassa's own: made in a test mode or a sandbox deployment.
    pub is_sandbox: bool,
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
    /// Kassa's own: made in a test mode or a sandbox deployment.
    pub is_sandbox: bool,
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
