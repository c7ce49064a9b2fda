//! Webhook endpoints on the ApiPay surface (`/api/v1/webhooks`), errors in ApiPay's format.
//! Everything goes through [`crate::webhooks::Webhooks`], the same functions `kassa webhook …`
//! calls.
//!
//! - `POST /webhooks` `{"url", "events": ["*"], "format": "apipay"|"xpayment", "description",
//!   "is_active"}` → 201, the endpoint with its `secret` (the only time it is shown).
//! - `GET /webhooks`, `GET /webhooks/{id}`, `PATCH|PUT /webhooks/{id}` (the fields given
//!   change; `is_active: true` re-enables a disabled endpoint), `DELETE /webhooks/{id}`.
//! - `POST /webhooks/{id}/rotate-secret` `{"grace_period_secs": 86400}` → the new `secret`;
//!   the old one keeps signing (Standard Webhooks header) until `previous_secret_expires_at`.
//! - `GET /webhooks/{id}/deliveries?page=&per_page=`: deliveries newest first, each with its
//!   attempts (time, status, latency, first bytes of the answer, error).
//! - `POST /webhooks/{id}/deliveries/{delivery}/redeliver` → 202: the delivery is queued
//!   again now (same `webhook-id`, same bytes), from the start of the retry schedule.
//!
//! Another organization's endpoint is 404. `id` is an integer; `subscription_id` is the UUID
//! the xPayment surface names the same endpoint by.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Caller;
use super::error::{ApiError, ErrorFormat, FieldErrors};
use super::extract::{parse_id, ApiJson, IdPath, QueryPairs};
use super::openapi::{schemas as doc, TAG_WEBHOOKS};
use super::rfc3339_ms;
use crate::store::{WebhookDelivery, WebhookEndpoint, WebhookFormat};
use crate::webhooks::{DeliveryLog, EndpointInput, WebhookError, Webhooks, DEFAULT_ROTATION_GRACE};

const F: ErrorFormat = ErrorFormat::ApiPay;

/// The authenticated routes (relative to `/api/v1`).
pub fn routes(webhooks: Webhooks) -> Router {
    Router::new()
        .route("/webhooks", post(create).get(list))
        .route(
            "/webhooks/{id}",
            get(show).patch(update).put(update).delete(remove),
        )
        .route("/webhooks/{id}/rotate-secret", post(rotate))
        .route("/webhooks/{id}/test", post(send_test))
        .route("/webhooks/{id}/deliveries", get(deliveries))
        .route(
            "/webhooks/{id}/deliveries/{delivery}/redeliver",
            post(redeliver),
        )
        .with_state(webhooks)
}

/// The operations of [`routes`] for Kassa's OpenAPI document (relative to `/api/v1`; see
/// [`crate::api::openapi`]).
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    create, list, show, update, remove, rotate, send_test, deliveries, redeliver
))]
pub struct ApiDoc;

/// A webhook error as ApiPay answers it.
pub fn webhook_error(e: WebhookError) -> ApiError {
    match e {
        WebhookError::Invalid { field, message } => ApiError::validation(F, field, message),
        WebhookError::NotFound => ApiError::not_found(F, "WEBHOOK_NOT_FOUND", "Webhook not found."),
        WebhookError::Disabled => ApiError::coded(
            F,
            StatusCode::CONFLICT,
            "webhook_disabled",
            "The webhook endpoint is disabled; enable it (is_active: true) first.",
        ),
        e @ WebhookError::Secret(_) => ApiError::internal(F, e),
        WebhookError::Store(e) => ApiError::store(F, e),
    }
}

/// An endpoint as the API shows it: never its secret.
/// An endpoint as the API shows it; `now_ms` decides whether a previous secret still works.
pub fn endpoint_json(endpoint: &WebhookEndpoint, now_ms: i64) -> Value {
    json!({
        "id": endpoint.id,
        "subscription_id": endpoint.endpoint_id,
        "url": endpoint.url,
        "events": endpoint.events,
        "format": endpoint.format.as_str(),
        "description": endpoint.description,
        "is_active": endpoint.is_active,
        "disabled_reason": endpoint.disabled_reason,
        "failing_since": endpoint.failing_since.map(rfc3339_ms),
        "previous_secret_expires_at": endpoint
            .previous_secret_until
            .filter(|until| *until > now_ms)
            .map(rfc3339_ms),
        "created_at": rfc3339_ms(endpoint.created_at),
        "updated_at": rfc3339_ms(endpoint.updated_at),
    })
}

/// A delivery and its attempts as the API shows them (the body itself is not repeated).
pub fn delivery_json(
    delivery: &WebhookDelivery,
    attempts: &[crate::store::WebhookAttempt],
) -> Value {
    json!({
        "id": delivery.id,
        "webhook_id": delivery.delivery_id,
        "event": delivery.event_type,
        "event_id": delivery.event_id,
        "is_test": delivery.is_test,
        "status": delivery.status.as_str(),
        "attempts": delivery.attempts,
        "next_attempt_at": delivery.next_attempt_at.map(rfc3339_ms),
        "last_status": delivery.last_status,
        "last_error": delivery.last_error,
        "created_at": rfc3339_ms(delivery.created_at),
        "delivered_at": delivery.delivered_at.map(rfc3339_ms),
        "attempt_log": attempts.iter().map(|a| json!({
            "attempt": a.attempt,
            "at": rfc3339_ms(a.at),
            "status": a.status_code,
            "latency_ms": a.latency_ms,
            "response": a.response_excerpt,
            "error": a.error,
        })).collect::<Vec<_>>(),
    })
}

#[derive(Debug, Default, Deserialize)]
struct EndpointBody {
    #[serde(default)]
    url: Option<Value>,
    #[serde(default)]
    events: Option<Value>,
    #[serde(default)]
    format: Option<Value>,
    /// `Some(Value::Null)` clears it on update.
    #[serde(default, deserialize_with = "present")]
    description: Option<Value>,
    #[serde(default)]
    is_active: Option<Value>,
}

/// Keeps an explicit `null` as `Some(Value::Null)` (absent stays `None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// The typed input of a create or update body; every type error named at once.
fn endpoint_input(body: EndpointBody, create: bool) -> Result<EndpointInput, ApiError> {
    let mut errors = FieldErrors::new();
    let url = match body.url {
        None | Some(Value::Null) if create => {
            errors.add("url", "The url field is required.");
            None
        }
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => {
            errors.add("url", "The url field must be a string.");
            None
        }
    };
    let events = match body.events {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => {
            let names: Option<Vec<String>> = items
                .into_iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect();
            if names.is_none() {
                errors.add("events", "The events field must be a list of event names.");
            }
            names
        }
        Some(Value::String(s)) if s == "*" => Some(vec![s]),
        Some(_) => {
            errors.add(
                "events",
                "The events field must be a list of event names, or \"*\".",
            );
            None
        }
    };
    let format = match body.format {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            let parsed = WebhookFormat::parse(&s);
            if parsed.is_none() {
                errors.add("format", "The format must be apipay or xpayment.");
            }
            parsed
        }
        Some(_) => {
            errors.add("format", "The format must be apipay or xpayment.");
            None
        }
    };
    let description = match body.description {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(s)) => Some(Some(s)),
        Some(_) => {
            errors.add("description", "The description field must be a string.");
            None
        }
    };
    let is_active = match body.is_active {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(b),
        Some(_) => {
            errors.add("is_active", "The is_active field must be true or false.");
            None
        }
    };
    errors.into_result(F)?;
    Ok(EndpointInput {
        url,
        events,
        format,
        description,
        is_active,
    })
}

#[utoipa::path(
    post,
    path = "/webhooks",
    tag = TAG_WEBHOOKS,
    operation_id = "create_webhook",
    summary = "Add a webhook endpoint",
    description = "The organization's events of the chosen `format` go to `url`, signed with the \
        Standard Webhooks headers (`webhook-id`, `webhook-timestamp`, `webhook-signature`); a \
        failed delivery is retried on a schedule, and an endpoint failing for days is disabled.",
    request_body = doc::CreateWebhookRequest,
    responses((status = 201, description = "The endpoint with its `secret`, shown this once", body = doc::WebhookWithSecret)),
)]
async fn create(
    State(webhooks): State<Webhooks>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<EndpointBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let input = endpoint_input(body, true)?;
    let (endpoint, secret) = webhooks
        .create(caller.org_id, input)
        .await
        .map_err(webhook_error)?;
    let mut body = endpoint_json(&endpoint, webhooks.now_ms());
    body["secret"] = json!(secret);
    Ok((StatusCode::CREATED, Json(body)))
}

#[utoipa::path(
    get,
    path = "/webhooks",
    tag = TAG_WEBHOOKS,
    operation_id = "list_webhooks",
    summary = "List webhook endpoints",
    responses((status = 200, description = "The organization's endpoints", body = doc::WebhookList)),
)]
async fn list(
    State(webhooks): State<Webhooks>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    let endpoints = webhooks.list(caller.org_id).await.map_err(webhook_error)?;
    Ok(Json(json!({
        "data": endpoints.iter().map(|e| endpoint_json(e, webhooks.now_ms())).collect::<Vec<_>>(),
    })))
}

#[utoipa::path(
    get,
    path = "/webhooks/{id}",
    tag = TAG_WEBHOOKS,
    operation_id = "get_webhook",
    summary = "Get a webhook endpoint",
    params(("id" = i64, Path, description = "The endpoint's id")),
    responses((status = 200, description = "The endpoint", body = doc::Webhook)),
)]
async fn show(
    State(webhooks): State<Webhooks>,
    Extension(caller): Extension<Caller>,
    IdPath(id): IdPath,
) -> Result<Json<Value>, ApiError> {
    let endpoint = webhooks
        .get(caller.org_id, id)
        .await
        .map_err(webhook_error)?;
    Ok(Json(endpoint_json(&endpoint, webhooks.now_ms())))
}

#[utoipa::path(
    method(patch, put),
    path = "/webhooks/{id}",
    tag = TAG_WEBHOOKS,
    operation_id = "update_webhook",
    summary = "Change a webhook endpoint",
    description = "The fields given change (`PATCH` and `PUT` alike); `is_active: true` \
        re-enables an endpoint Kassa disabled.",
    params(("id" = i64, Path, description = "The endpoint's id")),
    request_body = doc::UpdateWebhookRequest,
    responses((status = 200, description = "The endpoint", body = doc::Webhook)),
)]
async fn update(
    State(webhooks): State<Webhooks>,
    Extension(caller): Extension<Caller>,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<EndpointBody>,
) -> Result<Json<Value>, ApiError> {
    let input = endpoint_input(body, false)?;
    let endpoint = webhooks
        .update(caller.org_id, id, input)
        .await
        .map_err(webhook_error)?;
    Ok(Json(endpoint_json(&endpoint, webhooks.now_ms())))
}

#[utoipa::path(
    delete,
    path = "/webhooks/{id}",
    tag = TAG_WEBHOOKS,
    operation_id = "delete_webhook",
    summary = "Delete a webhook endpoint",
    params(("id" = i64, Path, description = "The endpoint's id")),
    responses((status = 200, description = "Deleted", body = doc::WebhookDeleted)),
)]
async fn remove(
    State(webhooks): State<Webhooks>,
    Extension(caller): Extension<Caller>,
    IdPath(id): IdPath,
) -> Result<Json<Value>, ApiError> {
    webhooks
        .delete(caller.org_id, id)
        .await
        .map_err(webhook_error)?;
    Ok(Json(json!({"message": "Webhook deleted."})))
}

#[derive(Debug, Deserialize)]
struct RotateBody {
    #[serde(default)]
    grace_period_secs: Option<Value>,
}

#[utoipa::path(
    post,
    path = "/webhooks/{id}/rotate-secret",
    tag = TAG_WEBHOOKS,
    operation_id = "rotate_webhook_secret",
    summary = "Rotate an endpoint's secret",
    description = "Deliveries are signed with the new secret and, until \
        `previous_secret_expires_at`, the old one too (two signatures in the header).",
    params(("id" = i64, Path, description = "The endpoint's id")),
    request_body = Option<doc::RotateSecretRequest>,
    responses((status = 200, description = "The endpoint with its new `secret`, shown this once", body = doc::WebhookWithSecret)),
)]
async fn rotate(
    State(webhooks): State<Webhooks>,
    Extension(caller): Extension<Caller>,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<RotateBody>,
) -> Result<Json<Value>, ApiError> {
    let grace = match body.grace_period_secs {
        None | Some(Value::Null) => DEFAULT_ROTATION_GRACE,
        Some(Value::Number(n)) if n.as_u64().is_some() => {
            Duration::from_secs(n.as_u64().unwrap_or_default())
        }
        Some(_) => {
            return Err(ApiError::validation(
                F,
                "grace_period_secs",
                "The grace period must be a whole number of seconds, 0 or more.",
            ))
        }
    };
    let (endpoint, secret) = webhooks
        .rotate_secret(caller.org_id, id, grace)
        .await
        .map_err(webhook_error)?;
    let mut body = endpoint_json(&endpoint, webhooks.now_ms());
    body["secret"] = json!(secret);
    Ok(Json(body))
}

/// ApiPay's `webhook.test`, sent now to this endpoint; the answer says whether it arrived.
#[utoipa::path(
    post,
    path = "/webhooks/{id}/test",
    tag = TAG_WEBHOOKS,
    operation_id = "test_webhook",
    summary = "Send a test event to an endpoint",
    params(("id" = i64, Path, description = "The endpoint's id")),
    responses(
        (status = 200, description = "Whether it arrived", body = doc::WebhookTestResult),
        (status = 409, description = "The endpoint is disabled (`webhook_disabled`): enable it first", body = doc::ApiPayCodedError),
    ),
)]
async fn send_test(
    State(webhooks): State<Webhooks>,
    Extension(caller): Extension<Caller>,
    IdPath(id): IdPath,
) -> Result<Json<Value>, ApiError> {
    let result = webhooks
        .send_test(caller.org_id, id)
        .await
        .map_err(webhook_error)?;
    Ok(Json(json!({
        "event": result.event,
        "url": result.url,
        "success": result.success,
        "error": result.error,
    })))
}

#[utoipa::path(
    get,
    path = "/webhooks/{id}/deliveries",
    tag = TAG_WEBHOOKS,
    operation_id = "list_webhook_deliveries",
    summary = "An endpoint's deliveries",
    params(("id" = i64, Path, description = "The endpoint's id"), doc::PageQuery),
    responses((status = 200, description = "Its deliveries, newest first, each with its attempts", body = doc::WebhookDeliveryPage)),
)]
async fn deliveries(
    State(webhooks): State<Webhooks>,
    Extension(caller): Extension<Caller>,
    IdPath(id): IdPath,
    query: QueryPairs,
) -> Result<Json<Value>, ApiError> {
    let mut errors = FieldErrors::new();
    let page = errors
        .take(query.int("page", 1, i64::from(u32::MAX)))?
        .flatten()
        .unwrap_or(1);
    let per_page = errors
        .take(query.int("per_page", 1, 100))?
        .flatten()
        .unwrap_or(20);
    errors.into_result(F)?;
    let page = u32::try_from(page).unwrap_or(1);
    let per_page = u32::try_from(per_page).unwrap_or(20);
    let (logs, total) = webhooks
        .deliveries(caller.org_id, id, page, per_page)
        .await
        .map_err(webhook_error)?;
    let per = i64::from(per_page);
    let last_page = if total == 0 {
        1
    } else {
        (total + per - 1) / per
    };
    Ok(Json(json!({
        "data": logs.iter().map(|DeliveryLog { delivery, attempts }| delivery_json(delivery, attempts)).collect::<Vec<_>>(),
        "meta": {"current_page": page, "last_page": last_page, "per_page": per_page, "total": total},
    })))
}

#[utoipa::path(
    post,
    path = "/webhooks/{id}/deliveries/{delivery}/redeliver",
    tag = TAG_WEBHOOKS,
    operation_id = "redeliver_webhook",
    summary = "Deliver an event again",
    description = "Queued again now (the same `webhook-id`, the same bytes), from the start of \
        the retry schedule.",
    params(("id" = i64, Path, description = "The endpoint's id"), ("delivery" = i64, Path, description = "The delivery's id")),
    responses(
        (status = 202, description = "The delivery, queued", body = doc::WebhookDelivery),
        (status = 409, description = "The endpoint is disabled (`webhook_disabled`): enable it first", body = doc::ApiPayCodedError),
    ),
)]
async fn redeliver(
    State(webhooks): State<Webhooks>,
    Extension(caller): Extension<Caller>,
    Path((id, delivery)): Path<(String, String)>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (Some(id), Some(delivery)) = (parse_id(&id), parse_id(&delivery)) else {
        return Err(ApiError::route_not_found(F));
    };
    let queued = webhooks
        .redeliver(caller.org_id, id, delivery)
        .await
        .map_err(webhook_error)?;
    Ok((StatusCode::ACCEPTED, Json(delivery_json(&queued, &[]))))
}
