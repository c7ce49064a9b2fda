//! The pipeline of one process: the slots and the lease its two loops share, how they are
//! started ([`Webhooks::start_worker`]), and one deterministic pass of both ([`Webhooks::step`]).
//!
//! [`Webhooks::start_worker`] runs two loops side by side in each process, sharing
//! [`IN_FLIGHT`] slots (a slot is held from a delivery's lease until its attempt ends):
//!
//! - The dispatcher (`dispatch.rs`) turns committed `invoice_events` not yet dispatched into
//!   deliveries at the pace slots come free. It reads events `DISPATCH_BATCH` at a time, with their
//!   invoices and organizations in one go, and renders their bodies (one per format in use); then,
//!   as slots come free, dispatches as many events as it got slots in ONE transaction, in which
//!   each event makes deliveries only if that transaction flips its mark (see `store/webhooks`),
//!   and the new deliveries are leased to this worker as they are inserted and handed straight to
//!   the delivery loop. So the outbox is the queue, and a delivery is written twice (made,
//!   attempted) rather than leased again in between. Deliveries beyond its slots (several
//!   endpoints), and the whole rest when no slot came free within `SLOT_WAIT` (slow receivers), are
//!   left for any worker to lease, and the delivery loop is woken. It goes on at once while events
//!   are waiting; otherwise it waits for the commit of an event in this process (the store rings
//!   [`crate::store::Store::events_committed`] after each transaction that may write one), or
//!   for its poll interval ([`DISPATCH_POLL`] by default), which finds the events other
//!   processes committed.
//! - The delivery loop (`delivery.rs`) starts an attempt for each delivery handed over, and
//!   whenever at least [`CLAIM_AT_ONCE`] slots are free (or none is busy) and deliveries may be due
//!   it leases more (with their endpoints, in one transaction), without waiting for the attempts
//!   under way. Finished attempts queue their records (at most `RECORD_BATCH` waiting) for a
//!   recorder task that writes whatever has queued up in one transaction, each record (log row,
//!   delivery state, endpoint health) only while its worker still holds the lease. It looks for due
//!   deliveries when woken by the dispatcher, while its leases come full, and every tick (retries
//!   coming due, deliveries other processes made).
//!
//! Both are safe with several processes on one database: an event is dispatched by the one
//! transaction that flips its mark, a delivery is attempted by the worker holding its lease
//! (longer than the attempt timeout). cancelling its token ends both loops and waits for the
//! attempts in hand and their records.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use super::{WebhookError, Webhooks};
use crate::store::{WebhookDelivery, WebhookEndpoint};

/// Attempts in hand at once per process, from the lease until the attempt ends (also the
/// most requests one endpoint gets at once from one process).
pub(super) const IN_FLIGHT: usize = 128;
/// Deliveries are leased when at least this many slots are free (or none is busy), so leases
/// come in batches rather than one transaction per finished attempt.
pub(super) const CLAIM_AT_ONCE: usize = 32;

/// A delivery leased to this worker, its endpoint (`None`: gone) and the slot it holds.
pub(super) type Leased = (
    WebhookDelivery,
    Option<WebhookEndpoint>,
    OwnedSemaphorePermit,
);

/// How often the dispatcher looks for events committed by other processes sharing the
/// database unless told otherwise (those of this process wake it at once).
pub const DISPATCH_POLL: Duration = Duration::from_millis(50);

/// What the two loops of one worker share.
pub(super) struct Pipeline {
    pub(super) worker_id: String,
    /// How often the dispatcher looks for events it was not woken for.
    pub(super) poll: Duration,
    /// One permit per attempt in hand.
    pub(super) slots: Arc<Semaphore>,
    /// Rung by the dispatcher when it left deliveries to lease.
    pub(super) wake: Notify,
}

/// Up to `n` of the free slots, if any.
pub(super) fn take_slots(slots: &Arc<Semaphore>, n: usize) -> Option<OwnedSemaphorePermit> {
    let n = n.min(slots.available_permits());
    let n = u32::try_from(n).ok().filter(|&n| n > 0)?;
    slots.clone().try_acquire_many_owned(n).ok()
}

/// Splits `permits` into one per delivery of `leased`; the permits left over are released.
pub(super) fn with_slots(
    leased: Vec<(WebhookDelivery, Option<WebhookEndpoint>)>,
    mut permits: OwnedSemaphorePermit,
) -> Vec<Leased> {
    leased
        .into_iter()
        .filter_map(|(delivery, endpoint)| {
            // There are never more deliveries than permits taken; should there be, the extra
            // ones stay leased until their lease runs out and are attempted then.
            let slot = permits.split(1)?;
            Some((delivery, endpoint, slot))
        })
        .collect()
}

impl Webhooks {
    /// Starts this process's dispatcher and delivery worker under `worker_id`, the dispatcher
    /// looking for other processes' events every `poll`; they end when `stop` is cancelled,
    /// after the attempts in hand and their records.
    pub fn start_worker(
        &self,
        worker_id: String,
        poll: Duration,
        stopped: CancellationToken,
    ) -> JoinHandle<()> {
        let webhooks = self.clone();
        tokio::spawn(async move {
            let pipeline = Arc::new(Pipeline {
                worker_id,
                poll,
                slots: Arc::new(Semaphore::new(IN_FLIGHT)),
                wake: Notify::new(),
            });
            let (handed, handed_over) = mpsc::unbounded_channel();
            let dispatcher = tokio::spawn({
                let (webhooks, pipeline, stopped) =
                    (webhooks.clone(), pipeline.clone(), stopped.clone());
                async move { webhooks.dispatch_loop(&pipeline, &handed, stopped).await }
            });
            webhooks
                .delivery_loop(&pipeline, handed_over, dispatcher, stopped)
                .await;
        })
    }

    /// One deterministic pass, for [`crate::jobs::Jobs::run_until_idle`]: dispatches every
    /// committed event not yet dispatched, then leases every delivery due now on the clock,
    /// attempts them side by side and writes their records. How many events and attempts.
    pub async fn step(&self, worker_id: &str) -> Result<usize, WebhookError> {
        let mut done = 0;
        loop {
            let events = self.prepare_events().await?;
            if events.is_empty() {
                break;
            }
            let dispatched = self.dispatch_events(events, None).await?;
            // Events left (an endpoint's format came into use since they were read) are read
            // and rendered again.
            if dispatched.events == 0 && dispatched.left == 0 {
                break;
            }
            done += dispatched.events;
        }
        let limit = u32::try_from(IN_FLIGHT).unwrap_or(u32::MAX);
        loop {
            let leased = self
                .store()
                .webhooks()
                .lease_webhook_deliveries(worker_id, self.now_ms(), self.lease_ms(), limit)
                .await?;
            let full = leased.len() >= IN_FLIGHT;
            let mut attempts = JoinSet::new();
            for (delivery, endpoint) in leased {
                let (webhooks, worker) = (self.clone(), worker_id.to_owned());
                attempts.spawn(async move { webhooks.attempt(&worker, delivery, endpoint).await });
            }
            let mut records = Vec::new();
            while let Some(attempt) = attempts.join_next().await {
                done += 1;
                match attempt {
                    Ok(Ok(Some(record))) => records.push(record),
                    Ok(Ok(None)) => {}
                    Ok(Err(e)) => tracing::error!(error = %e, "webhook attempt not recorded"),
                    Err(e) => tracing::error!(error = %e, "webhook attempt panicked"),
                }
            }
            if !records.is_empty() {
                self.record(records).await;
            }
            if !full {
                break;
            }
        }
        Ok(done)
    }

    /// How long a lease lasts: longer than an attempt may take (its timeout) by a margin for
    /// recording it, and no longer, so that the deliveries of a process that died are taken up
    /// by another within about one timeout.
    pub(super) fn lease_ms(&self) -> i64 {
        let lease = self
            .inner
            .config
            .timeout
            .saturating_add(Duration::from_secs(5));
        i64::try_from(lease.as_millis()).unwrap_or(i64::MAX)
    }
}
