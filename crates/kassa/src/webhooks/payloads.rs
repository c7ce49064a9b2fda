//! What each format calls an event and what its body holds, built with the API's own
//! builders (`api::apipay::views::invoice_json`, `api::xpayment::views::payment_json`/
//! `refund_json`) so a webhook shows an invoice exactly as the API does.
//!
//! | outbox event | apipay | xpayment |
//! | --- | --- | --- |
//! | `invoice.status_changed` to paid | `invoice.status_changed` | `payment.completed` |
//! | … to expired | `invoice.status_changed` | `payment.expired` |
//! | … to cancelled | `invoice.status_changed` | `payment.cancelled` |
//! | … to failed | `invoice.status_changed` (status `cancelled`) | `payment.failed` |
//! | `invoice.refunded` | `invoice.refunded` | `payment.refunded` |
//! | `invoice.refund_failed` | — | `payment.refund_failed` |
//! | `subscription.*` (four) | the same name | — |
//!
//! Bodies: apipay `{event, invoice, source: "api", timestamp}` (plus `refund` for a refund);
//! xpayment `{event, payment, refund?, delivery_id, timestamp, is_sandbox}` (`is_sandbox` is
//! Kassa's: ApiPay's payloads carry it in their `invoice` and `subscription`, xPayment's
//! payment object has no such field, so it goes beside it). A status change shows the
//! invoice with the status it changed to (the rest as it is when the delivery is made);
//! `timestamp` is when the change happened. Simulated events add `"test": true`.
//!
//! The dispatcher renders an event's body once per format ([`event_payload`]) before it
//! calls the store, which splices each delivery's UUID into it.

use serde_json::{json, Value};

use crate::api::{apipay, rfc3339_ms, xpayment};
use crate::domain::{almaty_date, almaty_rfc3339, date_text, parse_phone, Money};
use crate::store::{
    CreateState, EventKind, Invoice, InvoiceKind, InvoiceStatus, Payload, PendingEvent, Refund,
    RefundStatus, Subscription, SubscriptionEventFacts, WebhookFormat,
};

/// The events an apipay endpoint can subscribe to.
pub const APIPAY_EVENTS: &[&str] = &[
    "invoice.status_changed",
    "invoice.refunded",
    "subscription.payment_succeeded",
    "subscription.payment_failed",
    "subscription.grace_period_started",
    "subscription.expired",
];
/// The events an xpayment endpoint can subscribe to (`domain.WebhookEventType`).
pub const XPAYMENT_EVENTS: &[&str] = &[
    "payment.completed",
    "payment.expired",
    "payment.cancelled",
    "payment.failed",
    "payment.refunded",
    "payment.refund_failed",
];

/// The events `format` knows.
pub fn events_of(format: WebhookFormat) -> &'static [&'static str] {
    match format {
        WebhookFormat::ApiPay => APIPAY_EVENTS,
        WebhookFormat::XPayment => XPAYMENT_EVENTS,
    }
}

/// The name `format` gives an outbox event, if it has one.
pub fn event_type(
    format: WebhookFormat,
    kind: EventKind,
    to: InvoiceStatus,
) -> Option<&'static str> {
    match (format, kind) {
        (WebhookFormat::ApiPay, EventKind::StatusChanged) => Some("invoice.status_changed"),
        (WebhookFormat::ApiPay, EventKind::Refunded) => Some("invoice.refunded"),
        (WebhookFormat::XPayment, EventKind::StatusChanged) => match to {
            InvoiceStatus::Paid => Some("payment.completed"),
            InvoiceStatus::Expired => Some("payment.expired"),
            InvoiceStatus::Cancelled => Some("payment.cancelled"),
            InvoiceStatus::Failed => Some("payment.failed"),
            InvoiceStatus::Pending => None,
        },
        (WebhookFormat::XPayment, EventKind::Refunded) => Some("payment.refunded"),
        (WebhookFormat::XPayment, EventKind::RefundFailed) => Some("payment.refund_failed"),
        (WebhookFormat::ApiPay, kind) if kind.is_subscription() => Some(kind.as_str()),
        _ => None,
    }
}

/// The facts an event's bodies are made from.
#[derive(Debug, Clone)]
pub struct EventFacts {
    pub event: PendingEvent,
    pub invoice: Invoice,
    pub refund: Option<Refund>,
    /// xPayment's `user_id` (the organization's slug).
    pub user_id: String,
    /// The subscription of a subscription event.
    pub subscription: Option<Subscription>,
}

/// The event type and body bytes of `facts` for an endpoint of `format`, for delivery
/// `delivery_id`; `None` when the format has no such event.
pub fn event_body(
    format: WebhookFormat,
    facts: &EventFacts,
    delivery_id: &str,
) -> Option<(String, Vec<u8>)> {
    if facts.event.kind.is_subscription() {
        let name = event_type(format, facts.event.kind, InvoiceStatus::Pending)?;
        let body = subscription_body(name, facts)?;
        return Some((name.to_owned(), serde_json::to_vec(&body).ok()?));
    }
    let to = InvoiceStatus::parse(&facts.event.to_status)?;
    let name = event_type(format, facts.event.kind, to)?;
    let mut invoice = facts.invoice.clone();
    if facts.event.kind == EventKind::StatusChanged {
        invoice.status = to;
    }
    let timestamp = rfc3339_ms(facts.event.at);
    let body = match format {
        WebhookFormat::ApiPay => {
            let mut body = json!({
                "event": name,
                "invoice": apipay::views::invoice_json(&invoice),
                "source": "api",
                "timestamp": timestamp,
            });
            if let Some(refund) = &facts.refund {
                body["refund"] = apipay::views::refund_json(refund);
            }
            body
        }
        WebhookFormat::XPayment => xpayment_body(
            name,
            &invoice,
            facts.refund.as_ref(),
            &facts.user_id,
            delivery_id,
            &timestamp,
        ),
    };
    Some((name.to_owned(), serde_json::to_vec(&body).ok()?))
}

/// The body of `facts` for the endpoints of `format`, rendered once for all their deliveries
/// (see [`Payload`]); `None` when the format has no such event.
pub fn event_payload(format: WebhookFormat, facts: &EventFacts) -> Option<Payload> {
    // A random UUID stands in for the delivery's: the same form (nothing to escape in JSON), and
    // no text of the invoice can hold it (one could hold any fixed stand-in).
    let stand_in = uuid::Builder::from_random_bytes(rand::random())
        .into_uuid()
        .to_string();
    let (event_type, bytes) = event_body(format, facts, &stand_in)?;
    Some(Payload::around(event_type, bytes, &stand_in))
}

/// The ApiPay body of a subscription event, readable by clients of both doc versions: the
/// current version's flat fields (`subscription`, `invoice_id`, `amount`, `reason`, …) and
/// the seed's `data{subscription, invoice, reason}` side by side. The subscription is shown
/// as it was when the event happened (status, failures, grace, next billing, amount).
fn subscription_body(name: &str, facts: &EventFacts) -> Option<Value> {
    let sub = facts.subscription.as_ref()?;
    let told: SubscriptionEventFacts = serde_json::from_str(facts.event.data.as_deref()?).ok()?;
    let mut subscription = apipay::views::subscription_json(sub);
    subscription["status"] = json!(told.status);
    subscription["failed_attempts"] = json!(told.failed_attempts);
    subscription["in_grace_period"] = json!(told.in_grace_period);
    subscription["next_billing_at"] = json!(told.next_billing_at.map(almaty_rfc3339));
    subscription["next_billing_date"] =
        json!(told.next_billing_at.map(|at| date_text(almaty_date(at))));
    subscription["amount"] = json!(Money::from_tiyn(told.amount).to_decimal_string());
    let mut body = json!({
        "event": name,
        "subscription": subscription,
        "source": "subscription",
        "timestamp": rfc3339_ms(facts.event.at),
    });
    let mut data = json!({});
    if let Some(id) = told.invoice_id {
        body["invoice_id"] = json!(id);
        let amount = told
            .invoice_amount
            .map(|t| Money::from_tiyn(t).to_decimal_string());
        if amount.is_some() {
            body["amount"] = json!(amount);
            // ApiPay has no `failed`: a declined or refused invoice shows as `cancelled`.
            let status = told.invoice_status.as_deref().map(|s| match s {
                "failed" => "cancelled",
                other => other,
            });
            data["invoice"] = json!({"id": id, "amount": amount, "status": status});
        }
    }
    if let Some(paid_at) = told.paid_at {
        body["paid_at"] = json!(almaty_rfc3339(paid_at));
    }
    if let Some(reason) = &told.reason {
        body["reason"] = json!(reason);
        data["reason"] = json!(reason);
    }
    if let Some(attempt) = told.attempt_number {
        body["attempt_number"] = json!(attempt);
    }
    let mut seed_subscription = body["subscription"].clone();
    if let Some(days) = told.grace_period_days {
        body["grace_period_days"] = json!(days);
        seed_subscription["grace_period_days"] = json!(days);
    }
    if let Some(expires_at) = told.expires_at {
        body["expires_at"] = json!(almaty_rfc3339(expires_at));
    }
    if let Some(left) = told.retry_attempts_remaining {
        seed_subscription["retry_attempts_remaining"] = json!(left);
    }
    data["subscription"] = seed_subscription;
    body["data"] = data;
    Some(body)
}

fn xpayment_body(
    name: &str,
    invoice: &Invoice,
    refund: Option<&Refund>,
    user_id: &str,
    delivery_id: &str,
    timestamp: &str,
) -> Value {
    let mut body = json!({
        "event": name,
        "payment": xpayment::views::payment_json(invoice, user_id),
        "delivery_id": delivery_id,
        "timestamp": timestamp,
        // Kassa's own field beside xPayment's (its payment object has none): whether the
        // payment is a test one, as ApiPay's payloads say in their objects.
        "is_sandbox": invoice.is_sandbox,
    });
    if let Some(refund) = refund {
        body["refund"] = xpayment::views::refund_json(refund, &invoice.payment_id, user_id);
    }
    body
}

/// ApiPay's `webhook.test` body (the current docs: `{event, source: "test", timestamp}`),
/// with the delivery's id.
pub fn test_body(delivery_id: &str, now_ms: i64) -> Vec<u8> {
    let body = json!({
        "event": "webhook.test",
        "source": "test",
        "timestamp": rfc3339_ms(now_ms),
        "delivery_id": delivery_id,
        "test": true,
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// The body of a simulated xPayment event `name` (one of [`XPAYMENT_EVENTS`]): a made-up
/// payment of 1500 KZT (and refund of 500 KZT for refund events) that exists nowhere, marked
/// `"test": true`.
pub fn simulated_body(
    name: &str,
    merchant_order_id: Option<&str>,
    org_id: i64,
    user_id: &str,
    delivery_id: &str,
    now_ms: i64,
) -> Option<Vec<u8>> {
    let (invoice, refund) = simulated_rows(name, merchant_order_id, org_id, now_ms)?;
    let mut body = xpayment_body(
        name,
        &invoice,
        refund.as_ref(),
        user_id,
        delivery_id,
        &rfc3339_ms(now_ms),
    );
    body["test"] = json!(true);
    serde_json::to_vec(&body).ok()
}

/// The made-up payment of a simulated event `name`, and its refund for a refund event; `None`
/// for a name that is not one of [`XPAYMENT_EVENTS`].
fn simulated_rows(
    name: &str,
    merchant_order_id: Option<&str>,
    org_id: i64,
    now_ms: i64,
) -> Option<(Invoice, Option<Refund>)> {
    let status = match name {
        "payment.completed" | "payment.refunded" | "payment.refund_failed" => InvoiceStatus::Paid,
        "payment.expired" => InvoiceStatus::Expired,
        "payment.cancelled" => InvoiceStatus::Cancelled,
        "payment.failed" => InvoiceStatus::Failed,
        _ => return None,
    };
    let paid = status == InvoiceStatus::Paid;
    let invoice = Invoice {
        id: 0,
        payment_id: uuid::Uuid::new_v4().to_string(),
        org_id,
        kind: InvoiceKind::Remote,
        amount: Money::from_tiyn(150_000),
        phone: parse_phone("7001234567").ok(),
        description: Some("Test payment (webhook simulation)".into()),
        external_order_id: merchant_order_id.map(str::to_owned),
        status,
        kaspi_status: None,
        kaspi_operation_id: None,
        client_name: None,
        total_refunded: if name == "payment.refunded" {
            Money::from_tiyn(50_000)
        } else {
            Money::ZERO
        },
        is_sandbox: true,
        create_state: CreateState::Sent,
        last_error: None,
        created_at: now_ms,
        updated_at: now_ms,
        paid_at: paid.then_some(now_ms),
        cancelled_at: (status == InvoiceStatus::Cancelled).then_some(now_ms),
        expires_at: None,
        metadata: None,
        cancel_reason: None,
        qr_token: None,
        ext_tran_id: None,
        refund_reserved: Money::ZERO,
        kaspi_ref: None,
        subscription_id: None,
        subtotal: None,
        discount_percentage: None,
        discount_sum: None,
    };
    let refund = match name {
        "payment.refunded" | "payment.refund_failed" => {
            let failed = name == "payment.refund_failed";
            Some(Refund {
                id: 0,
                refund_id: uuid::Uuid::new_v4().to_string(),
                org_id,
                invoice_id: 0,
                amount: Money::from_tiyn(50_000),
                reason: Some("Test refund (webhook simulation)".into()),
                status: if failed {
                    RefundStatus::Failed
                } else {
                    RefundStatus::Completed
                },
                fail_reason: failed.then(|| "Test failure (webhook simulation)".into()),
                kaspi_refund_id: None,
                initiated_by: "simulation".into(),
                created_at: now_ms,
                updated_at: now_ms,
                completed_at: (!failed).then_some(now_ms),
                is_sandbox: true,
            })
        }
        _ => None,
    };
    Some((invoice, refund))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The facts of an event of `kind` about the made-up payment of simulated event `name`,
    /// whose description looks like a piece of a body.
    fn facts(kind: EventKind, name: &str) -> EventFacts {
        let (mut invoice, refund) =
            simulated_rows(name, Some("order-1"), 7, 1_700_000_000_000).expect("a known event");
        invoice.id = 42;
        invoice.description = Some(r#"","delivery_id":"not this one"#.into());
        EventFacts {
            event: PendingEvent {
                id: 1,
                org_id: 7,
                invoice_id: 42,
                kind,
                from_status: Some("pending".into()),
                to_status: invoice.status.as_str().into(),
                at: 1_700_000_000_123,
                refund_id: refund.as_ref().map(|r| r.id),
                subscription_id: None,
                data: None,
            },
            invoice,
            refund,
            user_id: "demo".into(),
            subscription: None,
        }
    }

    #[test]
    fn a_payload_is_the_body_built_for_the_delivery_with_its_id_spliced_in() {
        let events = [
            facts(EventKind::StatusChanged, "payment.completed"),
            facts(EventKind::StatusChanged, "payment.failed"),
            facts(EventKind::Refunded, "payment.refunded"),
            facts(EventKind::RefundFailed, "payment.refund_failed"),
        ];
        for facts in &events {
            for &format in WebhookFormat::ALL {
                let payload = event_payload(format, facts);
                for _ in 0..2 {
                    let delivery_id = uuid::Uuid::new_v4().to_string();
                    let built = event_body(format, facts, &delivery_id);
                    let (Some(payload), Some((event_type, built))) = (&payload, built) else {
                        assert!(payload.is_none(), "{format:?} {}", facts.event.kind);
                        assert_eq!(facts.event.kind, EventKind::RefundFailed);
                        continue;
                    };
                    let bytes = payload.bytes_for(&delivery_id);
                    assert_eq!(payload.event_type, event_type);
                    assert_eq!(bytes, built, "{format:?} {event_type}");
                    let body: Value = serde_json::from_slice(&bytes).expect("JSON");
                    assert_eq!(body["event"], event_type.as_str());
                    match format {
                        WebhookFormat::XPayment => {
                            assert_eq!(body["delivery_id"], delivery_id.as_str());
                        }
                        WebhookFormat::ApiPay => assert!(body.get("delivery_id").is_none()),
                    }
                }
            }
        }
    }
}
