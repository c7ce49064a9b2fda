//! The delivery loop: attempts what the dispatcher hands over, leases due deliveries while
//! slots are free, and writes the attempts' records in batches behind them.

use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::worker::{take_slots, with_slots, Leased, Pipeline, CLAIM_AT_ONCE, IN_FLIGHT};
use super::{WebhookError, Webhooks};
use crate::store::{AttemptRecord, WebhookDelivery, WebhookEndpoint};

/// Attempts' records waiting to be written, and written in one transaction, at most.
const RECORD_BATCH: usize = IN_FLIGHT;

/// Whether the delivery loop should look for due deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Look {
    /// Nothing is known to be due.
    No,
    /// Something may have come due (a tick): a cheap read first.
    Maybe,
    /// New deliveries were left to lease, or the last lease came full: lease at once.
    Yes,
}

impl Webhooks {
    /// Attempts what the dispatcher hands over and leases more while slots are free, until
    /// stopped; then waits for the dispatcher, attempts what it handed over last, and waits
    /// for every attempt in hand and its record.
    pub(super) async fn delivery_loop(
        &self,
        pipeline: &Pipeline,
        mut handed_over: mpsc::UnboundedReceiver<Vec<Leased>>,
        dispatcher: tokio::task::JoinHandle<()>,
        stopped: CancellationToken,
    ) {
        let (records, queue) = mpsc::channel::<AttemptRecord>(RECORD_BATCH);
        let recorder = tokio::spawn(self.clone().record_loop(queue));
        let mut attempts: JoinSet<()> = JoinSet::new();
        let start = |attempts: &mut JoinSet<()>, leased: Vec<Leased>| {
            for (delivery, endpoint, slot) in leased {
                attempts.spawn(self.clone().attempt_and_record(
                    pipeline.worker_id.clone(),
                    delivery,
                    endpoint,
                    records.clone(),
                    slot,
                ));
            }
        };
        let mut look = Look::Maybe;
        let tick = self.inner.tick;
        let mut next_tick = tokio::time::Instant::now() + tick;
        while !stopped.is_cancelled() {
            let free = pipeline.slots.available_permits();
            if look != Look::No && free > 0 && (free >= CLAIM_AT_ONCE || attempts.is_empty()) {
                look = match self.claim(pipeline, free, look).await {
                    Ok(Some((leased, full))) => {
                        start(&mut attempts, leased);
                        if full {
                            Look::Yes
                        } else {
                            Look::No
                        }
                    }
                    // The dispatcher holds the free slots for a moment: it hands over or
                    // releases them soon.
                    Ok(None) => look,
                    Err(e) => {
                        tracing::error!(error = %e, "leasing webhook deliveries failed");
                        Look::No
                    }
                };
                if look == Look::Yes && pipeline.slots.available_permits() > 0 {
                    continue;
                }
            }
            tokio::select! {
                Some(leased) = handed_over.recv() => start(&mut attempts, leased),
                Some(_) = attempts.join_next(), if !attempts.is_empty() => {}
                () = pipeline.wake.notified() => look = Look::Yes,
                () = tokio::time::sleep_until(next_tick) => {
                    next_tick = tokio::time::Instant::now() + tick;
                    if look == Look::No {
                        look = Look::Maybe;
                    }
                }
                () = stopped.cancelled() => {}
            }
        }
        // The dispatcher stops too; what it leased last is attempted before the end.
        let _ = dispatcher.await;
        while let Some(leased) = handed_over.recv().await {
            start(&mut attempts, leased);
        }
        while attempts.join_next().await.is_some() {}
        drop(records);
        let _ = recorder.await;
    }

    /// Leases up to `free` due deliveries (as many slots as it can take) to this worker,
    /// with their endpoints; when `look` is only [`Look::Maybe`], a cheap read first says
    /// whether anything is due. Also whether the lease came full (more may be due). `None`
    /// when no slot could be taken.
    async fn claim(
        &self,
        pipeline: &Pipeline,
        free: usize,
        look: Look,
    ) -> Result<Option<(Vec<Leased>, bool)>, WebhookError> {
        let now = self.now_ms();
        if look == Look::Maybe && !self.store().webhooks().webhook_deliveries_due(now).await? {
            return Ok(Some((Vec::new(), false)));
        }
        let Some(permits) = take_slots(&pipeline.slots, free) else {
            return Ok(None);
        };
        let limit = permits.num_permits();
        let leased = self
            .store()
            .webhooks()
            .lease_webhook_deliveries(
                &pipeline.worker_id,
                now,
                self.lease_ms(),
                u32::try_from(limit).unwrap_or(u32::MAX),
            )
            .await?;
        let full = leased.len() >= limit;
        Ok(Some((with_slots(leased, permits), full)))
    }

    /// Makes one attempt and queues its record for the recorder; ends (freeing its `slot`) once
    /// the record is queued.
    async fn attempt_and_record(
        self,
        worker: String,
        delivery: WebhookDelivery,
        endpoint: Option<WebhookEndpoint>,
        records: mpsc::Sender<AttemptRecord>,
        slot: OwnedSemaphorePermit,
    ) {
        let id = delivery.id;
        match self.attempt(&worker, delivery, endpoint).await {
            Ok(Some(record)) => {
                // Queued (waiting while the queue is full), the slot is free: the record is
                // written behind, still under the lease.
                let _ = records.send(record).await;
            }
            Ok(None) => {}
            Err(e) => tracing::error!(delivery = id, error = %e, "webhook attempt not recorded"),
        }
        drop(slot);
    }

    /// Writes the records that queue up, as many as have (up to [`RECORD_BATCH`]) in one
    /// transaction, until every sender is gone.
    async fn record_loop(self, mut queue: mpsc::Receiver<AttemptRecord>) {
        let mut batch = Vec::with_capacity(RECORD_BATCH);
        while queue.recv_many(&mut batch, RECORD_BATCH).await > 0 {
            self.record(std::mem::take(&mut batch)).await;
        }
    }

    /// Writes `records` in one transaction; if that fails, one by one (one bad record does
    /// not lose the others).
    pub(super) async fn record(&self, records: Vec<AttemptRecord>) {
        let ids: Vec<i64> = records.iter().map(|r| r.delivery).collect();
        let failed = match self
            .store()
            .webhooks()
            .record_webhook_attempts(records.clone())
            .await
        {
            Ok(recorded) => {
                for (id, recorded) in ids.iter().zip(recorded) {
                    if !recorded {
                        tracing::warn!(delivery = id, "webhook attempt not recorded: lease lost");
                    }
                }
                return;
            }
            Err(e) => e,
        };
        if records.len() == 1 {
            tracing::error!(delivery = ids.first(), error = %failed, "webhook attempt not recorded");
            return;
        }
        tracing::warn!(error = %failed, attempts = records.len(), "recording webhook attempts together failed; one by one");
        for record in records {
            let id = record.delivery;
            match self.store().webhooks().record_webhook_attempt(record).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(delivery = id, "webhook attempt not recorded: lease lost");
                }
                Err(e) => {
                    tracing::error!(delivery = id, error = %e, "webhook attempt not recorded");
                }
            }
        }
    }
}
