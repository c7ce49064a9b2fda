//! `sync_history`: reads an organization's Kaspi operations history (which settles open
//! invoices in bulk and finds static QR payments), at once again while payments flow, every
//! `history_every` while invoices are open, every `history_idle_every` otherwise; failures that
//! a person need not fix back off from that pace to 30 s.

use super::retry::{again_after, history_retry, NO_SESSION_RETRY};
use crate::gateway::{Gateway, GatewayError};
use crate::store::{Job, JobKind};

pub(super) async fn run(gateway: &Gateway, worker: &str, job: &Job) -> Result<(), GatewayError> {
    let every = gateway.settings().history_every;
    match gateway.sync_history(job.ref_id).await {
        Ok(busy) => {
            // Again at once while payments are flowing or a gap is left (the cashier's
            // call budget still spaces the pages), often while invoices are open (history
            // settles them in bulk), rarely when only static QR payments can appear.
            let next = if busy {
                gateway.settings().tick
            } else if gateway
                .store()
                .invoices()
                .has_pending_invoices(job.ref_id)
                .await?
            {
                every
            } else {
                gateway.settings().history_idle_every
            };
            again_after(gateway, worker, job, 0, next, None).await
        }
        Err(GatewayError::NoTerminal) => {
            gateway.store().jobs().finish_job(job.id).await?;
            Ok(())
        }
        Err(e) if e.waits_for_person() => {
            again_after(
                gateway,
                worker,
                job,
                job.attempt + 1,
                NO_SESSION_RETRY,
                Some(&e),
            )
            .await
        }
        Err(e) => {
            // Kaspi unavailable, throttling, a lost page: payments are waiting to be
            // found, so soon again, backing off (every, 2×, 4×, … up to 30 s).
            let delay = history_retry(every, job.attempt);
            again_after(gateway, worker, job, job.attempt + 1, delay, Some(&e)).await
        }
    }
}

/// Makes sure every organization with a cashier has its history sync job, due now: a server
/// that starts (perhaps after a crash) looks for payments at once, also where the last run
/// left the next one for later.
pub(super) async fn schedule_all(gateway: &Gateway) -> Result<(), GatewayError> {
    let now = gateway.now_ms();
    for terminal in gateway.store().orgs().list_terminals().await? {
        gateway
            .store()
            .jobs()
            .pull_job_forward(JobKind::SyncHistory, terminal.org_id, now, now)
            .await?;
    }
    Ok(())
}
