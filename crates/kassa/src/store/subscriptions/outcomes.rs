//! What the end of a subscription's invoice means for it: a payment resets the failures; an
//! unpaid end schedules a retry or starts the grace period. Each with its outbox event, in the
//! invoice's own transaction.

use serde::{Deserialize, Serialize};

use super::*;

/// What a subscription event says besides the subscription itself, as it was when the event
/// happened (stored with the event as JSON; the webhook body is made from it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionEventFacts {
    pub status: String,
    pub failed_attempts: i64,
    pub in_grace_period: bool,
    pub next_billing_at: Option<i64>,
    pub amount: i64,
    pub invoice_id: Option<i64>,
    pub invoice_amount: Option<i64>,
    pub invoice_status: Option<String>,
    pub reason: Option<String>,
    pub attempt_number: Option<i64>,
    pub paid_at: Option<i64>,
    pub grace_period_days: Option<i64>,
    pub expires_at: Option<i64>,
    pub retry_attempts_remaining: Option<i64>,
}

impl SubscriptionEventFacts {
    fn of(sub: &Subscription) -> SubscriptionEventFacts {
        SubscriptionEventFacts {
            status: sub.status.as_str().to_owned(),
            failed_attempts: sub.failed_attempts,
            in_grace_period: sub.in_grace_period(),
            next_billing_at: sub.next_billing_at,
            amount: sub.amount.tiyn(),
            ..SubscriptionEventFacts::default()
        }
    }
}

/// Writes a subscription event about `sub` (as it is now) and invoice `invoice_id`, with its
/// `facts`, into the outbox.
pub(super) fn event_tx(
    tx: &mut dyn Tx,
    sub: &Subscription,
    kind: EventKind,
    invoice_id: i64,
    mut facts: SubscriptionEventFacts,
    at_ms: i64,
) -> Result<(), DbError> {
    let now = SubscriptionEventFacts::of(sub);
    facts.status = now.status;
    facts.failed_attempts = now.failed_attempts;
    facts.in_grace_period = now.in_grace_period;
    facts.next_billing_at = now.next_billing_at;
    facts.amount = now.amount;
    let data = serde_json::to_string(&facts)
        .map_err(|e| DbError::decode("data", format!("cannot write event facts: {e}")))?;
    tx.execute(
        "INSERT INTO invoice_events (org_id, invoice_id, kind, from_status, to_status, at, \
         subscription_id, data) VALUES ($1, $2, $3, NULL, $4, $5, $6, $7)",
        &[
            sub.org_id.into(),
            invoice_id.into(),
            kind.as_str().into(),
            sub.status.as_str().into(),
            at_ms.into(),
            sub.id.into(),
            data.into(),
        ],
    )?;
    Ok(())
}

/// Why an invoice ended unpaid, for people.
fn failure_reason(invoice: &Invoice, to: InvoiceStatus) -> String {
    match to {
        InvoiceStatus::Expired => "Invoice expired".to_owned(),
        InvoiceStatus::Cancelled => "Invoice cancelled".to_owned(),
        _ if invoice.create_state == CreateState::Failed => match &invoice.last_error {
            Some(error) => format!("Kaspi refused the invoice: {error}"),
            None => "Kaspi refused the invoice".to_owned(),
        },
        _ => "Payment declined".to_owned(),
    }
}

/// Records what the end of a subscription's invoice means for the subscription, in the
/// transaction that records the invoice's status change: a payment resets the failures (the
/// schedule goes on from its own dates); an unpaid end of the newest attempt schedules a retry,
/// or once the retries are spent starts the grace period (with one last invoice). Each with its
/// event. `before` is the invoice as it was before the change.
pub(in crate::store) fn invoice_ended_tx(
    tx: &mut dyn Tx,
    before: &Invoice,
    to: InvoiceStatus,
    at_ms: i64,
) -> Result<(), DbError> {
    let Some(subscription_id) = before.subscription_id else {
        return Ok(());
    };
    let Some(mut sub) = read_for_update(tx, subscription_id)? else {
        return Ok(());
    };
    let link = tx.query_opt(
        "SELECT period_start, attempt_number FROM subscription_invoices WHERE invoice_id = $1",
        &[before.id.into()],
    )?;
    let Some(link) = link else {
        return Ok(());
    };
    let period_start = link.opt_date("period_start")?;
    let attempt_number = link.i64("attempt_number")?;
    if to == InvoiceStatus::Paid {
        if matches!(
            sub.status,
            SubscriptionStatus::Active | SubscriptionStatus::Paused
        ) {
            sub.failed_attempts = 0;
            sub.retry_at = None;
            sub.grace_until = None;
            save_tx(tx, &sub, at_ms)?;
        }
        let facts = SubscriptionEventFacts {
            invoice_id: Some(before.id),
            invoice_amount: Some(before.amount.tiyn()),
            invoice_status: Some(InvoiceStatus::Paid.as_str().to_owned()),
            paid_at: Some(at_ms),
            attempt_number: Some(attempt_number),
            ..SubscriptionEventFacts::default()
        };
        return event_tx(
            tx,
            &sub,
            EventKind::SubscriptionPaymentSucceeded,
            before.id,
            facts,
            at_ms,
        );
    }
    if before.status != InvoiceStatus::Pending {
        return Ok(());
    }
    let reason = failure_reason(before, to);
    tx.execute(
        "UPDATE subscription_invoices SET failure_reason = $2 WHERE invoice_id = $1",
        &[before.id.into(), (&reason).into()],
    )?;
    if sub.status != SubscriptionStatus::Active {
        // Paused or ended by the merchant: nothing is retried.
        return Ok(());
    }
    let newest = period_start == sub.period_on && attempt_number == sub.attempt;
    let mut grace_started = false;
    if newest {
        sub.failed_attempts += 1;
        if sub.grace_until.is_some() {
            // The last invoice of the grace period: the grace period runs out by itself.
        } else if attempt_number <= sub.max_retry_attempts {
            sub.retry_at = Some(at_ms.saturating_add(sub.retry_interval_hours * HOUR_MS));
        } else {
            sub.grace_until = Some(at_ms.saturating_add(sub.grace_period_days * DAY_MS));
            // One more invoice at once, for the payer to pay during the grace period.
            sub.retry_at = Some(at_ms);
            grace_started = true;
        }
        save_tx(tx, &sub, at_ms)?;
    }
    let remaining = (sub.max_retry_attempts + 1 - attempt_number).max(0);
    let facts = SubscriptionEventFacts {
        invoice_id: Some(before.id),
        invoice_amount: Some(before.amount.tiyn()),
        invoice_status: Some(to.as_str().to_owned()),
        reason: Some(reason),
        attempt_number: Some(attempt_number),
        retry_attempts_remaining: Some(remaining),
        ..SubscriptionEventFacts::default()
    };
    event_tx(
        tx,
        &sub,
        EventKind::SubscriptionPaymentFailed,
        before.id,
        facts,
        at_ms,
    )?;
    if grace_started {
        let facts = SubscriptionEventFacts {
            invoice_id: Some(before.id),
            grace_period_days: Some(sub.grace_period_days),
            expires_at: sub.grace_until,
            retry_attempts_remaining: Some(0),
            ..SubscriptionEventFacts::default()
        };
        event_tx(
            tx,
            &sub,
            EventKind::SubscriptionGracePeriodStarted,
            before.id,
            facts,
            at_ms,
        )?;
    }
    Ok(())
}
