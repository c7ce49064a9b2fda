//! xPayment's webhook simulator (`/webhook-simulate`, `/webhook-simulate/subscriptions`),
//! errors in xPayment's format. Its "subscriptions" are the organization's webhook endpoints
//! of the `xpayment` format (made with `POST /api/v1/webhooks` or `kassa webhook create`).
//!
//! - `POST /webhook-simulate` `{"event", "merchant_order_id"?, "subscription_id"?}` sends a
//!   made-up event of that type, signed as usual, with `"test": true` in the body and the
//!   header `webhook-test: true`, now, to the named subscription (whether active or not) or to
//!   every active one, waiting for each answer (at most the webhook timeout), and answers
//!   `{"results": [{subscription_id, url, event, success, error?}]}`. Each send is logged as a
//!   test delivery. `event` must be one of the six event types (`*` is not an event); an
//!   unknown `subscription_id` is 404 `SUBSCRIPTION_NOT_FOUND`.
//! - `GET /webhook-simulate/subscriptions` → `{"subscriptions": [subscriptionObject…]}`. The
//!   spec's `secret` field is left out: secrets are shown only when made.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::auth::Caller;
use super::error::{ApiError, ErrorFormat, FieldErrors};
use super::extract::XJson;
use super::openapi::{schemas as doc, TAG_SIMULATOR};
use super::rfc3339_ms;
use crate::store::WebhookEndpoint;
use crate::webhooks::{WebhookError, Webhooks};

const F: ErrorFormat = ErrorFormat::XPayment;

/// The authenticated routes; mounted with xPayment's at `/` and `/v1`.
pub fn routes(webhooks: Webhooks) -> Router {
    Router::new()
        .route("/webhook-simulate", post(simulate))
        .route("/webhook-simulate/subscriptions", get(subscriptions))
        .with_state(webhooks)
}

/// The operations of [`routes`] for Kassa's OpenAPI document (mounted with xPayment's; see
/// [`crate::api::openapi`]).
#[derive(utoipa::OpenApi)]
#[openapi(paths(simulate, subscriptions))]
pub struct ApiDoc;

fn webhook_error(e: WebhookError) -> ApiError {
    match e {
        WebhookError::Invalid { field, message } => ApiError::validation(F, field, message),
        WebhookError::NotFound => {
            ApiError::not_found(F, "SUBSCRIPTION_NOT_FOUND", "subscription not found")
        }
        e @ (WebhookError::Disabled | WebhookError::Secret(_)) => ApiError::internal(F, e),
        WebhookError::Store(e) => ApiError::store(F, e),
    }
}

/// An endpoint as `handler.subscriptionObject`, without its secret.
fn subscription_json(endpoint: &WebhookEndpoint, organization: &str) -> Value {
    let mut o = Map::new();
    o.insert("id".into(), json!(endpoint.endpoint_id));
    o.insert("organization_id".into(), json!(organization));
    o.insert("url".into(), json!(endpoint.url));
    o.insert("events".into(), json!(endpoint.events));
    if let Some(d) = &endpoint.description {
        o.insert("description".into(), json!(d));
    }
    o.insert("is_active".into(), json!(endpoint.is_active));
    o.insert("created_at".into(), json!(rfc3339_ms(endpoint.created_at)));
    o.insert("updated_at".into(), json!(rfc3339_ms(endpoint.updated_at)));
    Value::Object(o)
}

#[derive(Debug, Deserialize)]
struct SimulateBody {
    #[serde(default)]
    event: Option<Value>,
    #[serde(default)]
    merchant_order_id: Option<Value>,
    #[serde(default)]
    subscription_id: Option<Value>,
}

fn optional_text(value: Option<Value>, field: &str, errors: &mut FieldErrors) -> Option<String> {
    match value {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.chars().count() > 255 => {
            errors.add(field, "must be at most 255 characters");
            None
        }
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => {
            errors.add(field, "must be a string");
            None
        }
    }
}

#[utoipa::path(
    post,
    path = "/webhook-simulate",
    tag = TAG_SIMULATOR,
    operation_id = "simulate_webhook",
    summary = "Send a test event now",
    description = "A made-up event of that type, signed as usual, with `\"test\": true` in the \
        body and the header `webhook-test: true`, to the named endpoint of the xPayment format \
        (active or not) or to every active one, waiting for each answer. Each send is logged as \
        a test delivery.",
    request_body = doc::SimulateRequest,
    responses(
        (status = 200, description = "What each endpoint answered", body = doc::SimulateResults),
        (status = 404, description = "No endpoint has this `subscription_id` (`SUBSCRIPTION_NOT_FOUND`)", body = doc::XPaymentError),
    ),
)]
async fn simulate(
    State(webhooks): State<Webhooks>,
    Extension(caller): Extension<Caller>,
    XJson(body): XJson<SimulateBody>,
) -> Result<Json<Value>, ApiError> {
    let mut errors = FieldErrors::new();
    let event = match body.event {
        None | Some(Value::Null) => {
            errors.add("event", "event is required");
            None
        }
        Some(Value::String(s)) => Some(s),
        Some(_) => {
            errors.add("event", "must be a string");
            None
        }
    };
    let merchant_order_id = optional_text(body.merchant_order_id, "merchant_order_id", &mut errors);
    let subscription_id = optional_text(body.subscription_id, "subscription_id", &mut errors);
    errors.into_result(F)?;
    let event = event.unwrap_or_default();
    let results = webhooks
        .simulate(
            caller.org_id,
            &event,
            merchant_order_id.as_deref(),
            subscription_id.as_deref(),
        )
        .await
        .map_err(webhook_error)?;
    let results: Vec<Value> = results
        .into_iter()
        .map(|r| {
            let mut o = Map::new();
            o.insert("subscription_id".into(), json!(r.subscription_id));
            o.insert("url".into(), json!(r.url));
            o.insert("event".into(), json!(r.event));
            o.insert("success".into(), json!(r.success));
            if let Some(error) = r.error {
                o.insert("error".into(), json!(error));
            }
            Value::Object(o)
        })
        .collect();
    Ok(Json(json!({"results": results})))
}

#[utoipa::path(
    get,
    path = "/webhook-simulate/subscriptions",
    tag = TAG_SIMULATOR,
    operation_id = "list_webhook_subscriptions",
    summary = "The endpoints of the xPayment format",
    description = "Made with `POST /api/v1/webhooks` (`format: xpayment`) or `kassa webhook \
        create`; their secrets are shown only when made.",
    responses((status = 200, description = "The organization's endpoints of the xPayment format", body = doc::WebhookSubscriptions)),
)]
async fn subscriptions(
    State(webhooks): State<Webhooks>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    let endpoints = webhooks
        .subscriptions(caller.org_id)
        .await
        .map_err(webhook_error)?;
    let organization = webhooks
        .store()
        .orgs()
        .org_by_id(caller.org_id)
        .await
        .map_err(|e| ApiError::store(F, e))?
        .map_or_else(|| caller.org_id.to_string(), |o| o.slug);
    Ok(Json(json!({
        "subscriptions": endpoints
            .iter()
            .map(|e| subscription_json(e, &organization))
            .collect::<Vec<_>>(),
    })))
}
