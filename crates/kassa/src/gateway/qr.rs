//! Kaspi QR payment links: a QR token made through the client, stored as a `qr` invoice and
//! followed to its end like an invoice by phone.
//!
//! A lost answer to a QR create is not reconciled: nobody has the link, and Kaspi discards the
//! token after a few minutes, so the unsent payment is removed and the error is the answer (a
//! retry makes a new token).

use kaspi::{Amount, Location};

use crate::domain::{KaspiOperationId, Money};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{ms, Gateway, GatewayError};
use crate::store::{Invoice, InvoiceKind, InvoiceSent, NewInvoice};

/// A payment link as a surface asks for it.
#[derive(Debug, Clone)]
pub struct NewQrPayment {
    pub amount: Money,
    pub description: Option<String>,
    pub external_order_id: Option<String>,
    /// A JSON object, as text.
    pub metadata: Option<String>,
}

/// Kaspi's `ExpireDate` (`2026-04-06T11:39:53.000+05:00`) as unix ms.
fn parse_expiry(text: &str) -> Option<i64> {
    let at = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

impl Gateway {
    /// Makes a Kaspi QR token for `new.amount` and stores it as a pending payment.
    pub async fn create_qr_payment(
        &self,
        org_id: i64,
        new: NewQrPayment,
    ) -> Result<Invoice, GatewayError> {
        self.terminals().load(org_id).await?;
        let is_sandbox = self.is_sandbox(org_id).await?;
        let store = self.store();
        let now = self.now_ms();
        let invoice = store
            .invoices()
            .insert_invoice(NewInvoice {
                payment_id: uuid::Uuid::new_v4().to_string(),
                org_id,
                kind: InvoiceKind::Qr,
                amount: new.amount,
                phone: None,
                description: new.description.clone(),
                external_order_id: new.external_order_id.clone(),
                is_sandbox,
                created_at: now,
                expires_at: None,
                metadata: new.metadata.clone(),
                kaspi_ref: None,
                // If this process dies while Kaspi is asked, the reconciliation removes the
                // unsent payment: nobody ever saw its link.
                reconcile_at: Some(now.saturating_add(ms(self.settings().create_grace))),
                idempotency: None,
            })
            .await?;
        super::traced_invoice(invoice.id);
        let amount = new.amount;
        let made = self
            .terminals()
            .call(org_id, "create_qr", |k| async move {
                let made = k
                    .client
                    .create_qr(&k.session, Amount::from(amount), Location::default())
                    .await;
                made.map(|token| (token, k.terminal_id))
            })
            .await;
        let (token, by) = match made {
            Ok(made) => made,
            Err(e) => {
                store.invoices().delete_unsent_invoice(invoice.id).await?;
                return Err(match e {
                    GatewayError::OutcomeUnknown(cause) => GatewayError::KaspiUnavailable(cause),
                    other => other,
                });
            }
        };
        let op = token.qr_operation_id.ok_or_else(|| {
            GatewayError::Internal("Kaspi answered a QR create without an id".into())
        })?;
        let now = self.now_ms();
        let first_poll = self
            .settings()
            .poll_schedule
            .first()
            .copied()
            .unwrap_or_default();
        let sent = store
            .invoices()
            .mark_invoice_sent_by(
                invoice.id,
                InvoiceSent {
                    kaspi_operation_id: KaspiOperationId::new(op),
                    kaspi_status: token.status.as_ref().map(|s| s.as_str().to_owned()),
                    client_name: None,
                    at_ms: now,
                    poll_at_ms: now.saturating_add(ms(first_poll)),
                    qr_token: token.qr_token.clone(),
                    ext_tran_id: token.ext_tran_id.clone(),
                    expires_at: token.expire_date.as_deref().and_then(parse_expiry),
                },
                Some(by),
            )
            .await?;
        self.history_soon(org_id, now).await?;
        Ok(sent)
    }
}
