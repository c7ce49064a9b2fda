//! Webhooks: endpoints per organization, the events of the outbox turned into signed, retried,
//! logged deliveries, and the xPayment simulator.
//!
//! - [`Webhooks`] is the one function layer the API (`api::webhooks`,
//!   `api::webhook_simulate`) and the CLI (`kassa webhook …`) call: create (the secret is
//!   returned once), list, get, update, delete, rotate the secret, the delivery log,
//!   redelivery, simulation.
//! - `worker.rs`: the pipeline of one process, its two loops sharing slots: `dispatch.rs`, the
//!   dispatcher (committed `invoice_events` → one delivery per matching endpoint, exactly
//!   once, a batch per transaction, see `store/webhooks`), and `delivery.rs`, the delivery
//!   loop (leased rows, many attempts at once, records written in batches).
//! - `attempt.rs`: one attempt (a timeout per attempt, the retry schedule with jitter,
//!   `Retry-After`, 410, no redirects) and its record.
//! - `simulate.rs`: the xPayment simulator (test deliveries sent at once).
//! - `signing.rs`: secrets and the ApiPay, xPayment and Standard Webhooks signatures.
//! - `ssrf.rs`: which targets are refused, at saving and after resolution at delivery.
//! - `payloads.rs`: event names and bodies per format.
//!
//! Secrets are sealed with the master key (`webhook-secret:<endpoint uuid>`), opened only to
//! sign, and never logged; URLs are not logged either (they may carry tokens).

mod attempt;
pub mod cli;
mod delivery;
mod dispatch;
pub mod payloads;
pub mod signing;
mod simulate;
pub mod ssrf;
mod worker;

pub use worker::DISPATCH_POLL;

use std::sync::Arc;
use std::time::Duration;

use crate::config::WebhookConfig;
use crate::secrets::{MasterKey, SecretError};
use crate::store::{
    NewWebhookEndpoint, Store, StoreError, WebhookAttempt, WebhookDelivery, WebhookEndpoint,
    WebhookEndpointUpdate, WebhookFormat,
};

/// The longest URL accepted.
pub const MAX_URL_CHARS: usize = 2048;
/// The longest description accepted.
pub const MAX_DESCRIPTION_CHARS: usize = 500;
/// How long a rotated-out secret keeps signing unless told otherwise.
pub const DEFAULT_ROTATION_GRACE: Duration = Duration::from_secs(24 * 3600);
/// The longest grace period a rotation may ask for.
pub const MAX_ROTATION_GRACE: Duration = Duration::from_secs(7 * 24 * 3600);
/// The most bytes of an answer kept in the attempt log.
pub const EXCERPT_BYTES: usize = 1024;

/// An error of the webhook functions.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// Input that breaks a rule: the field and a sentence.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// No such endpoint or delivery for this organization.
    #[error("not found")]
    NotFound,
    /// The endpoint is disabled (redelivery asks for an active one).
    #[error("the webhook endpoint is disabled")]
    Disabled,
    #[error("a webhook secret could not be opened: {0}")]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl WebhookError {
    fn invalid(field: &'static str, message: impl Into<String>) -> WebhookError {
        WebhookError::Invalid {
            field,
            message: message.into(),
        }
    }
}

/// What a create or update asks for; `None` keeps (or, on create, defaults) a field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointInput {
    pub url: Option<String>,
    /// Event names, or `["*"]`.
    pub events: Option<Vec<String>>,
    pub format: Option<WebhookFormat>,
    /// `Some(None)` clears it.
    pub description: Option<Option<String>>,
    pub is_active: Option<bool>,
}

/// The outcome of one simulated delivery (`handler.simulateResult`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulateResult {
    /// The endpoint's UUID.
    pub subscription_id: String,
    pub url: String,
    pub event: String,
    pub success: bool,
    pub error: Option<String>,
}

/// A delivery with its logged attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryLog {
    pub delivery: WebhookDelivery,
    pub attempts: Vec<WebhookAttempt>,
}

/// The webhook service of one process; cheap to clone.
#[derive(Clone)]
pub struct Webhooks {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    master_key: MasterKey,
    config: WebhookConfig,
    /// Redirects off, no proxy, the SSRF-guarded resolver, the attempt timeout.
    client: reqwest::Client,
    /// How often the delivery loop looks for deliveries come due (retries, and those no
    /// dispatcher leased).
    tick: Duration,
}

impl Webhooks {
    /// Now on the store's clock, in unix milliseconds.
    pub(crate) fn now_ms(&self) -> i64 {
        self.inner.store.now_ms()
    }

    /// The service over `store`, signing with secrets sealed by `master_key`.
    pub fn new(
        store: Store,
        master_key: MasterKey,
        config: WebhookConfig,
    ) -> Result<Webhooks, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .dns_resolver(Arc::new(ssrf::GuardedResolver {
                allow_private: config.allow_private,
            }))
            .user_agent(concat!("Kassa-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Webhooks {
            inner: Arc::new(Inner {
                store,
                master_key,
                config,
                client,
                tick: Duration::from_millis(200),
            }),
        })
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn config(&self) -> &WebhookConfig {
        &self.inner.config
    }

    fn policy(&self) -> ssrf::TargetPolicy {
        ssrf::TargetPolicy {
            allow_private: self.inner.config.allow_private,
            https_only: self.inner.config.https_only,
        }
    }

    fn seal_context(endpoint_uuid: &str) -> String {
        format!("webhook-secret:{endpoint_uuid}")
    }

    /// The secrets that sign for `endpoint` now, newest first.
    fn signing_secrets(&self, endpoint: &WebhookEndpoint) -> Result<Vec<String>, WebhookError> {
        let context = Self::seal_context(&endpoint.endpoint_id);
        let open = |sealed: &[u8]| -> Result<String, WebhookError> {
            let bytes = self.inner.master_key.open(sealed, &context)?;
            String::from_utf8(bytes).map_err(|_| WebhookError::Secret(SecretError::Open))
        };
        let mut secrets = vec![open(&endpoint.secret_sealed)?];
        if let (Some(previous), Some(until)) = (
            &endpoint.previous_secret_sealed,
            endpoint.previous_secret_until,
        ) {
            if until > self.now_ms() {
                secrets.push(open(previous)?);
            }
        }
        Ok(secrets)
    }

    async fn check_url(&self, url: &str) -> Result<String, WebhookError> {
        let url = url.trim();
        if url.is_empty() {
            return Err(WebhookError::invalid("url", "The url field is required."));
        }
        if url.chars().count() > MAX_URL_CHARS {
            return Err(WebhookError::invalid(
                "url",
                format!("The url may not be greater than {MAX_URL_CHARS} characters."),
            ));
        }
        ssrf::check_target(url, self.policy())
            .await
            .map_err(|message| WebhookError::invalid("url", message))?;
        Ok(url.to_owned())
    }

    /// Creates an endpoint (format `apipay` and events `*` unless given); returns it and its
    /// secret, which is not shown again.
    pub async fn create(
        &self,
        org_id: i64,
        input: EndpointInput,
    ) -> Result<(WebhookEndpoint, String), WebhookError> {
        let url = self
            .check_url(input.url.as_deref().unwrap_or_default())
            .await?;
        let format = input.format.unwrap_or(WebhookFormat::ApiPay);
        let events = check_events(format, input.events.unwrap_or_else(|| vec!["*".into()]))?;
        let description = check_description(input.description.flatten())?;
        let endpoint_id = uuid::Uuid::new_v4().to_string();
        let secret = signing::new_secret();
        let secret_sealed = self
            .inner
            .master_key
            .seal(secret.as_bytes(), &Self::seal_context(&endpoint_id));
        let endpoint = self
            .store()
            .webhooks()
            .insert_webhook_endpoint(NewWebhookEndpoint {
                endpoint_id,
                org_id,
                url,
                events,
                format,
                description,
                secret_sealed,
                is_active: input.is_active.unwrap_or(true),
                created_at: self.now_ms(),
            })
            .await?;
        tracing::info!(
            org_id,
            endpoint = endpoint.id,
            format = format.as_str(),
            "webhook endpoint created"
        );
        Ok((endpoint, secret))
    }

    /// The organization's endpoints, oldest first.
    pub async fn list(&self, org_id: i64) -> Result<Vec<WebhookEndpoint>, WebhookError> {
        Ok(self
            .store()
            .webhooks()
            .list_webhook_endpoints(org_id)
            .await?)
    }

    /// Endpoint `id` of the organization.
    pub async fn get(&self, org_id: i64, id: i64) -> Result<WebhookEndpoint, WebhookError> {
        self.store()
            .webhooks()
            .webhook_endpoint(org_id, id)
            .await?
            .ok_or(WebhookError::NotFound)
    }

    /// Changes endpoint `id`. Turning it on clears the reason it was disabled.
    pub async fn update(
        &self,
        org_id: i64,
        id: i64,
        input: EndpointInput,
    ) -> Result<WebhookEndpoint, WebhookError> {
        let current = self.get(org_id, id).await?;
        let url = match input.url {
            Some(url) => Some(self.check_url(&url).await?),
            None => None,
        };
        let format = input.format.unwrap_or(current.format);
        let events = match input.events {
            Some(events) => Some(check_events(format, events)?),
            None if format != current.format => Some(check_events(format, current.events)?),
            None => None,
        };
        let description = match input.description {
            Some(d) => Some(check_description(d)?),
            None => None,
        };
        let update = WebhookEndpointUpdate {
            url,
            events,
            format: input.format,
            description,
            is_active: input.is_active,
        };
        self.store()
            .webhooks()
            .update_webhook_endpoint(org_id, id, update, self.now_ms())
            .await?
            .ok_or(WebhookError::NotFound)
    }

    /// Deletes endpoint `id` with its delivery log.
    pub async fn delete(&self, org_id: i64, id: i64) -> Result<(), WebhookError> {
        if self
            .store()
            .webhooks()
            .delete_webhook_endpoint(org_id, id)
            .await?
        {
            tracing::info!(org_id, endpoint = id, "webhook endpoint deleted");
            Ok(())
        } else {
            Err(WebhookError::NotFound)
        }
    }

    /// Gives endpoint `id` a new secret (returned, shown once); the old one keeps signing for
    /// `grace` (none when zero).
    pub async fn rotate_secret(
        &self,
        org_id: i64,
        id: i64,
        grace: Duration,
    ) -> Result<(WebhookEndpoint, String), WebhookError> {
        if grace > MAX_ROTATION_GRACE {
            return Err(WebhookError::invalid(
                "grace_period_secs",
                format!(
                    "The grace period may not be longer than {} seconds.",
                    MAX_ROTATION_GRACE.as_secs()
                ),
            ));
        }
        let current = self.get(org_id, id).await?;
        let secret = signing::new_secret();
        let sealed = self
            .inner
            .master_key
            .seal(secret.as_bytes(), &Self::seal_context(&current.endpoint_id));
        let now = self.now_ms();
        let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
        let previous =
            (grace_ms > 0).then(|| (current.secret_sealed, now.saturating_add(grace_ms)));
        let endpoint = self
            .store()
            .webhooks()
            .set_webhook_secret(org_id, id, sealed, previous, now)
            .await?
            .ok_or(WebhookError::NotFound)?;
        tracing::info!(org_id, endpoint = id, "webhook secret rotated");
        Ok((endpoint, secret))
    }

    /// A page of endpoint `id`'s deliveries (newest first) with their attempts, and how many
    /// there are in all.
    pub async fn deliveries(
        &self,
        org_id: i64,
        id: i64,
        page: u32,
        per_page: u32,
    ) -> Result<(Vec<DeliveryLog>, i64), WebhookError> {
        self.get(org_id, id).await?;
        let per_page = per_page.clamp(1, 100);
        let offset = page.saturating_sub(1).saturating_mul(per_page);
        let deliveries = self
            .store()
            .webhooks()
            .list_webhook_deliveries(org_id, id, per_page, offset)
            .await?;
        let total = self
            .store()
            .webhooks()
            .count_webhook_deliveries(org_id, id)
            .await?;
        let attempts = self
            .store()
            .webhooks()
            .webhook_attempts(deliveries.iter().map(|d| d.id).collect())
            .await?;
        let logs = deliveries
            .into_iter()
            .map(|delivery| DeliveryLog {
                attempts: attempts
                    .iter()
                    .filter(|a| a.delivery_id == delivery.id)
                    .cloned()
                    .collect(),
                delivery,
            })
            .collect();
        Ok((logs, total))
    }

    /// Queues delivery `delivery` of endpoint `id` again now, from the start of the schedule:
    /// the same `webhook-id` and the same bytes (a receiver deduplicating by `webhook-id` sees
    /// the same message). The endpoint must be active.
    pub async fn redeliver(
        &self,
        org_id: i64,
        id: i64,
        delivery: i64,
    ) -> Result<WebhookDelivery, WebhookError> {
        let endpoint = self.get(org_id, id).await?;
        if !endpoint.is_active {
            return Err(WebhookError::Disabled);
        }
        let queued = self
            .store()
            .webhooks()
            .redeliver_webhook(org_id, id, delivery, self.now_ms())
            .await?
            .ok_or(WebhookError::NotFound)?;
        tracing::info!(org_id, endpoint = id, delivery, "webhook redelivery queued");
        Ok(queued)
    }

    /// The organization's xpayment-format endpoints (xPayment's subscriptions).
    pub async fn subscriptions(&self, org_id: i64) -> Result<Vec<WebhookEndpoint>, WebhookError> {
        let mut all = self.list(org_id).await?;
        all.retain(|e| e.format == WebhookFormat::XPayment);
        Ok(all)
    }
}

/// Validates an event list for `format`: names it knows, or `*` (which then stands alone).
pub fn check_events(
    format: WebhookFormat,
    events: Vec<String>,
) -> Result<Vec<String>, WebhookError> {
    if events.is_empty() {
        return Err(WebhookError::invalid(
            "events",
            "The events field must list at least one event, or \"*\".",
        ));
    }
    if events.iter().any(|e| e == "*") {
        return Ok(vec!["*".into()]);
    }
    let known = payloads::events_of(format);
    let mut out: Vec<String> = Vec::new();
    for event in events {
        if !known.contains(&event.as_str()) {
            return Err(WebhookError::invalid(
                "events",
                format!(
                    "The event {event:?} is not one the {} format sends ({}, or \"*\").",
                    format.as_str(),
                    known.join(", ")
                ),
            ));
        }
        if !out.contains(&event) {
            out.push(event);
        }
    }
    Ok(out)
}

fn check_description(description: Option<String>) -> Result<Option<String>, WebhookError> {
    match description {
        Some(d) if d.chars().count() > MAX_DESCRIPTION_CHARS => Err(WebhookError::invalid(
            "description",
            format!("The description may not be greater than {MAX_DESCRIPTION_CHARS} characters."),
        )),
        Some(d) if d.trim().is_empty() => Ok(None),
        other => Ok(other),
    }
}
