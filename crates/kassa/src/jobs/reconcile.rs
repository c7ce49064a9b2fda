//! `reconcile_invoice`: a create whose answer was lost (or whose process died while Kaspi
//! was asked) is looked for in Kaspi's history by its marker; found, it becomes sent; not found
//! after the whole schedule, it is failed; a subscription's invoice is sent again instead
//! (nobody else will ask the payer for that period), unless the subscription ended. A QR create
//! nobody saw is removed.

use super::retry::{again_after, delay_at, same_attempt_on, wait_for_person};
use crate::domain::SubscriptionStatus;
use crate::gateway::Refused;
use crate::gateway::{Gateway, GatewayError};
use crate::store::Invoice;
use crate::store::{InvoiceKind, Job};

pub(super) async fn run(gateway: &Gateway, worker: &str, job: &Job) -> Result<(), GatewayError> {
    let Some(invoice) = gateway.store().invoices().invoice_by_id(job.ref_id).await? else {
        gateway.store().jobs().finish_job(job.id).await?;
        return Ok(());
    };
    if !invoice.create_state.awaits_kaspi() {
        gateway.store().jobs().finish_job(job.id).await?;
        return Ok(());
    }
    if invoice.kind == InvoiceKind::Qr {
        // Its create never recorded an outcome (the process died while Kaspi was
        // asked): nobody saw the link, so the unsent payment goes (Kaspi discards an
        // unused token by itself).
        tracing::warn!(
            invoice = invoice.id,
            "a QR payment's create never finished; removing it"
        );
        gateway
            .store()
            .invoices()
            .delete_unsent_invoice(invoice.id)
            .await?;
        gateway.store().jobs().finish_job(job.id).await?;
        return Ok(());
    }
    let schedule = &gateway.settings().reconcile_schedule;
    match gateway.find_in_history(&invoice).await {
        Ok(Some(found)) => {
            tracing::info!(invoice = invoice.id, "lost create found in Kaspi's history");
            gateway.record_sent(&invoice, &found).await?;
            // Recorded (or found recorded by someone else): the job is done either way.
            gateway.store().jobs().finish_job(job.id).await?;
            Ok(())
        }
        Ok(None)
            if invoice.subscription_id.is_some()
                && usize::try_from(job.attempt + 1).unwrap_or(usize::MAX) >= schedule.len() =>
        {
            send_again(gateway, worker, job, invoice).await
        }
        Ok(None) if usize::try_from(job.attempt + 1).unwrap_or(usize::MAX) >= schedule.len() => {
            tracing::warn!(
                invoice = invoice.id,
                "Kaspi never received the invoice; failing it"
            );
            let failed = gateway
                .store()
                .invoices()
                .mark_invoice_create_failed(
                    invoice.id,
                    "Kaspi never received the invoice (its answer was lost and history does not show it)",
                    gateway.now_ms(),
                )
                .await;
            match failed {
                // The history sync found it meanwhile: nothing to fail.
                Ok(_) | Err(crate::store::StoreError::NotFound) => {
                    gateway.store().jobs().finish_job(job.id).await?;
                    Ok(())
                }
                Err(e) => Err(e.into()),
            }
        }
        Ok(None) => {
            let delay = delay_at(schedule, job.attempt + 1);
            again_after(
                gateway,
                worker,
                job,
                job.attempt + 1,
                delay,
                Some(&GatewayError::NotAtKaspiYet),
            )
            .await
        }
        // No cashier session, or a build Kaspi refuses: history cannot be read until a
        // person acts; look again at the slower pace.
        Err(e) if e.waits_for_person() => wait_for_person(gateway, worker, job, &e).await,
        Err(e) => same_attempt_on(gateway, worker, job, schedule, Some(&e)).await,
    }
}

/// A subscription's invoice Kaspi never received (its create's process died before or while
/// asking, and the whole schedule of history look-ups did not find it): sent again with the
/// same marker, and reconciled from the start if the answer is lost again. Failed instead when
/// its subscription no longer bills.
async fn send_again(
    gateway: &Gateway,
    worker: &str,
    job: &Job,
    invoice: Invoice,
) -> Result<(), GatewayError> {
    let store = gateway.store();
    let billing = match invoice.subscription_id {
        Some(id) => store
            .subscriptions()
            .subscription(invoice.org_id, id)
            .await?
            .is_some_and(|s| s.status == SubscriptionStatus::Active),
        None => false,
    };
    if !billing {
        let failed = store
            .invoices()
            .mark_invoice_create_failed(
                invoice.id,
                "Kaspi never received the invoice and its subscription no longer bills",
                gateway.now_ms(),
            )
            .await;
        if let Err(e) = failed {
            if !matches!(e, crate::store::StoreError::NotFound) {
                return Err(e.into());
            }
        }
        store.jobs().finish_job(job.id).await?;
        return Ok(());
    }
    tracing::warn!(
        invoice = invoice.id,
        "Kaspi never received a subscription's invoice; sending it again"
    );
    let terminal = match gateway.terminals().load(invoice.org_id).await {
        Ok(terminal) => terminal,
        Err(e) if e.waits_for_person() => return wait_for_person(gateway, worker, job, &e).await,
        Err(e) => return Err(e),
    };
    let sent = gateway
        .send_stored(invoice, terminal, Refused::Fail)
        .await?;
    if sent.create_state.awaits_kaspi() {
        let schedule = &gateway.settings().reconcile_schedule;
        again_after(gateway, worker, job, 0, delay_at(schedule, 0), None).await
    } else {
        store.jobs().finish_job(job.id).await?;
        Ok(())
    }
}
