//! Refunds: recorded `pending` with the amount reserved against the invoice (never more than
//! what was paid, also when requests race), then sent to Kaspi by the refund job, which holds a
//! lease while it does. A refund whose answer was lost stays `processing` and is checked
//! against the operation's returned amount at Kaspi; it is never sent a second time.

use kaspi::Amount;

use crate::domain::{KaspiOperationId, Money};

use super::{Gateway, GatewayError};
use crate::store::{IdemLink, Invoice, NewRefund, Refund, RefundCreated, RefundStatus};

/// How many times a refund whose answer was lost is checked before it is failed.
const UNCONFIRMED_CHECKS: i64 = 5;

/// A refund as a surface asks for it.
#[derive(Debug, Clone)]
pub struct RefundRequest {
    /// `None`: everything still refundable.
    pub amount: Option<Money>,
    pub reason: Option<String>,
    /// Which surface asked (`apipay`, `xpayment`).
    pub initiated_by: &'static str,
    /// The idempotent request asking, if any: it will name the refund.
    pub idempotency: Option<IdemLink>,
    /// Cart lines to take back, `(catalog_item_id, count)` (then `amount` is `None`).
    pub return_items: Vec<(i64, i64)>,
}

/// What one attempt of the refund job achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefundStep {
    /// Completed or failed: nothing more to do.
    Ended,
    /// Not sent (no session, Kaspi unreachable): send later.
    NotSent,
    /// Sent, outcome unknown: check later.
    Unconfirmed,
}

impl Gateway {
    /// Records a refund of invoice `invoice_id` and queues it for Kaspi; the refund as
    /// recorded (`pending`) and the invoice with its new reservation.
    pub async fn request_refund(
        &self,
        org_id: i64,
        invoice_id: i64,
        request: RefundRequest,
    ) -> Result<(Refund, Invoice), GatewayError> {
        if let Some(id) = request
            .idempotency
            .as_ref()
            .and_then(IdemLink::recovered_refund)
        {
            // An earlier run of this request made it, then its process died: that refund is
            // the answer (its job sends it).
            let refund = self.store().refunds().refund(org_id, id).await?;
            let invoice = self.store().invoices().invoice(org_id, invoice_id).await?;
            if let (Some(refund), Some(invoice)) = (refund, invoice) {
                return Ok((refund, invoice));
            }
        }
        // No usable cashier: answer before anything is stored.
        self.terminals().load(org_id).await?;
        let now = self.now_ms();
        let created = self
            .store()
            .refunds()
            .create_refund(NewRefund {
                refund_id: uuid::Uuid::new_v4().to_string(),
                org_id,
                invoice_id,
                amount: request.amount,
                reason: request.reason,
                initiated_by: request.initiated_by.to_owned(),
                at_ms: now,
                job_at_ms: now,
                idempotency: request.idempotency,
                return_items: request.return_items,
            })
            .await;
        match created {
            Ok(RefundCreated::Created { refund, invoice }) => {
                super::traced_refund(refund.id);
                tracing::info!(
                    refund = refund.id,
                    invoice = invoice.id,
                    amount_kzt = %refund.amount.to_decimal_string(),
                    "refund queued"
                );
                Ok((*refund, *invoice))
            }
            Ok(RefundCreated::Refused(why)) => Err(GatewayError::NotRefundable(why)),
            Err(crate::store::StoreError::NotFound) => Err(GatewayError::NotFound),
            Err(crate::store::StoreError::Conflict(why)) => Err(GatewayError::NotRefundable(
                crate::store::RefundRefusal::ItemsDoNotFit(why),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// One attempt of the refund job for refund `id` (the caller holds its lease).
    pub(crate) async fn advance_refund(
        &self,
        id: i64,
        attempt: i64,
    ) -> Result<RefundStep, GatewayError> {
        let store = self.store();
        let Some(refund) = store.refunds().refund_by_id(id).await? else {
            return Ok(RefundStep::Ended);
        };
        let invoice = store
            .invoices()
            .invoice_by_id(refund.invoice_id)
            .await?
            .ok_or(GatewayError::NotFound)?;
        let op = invoice
            .kaspi_operation_id
            .map(KaspiOperationId::get)
            .ok_or_else(|| {
                GatewayError::Internal(format!("invoice {} has no Kaspi operation", invoice.id))
            })?;
        match refund.status {
            RefundStatus::Completed | RefundStatus::Failed => Ok(RefundStep::Ended),
            RefundStatus::Pending => self.send_refund(&refund, op).await,
            RefundStatus::Processing => self.confirm_refund(&refund, &invoice, op, attempt).await,
        }
    }

    async fn send_refund(&self, refund: &Refund, op: i64) -> Result<RefundStep, GatewayError> {
        let store = self.store();
        // Check the session before marking it sent: a dead session means nothing was sent.
        let cashiers = self.terminals().load(refund.org_id).await?;
        let Some(refund) = store
            .refunds()
            .start_refund(refund.id, self.now_ms())
            .await?
        else {
            return Ok(RefundStep::Ended);
        };
        let amount = Amount::from(refund.amount);
        let sent = self
            .terminals()
            .call_on_invoice(
                &cashiers,
                refund.org_id,
                refund.invoice_id,
                "refund",
                |k| async move { k.client.refund(&k.session, op, amount).await },
            )
            .await;
        match sent {
            Ok(answer) => {
                let kaspi_id = answer.id.map(|id| id.to_string());
                store
                    .refunds()
                    .complete_refund(refund.id, kaspi_id.as_deref(), self.now_ms())
                    .await?;
                // The store logs the outcome ("refund completed").
                tracing::debug!(refund = refund.id, "Kaspi answered the refund");
                Ok(RefundStep::Ended)
            }
            Err(GatewayError::KaspiRefused(message)) => {
                store
                    .refunds()
                    .fail_refund(
                        refund.id,
                        &format!("Kaspi refused the refund: {message}"),
                        self.now_ms(),
                    )
                    .await?;
                Ok(RefundStep::Ended)
            }
            Err(GatewayError::OutcomeUnknown(cause)) => {
                tracing::warn!(refund = refund.id, %cause, "the answer to a refund was lost; checking, not resending");
                Ok(RefundStep::Unconfirmed)
            }
            Err(e) => {
                // Nothing reached Kaspi (no session, refused connection, throttled): back to
                // pending, to be sent later.
                tracing::warn!(refund = refund.id, error = %e, "refund not sent; will retry");
                store
                    .refunds()
                    .requeue_refund(refund.id, self.now_ms())
                    .await?;
                Ok(RefundStep::NotSent)
            }
        }
    }

    /// A refund sent whose answer was lost: Kaspi's returned amount for the operation tells
    /// whether it happened.
    async fn confirm_refund(
        &self,
        refund: &Refund,
        invoice: &Invoice,
        op: i64,
        attempt: i64,
    ) -> Result<RefundStep, GatewayError> {
        let store = self.store();
        let details = self
            .terminals()
            .call(refund.org_id, "operation_details", |k| async move {
                k.client.operation_details(&k.session, op).await
            })
            .await;
        let returned = match details {
            Ok(d) => d.returned_amount.map(Money::from),
            Err(e) => {
                tracing::warn!(refund = refund.id, error = %e, "cannot check a refund yet");
                return Ok(RefundStep::Unconfirmed);
            }
        };
        let expected = invoice.total_refunded.saturating_add(refund.amount);
        if returned.is_some_and(|r| r >= expected) {
            store
                .refunds()
                .complete_refund(refund.id, None, self.now_ms())
                .await?;
            tracing::info!(
                refund = refund.id,
                "lost refund answer: Kaspi shows it done"
            );
            return Ok(RefundStep::Ended);
        }
        if attempt + 1 >= UNCONFIRMED_CHECKS {
            store
                .refunds()
                .fail_refund(
                    refund.id,
                    "Kaspi did not confirm the refund and it was not sent again; check the operation in Kaspi Pay",
                    self.now_ms(),
                )
                .await?;
            return Ok(RefundStep::Ended);
        }
        Ok(RefundStep::Unconfirmed)
    }
}
