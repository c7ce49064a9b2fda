//! The JSON an xPayment client sees: payments, refunds and static QR payments, built from store
//! values (no gateway, no HTTP). Webhook payloads use the same builders.

use serde_json::{json, Map, Value};

use crate::api::rfc3339_ms;
use crate::domain::Money;
use crate::store::{Invoice, InvoiceStatus, KaspiOperation, Refund};

/// xPayment's name for a status.
pub fn xpayment_status(status: InvoiceStatus) -> &'static str {
    match status {
        InvoiceStatus::Pending => "pending",
        InvoiceStatus::Paid => "completed",
        InvoiceStatus::Cancelled => "cancelled",
        InvoiceStatus::Failed => "failed",
        InvoiceStatus::Expired => "expired",
    }
}

/// Inserts `key` when `value` is there.
pub(super) fn put(object: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(value) = value {
        object.insert(key.to_owned(), value);
    }
}

/// A payment as xPayment shows it (`handler.paymentObject`); `user_id` is the organization.
pub fn payment_json(invoice: &Invoice, user_id: &str) -> Value {
    let mut o = Map::new();
    o.insert("payment_id".into(), json!(invoice.payment_id));
    o.insert("amount".into(), invoice.amount.to_json_number());
    o.insert("currency".into(), json!("KZT"));
    o.insert("status".into(), json!(xpayment_status(invoice.status)));
    put(
        &mut o,
        "payer_phone",
        invoice.phone.as_ref().map(|p| json!(format!("+7{p}"))),
    );
    put(
        &mut o,
        "comment",
        invoice.description.as_ref().map(|c| json!(c)),
    );
    put(
        &mut o,
        "merchant_order_id",
        invoice.external_order_id.as_ref().map(|m| json!(m)),
    );
    let metadata = invoice
        .metadata
        .as_deref()
        .and_then(|m| serde_json::from_str::<Value>(m).ok())
        .unwrap_or_else(|| json!({}));
    o.insert("metadata".into(), metadata);
    o.insert(
        "is_recurring".into(),
        json!(invoice.subscription_id.is_some()),
    );
    put(
        &mut o,
        "subscription_id",
        invoice.subscription_id.map(|id| json!(id)),
    );
    put(
        &mut o,
        "cancel_reason",
        invoice.cancel_reason.as_ref().map(|r| json!(r)),
    );
    put(
        &mut o,
        "cancelled_at",
        invoice.cancelled_at.map(|t| json!(rfc3339_ms(t))),
    );
    put(
        &mut o,
        "completed_at",
        invoice.paid_at.map(|t| json!(rfc3339_ms(t))),
    );
    o.insert("created_at".into(), json!(rfc3339_ms(invoice.created_at)));
    o.insert("updated_at".into(), json!(rfc3339_ms(invoice.updated_at)));
    o.insert("user_id".into(), json!(user_id));
    put(
        &mut o,
        "qr_token",
        invoice.qr_token.as_ref().map(|t| json!(t)),
    );
    put(
        &mut o,
        "kaspi_operation_id",
        invoice.kaspi_operation_id.map(|op| json!(op.to_string())),
    );
    // Not in xPayment's own document: Kassa's, so a client tells test from live objects.
    o.insert("is_sandbox".into(), json!(invoice.is_sandbox));
    Value::Object(o)
}

/// A refund as xPayment shows it (`handler.refundObject`).
pub fn refund_json(refund: &Refund, payment_id: &str, user_id: &str) -> Value {
    let mut o = Map::new();
    o.insert("refund_id".into(), json!(refund.refund_id));
    o.insert("payment_id".into(), json!(payment_id));
    o.insert("amount".into(), refund.amount.to_json_number());
    o.insert("status".into(), json!(refund.status.as_str()));
    put(&mut o, "reason", refund.reason.as_ref().map(|r| json!(r)));
    put(
        &mut o,
        "fail_reason",
        refund.fail_reason.as_ref().map(|r| json!(r)),
    );
    o.insert("created_at".into(), json!(rfc3339_ms(refund.created_at)));
    o.insert("updated_at".into(), json!(rfc3339_ms(refund.updated_at)));
    put(
        &mut o,
        "completed_at",
        refund.completed_at.map(|t| json!(rfc3339_ms(t))),
    );
    o.insert("user_id".into(), json!(user_id));
    o.insert("is_sandbox".into(), json!(refund.is_sandbox));
    Value::Object(o)
}

/// A synced history operation as `handler.staticQrPaymentObject`.
pub(super) fn static_json(op: &KaspiOperation) -> Value {
    let mut o = Map::new();
    o.insert("id".into(), json!(op.id));
    o.insert(
        "kaspi_operation_id".into(),
        json!(op.kaspi_operation_id.get()),
    );
    put(&mut o, "amount", op.amount.map(Money::to_json_number));
    put(
        &mut o,
        "client_short_name",
        op.client_short_name.as_ref().map(|v| json!(v)),
    );
    put(&mut o, "comment", op.comment.as_ref().map(|v| json!(v)));
    put(&mut o, "features", op.features.map(|v| json!(v)));
    put(
        &mut o,
        "operation_method",
        op.operation_method.map(|v| json!(v)),
    );
    put(
        &mut o,
        "operation_type",
        op.operation_type.map(|v| json!(v)),
    );
    put(
        &mut o,
        "order_number",
        op.order_number.as_ref().map(|v| json!(v)),
    );
    put(
        &mut o,
        "order_reg_date",
        op.order_reg_date.as_ref().map(|v| json!(v)),
    );
    put(&mut o, "sale_id", op.sale_id.map(|v| json!(v)));
    put(&mut o, "sale_type", op.sale_type.as_ref().map(|v| json!(v)));
    put(
        &mut o,
        "source_type",
        op.source_type.as_ref().map(|v| json!(v)),
    );
    put(&mut o, "status", op.status.as_ref().map(|v| json!(v)));
    o.insert("synced_at".into(), json!(rfc3339_ms(op.synced_at)));
    Value::Object(o)
}
