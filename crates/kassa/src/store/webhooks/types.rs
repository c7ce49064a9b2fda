//! The plain types of webhooks: formats, endpoints, deliveries, attempts, what an attempt
//! changes. No SQL here.

use std::collections::{HashMap, HashSet};

use crate::db::DbError;
use crate::store::{EventKind, Invoice};

/// How an endpoint's bodies and signatures look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WebhookFormat {
    /// ApiPay.kz: `{event, invoice, source, timestamp}`, `X-Webhook-Signature: sha256=…`.
    ApiPay,
    /// xPayment.kz: `{event, payment, refund?, delivery_id, timestamp}`,
    /// `X-xPayment-Signature: …`.
    XPayment,
}

impl WebhookFormat {
    pub const ALL: &'static [WebhookFormat] = &[WebhookFormat::ApiPay, WebhookFormat::XPayment];

    pub fn as_str(self) -> &'static str {
        match self {
            WebhookFormat::ApiPay => "apipay",
            WebhookFormat::XPayment => "xpayment",
        }
    }

    pub fn parse(text: &str) -> Option<WebhookFormat> {
        WebhookFormat::ALL
            .iter()
            .copied()
            .find(|f| f.as_str() == text)
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    /// To be attempted at `next_attempt_at`.
    Pending,
    /// A 2xx came back.
    Delivered,
    /// Given up: the schedule ran out, the endpoint answered 410, or it was disabled.
    Failed,
    /// A simulated event being sent synchronously (never claimed by the worker).
    Sending,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Sending => "sending",
        }
    }

    pub(crate) fn decode(text: &str) -> Result<DeliveryStatus, DbError> {
        [
            DeliveryStatus::Pending,
            DeliveryStatus::Delivered,
            DeliveryStatus::Failed,
            DeliveryStatus::Sending,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
        .ok_or_else(|| DbError::decode("status", format!("unknown delivery status `{text}`")))
    }
}

/// A webhook endpoint as stored; the secrets are sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    /// ApiPay's integer id.
    pub id: i64,
    /// The UUID the xPayment surface shows as `subscription_id`.
    pub endpoint_id: String,
    pub org_id: i64,
    pub url: String,
    /// Event names, or `["*"]` for all.
    pub events: Vec<String>,
    pub format: WebhookFormat,
    pub description: Option<String>,
    pub secret_sealed: Vec<u8>,
    /// The secret before the last rotation, signing too until `previous_secret_until`.
    pub previous_secret_sealed: Option<Vec<u8>>,
    pub previous_secret_until: Option<i64>,
    pub is_active: bool,
    /// Why Kassa disabled the endpoint (410, failing for days), for people.
    pub disabled_reason: Option<String>,
    /// Since when every attempt failed; `None` while healthy.
    pub failing_since: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl WebhookEndpoint {
    /// Whether the endpoint wants `event` (`*` wants everything).
    pub fn wants(&self, event: &str) -> bool {
        self.events.iter().any(|e| e == "*" || e == event)
    }
}

/// A new endpoint; the caller validated everything and sealed the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWebhookEndpoint {
    pub endpoint_id: String,
    pub org_id: i64,
    pub url: String,
    pub events: Vec<String>,
    pub format: WebhookFormat,
    pub description: Option<String>,
    pub secret_sealed: Vec<u8>,
    pub is_active: bool,
    pub created_at: i64,
}

/// A change of an endpoint; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookEndpointUpdate {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub format: Option<WebhookFormat>,
    /// `Some(None)` clears the description.
    pub description: Option<Option<String>>,
    /// Turning an endpoint on clears its `disabled_reason` and `failing_since`.
    pub is_active: Option<bool>,
}

/// One delivery of one event to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    pub id: i64,
    /// The UUID sent as `webhook-id` (the same on every attempt) and xPayment's `delivery_id`.
    pub delivery_id: String,
    pub org_id: i64,
    /// The endpoint's integer id.
    pub endpoint_id: i64,
    /// The `invoice_events` row; `None` for a simulated test event.
    pub event_id: Option<i64>,
    pub event_type: String,
    /// The body, byte for byte as sent on every attempt.
    pub payload: Vec<u8>,
    pub is_test: bool,
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: i64,
    /// Position in the retry schedule (reset by a redelivery).
    pub schedule_step: i64,
    pub next_attempt_at: Option<i64>,
    pub locked_until: Option<i64>,
    pub locked_by: Option<String>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub delivered_at: Option<i64>,
}

/// One attempt of a delivery, as logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookAttempt {
    pub id: i64,
    /// The delivery's integer id.
    pub delivery_id: i64,
    pub endpoint_id: i64,
    /// 1 for the first attempt of the delivery.
    pub attempt: i64,
    pub at: i64,
    /// `None` when no answer came (timeout, refused, connection error).
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    /// The first bytes of the answer (at most 1 KiB), as text.
    pub response_excerpt: Option<String>,
    pub error: Option<String>,
}

/// An `invoice_events` row not dispatched yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEvent {
    pub id: i64,
    pub org_id: i64,
    pub invoice_id: i64,
    pub kind: EventKind,
    pub from_status: Option<String>,
    pub to_status: String,
    pub at: i64,
    pub refund_id: Option<i64>,
    /// A subscription event's subscription.
    pub subscription_id: Option<i64>,
    /// A subscription event's facts ([`crate::store::SubscriptionEventFacts`], JSON), as
    /// they were when it happened.
    pub data: Option<String>,
}

/// The body of an event for the endpoints of one format, rendered before the store is called:
/// the bytes around the place of the delivery's UUID (xPayment's `delivery_id`), which is made
/// in the dispatch transaction, one per delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// The event's name in this format (`invoice.status_changed`, `payment.completed`, …).
    pub event_type: String,
    /// The bytes before the delivery's UUID; all of them when the body does not hold it.
    head: Vec<u8>,
    /// The bytes after the delivery's UUID; `None` when the body does not hold it.
    tail: Option<Vec<u8>>,
}

impl Payload {
    /// The body `bytes` with the delivery's UUID where `stand_in` is (its first occurrence),
    /// or with no UUID when `stand_in` is not there.
    pub fn around(event_type: impl Into<String>, mut bytes: Vec<u8>, stand_in: &str) -> Payload {
        let needle = stand_in.as_bytes();
        let at = match needle.len() {
            0 => None,
            n => bytes.windows(n).position(|window| window == needle),
        };
        let tail = at.map(|at| {
            let tail = bytes[at + needle.len()..].to_vec();
            bytes.truncate(at);
            tail
        });
        Payload {
            event_type: event_type.into(),
            head: bytes,
            tail,
        }
    }

    /// The body of delivery `delivery_id`: the bytes before, the UUID, the bytes after.
    pub fn bytes_for(&self, delivery_id: &str) -> Vec<u8> {
        let Some(tail) = &self.tail else {
            return self.head.clone();
        };
        let mut bytes = Vec::with_capacity(self.head.len() + delivery_id.len() + tail.len());
        bytes.extend_from_slice(&self.head);
        bytes.extend_from_slice(delivery_id.as_bytes());
        bytes.extend_from_slice(tail);
        bytes
    }
}

/// What an event sends to the endpoints of one format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatBody {
    /// This body, one delivery per endpoint that wants its event type.
    Rendered(Payload),
    /// Nothing: the format has no such event, or the event's invoice is gone.
    Nothing,
    /// Not rendered, as no active endpoint of the organization had this format when the
    /// event was read: should one have it now, the event is left undispatched, to be read and
    /// rendered again.
    NotRendered,
}

/// An event to dispatch, with its bodies per format rendered beforehand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventToDispatch {
    /// The `invoice_events` row.
    pub event_id: i64,
    pub org_id: i64,
    /// What it sends to endpoints of the ApiPay format.
    pub apipay: FormatBody,
    /// What it sends to endpoints of the xPayment format.
    pub xpayment: FormatBody,
}

impl EventToDispatch {
    /// What it sends to endpoints of `format`.
    pub fn body(&self, format: WebhookFormat) -> &FormatBody {
        match format {
            WebhookFormat::ApiPay => &self.apipay,
            WebhookFormat::XPayment => &self.xpayment,
        }
    }
}

/// What the bodies of a batch of events are made from, read at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRows {
    /// The invoices by id (one that is gone is absent).
    pub invoices: HashMap<i64, Invoice>,
    /// The organizations' slugs by id.
    pub slugs: HashMap<i64, String>,
    /// The formats of each organization's active endpoints (absent: it has none).
    pub formats: HashMap<i64, HashSet<WebhookFormat>>,
    /// The subscriptions of subscription events, by id.
    pub subscriptions: HashMap<i64, crate::store::Subscription>,
}

/// Deliveries leased to the dispatching worker as they are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatchLease {
    /// The worker that holds the leases.
    pub worker: String,
    /// When the leases end.
    pub until: i64,
    /// How many of the new deliveries at most (the rest are left for any worker to lease).
    pub max: usize,
}

/// What one dispatch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dispatched {
    /// Events this dispatch marked dispatched (one another dispatcher got first is not).
    pub events: usize,
    /// Deliveries made.
    pub made: usize,
    /// The deliveries leased to the dispatching worker, with their endpoints, by id.
    pub leased: Vec<(WebhookDelivery, WebhookEndpoint)>,
    /// Events left undispatched because an endpoint's format was not rendered for them.
    pub left: usize,
}

/// What an attempt did to the delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered,
    /// Try again at this time (the schedule moves one step).
    RetryAt(i64),
    /// Stop trying.
    GiveUp,
}

/// What an attempt did to the endpoint's health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointHealth {
    /// Leave the endpoint alone (simulated events).
    Untouched,
    /// It answered 2xx: no longer failing.
    Healthy,
    /// It failed; disable it with `reason` if it has been failing for `disable_after_ms`.
    Failing {
        disable_after_ms: i64,
        reason: String,
    },
    /// Disable it now (410 Gone).
    Disable(String),
}

/// The log row and effects of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    /// The delivery's integer id.
    pub delivery: i64,
    /// The worker holding the lease (`None` for a simulated event, which has none).
    pub worker: Option<String>,
    pub at: i64,
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    pub response_excerpt: Option<String>,
    pub error: Option<String>,
    pub outcome: AttemptOutcome,
    pub health: EndpointHealth,
}
