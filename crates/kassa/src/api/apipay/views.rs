//! The JSON an ApiPay client sees: invoices, refunds and a page's `meta`, built from store
//! values (no gateway, no HTTP). Webhook payloads use the same builders.

use serde_json::{json, Value};

use crate::api::rfc3339_ms;
use crate::domain::{almaty_rfc3339, date_label, date_text, Money};
use crate::store::{
    Invoice, InvoiceItem, InvoiceStatus, Refund, RefundItem, Subscription, SubscriptionInvoice,
    SubscriptionStats,
};

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
        "is_recurring": invoice.subscription_id.is_some(),
        "subscription_id": invoice.subscription_id,
        "error_message": error_message(invoice),
    });
    // The spec types these as strings: absent rather than null (a QR payment has no phone;
    // Kaspi's id comes with its answer).
    if let Some(phone) = &invoice.phone {
        body["phone_number"] = json!(format!("8{phone}"));
    }
    if let Some(op) = &invoice.kaspi_operation_id {
        body["kaspi_invoice_id"] = json!(op.to_string());
    }
    // Only with a discount, as ApiPay's current version shows them.
    if let (Some(percent), Some(subtotal), Some(sum)) = (
        invoice.discount_percentage,
        invoice.subtotal,
        invoice.discount_sum,
    ) {
        body["subtotal"] = json!(subtotal.to_decimal_string());
        body["discount_sum"] = json!(sum.to_decimal_string());
        body["discount_percentage"] = json!(percent.to_string());
    }
    body
}

/// A refund with what ApiPay's current version shows beside it: its invoice (`id`,
/// `external_order_id`, `amount`, `status`, `kaspi_invoice_id`) and the lines it took back.
pub fn refund_detail_json(
    refund: &Refund,
    invoice: Option<&Invoice>,
    items: &[RefundItem],
) -> Value {
    let mut body = refund_json(refund);
    body["invoice"] = match invoice {
        Some(invoice) => json!({
            "id": invoice.id,
            "external_order_id": invoice.external_order_id,
            "amount": invoice.amount.to_decimal_string(),
            "status": apipay_status(invoice),
            "kaspi_invoice_id": invoice.kaspi_operation_id.map(|op| op.to_string()),
        }),
        None => Value::Null,
    };
    body["items"] = Value::Array(
        items
            .iter()
            .map(|i| {
                json!({
                    "catalog_item_id": i.catalog_item_id,
                    "count": i.count,
                    "amount": i.amount.to_decimal_string(),
                })
            })
            .collect(),
    );
    body
}

/// One line of an invoice, as ApiPay's current version lists `items`, with the seed's
/// Kaspi-native fields beside them for a line sent that way.
pub fn invoice_item_json(line: &InvoiceItem) -> Value {
    let item = &line.item;
    let mut body = json!({
        "id": line.id,
        "invoice_id": line.invoice_id,
        "catalog_item_id": item.catalog_item_id,
        "name": item.name,
        "price": item.price.to_decimal_string(),
        "count": item.count,
        "unit_id": item.unit_id,
        "original_price": item.original_price.to_decimal_string(),
        "discount": item.discount.to_decimal_string(),
        "total": Money::from_tiyn(item.price.tiyn().saturating_mul(item.count)).to_decimal_string(),
    });
    if let Some(kind) = &item.item_type {
        body["Type"] = json!(kind);
        body["NomenclatureId"] = json!(item.nomenclature_id);
        body["NomenclatureHistoryId"] = json!(item.nomenclature_history_id);
    }
    body
}

/// Why an invoice ended without Kaspi taking it (ApiPay's current `error_message`), if it did.
pub(super) fn error_message(invoice: &Invoice) -> Option<&str> {
    (invoice.create_state == crate::store::CreateState::Failed)
        .then_some(invoice.last_error.as_deref())
        .flatten()
}

/// ApiPay's name for the invoice's status: a paid invoice is `partially_refunded` or
/// `refunded` once refunds completed (as ApiPay's invoice docs list them).
pub(super) fn apipay_status(invoice: &Invoice) -> &'static str {
    use crate::store::CreateState;
    match invoice.status {
        // Kaspi's answer to the create is not known yet (ApiPay's current `processing`).
        InvoiceStatus::Pending if invoice.create_state.awaits_kaspi() => "processing",
        InvoiceStatus::Pending => "pending",
        InvoiceStatus::Paid if invoice.total_refunded >= invoice.amount => "refunded",
        InvoiceStatus::Paid if invoice.total_refunded > Money::ZERO => "partially_refunded",
        InvoiceStatus::Paid => "paid",
        // Kaspi definitely did not take it (the current version's `error`, with `error_message`).
        InvoiceStatus::Failed if invoice.create_state == CreateState::Failed => "error",
        InvoiceStatus::Cancelled | InvoiceStatus::Failed => "cancelled",
        InvoiceStatus::Expired => "expired",
    }
}

/// A page of a list as ApiPay answers it: `data` and `meta`.
pub(super) fn page_json(data: Vec<Value>, page: i64, per_page: i64, total: i64) -> Value {
    json!({"data": data, "meta": page_meta(page, per_page, total)})
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
        "error_message": refund.fail_reason,
        "kaspi_refund_id": refund.kaspi_refund_id,
        "kaspi_status": Value::Null,
        "initiated_by": refund.initiated_by,
        "created_at": rfc3339_ms(refund.created_at),
        "updated_at": rfc3339_ms(refund.updated_at),
        "completed_at": refund.completed_at.map(rfc3339_ms),
        "is_sandbox": refund.is_sandbox,
    })
}

/// A subscription as ApiPay shows it: the fields of both doc versions (`next_billing_date`
/// of the seed and `next_billing_at` of the current one side by side).
pub fn subscription_json(sub: &Subscription) -> Value {
    json!({
        "id": sub.id,
        "amount": sub.amount.to_decimal_string(),
        "phone_number": format!("8{}", sub.phone),
        "subscriber_name": sub.subscriber_name,
        "external_subscriber_id": sub.external_subscriber_id,
        "description": sub.description,
        "billing_period": sub.period.as_str(),
        "billing_day": sub.effective_billing_day(),
        "status": sub.status.as_str(),
        "started_at": date_text(sub.started_on),
        "next_billing_date": sub.next_billing_on.map(date_text),
        "next_billing_at": sub.next_billing_at.map(almaty_rfc3339),
        "failed_attempts": sub.failed_attempts,
        "in_grace_period": sub.in_grace_period(),
        "grace_period_ends_at": sub.grace_until.map(almaty_rfc3339),
        "max_retry_attempts": sub.max_retry_attempts,
        "retry_interval_hours": sub.retry_interval_hours,
        "grace_period_days": sub.grace_period_days,
        "metadata": metadata_json(sub.metadata.as_deref()),
        "is_sandbox": sub.is_sandbox,
        "paused_at": sub.paused_at.map(rfc3339_ms),
        "cancelled_at": sub.cancelled_at.map(rfc3339_ms),
        "expired_at": sub.expired_at.map(rfc3339_ms),
        "created_at": rfc3339_ms(sub.created_at),
        "updated_at": rfc3339_ms(sub.updated_at),
        "cart_items": sub.cart.iter().map(|line| json!({
            "catalog_item_id": line.catalog_item_id,
            "name": line.name,
            "price": Money::from_tiyn(line.price).to_decimal_string(),
            "count": line.count,
            "unit_id": line.unit_id,
        })).collect::<Vec<_>>(),
    })
}

/// The client's metadata object, as given (`null` when none).
fn metadata_json(text: Option<&str>) -> Value {
    text.and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or(Value::Null)
}

/// An answer about one subscription, read by clients of both doc versions: its fields at the
/// top level (the seed) and under `"subscription"` (the current version), with `extra`
/// (`stats`, `last_payment`, `message`) beside them.
pub fn subscription_answer(sub: &Subscription, extra: &[(&str, Value)]) -> Value {
    let fields = subscription_json(sub);
    let mut body = fields.clone();
    body["subscription"] = fields;
    for (name, value) in extra {
        body[*name] = value.clone();
    }
    body
}

/// `stats` of a subscription (the seed's `total_amount` and the current `total_collected`
/// are the same sum).
pub fn subscription_stats_json(stats: &SubscriptionStats) -> Value {
    json!({
        "total_payments": stats.total_payments,
        "successful_payments": stats.successful_payments,
        "failed_payments": stats.failed_payments,
        "total_amount": stats.total_collected.to_decimal_string(),
        "total_collected": stats.total_collected.to_decimal_string(),
    })
}

/// `last_payment`: the newest paid invoice, or `null`.
pub fn last_payment_json(invoice: Option<&Invoice>) -> Value {
    match invoice {
        Some(invoice) => json!({
            "id": invoice.id,
            "invoice_id": invoice.id,
            "amount": invoice.amount.to_decimal_string(),
            "status": apipay_status(invoice),
            "paid_at": invoice.paid_at.map(rfc3339_ms),
        }),
        None => Value::Null,
    }
}

/// One invoice a subscription made: the invoice as `/invoices` shows it (so `id` is the
/// invoice's, as the seed lists "the subscription's invoices") with the current version's
/// `SubscriptionInvoiceResource` fields.
pub fn subscription_invoice_json(item: &SubscriptionInvoice) -> Value {
    let invoice = &item.invoice;
    let status = apipay_status(invoice);
    let (label, color) = match status {
        "pending" => ("Ожидает оплаты", "yellow"),
        "processing" => ("Обрабатывается", "yellow"),
        "error" => ("Ошибка", "red"),
        "paid" => ("Оплачен", "green"),
        "partially_refunded" => ("Частично возвращён", "blue"),
        "refunded" => ("Возвращён", "gray"),
        "expired" => ("Истёк", "gray"),
        _ => ("Отменён", "red"),
    };
    let mut body = invoice_json(invoice);
    body["invoice_id"] = json!(invoice.id);
    body["billing_period_start"] = json!(date_text(item.period_start));
    body["billing_period_end"] = json!(date_text(item.period_end));
    body["billing_period_label"] = json!(format!(
        "{} — {}",
        date_label(item.period_start),
        date_label(item.period_end)
    ));
    body["amount"] = json!(item.amount.to_decimal_string());
    body["attempt_number"] = json!(item.attempt_number);
    body["status_label"] = json!(label);
    body["status_color"] = json!(color);
    body["failure_reason"] = json!(item.failure_reason);
    body["invoice"] = json!({
        "id": invoice.id,
        "kaspi_invoice_id": invoice.kaspi_operation_id.map(|op| op.to_string()),
        "status": status,
    });
    body["created_at"] = json!(rfc3339_ms(item.created_at));
    body
}
