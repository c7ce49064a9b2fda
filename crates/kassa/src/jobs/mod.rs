//! Background work, in one runner: the rows of the `jobs` table, leased and dispatched on their
//! [`JobKind`] (one file per kind), and the webhook pipeline (outbox dispatch and delivery
//! attempts, in `crate::webhooks`), started and stopped with them.
//!
//! - `poll.rs`: the status of a sent invoice, on the poll backoff schedule.
//! - `reconcile.rs`: a create whose answer was lost, looked for in Kaspi's history.
//! - `refund.rs`: a refund sent to Kaspi or confirmed.
//! - `history.rs`: each cashier's operations history read (payments found in bulk).
//! - `subscription.rs`: a subscription's due period, retry or end of grace.
//! - `retry.rs`: the schedules, and a job released to run again later.
//!
//! Every "now" comes from the store's [`Clock`](crate::clock::Clock). [`Jobs::start`] runs the
//! loops of a server until its [`CancellationToken`] is cancelled; [`Jobs::run_until_idle`]
//! instead does everything due now, to the end, and returns: tests move a manual clock and
//! step the work instead of waiting for it.
//!
//! Jobs are leased (several processes share them): a job is held by one worker while its lease
//! runs, renewed while it is handled; a job whose lease ran out (its worker died) is claimed
//! again, so work survives restarts.

mod history;
mod poll;
mod reconcile;
mod refund;
mod retry;
mod subscription;

use std::time::Duration;

use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::domain::JobKind;
use crate::gateway::{ms, Gateway, GatewayError};
use crate::store::Job;
use crate::webhooks::Webhooks;

/// How many rounds [`Jobs::run_until_idle`] makes at most: work that keeps making work due at
/// once (it never should) ends the stepping instead of hanging a test.
const MAX_ROUNDS: usize = 1_000;

/// How often the audit log's retention is applied.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(3600);

/// The background work of one process.
#[derive(Clone)]
pub struct Jobs {
    gateway: Gateway,
    webhooks: Webhooks,
    /// Unique per process: leases are taken in its name.
    worker_id: String,
}

impl Jobs {
    pub fn new(gateway: Gateway, webhooks: Webhooks, worker_id: String) -> Jobs {
        Jobs {
            gateway,
            webhooks,
            worker_id,
        }
    }

    /// The gateway this work is done for.
    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    /// Runs the work of a server until `stop` is cancelled, then waits for the jobs and webhook
    /// attempts in hand: one loop for the history syncs and one for every other job (so a batch
    /// of slow polls never holds up the next history page, which settles open invoices in
    /// bulk), and the webhook pipeline.
    pub fn start(&self, stop: CancellationToken) -> JoinHandle<()> {
        let jobs = self.clone();
        tokio::spawn(async move {
            if let Err(e) = history::schedule_all(&jobs.gateway).await {
                tracing::error!(error = %e, "cannot schedule history syncs");
            }
            let webhooks = jobs.webhooks.start_worker(
                jobs.worker_id.clone(),
                jobs.gateway.settings().webhook_poll,
                stop.clone(),
            );
            let history =
                tokio::spawn(jobs.clone().job_loop(&[JobKind::SyncHistory], stop.clone()));
            let housekeeping = tokio::spawn(jobs.clone().housekeeping_loop(stop.clone()));
            jobs.clone()
                .job_loop(
                    &[
                        JobKind::PollInvoice,
                        JobKind::ReconcileInvoice,
                        JobKind::Refund,
                        JobKind::BillSubscription,
                    ],
                    stop,
                )
                .await;
            let _ = history.await;
            let _ = housekeeping.await;
            let _ = webhooks.await;
        })
    }

    /// Forgets the audit entries older than the retention (`audit_retention`); how many.
    /// Every process does it (the delete is the same whoever runs it).
    pub async fn prune_audit_log(&self) -> usize {
        let store = self.gateway.store();
        let retention = ms(self.gateway.settings().audit_retention);
        match store
            .audit()
            .prune(store.now_ms().saturating_sub(retention))
            .await
        {
            Ok(n) => {
                if n > 0 {
                    tracing::info!(entries = n, "audit entries past their retention forgotten");
                }
                usize::try_from(n).unwrap_or(usize::MAX)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot prune the audit log");
                0
            }
        }
    }

    /// Upkeep that is not a job row: the audit log's retention, once an hour.
    async fn housekeeping_loop(self, stop: CancellationToken) {
        loop {
            self.prune_audit_log().await;
            tokio::select! {
                () = tokio::time::sleep(HOUSEKEEPING_EVERY) => {}
                () = stop.cancelled() => break,
            }
        }
    }

    /// Does everything due now on the clock, to the end: jobs, then webhook events dispatched
    /// and deliveries attempted, again and again until a round finds nothing. Work scheduled
    /// for later (a retry, the next poll) waits until the clock reaches it. How much was done.
    pub async fn run_until_idle(&self) -> usize {
        let mut done = self.prune_audit_log().await;
        for _ in 0..MAX_ROUNDS {
            self.gateway.terminals().sync_app_build().await;
            let mut round = self.run_due(JobKind::ALL).await;
            match self.webhooks.step(&self.worker_id).await {
                Ok(n) => round += n,
                Err(e) => tracing::error!(error = %e, "webhook step failed"),
            }
            if round == 0 {
                return done;
            }
            done += round;
        }
        tracing::warn!(
            rounds = MAX_ROUNDS,
            "work kept coming due; stepping stopped"
        );
        done
    }

    /// Handles due jobs of `kinds` until `stop` is cancelled.
    async fn job_loop(self, kinds: &'static [JobKind], stop: CancellationToken) {
        loop {
            // A newer Kaspi app build set meanwhile is taken up here too, not only by calls.
            self.gateway.terminals().sync_app_build().await;
            let handled = self.run_due(kinds).await;
            if stop.is_cancelled() {
                break;
            }
            if handled == 0 {
                tokio::select! {
                    () = tokio::time::sleep(self.gateway.settings().tick) => {}
                    () = stop.cancelled() => break,
                }
            }
        }
    }

    /// Claims the jobs of `kinds` due now and handles them side by side, renewing their leases
    /// while they run; how many were handled.
    async fn run_due(&self, kinds: &[JobKind]) -> usize {
        let settings = self.gateway.settings();
        let store = self.gateway.store();
        let mut set = JoinSet::new();
        let mut held = Vec::new();
        for &kind in kinds {
            let claimed = store
                .jobs()
                .claim_jobs(
                    kind,
                    &self.worker_id,
                    store.now_ms(),
                    ms(settings.lease),
                    settings.batch,
                )
                .await;
            let jobs = match claimed {
                Ok(jobs) => jobs,
                Err(e) => {
                    tracing::error!(error = %e, %kind, "cannot claim jobs");
                    continue;
                }
            };
            for job in jobs {
                held.push(job.id);
                let jobs = self.clone();
                let span =
                    tracing::info_span!("job", id = job.id, kind = %job.kind, ref_id = job.ref_id);
                set.spawn(
                    async move {
                        tracing::debug!(attempt = job.attempt, "job started");
                        let started = std::time::Instant::now();
                        let handled = jobs.handle(&job).await;
                        crate::metrics::job_ran(job.kind, handled.is_ok(), started.elapsed());
                        if let Err(e) = handled {
                            tracing::error!(error = %e, "job failed");
                        }
                    }
                    .instrument(span),
                );
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
                    let until = store.now_ms().saturating_add(ms(settings.lease));
                    if let Err(e) = store.jobs().renew_job_leases(&self.worker_id, &held, until).await {
                        tracing::warn!(error = %e, "cannot renew job leases");
                    }
                }
            }
        }
        held.len()
    }

    /// Handles one leased job.
    async fn handle(&self, job: &Job) -> Result<(), GatewayError> {
        let (gateway, worker) = (&self.gateway, self.worker_id.as_str());
        match job.kind {
            JobKind::PollInvoice => poll::run(gateway, worker, job).await,
            JobKind::ReconcileInvoice => reconcile::run(gateway, worker, job).await,
            JobKind::Refund => refund::run(gateway, worker, job).await,
            JobKind::SyncHistory => history::run(gateway, worker, job).await,
            JobKind::BillSubscription => subscription::run(gateway, worker, job).await,
        }
    }
}
