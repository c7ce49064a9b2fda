//! The dispatcher and the delivery worker, and the one function that makes an attempt.
//!
//! Every tick: committed `invoice_events` not yet dispatched become deliveries
//! ([`Webhooks::dispatch_pending`]), then due deliveries are leased and attempted
//! ([`Webhooks::deliver_due`]). Both are safe with several processes on one database: an
//! event is dispatched by the one transaction that flips its mark, a delivery is attempted by
//! the worker holding its lease (longer than the attempt timeout).
//!
//! An attempt: 2xx is delivered; 410 gives up and disables the endpoint; 429 and 503 with
//! `Retry-After` (seconds) retry after that long; anything else (3xx included: redirects are
//! never followed, a timeout, a refused connection, an SSRF refusal) retries on the schedule
//! with ±10 % jitter, and gives up when the schedule is spent. An endpoint whose attempts all
//! failed for `disable_after` is disabled with the reason. Every attempt is logged.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rand::Rng as _;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::payloads::{self, EventFacts};
use super::ssrf;
use super::{now_ms, signing, SimulateResult, WebhookError, Webhooks, EXCERPT_BYTES};
use crate::store::{
    AttemptOutcome, AttemptRecord, BodyBuilder, EndpointHealth, WebhookDelivery, WebhookEndpoint,
    WebhookFormat,
};

/// Events dispatched per round.
const DISPATCH_BATCH: u32 = 100;
/// Deliveries attempted at once per process.
const DELIVERY_BATCH: u32 = 32;
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The running worker; `stop` ends it after the attempts in hand.
pub struct WebhookWorker {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl WebhookWorker {
    /// Stops the worker and waits for the attempts in hand.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

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

impl Webhooks {
    /// Starts this process's dispatcher and delivery worker under `worker_id`.
    pub fn start_worker(&self, worker_id: String) -> WebhookWorker {
        let (stop, mut stopped) = watch::channel(false);
        let webhooks = self.clone();
        let task = tokio::spawn(async move {
            loop {
                let worked = webhooks.run_once(&worker_id).await;
                if *stopped.borrow() {
                    break;
                }
                if worked == 0 {
                    tokio::select! {
                        () = tokio::time::sleep(webhooks.inner.tick) => {}
                        _ = stopped.changed() => break,
                    }
                }
            }
        });
        WebhookWorker { stop, task }
    }

    /// One round: dispatch what is new, attempt what is due; how much was done.
    pub async fn run_once(&self, worker_id: &str) -> usize {
        let dispatched = match self.dispatch_pending().await {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "webhook dispatch failed");
                0
            }
        };
        let delivered = match self.deliver_due(worker_id).await {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "webhook delivery round failed");
                0
            }
        };
        dispatched + delivered
    }

    /// Turns undispatched events into deliveries; how many events were dispatched here.
    pub async fn dispatch_pending(&self) -> Result<usize, WebhookError> {
        let events = self.store().undispatched_events(DISPATCH_BATCH).await?;
        let mut slugs: HashMap<i64, String> = HashMap::new();
        let mut dispatched = 0;
        for event in events {
            let invoice = self.store().invoice_by_id(event.invoice_id).await?;
            let refund = match event.refund_id {
                Some(id) => self.store().refund_by_id(id).await?,
                None => None,
            };
            let user_id = match slugs.get(&event.org_id) {
                Some(slug) => slug.clone(),
                None => {
                    let slug = self
                        .store()
                        .org_by_id(event.org_id)
                        .await?
                        .map_or_else(|| event.org_id.to_string(), |o| o.slug);
                    slugs.insert(event.org_id, slug.clone());
                    slug
                }
            };
            let (org_id, event_id) = (event.org_id, event.id);
            // An event whose invoice is gone is marked dispatched with nothing to send.
            let facts = invoice.map(|invoice| EventFacts {
                event,
                invoice,
                refund,
                user_id,
            });
            let body: BodyBuilder = std::sync::Arc::new(move |delivery_id, endpoint| {
                let facts = facts.as_ref()?;
                payloads::event_body(endpoint.format, facts, delivery_id)
            });
            if let Some(made) = self
                .store()
                .dispatch_event(org_id, event_id, now_ms(), body)
                .await?
            {
                dispatched += 1;
                if made > 0 {
                    tracing::debug!(event = event_id, deliveries = made, "event dispatched");
                }
            }
        }
        Ok(dispatched)
    }

    /// Leases due deliveries and attempts them; how many were attempted.
    pub async fn deliver_due(&self, worker_id: &str) -> Result<usize, WebhookError> {
        let now = now_ms();
        if !self.store().webhook_deliveries_due(now).await? {
            return Ok(0);
        }
        let lease = self
            .inner
            .config
            .timeout
            .saturating_add(Duration::from_secs(60));
        let deliveries = self
            .store()
            .claim_webhook_deliveries(
                worker_id,
                now,
                i64::try_from(lease.as_millis()).unwrap_or(i64::MAX),
                DELIVERY_BATCH,
            )
            .await?;
        let count = deliveries.len();
        let mut set = JoinSet::new();
        for delivery in deliveries {
            let webhooks = self.clone();
            let worker = worker_id.to_owned();
            set.spawn(async move {
                let id = delivery.id;
                if let Err(e) = webhooks.attempt(&worker, delivery).await {
                    tracing::error!(delivery = id, error = %e, "webhook attempt not recorded");
                }
            });
        }
        while set.join_next().await.is_some() {}
        Ok(count)
    }

    /// Makes one attempt of a leased delivery and records it.
    async fn attempt(&self, worker: &str, delivery: WebhookDelivery) -> Result<(), WebhookError> {
        let endpoint = match self
            .store()
            .webhook_endpoint_by_id(delivery.endpoint_id)
            .await?
        {
            Some(endpoint) if endpoint.is_active => endpoint,
            found => {
                let reason = if found.is_some() {
                    "the endpoint is disabled"
                } else {
                    "the endpoint was deleted"
                };
                self.store()
                    .abandon_webhook_delivery(delivery.id, worker, reason, now_ms())
                    .await?;
                return Ok(());
            }
        };
        let at = now_ms();
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
                    AttemptOutcome::RetryAt(now_ms().saturating_add(delay_ms))
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
        self.store()
            .record_webhook_attempt(AttemptRecord {
                delivery: delivery.id,
                worker: Some(worker.to_owned()),
                at,
                status_code: sent.status.map(i64::from),
                latency_ms: sent.latency_ms,
                response_excerpt: sent.excerpt,
                error: sent.error,
                outcome,
                health,
            })
            .await?;
        Ok(())
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
        let timestamp = now_ms() / 1000;
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
        let now = now_ms();
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
