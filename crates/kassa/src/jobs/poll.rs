//! `poll_invoice`: asks Kaspi for the status of a sent invoice; records a final status, or
//! checks again later on the backoff schedule. After a cancel or an expiry one late check runs,
//! so a payment that crossed it wins. An invoice Kaspi still calls open an hour after its
//! expiry is given up locally.

use std::time::Duration;

use super::retry::{again, wait_for_person};
use crate::gateway::{ms, Checked, Gateway, GatewayError};
use crate::store::{InvoiceStatus, Job};

/// How long after its expiry an invoice Kaspi still calls open is given up locally.
const EXPIRY_GRACE: Duration = Duration::from_secs(3600);

pub(super) async fn run(gateway: &Gateway, worker: &str, job: &Job) -> Result<(), GatewayError> {
    let Some(invoice) = gateway.store().invoices().invoice_by_id(job.ref_id).await? else {
        gateway.store().jobs().finish_job(job.id).await?;
        return Ok(());
    };
    let late_check = invoice.status != InvoiceStatus::Pending;
    match gateway.poll_status(&invoice).await {
        Ok(Checked::Busy) => {
            // The cashier's calls are spaced out: creates and history pages (which settle
            // open invoices in bulk) go first; this check waits for its step again.
            again(gateway, worker, job, job.attempt, None).await
        }
        Ok(Checked::Changed(_)) => {
            // A final status was recorded; its transaction ended this job (and may have
            // scheduled a late check, which is another row now).
            Ok(())
        }
        Ok(Checked::Unchanged) if late_check => {
            gateway.store().jobs().finish_job(job.id).await?;
            Ok(())
        }
        Ok(Checked::Unchanged) => {
            let now = gateway.now_ms();
            let given_up = invoice
                .expires_at
                .is_some_and(|at| now > at.saturating_add(ms(EXPIRY_GRACE)));
            if given_up {
                gateway
                    .store()
                    .invoices()
                    .apply_status(invoice.id, InvoiceStatus::Expired, None, now, None)
                    .await?;
                gateway.store().jobs().finish_job(job.id).await?;
                return Ok(());
            }
            again(gateway, worker, job, job.attempt + 1, None).await
        }
        Err(e) if e.waits_for_person() => wait_for_person(gateway, worker, job, &e).await,
        Err(e) => again(gateway, worker, job, job.attempt + 1, Some(&e)).await,
    }
}
