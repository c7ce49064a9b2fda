//! The dispatcher: committed `invoice_events` read a batch at a time with what their bodies
//! are made from, and dispatched into deliveries as slots come free (see `worker.rs`).

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::payloads::{self, EventFacts};
use super::worker::{take_slots, with_slots, Leased, Pipeline, CLAIM_AT_ONCE, IN_FLIGHT};
use super::{WebhookError, Webhooks};
use crate::store::{DispatchLease, Dispatched, EventToDispatch, FormatBody, WebhookFormat};

/// Events read at a time by the dispatcher (dispatched as slots come free).
const DISPATCH_BATCH: u32 = 256;
/// How long the dispatcher waits for free slots before it dispatches without leasing (slow
/// receivers hold them all).
const SLOT_WAIT: Duration = Duration::from_millis(500);

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

impl Webhooks {
    /// Dispatches while events are waiting, then waits for the commit of an event in this
    /// process ([`crate::store::Store::events_committed`]) or, for those of other processes,
    /// the pipeline's poll interval. Events are read (with what their bodies are made from)
    /// [`DISPATCH_BATCH`] at a time into `ready`, and dispatched as slots come free.
    /// Deliveries leased in the dispatch go to `handed`; if some were left to lease, the
    /// delivery loop is woken.
    pub(super) async fn dispatch_loop(
        &self,
        pipeline: &Pipeline,
        handed: &mpsc::UnboundedSender<Vec<Leased>>,
        stopped: CancellationToken,
    ) {
        let mut ready: VecDeque<EventToDispatch> = VecDeque::new();
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
                let batch: Vec<EventToDispatch> = ready.drain(..n).collect();
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
                // A commit since the last read left its wake-up here: none is lost.
                tokio::select! {
                    () = self.store().events_committed().notified() => {}
                    () = tokio::time::sleep(pipeline.poll) => {}
                    () = stopped.cancelled() => {}
                }
            }
        }
    }

    /// Up to [`DISPATCH_BATCH`] undispatched events, oldest first, each with its bodies
    /// rendered, one per format that the organization's active endpoints have: their invoices
    /// and organizations are read in one go.
    pub(super) async fn prepare_events(&self) -> Result<Vec<EventToDispatch>, WebhookError> {
        let events = self
            .store()
            .webhooks()
            .undispatched_events(DISPATCH_BATCH)
            .await?;
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut rows = self
            .store()
            .webhooks()
            .webhook_event_rows(
                events.iter().map(|e| e.invoice_id).collect(),
                events.iter().map(|e| e.org_id).collect(),
            )
            .await?;
        let mut subscription_ids: Vec<i64> =
            events.iter().filter_map(|e| e.subscription_id).collect();
        subscription_ids.sort_unstable();
        subscription_ids.dedup();
        rows.subscriptions = self
            .store()
            .subscriptions()
            .subscriptions_by_id(subscription_ids)
            .await?
            .into_iter()
            .map(|s| (s.id, s))
            .collect();
        // Refund events are few: their refunds are read one by one.
        let mut refunds = HashMap::new();
        for id in events.iter().filter_map(|e| e.refund_id) {
            if let Entry::Vacant(slot) = refunds.entry(id) {
                slot.insert(self.store().refunds().refund_by_id(id).await?);
            }
        }
        Ok(events
            .into_iter()
            .map(|event| {
                let (event_id, org_id) = (event.id, event.org_id);
                let refund = event
                    .refund_id
                    .and_then(|id| refunds.get(&id).cloned().flatten());
                let user_id = rows
                    .slugs
                    .get(&org_id)
                    .cloned()
                    .unwrap_or_else(|| org_id.to_string());
                // An event whose invoice is gone is marked dispatched with nothing to send.
                let facts = rows
                    .invoices
                    .get(&event.invoice_id)
                    .map(|invoice| EventFacts {
                        subscription: event
                            .subscription_id
                            .and_then(|id| rows.subscriptions.get(&id).cloned()),
                        event,
                        invoice: invoice.clone(),
                        refund,
                        user_id,
                    });
                // Only the formats in use: rendering the others would be wasted.
                let formats = rows.formats.get(&org_id);
                let body = |format| {
                    if !formats.is_some_and(|f| f.contains(&format)) {
                        return FormatBody::NotRendered;
                    }
                    facts
                        .as_ref()
                        .and_then(|facts| payloads::event_payload(format, facts))
                        .map_or(FormatBody::Nothing, FormatBody::Rendered)
                };
                EventToDispatch {
                    event_id,
                    org_id,
                    apipay: body(WebhookFormat::ApiPay),
                    xpayment: body(WebhookFormat::XPayment),
                }
            })
            .collect())
    }

    /// Dispatches `batch` in one transaction (one by one if that fails); with `slots`, as
    /// many of the new deliveries as there are slots are leased to the pipeline's worker.
    /// How many deliveries were made, and those leased, each with its slot.
    async fn dispatch_prepared(
        &self,
        batch: Vec<EventToDispatch>,
        slots: Option<(&Pipeline, OwnedSemaphorePermit)>,
    ) -> Result<(usize, Vec<Leased>), WebhookError> {
        let now = self.now_ms();
        let lease = slots.as_ref().map(|(pipeline, permits)| DispatchLease {
            worker: pipeline.worker_id.clone(),
            until: now.saturating_add(self.lease_ms()),
            max: permits.num_permits(),
        });
        let done = self.dispatch_events(batch, lease).await?;
        let leased = match slots {
            Some((_, permits)) => with_slots(
                done.leased.into_iter().map(|(d, e)| (d, Some(e))).collect(),
                permits,
            ),
            None => Vec::new(),
        };
        Ok((done.made, leased))
    }

    /// Dispatches `batch` in one transaction, leasing up to `lease.max` of the new deliveries;
    /// if that fails, event by event (leasing none), so that one event that cannot be
    /// dispatched does not hold up the others. Events dispatched here, deliveries made,
    /// deliveries leased.
    pub(super) async fn dispatch_events(
        &self,
        batch: Vec<EventToDispatch>,
        lease: Option<DispatchLease>,
    ) -> Result<Dispatched, WebhookError> {
        let done = match self
            .store()
            .webhooks()
            .dispatch_events(batch.clone(), self.now_ms(), lease)
            .await
        {
            Ok(done) => done,
            Err(e) if batch.len() > 1 => {
                tracing::warn!(error = %e, events = batch.len(), "dispatching webhook events together failed; one by one");
                let mut done = Dispatched::default();
                let mut first_error = None;
                for event in batch {
                    let event_id = event.event_id;
                    match self
                        .store()
                        .webhooks()
                        .dispatch_events(vec![event], self.now_ms(), None)
                        .await
                    {
                        Ok(one) => {
                            done.events += one.events;
                            done.made += one.made;
                            done.left += one.left;
                        }
                        Err(e) => {
                            tracing::error!(event = event_id, error = %e, "webhook event not dispatched");
                            first_error.get_or_insert(e);
                        }
                    }
                }
                match first_error {
                    Some(e) if done.events == 0 => return Err(e.into()),
                    _ => done,
                }
            }
            Err(e) => return Err(e.into()),
        };
        if done.made > 0 {
            tracing::debug!(
                events = done.events,
                deliveries = done.made,
                "webhook events dispatched"
            );
        }
        Ok(done)
    }
}
