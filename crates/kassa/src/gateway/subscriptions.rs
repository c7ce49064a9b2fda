//! Subscriptions at work: a due period billed (stored in the transaction that moves the
//! schedule on, then sent like any invoice), a grace period ended, and the merchant's pause,
//! resume and cancel, whose cancel also cancels the subscription's open invoice at Kaspi.

use super::invoices::Refused;
use super::{ms, Gateway, GatewayError};
use crate::domain::SubscriptionAction;
use crate::store::{
    new_kaspi_ref, ActError, Billed, BillingTemplate, CreateState, Invoice, Subscription,
};

/// Why a status action on a subscription did not happen.
#[derive(Debug)]
pub enum SubscriptionActError {
    NotFound,
    /// The action makes no sense from this status.
    NotAllowed(crate::domain::SubscriptionStatus),
    Gateway(GatewayError),
}

impl Gateway {
    /// Does what is due of subscription `id` now: ends a grace period that ran out, or stores
    /// the next invoice (a retry, or the next period) and sends it to Kaspi. The cashier must
    /// be able to work before an invoice is stored; otherwise the error says so and nothing
    /// is stored.
    pub(crate) async fn bill_subscription(&self, id: i64) -> Result<(), GatewayError> {
        let Some(sub) = self
            .store()
            .subscriptions()
            .subscriptions_by_id(vec![id])
            .await?
            .pop()
        else {
            return Ok(());
        };
        let now = self.now_ms();
        let expiring = sub.grace_until.is_some_and(|end| end <= now);
        let terminal = if expiring {
            None
        } else {
            Some(self.terminals().load(sub.org_id).await?)
        };
        let template = BillingTemplate {
            payment_id: uuid::Uuid::new_v4().to_string(),
            kaspi_ref: new_kaspi_ref(),
            expires_at: now.saturating_add(ms(self.settings().invoice_ttl)),
            reconcile_at: now.saturating_add(ms(self.settings().create_grace)),
        };
        match self
            .store()
            .subscriptions()
            .bill_due(id, now, template)
            .await?
        {
            Billed::Invoice(invoice) => {
                super::traced_invoice(invoice.id);
                tracing::info!(
                    subscription = id,
                    invoice = invoice.id,
                    amount_kzt = %invoice.amount.to_decimal_string(),
                    "subscription billed"
                );
                let terminal = match terminal {
                    Some(terminal) => terminal,
                    None => self.terminals().load(sub.org_id).await?,
                };
                self.send_stored(*invoice, terminal, Refused::Fail).await?;
            }
            Billed::Expired(open) => {
                tracing::info!(
                    subscription = id,
                    "subscription expired after its grace period"
                );
                self.cancel_open_invoices(&sub, open, "Subscription expired")
                    .await;
            }
            Billed::Nothing => {}
        }
        Ok(())
    }

    /// Pauses, resumes or cancels subscription `id` of `org_id`; a cancel also cancels its
    /// invoices still open at Kaspi (one that cannot be cancelled, e.g. paid meanwhile, is
    /// left as it is, and a payment still counts).
    pub async fn act_on_subscription(
        &self,
        org_id: i64,
        id: i64,
        action: SubscriptionAction,
    ) -> Result<Subscription, SubscriptionActError> {
        let (sub, open) = self
            .store()
            .subscriptions()
            .act(org_id, id, action)
            .await
            .map_err(|e| match e {
                ActError::NotFound => SubscriptionActError::NotFound,
                ActError::NotAllowed(status) => SubscriptionActError::NotAllowed(status),
                ActError::Store(e) => SubscriptionActError::Gateway(e.into()),
            })?;
        tracing::info!(subscription = id, action = action.as_str(), status = %sub.status, "subscription changed");
        self.cancel_open_invoices(&sub, open, "Subscription cancelled")
            .await;
        Ok(sub)
    }

    /// Cancels `open` invoices of `sub` at Kaspi, as far as they can be; each failure is
    /// logged (the invoice then ends as Kaspi decides, and a payment is recorded).
    async fn cancel_open_invoices(&self, sub: &Subscription, open: Vec<Invoice>, reason: &str) {
        for invoice in open {
            if invoice.create_state != CreateState::Sent {
                // Not at Kaspi yet: its reconciliation fails it instead of sending it, since
                // the subscription no longer bills.
                continue;
            }
            let cancelled = self
                .cancel_invoice_with_reason(sub.org_id, invoice.id, Some(reason.to_owned()))
                .await;
            if let Err(e) = cancelled {
                tracing::warn!(subscription = sub.id, invoice = invoice.id, error = %e, "cannot cancel a subscription's open invoice");
            }
        }
    }
}
