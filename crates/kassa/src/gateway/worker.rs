//! The background workers: due jobs are leased from the `jobs` table (several processes share
//! them; a job is held by one worker while its lease runs) and handled:
//!
//! - `poll_invoice`: ask Kaspi for the status of a sent invoice; record a final status, or
//!   check again later on the backoff schedule. After a cancel or an expiry one late check
//!   runs, so a payment that crossed it wins.
//! - `reconcile_invoice`: a create whose answer was lost is looked for in Kaspi's history;
//!   found, it becomes sent; not found after the whole schedule, it is failed.
//!
//! A job whose lease ran out (its worker died) is claimed again, so work survives restarts.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::invoices::Checked;
use super::refunds::RefundStep;
use super::{ms, now_ms, Gateway, GatewayError};
use crate::store::{
    CreateState, InvoiceKind, InvoiceStatus, Job, JOB_POLL_INVOICE, JOB_RECONCILE_INVOICE,
    JOB_REFUND, JOB_SYNC_HISTORY,
};

/// How long to wait before checking again while the cashier cannot work.
const NO_SESSION_RETRY: Duration = Duration::from_secs(30);
/// How long after its expiry an invoice Kaspi still calls open is given up locally.
const EXPIRY_GRACE: Duration = Duration::from_secs(3600);

/// Running workers; `stop` ends them after the jobs in hand.
pub struct WorkerHandle {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl WorkerHandle {
    /// Stops the workers and waits for the jobs in hand.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

impl Gateway {
    /// Starts the workers of this process under `worker_id` (unique per process): one loop
    /// for the history syncs and one for every other job, so that a batch of slow polls never
    /// holds up the next history page (which settles open invoices in bulk).
    pub fn start_workers(&self, worker_id: String) -> WorkerHandle {
        let (stop, stopped) = watch::channel(false);
        let gateway = self.clone();
        let task = tokio::spawn(async move {
            if let Err(e) = gateway.schedule_history_syncs().await {
                tracing::error!(error = %e, "cannot schedule history syncs");
            }
            let history = tokio::spawn(gateway.clone().job_loop(
                worker_id.clone(),
                &[JOB_SYNC_HISTORY],
                stopped.clone(),
            ));
            gateway
                .job_loop(
                    worker_id,
                    &[JOB_POLL_INVOICE, JOB_RECONCILE_INVOICE, JOB_REFUND],
                    stopped,
                )
                .await;
            let _ = history.await;
        });
        WorkerHandle { stop, task }
    }

    /// Handles due jobs of `kinds` until `stopped` turns true.
    async fn job_loop(
        self,
        worker_id: String,
        kinds: &'static [&'static str],
        mut stopped: watch::Receiver<bool>,
    ) {
        loop {
            // A newer Kaspi app build set meanwhile is taken up here too, not only by calls.
            self.terminals().sync_app_build().await;
            let handled = self.run_due_jobs_of(&worker_id, kinds).await;
            if *stopped.borrow() {
                break;
            }
            if handled == 0 {
                tokio::select! {
                    () = tokio::time::sleep(self.settings().tick) => {}
                    _ = stopped.changed() => break,
                }
            }
        }
    }

    /// Claims and handles the jobs due now, of every kind; how many were handled.
    pub async fn run_due_jobs(&self, worker_id: &str) -> usize {
        self.run_due_jobs_of(
            worker_id,
            &[
                JOB_POLL_INVOICE,
                JOB_RECONCILE_INVOICE,
                JOB_REFUND,
                JOB_SYNC_HISTORY,
            ],
        )
        .await
    }

    /// Claims and handles the jobs of `kinds` due now; how many were handled.
    async fn run_due_jobs_of(&self, worker_id: &str, kinds: &[&str]) -> usize {
        let settings = self.settings();
        let mut set = JoinSet::new();
        let mut handled = 0;
        let mut held = Vec::new();
        for &kind in kinds {
            let jobs = match self
                .store()
                .claim_jobs(
                    kind,
                    worker_id,
                    now_ms(),
                    ms(settings.lease),
                    settings.batch,
                )
                .await
            {
                Ok(jobs) => jobs,
                Err(e) => {
                    tracing::error!(error = %e, kind, "cannot claim jobs");
                    continue;
                }
            };
            handled += jobs.len();
            held.extend(jobs.iter().map(|job| job.id));
            for job in jobs {
                let gateway = self.clone();
                let worker = worker_id.to_owned();
                set.spawn(async move {
                    let id = job.id;
                    if let Err(e) = gateway.handle_job(&worker, job).await {
                        tracing::error!(job = id, error = %e, "job failed");
                    }
                });
            }
        }
        // Leases are short: renew them while the jobs run, so that only a dead process's
        // jobs wait for their lease to run out.
        let mut renew =
            tokio::time::interval((settings.lease / 3).max(std::time::Duration::from_millis(10)));
        renew.tick().await;
        loop {
            tokio::select! {
                next = set.join_next() => {
                    if next.is_none() {
                        break;
                    }
                }
                _ = renew.tick() => {
                    let until = now_ms().saturating_add(ms(settings.lease));
                    if let Err(e) = self.store().renew_job_leases(worker_id, &held, until).await {
                        tracing::warn!(error = %e, "cannot renew job leases");
                    }
                }
            }
        }
        handled
    }

    async fn handle_job(&self, worker: &str, job: Job) -> Result<(), GatewayError> {
        match job.kind.as_str() {
            JOB_POLL_INVOICE => self.poll(worker, &job).await,
            JOB_RECONCILE_INVOICE => self.reconcile(worker, &job).await,
            JOB_REFUND => self.refund_job(worker, &job).await,
            JOB_SYNC_HISTORY => self.history_job(worker, &job).await,
            other => {
                tracing::error!(kind = other, "unknown job kind; dropping it");
                self.store().finish_job(job.id).await?;
                Ok(())
            }
        }
    }

    async fn poll(&self, worker: &str, job: &Job) -> Result<(), GatewayError> {
        let Some(invoice) = self.store().invoice_by_id(job.ref_id).await? else {
            self.store().finish_job(job.id).await?;
            return Ok(());
        };
        let late_check = invoice.status != InvoiceStatus::Pending;
        match self.poll_status(&invoice).await {
            Ok(Checked::Busy) => {
                // The cashier's calls are spaced out: creates and history pages (which settle
                // open invoices in bulk) go first; this check waits for its step again.
                self.again(worker, job, job.attempt, None).await
            }
            Ok(Checked::Changed(_)) => {
                // A final status was recorded; its transaction ended this job (and may have
                // scheduled a late check, which is another row now).
                Ok(())
            }
            Ok(Checked::Unchanged) if late_check => {
                self.store().finish_job(job.id).await?;
                Ok(())
            }
            Ok(Checked::Unchanged) => {
                let now = now_ms();
                let given_up = invoice
                    .expires_at
                    .is_some_and(|at| now > at.saturating_add(ms(EXPIRY_GRACE)));
                if given_up {
                    self.store()
                        .apply_status(invoice.id, InvoiceStatus::Expired, None, now, None)
                        .await?;
                    self.store().finish_job(job.id).await?;
                    return Ok(());
                }
                self.again(worker, job, job.attempt + 1, None).await
            }
            Err(e) if e.waits_for_person() => {
                self.again_after(worker, job, job.attempt, NO_SESSION_RETRY, Some(&e))
                    .await
            }
            Err(e) => self.again(worker, job, job.attempt + 1, Some(&e)).await,
        }
    }

    async fn reconcile(&self, worker: &str, job: &Job) -> Result<(), GatewayError> {
        let Some(invoice) = self.store().invoice_by_id(job.ref_id).await? else {
            self.store().finish_job(job.id).await?;
            return Ok(());
        };
        match (invoice.create_state, invoice.kind) {
            (CreateState::Sending | CreateState::Unknown, InvoiceKind::Remote) => {}
            (CreateState::Sending | CreateState::Unknown, InvoiceKind::Qr) => {
                // Its create never recorded an outcome (the process died while Kaspi was
                // asked): nobody saw the link, so the unsent payment goes (Kaspi discards an
                // unused token by itself).
                tracing::warn!(
                    invoice = invoice.id,
                    "a QR payment's create never finished; removing it"
                );
                self.store().delete_unsent_invoice(invoice.id).await?;
                self.store().finish_job(job.id).await?;
                return Ok(());
            }
            _ => {
                self.store().finish_job(job.id).await?;
                return Ok(());
            }
        }
        let schedule = &self.settings().reconcile_schedule;
        match self.find_in_history(&invoice).await {
            Ok(Some(found)) => {
                tracing::info!(invoice = invoice.id, "lost create found in Kaspi's history");
                self.record_sent(&invoice, &found).await?;
                // Recorded (or found recorded by someone else): the job is done either way.
                self.store().finish_job(job.id).await?;
                Ok(())
            }
            Ok(None)
                if usize::try_from(job.attempt + 1).unwrap_or(usize::MAX) >= schedule.len() =>
            {
                tracing::warn!(
                    invoice = invoice.id,
                    "Kaspi never received the invoice; failing it"
                );
                let failed = self
                    .store()
                    .mark_invoice_create_failed(
                        invoice.id,
                        "Kaspi never received the invoice (its answer was lost and history does not show it)",
                        now_ms(),
                    )
                    .await;
                match failed {
                    // The history sync found it meanwhile: nothing to fail.
                    Ok(_) | Err(crate::store::StoreError::NotFound) => {
                        self.store().finish_job(job.id).await?;
                        Ok(())
                    }
                    Err(e) => Err(e.into()),
                }
            }
            Ok(None) => {
                let delay = delay_at(schedule, job.attempt + 1);
                self.again_after(
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
            Err(e) if e.waits_for_person() => {
                self.again_after(worker, job, job.attempt, NO_SESSION_RETRY, Some(&e))
                    .await
            }
            Err(e) => {
                let delay = delay_at(schedule, job.attempt);
                self.again_after(worker, job, job.attempt, delay, Some(&e))
                    .await
            }
        }
    }

    async fn refund_job(&self, worker: &str, job: &Job) -> Result<(), GatewayError> {
        let schedule = &self.settings().reconcile_schedule;
        match self.advance_refund(job.ref_id, job.attempt).await {
            Ok(RefundStep::Ended) => {
                // Its end removed the job, unless it had ended before.
                self.store().finish_job(job.id).await?;
                Ok(())
            }
            Ok(RefundStep::NotSent) => {
                let delay = delay_at(schedule, job.attempt);
                self.again_after(worker, job, job.attempt, delay, None)
                    .await
            }
            Ok(RefundStep::Unconfirmed) => {
                let delay = delay_at(schedule, job.attempt + 1);
                self.again_after(worker, job, job.attempt + 1, delay, None)
                    .await
            }
            Err(e) if e.waits_for_person() => {
                self.again_after(worker, job, job.attempt, NO_SESSION_RETRY, Some(&e))
                    .await
            }
            Err(e) => {
                let delay = delay_at(schedule, job.attempt);
                self.again_after(worker, job, job.attempt, delay, Some(&e))
                    .await
            }
        }
    }

    async fn history_job(&self, worker: &str, job: &Job) -> Result<(), GatewayError> {
        let every = self.settings().history_every;
        match self.sync_history(job.ref_id).await {
            Ok(busy) => {
                // Again at once while payments are flowing or a gap is left (the cashier's
                // call budget still spaces the pages), often while invoices are open (history
                // settles them in bulk), rarely when only static QR payments can appear.
                let next = if busy {
                    self.settings().tick
                } else if self.store().has_pending_invoices(job.ref_id).await? {
                    every
                } else {
                    self.settings().history_idle_every
                };
                self.again_after(worker, job, 0, next, None).await
            }
            Err(GatewayError::NoTerminal) => {
                self.store().finish_job(job.id).await?;
                Ok(())
            }
            Err(e) if e.waits_for_person() => {
                self.again_after(worker, job, job.attempt + 1, NO_SESSION_RETRY, Some(&e))
                    .await
            }
            Err(e) => {
                // Kaspi unavailable, throttling, a lost page: payments are waiting to be
                // found, so soon again, backing off (every, 2×, 4×, … up to 30 s).
                let delay = history_retry(every, job.attempt);
                self.again_after(worker, job, job.attempt + 1, delay, Some(&e))
                    .await
            }
        }
    }

    /// Makes sure every organization with a cashier has its history sync job, due now: a
    /// server that starts (perhaps after a crash) looks for payments at once, also where the
    /// last run left the next one for later.
    pub async fn schedule_history_syncs(&self) -> Result<(), GatewayError> {
        let now = now_ms();
        for terminal in self.store().list_terminals().await? {
            self.store()
                .pull_job_forward(JOB_SYNC_HISTORY, terminal.org_id, now, now)
                .await?;
        }
        Ok(())
    }

    /// Reschedules a poll by the backoff schedule for `attempt`.
    async fn again(
        &self,
        worker: &str,
        job: &Job,
        attempt: i64,
        error: Option<&GatewayError>,
    ) -> Result<(), GatewayError> {
        let delay = delay_at(&self.settings().poll_schedule, attempt);
        self.again_after(worker, job, attempt, delay, error).await
    }

    async fn again_after(
        &self,
        worker: &str,
        job: &Job,
        attempt: i64,
        delay: Duration,
        error: Option<&GatewayError>,
    ) -> Result<(), GatewayError> {
        let error = error.map(ToString::to_string);
        self.store()
            .reschedule_job(
                job.id,
                worker,
                now_ms().saturating_add(ms(delay)),
                attempt,
                error.as_deref(),
            )
            .await?;
        Ok(())
    }
}

/// The delay before the history sync tries again after its `attempt`-th failure in a row that
/// a person need not fix: `every` doubled per failure, at most [`NO_SESSION_RETRY`].
fn history_retry(every: Duration, attempt: i64) -> Duration {
    let doublings = u32::try_from(attempt.clamp(0, 16)).unwrap_or(16);
    every
        .saturating_mul(1 << doublings)
        .min(NO_SESSION_RETRY)
        .max(every)
}

/// The delay of `attempt` in `schedule`; the last one repeats.
fn delay_at(schedule: &[Duration], attempt: i64) -> Duration {
    let index = usize::try_from(attempt).unwrap_or(0);
    schedule
        .get(index)
        .or_else(|| schedule.last())
        .copied()
        .unwrap_or(Duration::from_secs(5))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{history_retry, NO_SESSION_RETRY};

    #[test]
    fn a_failing_history_sync_backs_off_from_its_pace_to_the_slow_one() {
        let every = Duration::from_secs(1);
        let delays: Vec<u64> = (0..8)
            .map(|attempt| history_retry(every, attempt).as_secs())
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(history_retry(every, -3), every);
        assert_eq!(history_retry(every, i64::MAX), NO_SESSION_RETRY);
        // A pace slower than the cap is kept.
        let slow = Duration::from_secs(45);
        assert_eq!(history_retry(slow, 0), slow);
    }
}
