//! The JSON an ApiPay client sees: invoices, refunds and a page's `meta`, built from store
//! values (no gateway, no HTTP). Webhook payloads use the same builders.

use serde_json::{json, Value};

use crate::api::rfc3339_ms;
use crate::domain::Money;
use crate::store::{Invoice, InvoiceStatus, Refund};

/// An invoice as ApiPay shows it.
pub fn invoice_json(invoice: &Invoice) -> Value {
    let mut body = json!({
        "id": invoice.id,
        "amount": invoice.amount.to_decimal_string(),
        "description": invoice.description,
        "external_order_id": invoice.external_order_id,
        "status": apipay_status(invoice),
        "client_name": invoice.client_name,
        "client_comment": Value::Null,
        "is_sandbox": invoice.is_sandbox,
        "total_refunded": invoice.total_refunded.to_decimal_string(),
        "is_fully_refunded": invoice.total_refunded > Money::ZERO && invoice.total_refunded >= invoice.amount,
        "paid_at": invoice.paid_at.map(rfc3339_ms),
        "expires_at": invoice.expires_at.map(rfc3339_ms),
        "created_at": rfc3339_ms(invoice.created_at),
        "updated_at": rfc3339_ms(invoice.updated_at),
    });
    // The spec types these as strings: absent rather than null (a QR payment has no phone;
    // Kaspi's id comes with its answer).
    if let Some(phone) = &invoice.phone {
        body["phone_number"] = json!(format!("8{phone}"));
    }
    if let Some(op) = &invoice.kaspi_operation_id {
        body["kaspi_invoice_id"] = json!(op.to_string());
    }
    body
}

/// ApiPay's name for the invoice's status: a paid invoice is `partially_refunded` or
/// `refunded` once refunds completed (as ApiPay's invoice docs list them).
pub(super) fn apipay_status(invoice: &Invoice) -> &'static str {
    match invoice.status {
        InvoiceStatus::Pending => "pending",
        InvoiceStatus::Paid if invoice.total_refunded >= invoice.amount => "refunded",
        InvoiceStatus::Paid if invoice.total_refunded > Money::ZERO => "partially_refunded",
        InvoiceStatus::Paid => "paid",
        InvoiceStatus::Cancelled | InvoiceStatus::Failed => "cancelled",
        InvoiceStatus::Expired => "expired",
    }
}

/// ApiPay's `meta` of a page.
pub(super) fn page_meta(page: i64, per_page: i64, total: i64) -> Value {
    let last_page = if total == 0 {
        1
    } else {
        (total + per_page - 1) / per_page
    };
    json!({
        "current_page": page,
        "last_page": last_page,
        "per_page": per_page,
        "total": total,
    })
}

/// A refund as ApiPay shows it.
pub fn refund_json(refund: &Refund) -> Value {
    json!({
        "id": refund.id,
        "invoice_id": refund.invoice_id,
        "amount": refund.amount.to_decimal_string(),
        "reason": refund.reason,
        "status": refund.status.as_str(),
        "fail_reason": refund.fail_reason,
        "initiated_by": refund.initiated_by,
        "created_at": rfc3339_ms(refund.created_at),
        "updated_at": rfc3339_ms(refund.updated_at),
        "completed_at": refund.completed_at.map(rfc3339_ms),
    })
}
