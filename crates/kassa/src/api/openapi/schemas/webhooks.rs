//! Webhook endpoints, their deliveries and attempts.

use utoipa::ToSchema;

use super::*;

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    Apipay,
    Xpayment,
}

/// A webhook endpoint (never its secret).
#[derive(ToSchema)]
pub struct Webhook {
    pub id: i64,
    /// The UUID the xPayment surface names the endpoint by.
    #[schema(format = "uuid")]
    pub subscription_id: String,
    pub url: String,
    /// Event names, or `["*"]` for all.
    pub events: Vec<String>,
    pub format: WebhookFormat,
    #[schema(required = true)]
    pub description: Option<String>,
    pub is_active: bool,
    /// Why Kassa disabled it (410, failing for days).
    #[schema(required = true)]
    pub disabled_reason: Option<String>,
    /// Since when every attempt failed.
    #[schema(required = true, format = DateTime)]
    pub failing_since: Option<String>,
    /// Until when the secret before the last rotation still signs too.
    #[schema(required = true, format = DateTime)]
    pub previous_secret_expires_at: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

/// A webhook endpoint with its signing secret: shown only when made or rotated.
#[derive(ToSchema)]
pub struct WebhookWithSecret {
    #[serde(flatten)]
    pub webhook: Webhook,
    /// Standard Webhooks secret (`whsec_…`).
    pub secret: String,
}

#[derive(ToSchema)]
pub struct WebhookList {
    pub data: Vec<Webhook>,
}

/// A new webhook endpoint. Events of ApiPay's format: `invoice.status_changed`,
/// `invoice.refunded`, `subscription.payment_succeeded`, `subscription.payment_failed`,
/// `subscription.grace_period_started`, `subscription.expired`; of xPayment's:
/// `payment.completed`, `payment.expired`, `payment.cancelled`, `payment.failed`,
/// `payment.refunded`, `payment.refund_failed`.
#[derive(ToSchema)]
pub struct CreateWebhookRequest {
    /// `https://` (or `http://` where the server allows it); private and loopback addresses
    /// are refused unless the server allows them.
    #[schema(format = "uri", max_length = 2048)]
    pub url: String,
    /// Event names, or `"*"` / `["*"]` for all (the default).
    pub events: Option<Vec<String>>,
    /// The body's format, `apipay` by default.
    pub format: Option<WebhookFormat>,
    pub description: Option<String>,
    pub is_active: Option<bool>,
}

/// A change of an endpoint: the fields given change; `is_active: true` re-enables one Kassa
/// disabled; `description: null` clears it.
#[derive(ToSchema)]
pub struct UpdateWebhookRequest {
    #[schema(format = "uri", max_length = 2048)]
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub format: Option<WebhookFormat>,
    pub description: Option<String>,
    pub is_active: Option<bool>,
}

#[derive(ToSchema)]
pub struct WebhookDeleted {
    #[schema(example = "Webhook deleted.")]
    pub message: String,
}

/// A new secret; the old one keeps signing for `grace_period_secs`.
#[derive(ToSchema)]
pub struct RotateSecretRequest {
    /// 86400 (a day) by default; 0 ends the old secret now.
    #[schema(minimum = 0)]
    pub grace_period_secs: Option<u64>,
}

/// Whether the test event (`webhook.test`) arrived.
#[derive(ToSchema)]
pub struct WebhookTestResult {
    pub event: String,
    pub url: String,
    pub success: bool,
    #[schema(required = true)]
    pub error: Option<String>,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Sending,
    Delivered,
    Failed,
}

/// One event's delivery to an endpoint, with its attempts.
#[derive(ToSchema)]
pub struct WebhookDelivery {
    pub id: i64,
    /// The `webhook-id` header sent (the same on every attempt).
    #[schema(format = "uuid")]
    pub webhook_id: String,
    pub event: String,
    #[schema(required = true)]
    pub event_id: Option<i64>,
    pub is_test: bool,
    pub status: DeliveryStatus,
    pub attempts: i64,
    #[schema(required = true, format = DateTime)]
    pub next_attempt_at: Option<String>,
    #[schema(required = true)]
    pub last_status: Option<i64>,
    #[schema(required = true)]
    pub last_error: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(required = true, format = DateTime)]
    pub delivered_at: Option<String>,
    pub attempt_log: Vec<WebhookAttempt>,
}

/// One attempt of a delivery.
#[derive(ToSchema)]
pub struct WebhookAttempt {
    pub attempt: i64,
    #[schema(format = DateTime)]
    pub at: String,
    /// The answer's status; `null` when none came.
    #[schema(required = true)]
    pub status: Option<i64>,
    pub latency_ms: i64,
    /// The first bytes of the answer.
    #[schema(required = true)]
    pub response: Option<String>,
    #[schema(required = true)]
    pub error: Option<String>,
}

/// A page of an endpoint's deliveries, newest first.
#[derive(ToSchema)]
pub struct WebhookDeliveryPage {
    pub data: Vec<WebhookDelivery>,
    pub meta: PageMeta,
}
