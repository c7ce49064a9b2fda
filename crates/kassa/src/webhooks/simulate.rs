//! Test deliveries: the xPayment simulator (a made-up event sent now to one or every
//! xpayment-format endpoint of an organization) and ApiPay's `webhook.test` to one endpoint,
//! each logged as a test delivery.

use tokio::task::JoinSet;

use super::attempt::Sent;
use super::payloads;
use super::{SimulateResult, WebhookError, Webhooks};
use crate::store::{AttemptOutcome, AttemptRecord, EndpointHealth, WebhookEndpoint, WebhookFormat};

impl Webhooks {
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
                    .webhooks()
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
            .orgs()
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

    /// Sends ApiPay's `webhook.test` now to endpoint `id` of `org_id` (any format), logged as a
    /// test delivery; whether it was delivered, and why not.
    pub async fn send_test(&self, org_id: i64, id: i64) -> Result<SimulateResult, WebhookError> {
        let endpoint = self
            .store()
            .webhooks()
            .webhook_endpoint(org_id, id)
            .await?
            .ok_or(WebhookError::NotFound)?;
        let delivery_id = uuid::Uuid::new_v4().to_string();
        let now = self.now_ms();
        let payload = payloads::test_body(&delivery_id, now);
        let sent = self
            .deliver_test(&endpoint, "webhook.test", &delivery_id, payload, now)
            .await?;
        Ok(SimulateResult {
            subscription_id: endpoint.endpoint_id,
            url: endpoint.url,
            event: "webhook.test".into(),
            success: sent.delivered(),
            error: sent.error,
        })
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
        self.deliver_test(endpoint, event, &delivery_id, payload, now)
            .await
    }

    /// Sends `payload` now to `endpoint` as test delivery `delivery_id` of `event`, and logs
    /// the attempt.
    async fn deliver_test(
        &self,
        endpoint: &WebhookEndpoint,
        event: &str,
        delivery_id: &str,
        payload: Vec<u8>,
        now: i64,
    ) -> Result<Sent, WebhookError> {
        let delivery = self
            .store()
            .webhooks()
            .insert_test_delivery(endpoint, delivery_id, event, payload, now)
            .await?;
        let sent = self.send(endpoint, &delivery, true).await?;
        let outcome = if sent.delivered() {
            AttemptOutcome::Delivered
        } else {
            AttemptOutcome::GiveUp
        };
        self.store()
            .webhooks()
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
