//! One attempt of a delivery: the signed request, what came back (status, excerpt, error),
//! and what it does to the delivery and the endpoint (the record to write).
//!
//! An attempt: 2xx is delivered; 410 gives up and disables the endpoint; 429 and 503 with
//! `Retry-After` (seconds) retry after that long; anything else (3xx included: redirects are
//! never followed, a timeout, a refused connection, an SSRF refusal) retries on the schedule
//! with ±10 % jitter, and gives up when the schedule is spent. An endpoint whose attempts all
//! failed for `disable_after` is disabled with the reason. Every attempt is logged.

use std::time::{Duration, Instant};

use rand::Rng as _;

use super::{signing, ssrf, WebhookError, Webhooks, EXCERPT_BYTES};
use crate::store::{
    AttemptOutcome, AttemptRecord, EndpointHealth, WebhookDelivery, WebhookEndpoint,
};

/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// What one HTTP attempt gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Sent {
    pub(super) status: Option<u16>,
    pub(super) latency_ms: i64,
    pub(super) excerpt: Option<String>,
    pub(super) error: Option<String>,
    pub(super) retry_after: Option<Duration>,
}

impl Sent {
    pub(super) fn delivered(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

impl Webhooks {
    /// Makes one attempt of a leased delivery to `endpoint` (as read after the lease; `None`
    /// when it is gone); its record, to be written while the lease is held. A delivery whose
    /// endpoint is gone or disabled is given up here without an attempt (`None`).
    pub(super) async fn attempt(
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
                    .webhooks()
                    .abandon_webhook_delivery(delivery.id, worker, reason, self.now_ms())
                    .await?;
                crate::metrics::webhook_attempt("dead", None);
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
        crate::metrics::webhook_attempt(
            match outcome {
                AttemptOutcome::Delivered => "delivered",
                AttemptOutcome::RetryAt(_) => "retry",
                AttemptOutcome::GiveUp => "dead",
            },
            Some(Duration::from_millis(
                u64::try_from(sent.latency_ms).unwrap_or(0),
            )),
        );
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
    pub(super) async fn send(
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
