//! The dispatcher and the delivery worker, and the one function that makes an attempt.
//!
//! [`Webhooks::start_worker`] runs two loops side by side in each process, sharing
//! [`IN_FLIGHT`] slots (a slot is held from a delivery's lease until its attempt ends):
//!
//! - The dispatcher turns committed `invoice_events` not yet dispatched into deliveries at
//!   the pace slots come free. It reads events [`DISPATCH_BATCH`] at a time, with their
//!   invoices and organizations in one go; then, as slots come free, dispatches as many events
//!   as it got slots in ONE transaction, in which each event makes deliveries only if that
//!   transaction flips its mark (see `store/webhooks`), and the new deliveries are leased to
//!   this worker as they are inserted and handed straight to the delivery loop. So the outbox
//!   is the queue, and a delivery is written twice (made, attempted) rather than leased again
//!   in between. Deliveries beyond its slots (several endpoints), and the whole rest when no
//!   slot came free within [`SLOT_WAIT`] (slow receivers), are left for any worker to lease,
//!   and the delivery loop is woken. It goes on at once while events are waiting, and looks
//!   again every [`DISPATCH_POLL`] otherwise.
//! - The delivery loop starts an attempt for each delivery handed over, and whenever at least
//!   [`CLAIM_AT_ONCE`] slots are free (or none is busy) and deliveries may be due it leases
//!   more (with their endpoints, in one transaction), without waiting for the attempts under
//!   way. Finished attempts queue their records (at most [`RECORD_BATCH`] waiting) for a
//!   recorder task that writes whatever has queued up in one transaction, each record (log row,
//!   delivery state, endpoint health) only while its worker still holds the lease. It looks
//!   for due deliveries when woken by the dispatcher, while its leases come full, and every
//!   tick (retries coming due, deliveries other processes made).
//!
//! Both are safe with several processes on one database: an event is dispatched by the one
//! transaction that flips its mark, a delivery is attempted by the worker holding its lease
//! (longer than the attempt timeout). cancelling its token ends both loops and waits for the
//! attempts in hand and their records.
//!
//! An attempt: 2xx is delivered; 410 gives up and disables the endpoint; 429 and 503 with
//! `Retry-After` (seconds) retry after that long; anything else (3xx included: redirects are
//! never followed, a timeout, a refused connection, an SSRF refusal) retries on the schedule
//! with ±10 % jitter, and gives up when the schedule is spent. An endpoint whose attempts all
//! failed for `disable_after` is disabled with the reason. Every attempt is logged.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng as _;
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use super::payloads::{self, EventFacts};
use super::ssrf;
use super::{signing, SimulateResult, WebhookError, Webhooks, EXCERPT_BYTES};
use crate::store::{
    AttemptOutcome, AttemptRecord, BodyBuilder, EndpointHealth, WebhookDelivery, WebhookEndpoint,
    WebhookFormat,
};

/// Events read at a time by the dispatcher (dispatched as slots come free).
const DISPATCH_BATCH: u32 = 256;
/// How often the dispatcher looks for new events when the last batch was not full.
const DISPATCH_POLL: Duration = Duration::from_millis(50);
/// Attempts in hand at once per process, from the lease until the attempt ends (also the
/// most requests one endpoint gets at once from one process).
const IN_FLIGHT: usize = 128;
/// Deliveries are leased when at least this many slots are free (or none is busy), so leases
/// come in batches rather than one transaction per finished attempt.
const CLAIM_AT_ONCE: usize = 32;
/// How long the dispatcher waits for free slots before it dispatches without leasing (slow
/// receivers hold them all).
const SLOT_WAIT: Duration = Duration::from_millis(500);
/// Attempts' records waiting to be written, and written in one transaction, at most.
const RECORD_BATCH: usize = IN_FLIGHT;
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// What one HTTP attempt gave.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sent {
    status: Option<u16>,
    latency_ms: i64,
    excerpt: Option<String>,
    error: Option<String>,
    retry_after: Option<Duration>,
}

impl Sent {
    fn delivered(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// A delivery leased to this worker, its endpoint (`None`: gone) and the slot it holds.
type Leased = (
    WebhookDelivery,
    Option<WebhookEndpoint>,
    OwnedSemaphorePermit,
);

/// An event ready to dispatch: its id, its organization, the builder of its bodies.
type Prepared = (i64, i64, BodyBuilder);

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

/// What the two loops of one worker share.
struct Pipeline {
    worker_id: String,
    /// One permit per attempt in hand.
    slots: Arc<Semaphore>,
    /// Rung by the dispatcher when it left deliveries to lease.
    wake: Notify,
}

/// Up to `n` of the free slots, if any.
fn take_slots(slots: &Arc<Semaphore>, n: usize) -> Option<OwnedSemaphorePermit> {
    let n = n.min(slots.available_permits());
    let n = u32::try_from(n).ok().filter(|&n| n > 0)?;
    slots.clone().try_acquire_many_owned(n).ok()
}

/// Waits (at most [`SLOT_WAIT`]) for a few free slots for `events` events to dispatch, then
/// takes every free one (an event may make several deliveries); `None` when none came free.
async fn wait_for_slots(slots: &Arc<Semaphore>, events: usize) -> Option<OwnedSemaphorePermit> {
    let want = u32::try_from(events.clamp(1, CLAIM_AT_ONCE)).ok()?;
    let mut permits = tokio::time::timeout(SLOT_WAIT, slots.clone().acquire_many_owned(want))
        .await
        .ok()?
        .ok()?;
    if let Some(more) = take_slots(slots, IN_FLIGHT) {
        permits.merge(more);
    }
    Some(permits)
}

/// Splits `permits` into one per delivery of `leased`; the permits left over are released.
fn with_slots(
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
    /// Starts this process's dispatcher and delivery worker under `worker_id`; they end when
    /// `stop` is cancelled, after the attempts in hand and their records.
    pub fn start_worker(&self, worker_id: String, stopped: CancellationToken) -> JoinHandle<()> {
        let webhooks = self.clone();
        tokio::spawn(async move {
            let pipeline = Arc::new(Pipeline {
                worker_id,
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
            let (dispatched, _, _) = self.dispatch_events(events, None).await?;
            if dispatched == 0 {
                break;
            }
            done += dispatched;
        }
        let limit = u32::try_from(IN_FLIGHT).unwrap_or(u32::MAX);
        loop {
            let leased = self
                .store()
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

    /// Dispatches while events are waiting, then polls. Events are read (with what their
    /// bodies are made from) [`DISPATCH_BATCH`] at a time into `ready`, and dispatched as
    /// slots come free. Deliveries leased in the dispatch go to `handed`; if some were left to
    /// lease, the delivery loop is woken.
    async fn dispatch_loop(
        &self,
        pipeline: &Pipeline,
        handed: &mpsc::UnboundedSender<Vec<Leased>>,
        stopped: CancellationToken,
    ) {
        let mut ready: VecDeque<Prepared> = VecDeque::new();
        let mut more = false;
        while !stopped.is_cancelled() {
            if ready.is_empty() {
                match self.prepare_events().await {
                    Ok(events) => {
                        more = events.len() >= usize::try_from(DISPATCH_BATCH).unwrap_or(0);
                        ready.extend(events);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "webhook dispatch failed");
                        more = false;
                    }
                }
            }
            if !ready.is_empty() {
                // As many events as slots came free (each usually makes one delivery), their
                // deliveries leased as they are made; all of them, unleased, if none did.
                let permits = wait_for_slots(&pipeline.slots, ready.len()).await;
                let n = permits
                    .as_ref()
                    .map_or(ready.len(), |p| p.num_permits().min(ready.len()));
                let batch: Vec<Prepared> = ready.drain(..n).collect();
                match self
                    .dispatch_prepared(batch, permits.map(|p| (pipeline, p)))
                    .await
                {
                    Ok((made, leased)) => {
                        let handed_over = leased.len();
                        if handed_over > 0 {
                            // The delivery loop outlives this one: the send does not fail.
                            let _ = handed.send(leased);
                        }
                        if made > handed_over {
                            pipeline.wake.notify_one();
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "webhook dispatch failed"),
                }
            }
            if ready.is_empty() && !more {
                tokio::select! {
                    () = tokio::time::sleep(DISPATCH_POLL) => {}
                    () = stopped.cancelled() => {}
                }
            }
        }
    }

    /// Attempts what the dispatcher hands over and leases more while slots are free, until
    /// stopped; then waits for the dispatcher, attempts what it handed over last, and waits
    /// for every attempt in hand and its record.
    async fn delivery_loop(
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

    /// How long a lease lasts: longer than an attempt may take (its timeout) by a margin for
    /// recording it, and no longer, so that the deliveries of a process that died are taken up
    /// by another within about one timeout.
    fn lease_ms(&self) -> i64 {
        let lease = self
            .inner
            .config
            .timeout
            .saturating_add(Duration::from_secs(5));
        i64::try_from(lease.as_millis()).unwrap_or(i64::MAX)
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
        if look == Look::Maybe && !self.store().webhook_deliveries_due(now).await? {
            return Ok(Some((Vec::new(), false)));
        }
        let Some(permits) = take_slots(&pipeline.slots, free) else {
            return Ok(None);
        };
        let limit = permits.num_permits();
        let leased = self
            .store()
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
    async fn record(&self, records: Vec<AttemptRecord>) {
        let ids: Vec<i64> = records.iter().map(|r| r.delivery).collect();
        let failed = match self.store().record_webhook_attempts(records.clone()).await {
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
            match self.store().record_webhook_attempt(record).await {
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

    /// Up to [`DISPATCH_BATCH`] undispatched events, oldest first, each with the builder of its
    /// bodies: their invoices and organizations are read in one go.
    async fn prepare_events(&self) -> Result<Vec<Prepared>, WebhookError> {
        let events = self.store().undispatched_events(DISPATCH_BATCH).await?;
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let (invoices, slugs) = self
            .store()
            .webhook_event_rows(
                events.iter().map(|e| e.invoice_id).collect(),
                events.iter().map(|e| e.org_id).collect(),
            )
            .await?;
        // Refund events are few: their refunds are read one by one.
        let mut refunds = HashMap::new();
        for id in events.iter().filter_map(|e| e.refund_id) {
            if let Entry::Vacant(slot) = refunds.entry(id) {
                slot.insert(self.store().refund_by_id(id).await?);
            }
        }
        Ok(events
            .into_iter()
            .map(|event| {
                let (event_id, org_id) = (event.id, event.org_id);
                let refund = event
                    .refund_id
                    .and_then(|id| refunds.get(&id).cloned().flatten());
                let user_id = slugs
                    .get(&org_id)
                    .cloned()
                    .unwrap_or_else(|| org_id.to_string());
                // An event whose invoice is gone is marked dispatched with nothing to send.
                let facts = invoices.get(&event.invoice_id).map(|invoice| EventFacts {
                    event,
                    invoice: invoice.clone(),
                    refund,
                    user_id,
                });
                let body: BodyBuilder = Arc::new(move |delivery_id, endpoint| {
                    let facts = facts.as_ref()?;
                    payloads::event_body(endpoint.format, facts, delivery_id)
                });
                (event_id, org_id, body)
            })
            .collect())
    }

    /// Dispatches `batch` in one transaction (one by one if that fails); with `slots`, as
    /// many of the new deliveries as there are slots are leased to the pipeline's worker.
    /// How many deliveries were made, and those leased, each with its slot.
    async fn dispatch_prepared(
        &self,
        batch: Vec<Prepared>,
        slots: Option<(&Pipeline, OwnedSemaphorePermit)>,
    ) -> Result<(usize, Vec<Leased>), WebhookError> {
        let now = self.now_ms();
        let lease = slots.as_ref().map(|(pipeline, permits)| {
            (
                pipeline.worker_id.clone(),
                now.saturating_add(self.lease_ms()),
                permits.num_permits(),
            )
        });
        let (_, made, leased) = self.dispatch_events(batch, lease).await?;
        let leased = match slots {
            Some((_, permits)) => with_slots(
                leased.into_iter().map(|(d, e)| (d, Some(e))).collect(),
                permits,
            ),
            None => Vec::new(),
        };
        Ok((made, leased))
    }

    /// Dispatches `batch` in one transaction, leasing up to `lease` = `(worker, until, max)`
    /// of the new deliveries; if that fails, event by event (leasing none), so that one event
    /// that cannot be dispatched does not hold up the others. Events dispatched here,
    /// deliveries made, deliveries leased.
    async fn dispatch_events(
        &self,
        batch: Vec<Prepared>,
        lease: Option<(String, i64, usize)>,
    ) -> Result<(usize, usize, Vec<(WebhookDelivery, WebhookEndpoint)>), WebhookError> {
        let done = match self
            .store()
            .dispatch_events(batch.clone(), self.now_ms(), lease)
            .await
        {
            Ok(done) => done,
            Err(e) if batch.len() > 1 => {
                tracing::warn!(error = %e, events = batch.len(), "dispatching webhook events together failed; one by one");
                let mut done = (0, 0, Vec::new());
                let mut first_error = None;
                for (event_id, org_id, body) in batch {
                    match self
                        .store()
                        .dispatch_event(org_id, event_id, self.now_ms(), body)
                        .await
                    {
                        Ok(Some(made)) => {
                            done.0 += 1;
                            done.1 += made;
                        }
                        Ok(None) => {}
                        Err(e) => {
                            tracing::error!(event = event_id, error = %e, "webhook event not dispatched");
                            first_error.get_or_insert(e);
                        }
                    }
                }
                match first_error {
                    Some(e) if done.0 == 0 => return Err(e.into()),
                    _ => done,
                }
            }
            Err(e) => return Err(e.into()),
        };
        if done.1 > 0 {
            tracing::debug!(
                events = done.0,
                deliveries = done.1,
                "webhook events dispatched"
            );
        }
        Ok(done)
    }

    /// Makes one attempt of a leased delivery to `endpoint` (as read after the lease; `None`
    /// when it is gone); its record, to be written while the lease is held. A delivery whose
    /// endpoint is gone or disabled is given up here without an attempt (`None`).
    async fn attempt(
        &self,
        worker: &str,
        delivery: WebhookDelivery,
        endpoint: Option<WebhookEndpoint>,
    ) -> Result<Option<AttemptRecord>, WebhookError> {
        let endpoint = match endpoint {
            Some(endpoint) if endpoint.is_active => endpoint,
            found => {
                let reason = if found.is_some() {
                    "the endpoint is disabled"
                } else {
                    "the endpoint was deleted"
                };
                self.store()
                    .abandon_webhook_delivery(delivery.id, worker, reason, self.now_ms())
                    .await?;
                return Ok(None);
            }
        };
        let at = self.now_ms();
        let sent = self.send(&endpoint, &delivery, false).await?;
        let config = &self.inner.config;
        let (outcome, health) = if sent.delivered() {
            (AttemptOutcome::Delivered, EndpointHealth::Healthy)
        } else if sent.status == Some(410) {
            (
                AttemptOutcome::GiveUp,
                EndpointHealth::Disable("disabled: the endpoint answered 410 Gone".to_owned()),
            )
        } else {
            let step = usize::try_from(delivery.schedule_step).unwrap_or(usize::MAX);
            let outcome = match config.retry_schedule.get(step) {
                Some(delay) => {
                    let delay = sent.retry_after.unwrap_or_else(|| jitter(*delay));
                    let delay_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
                    AttemptOutcome::RetryAt(self.now_ms().saturating_add(delay_ms))
                }
                None => AttemptOutcome::GiveUp,
            };
            let health = EndpointHealth::Failing {
                disable_after_ms: i64::try_from(config.disable_after.as_millis())
                    .unwrap_or(i64::MAX),
                reason: format!(
                    "disabled: every delivery failed for {} (last error: {})",
                    human(config.disable_after),
                    sent.error.as_deref().unwrap_or("unknown")
                ),
            };
            (outcome, health)
        };
        if matches!(outcome, AttemptOutcome::GiveUp) && !sent.delivered() {
            tracing::warn!(
                delivery = delivery.id,
                endpoint = endpoint.id,
                "webhook delivery given up"
            );
        }
        Ok(Some(AttemptRecord {
            delivery: delivery.id,
            worker: Some(worker.to_owned()),
            at,
            status_code: sent.status.map(i64::from),
            latency_ms: sent.latency_ms,
            response_excerpt: sent.excerpt,
            error: sent.error,
            outcome,
            health,
        }))
    }

    /// Sends `delivery`'s bytes to `endpoint`, signed; never fails for the receiver's sake
    /// (its failures are in [`Sent`]), only when the secret cannot be opened.
    async fn send(
        &self,
        endpoint: &WebhookEndpoint,
        delivery: &WebhookDelivery,
        test: bool,
    ) -> Result<Sent, WebhookError> {
        let secrets = self.signing_secrets(endpoint)?;
        let started = Instant::now();
        let elapsed =
            |started: Instant| i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let policy = ssrf::TargetPolicy {
            allow_private: self.inner.config.allow_private,
            https_only: self.inner.config.https_only,
        };
        // The form and an IP-literal host are checked here; names by the client's resolver.
        let url = match ssrf::check_form(&endpoint.url, policy) {
            Ok(url) => url,
            Err(message) => {
                return Ok(Sent {
                    status: None,
                    latency_ms: 0,
                    excerpt: None,
                    error: Some(format!("refused: {message}")),
                    retry_after: None,
                })
            }
        };
        // The receiver checks this against its own wall clock (replay window): never the
        // gateway's clock, which tests and the sandbox move.
        let timestamp = crate::clock::wall_ms() / 1000;
        let mut request = self
            .inner
            .client
            .post(url)
            .header("content-type", "application/json");
        for (name, value) in signing::signature_headers(
            endpoint.format,
            &secrets,
            &delivery.delivery_id,
            timestamp,
            &delivery.payload,
        ) {
            request = request.header(name, value);
        }
        if test {
            request = request.header("webhook-test", "true");
        }
        let response = match request.body(delivery.payload.clone()).send().await {
            Ok(response) => response,
            Err(e) => {
                return Ok(Sent {
                    status: None,
                    latency_ms: elapsed(started),
                    excerpt: None,
                    error: Some(describe(&e, self.inner.config.timeout)),
                    retry_after: None,
                })
            }
        };
        let status = response.status().as_u16();
        let retry_after = if status == 429 || status == 503 {
            response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(|secs| Duration::from_secs(secs).min(MAX_RETRY_AFTER))
        } else {
            None
        };
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let (excerpt, read_error) = read_excerpt(response).await;
        let error = match status {
            200..=299 => None,
            300..=399 => Some(format!(
                "answered {status}, a redirect{}; redirects are not followed",
                location.map_or_else(String::new, |l| format!(" to {l}"))
            )),
            _ => Some(format!("answered {status}")),
        };
        let error = match (error, read_error) {
            (Some(e), _) => Some(e),
            (None, Some(r)) if !(200..300).contains(&status) => Some(r),
            (None, _) => None,
        };
        Ok(Sent {
            status: Some(status),
            latency_ms: elapsed(started),
            excerpt,
            error,
            retry_after,
        })
    }

    /// Sends a test event `event` (one of xPayment's event types) now to the endpoint named
    /// `subscription_id`, or to every active xpayment-format endpoint of the organization,
    /// and logs each as a test delivery. `NotFound` for an unknown subscription.
    pub async fn simulate(
        &self,
        org_id: i64,
        event: &str,
        merchant_order_id: Option<&str>,
        subscription_id: Option<&str>,
    ) -> Result<Vec<SimulateResult>, WebhookError> {
        if !payloads::XPAYMENT_EVENTS.contains(&event) {
            return Err(WebhookError::Invalid {
                field: "event",
                message: format!(
                    "event must be one of {}",
                    payloads::XPAYMENT_EVENTS.join(", ")
                ),
            });
        }
        let endpoints = match subscription_id {
            Some(id) => {
                let endpoint = self
                    .store()
                    .webhook_endpoint_by_uuid(org_id, id)
                    .await?
                    .filter(|e| e.format == WebhookFormat::XPayment)
                    .ok_or(WebhookError::NotFound)?;
                vec![endpoint]
            }
            None => {
                let mut all = self.subscriptions(org_id).await?;
                all.retain(|e| e.is_active);
                all
            }
        };
        let user_id = self
            .store()
            .org_by_id(org_id)
            .await?
            .map_or_else(|| org_id.to_string(), |o| o.slug);
        let mut set = JoinSet::new();
        for endpoint in endpoints {
            let webhooks = self.clone();
            let event = event.to_owned();
            let merchant_order_id = merchant_order_id.map(str::to_owned);
            let user_id = user_id.clone();
            set.spawn(async move {
                let result = webhooks
                    .simulate_one(&endpoint, &event, merchant_order_id.as_deref(), &user_id)
                    .await;
                (endpoint, event, result)
            });
        }
        let mut results = Vec::new();
        while let Some(joined) = set.join_next().await {
            let Ok((endpoint, event, result)) = joined else {
                continue;
            };
            let (success, error) = match result {
                Ok(sent) => (sent.delivered(), sent.error),
                Err(e) => {
                    tracing::error!(endpoint = endpoint.id, error = %e, "webhook simulation failed");
                    (false, Some("internal error".to_owned()))
                }
            };
            results.push(SimulateResult {
                subscription_id: endpoint.endpoint_id,
                url: endpoint.url,
                event,
                success,
                error,
            });
        }
        results.sort_by(|a, b| a.subscription_id.cmp(&b.subscription_id));
        Ok(results)
    }

    async fn simulate_one(
        &self,
        endpoint: &WebhookEndpoint,
        event: &str,
        merchant_order_id: Option<&str>,
        user_id: &str,
    ) -> Result<Sent, WebhookError> {
        let delivery_id = uuid::Uuid::new_v4().to_string();
        let now = self.now_ms();
        let payload = payloads::simulated_body(
            event,
            merchant_order_id,
            endpoint.org_id,
            user_id,
            &delivery_id,
            now,
        )
        .ok_or_else(|| WebhookError::Invalid {
            field: "event",
            message: "unknown event".into(),
        })?;
        let delivery = self
            .store()
            .insert_test_delivery(endpoint, &delivery_id, event, payload, now)
            .await?;
        let sent = self.send(endpoint, &delivery, true).await?;
        let outcome = if sent.delivered() {
            AttemptOutcome::Delivered
        } else {
            AttemptOutcome::GiveUp
        };
        self.store()
            .record_webhook_attempt(AttemptRecord {
                delivery: delivery.id,
                worker: None,
                at: now,
                status_code: sent.status.map(i64::from),
                latency_ms: sent.latency_ms,
                response_excerpt: sent.excerpt.clone(),
                error: sent.error.clone(),
                outcome,
                health: EndpointHealth::Untouched,
            })
            .await?;
        Ok(sent)
    }
}

/// A duration for people: `5 days`, `3 hours`, `40 seconds`.
fn human(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        s if s >= 86_400 && s % 86_400 == 0 => format!("{} days", s / 86_400),
        s if s >= 3_600 => format!("{} hours", s / 3_600),
        s => format!("{s} seconds"),
    }
}

/// `delay` ±10 %.
fn jitter(delay: Duration) -> Duration {
    let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
    let spread = ms / 10;
    if spread == 0 {
        return delay;
    }
    let offset = rand::thread_rng().gen_range(0..=2 * spread);
    Duration::from_millis(ms.saturating_sub(spread).saturating_add(offset))
}

/// The first [`EXCERPT_BYTES`] of the answer, as text, and a read error if one came first.
async fn read_excerpt(mut response: reqwest::Response) -> (Option<String>, Option<String>) {
    let mut bytes: Vec<u8> = Vec::new();
    let mut error = None;
    while bytes.len() < EXCERPT_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(e) => {
                error = Some(format!("reading the answer: {}", chain(&e)));
                break;
            }
        }
    }
    bytes.truncate(EXCERPT_BYTES);
    let text = String::from_utf8_lossy(&bytes).into_owned();
    ((!text.is_empty()).then_some(text), error)
}

/// A send error as a sentence: a timeout names the limit, else the cause chain.
fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        format!("timed out after {} s", timeout.as_secs())
    } else {
        chain(e)
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
