//! Subscriptions: create, list, get (with `stats` and `last_payment`), update, pause, resume,
//! cancel, and the invoices each one made. Every answer about one subscription carries its
//! fields at the top level (the seed's docs) and under `"subscription"` (ApiPay's current
//! version), so clients of either work unchanged.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde_json::{json, Map, Value};

use super::errors::gateway_error;
use super::fields;
use super::query::{almaty_today, page_and_size};
use super::views::{
    last_payment_json, page_meta, subscription_answer, subscription_invoice_json,
    subscription_json, subscription_stats_json,
};
use super::F;
use crate::api::auth::Caller;
use crate::api::error::{ApiError, FieldErrors};
use crate::api::extract::{ApiJson, ApiPay, IdPath, QueryPairs};
use crate::api::openapi::{schemas as doc, TAG_SUBSCRIPTIONS};
use crate::api::{optional_text, parse_amount};
use crate::domain::{BillingPeriod, Money, SubscriptionAction, SubscriptionStatus};
use crate::gateway::{Gateway, SubscriptionActError};
use crate::store::{
    CartLine, IdemLink, NewSubscription, Subscription, SubscriptionFilter, SubscriptionUpdate,
};

/// Retries of a failed payment when the request names none.
pub const DEFAULT_MAX_RETRY_ATTEMPTS: i64 = 3;
/// Hours between retries when the request names none.
pub const DEFAULT_RETRY_INTERVAL_HOURS: i64 = 24;
/// Days of grace after the last retry when the request names none.
pub const DEFAULT_GRACE_PERIOD_DAYS: i64 = 3;

/// ApiPay's bounds of a subscription's amount, in tenge.
const MIN_AMOUNT_KZT: i64 = 100;
const MAX_AMOUNT_KZT: i64 = 1_000_000;

fn not_found() -> ApiError {
    ApiError::not_found(F, "SUBSCRIPTION_NOT_FOUND", "Subscription not found.")
}

/// The amount: ApiPay's money, 100–1,000,000 KZT.
fn amount(value: Option<&Value>, required: bool, errors: &mut FieldErrors) -> Option<Money> {
    match value {
        None | Some(Value::Null) => {
            if required {
                errors.add("amount", "The amount field is required.");
            }
            None
        }
        Some(v) => {
            let money = parse_amount(v, "amount", errors)?;
            let (min, max) = (
                Money::from_tiyn(MIN_AMOUNT_KZT * 100),
                Money::from_tiyn(MAX_AMOUNT_KZT * 100),
            );
            if money < min || money > max {
                errors.add(
                    "amount",
                    format!(
                        "The amount field must be between {MIN_AMOUNT_KZT} and {MAX_AMOUNT_KZT}."
                    ),
                );
                return None;
            }
            Some(money)
        }
    }
}

/// `cart_items` of a subscription (ApiPay's current shape, or the seed's): what each period
/// sells and its sum, which is the subscription's amount (within ApiPay's bounds). `None` when
/// the body has no cart (or it is refused, with its errors added).
async fn cart(
    gateway: &Gateway,
    org_id: i64,
    body: &Map<String, Value>,
    errors: &mut FieldErrors,
) -> Result<Option<(Money, Vec<CartLine>)>, ApiError> {
    let Some(items) = body.get("cart_items").filter(|c| !c.is_null()) else {
        return Ok(None);
    };
    let Some((total, Some(priced))) =
        super::cart::priced(gateway, org_id, None, Some(items), None, errors).await?
    else {
        return Ok(None);
    };
    if total < Money::from_tiyn(MIN_AMOUNT_KZT * 100)
        || total > Money::from_tiyn(MAX_AMOUNT_KZT * 100)
    {
        errors.add(
            "cart_items",
            format!("The cart comes to {}; a subscription's amount must be between {MIN_AMOUNT_KZT} and {MAX_AMOUNT_KZT}.", total.to_decimal_string()),
        );
        return Ok(None);
    }
    Ok(Some((
        total,
        priced.items.iter().map(CartLine::of).collect(),
    )))
}

/// The fields both create and update take and check the same way.
struct Common {
    description: Option<Option<String>>,
    subscriber_name: Option<Option<String>>,
    external_subscriber_id: Option<Option<String>>,
    metadata: Option<Option<String>>,
    billing_day: Option<u8>,
    max_retry_attempts: Option<i64>,
    retry_interval_hours: Option<i64>,
    grace_period_days: Option<i64>,
}

fn common(body: &Map<String, Value>, errors: &mut FieldErrors) -> Common {
    let text = |name: &str, errors: &mut FieldErrors| {
        body.get(name)
            .map(|v| optional_text(F, Some(v), name, 255, errors))
    };
    // ApiPay's current version lets a subscription name one of the dashboard's webhooks; Kassa
    // sends an organization's events to all its endpoints (each filters by event), so the id
    // is checked and otherwise not used.
    fields::integer(body.get("webhook_id"), "webhook_id", 1, i64::MAX, errors);
    Common {
        description: text("description", errors),
        subscriber_name: text("subscriber_name", errors),
        external_subscriber_id: text("external_subscriber_id", errors),
        metadata: fields::object(body.get("metadata"), "metadata", errors),
        billing_day: fields::integer(body.get("billing_day"), "billing_day", 1, 28, errors)
            .and_then(|d| u8::try_from(d).ok()),
        max_retry_attempts: fields::integer(
            body.get("max_retry_attempts"),
            "max_retry_attempts",
            1,
            10,
            errors,
        ),
        retry_interval_hours: fields::integer(
            body.get("retry_interval_hours"),
            "retry_interval_hours",
            1,
            168,
            errors,
        ),
        grace_period_days: fields::integer(
            body.get("grace_period_days"),
            "grace_period_days",
            1,
            30,
            errors,
        ),
    }
}

#[utoipa::path(
    post,
    path = "/subscriptions",
    tag = TAG_SUBSCRIPTIONS,
    summary = "Create a subscription",
    description = "The payer is billed each period by an invoice to their phone, from \
        `started_at` (or now, with `bill_immediately`); a failed payment is retried \
        `max_retry_attempts` times `retry_interval_hours` apart, then `grace_period_days` pass \
        before it expires. Webhooks tell each payment and failure.",
    request_body = doc::CreateSubscriptionRequest,
    responses((status = 201, description = "The subscription (`message`: `Subscription created`)", body = doc::SubscriptionAnswer)),
)]
pub(super) async fn create_subscription(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    idem: Option<Extension<IdemLink>>,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let idempotency = idem.map(|Extension(link)| link);
    if let Some(id) = idempotency
        .as_ref()
        .and_then(IdemLink::recovered_subscription)
    {
        // An earlier run of this request made it, then its process died: that one is the
        // answer.
        let sub = find(&gateway, &caller, id).await?;
        return Ok((
            StatusCode::CREATED,
            Json(subscription_answer(
                &sub,
                &[("message", json!("Subscription created"))],
            )),
        ));
    }
    let mut errors = FieldErrors::new();
    let phone = fields::phone_number(body.get("phone_number"), &mut errors);
    // With a cart, its sum is the amount (ApiPay ignores `amount` then).
    let cart = cart(&gateway, caller.org_id, &body, &mut errors).await?;
    let has_cart = body.get("cart_items").is_some_and(|c| !c.is_null());
    let amount = match &cart {
        Some((total, _)) => Some(*total),
        None if has_cart => None,
        None => amount(body.get("amount"), true, &mut errors),
    };
    let period = match body.get("billing_period") {
        None | Some(Value::Null) => {
            errors.add("billing_period", "The billing period field is required.");
            None
        }
        Some(Value::String(text)) if BillingPeriod::parse(text).is_some() => {
            BillingPeriod::parse(text)
        }
        Some(_) => {
            errors.add(
                "billing_period",
                "The selected billing period is invalid; expected one of: daily, weekly, biweekly, monthly, quarterly, yearly.",
            );
            None
        }
    };
    let today = almaty_today(&gateway);
    let started_on = fields::date(body.get("started_at"), "started_at", &mut errors);
    if started_on.is_some_and(|d| d < today) {
        errors.add(
            "started_at",
            "The started at field must be a date after or equal to today.",
        );
    }
    let bill_immediately = fields::boolean(
        body.get("bill_immediately"),
        "bill_immediately",
        &mut errors,
    );
    let common = common(&body, &mut errors);
    errors.into_result(F)?;
    let (Some(phone), Some(amount), Some(period)) = (phone, amount, period) else {
        return Err(ApiError::internal(
            F,
            anyhow::anyhow!("validated fields missing"),
        ));
    };
    let is_sandbox = gateway
        .is_sandbox(caller.org_id)
        .await
        .map_err(gateway_error)?;
    let sub = gateway
        .store()
        .subscriptions()
        .create(NewSubscription {
            org_id: caller.org_id,
            amount,
            phone,
            period,
            billing_day: common.billing_day,
            description: common.description.flatten(),
            subscriber_name: common.subscriber_name.flatten(),
            external_subscriber_id: common.external_subscriber_id.flatten(),
            metadata: common.metadata.flatten(),
            started_on: started_on.unwrap_or(today),
            max_retry_attempts: common
                .max_retry_attempts
                .unwrap_or(DEFAULT_MAX_RETRY_ATTEMPTS),
            retry_interval_hours: common
                .retry_interval_hours
                .unwrap_or(DEFAULT_RETRY_INTERVAL_HOURS),
            grace_period_days: common
                .grace_period_days
                .unwrap_or(DEFAULT_GRACE_PERIOD_DAYS),
            bill_immediately: bill_immediately.unwrap_or(false),
            is_sandbox,
            idempotency,
            cart: cart.map(|(_, lines)| lines).unwrap_or_default(),
        })
        .await
        .map_err(|e| ApiError::store(F, e))?;
    tracing::info!(
        subscription = sub.id,
        period = sub.period.as_str(),
        "subscription created"
    );
    Ok((
        StatusCode::CREATED,
        Json(subscription_answer(
            &sub,
            &[("message", json!("Subscription created"))],
        )),
    ))
}

#[utoipa::path(
    get,
    path = "/subscriptions",
    tag = TAG_SUBSCRIPTIONS,
    summary = "List subscriptions",
    params(doc::SubscriptionListQuery),
    responses((status = 200, description = "A page of subscriptions", body = doc::SubscriptionPage)),
)]
pub(super) async fn list_subscriptions(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    query: QueryPairs<ApiPay>,
) -> Result<Json<Value>, ApiError> {
    let mut errors = FieldErrors::new();
    let (page, per_page) = page_and_size(&query, 20, &mut errors)?;
    let status = errors
        .take(query.one_of("status", &["active", "paused", "cancelled", "expired"]))?
        .flatten()
        .and_then(SubscriptionStatus::parse);
    let phone = match errors.take(query.string("phone_number", 32))?.flatten() {
        Some(text) => match kaspi::phone::normalize(text) {
            Ok(phone) => Some(phone.as_str().to_owned()),
            Err(_) => {
                errors.add(
                    "phone_number",
                    "Phone number must be in format 8XXXXXXXXXX.",
                );
                None
            }
        },
        None => None,
    };
    let external_subscriber_id = errors
        .take(query.string("external_subscriber_id", 255))?
        .flatten()
        .map(str::to_owned);
    let search = errors
        .take(query.string("search", 100))?
        .flatten()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    let period = errors
        .take(query.one_of(
            "billing_period",
            &[
                "daily",
                "weekly",
                "biweekly",
                "monthly",
                "quarterly",
                "yearly",
            ],
        ))?
        .flatten()
        .and_then(BillingPeriod::parse);
    let sort_by = errors
        .take(query.one_of(
            "sort_by",
            &[
                "id",
                "amount",
                "subscriber_name",
                "next_billing_at",
                "created_at",
            ],
        ))?
        .flatten();
    let descending = errors
        .take(query.one_of("sort_order", &["asc", "desc"]))?
        .flatten()
        != Some("asc");
    errors.into_result(F)?;
    let (subs, total) = gateway
        .store()
        .subscriptions()
        .list(
            caller.org_id,
            SubscriptionFilter {
                page,
                per_page,
                status,
                phone,
                external_subscriber_id,
                search,
                period,
                sort_by,
                descending,
            },
        )
        .await
        .map_err(|e| ApiError::store(F, e))?;
    Ok(Json(super::views::page_json(
        subs.iter().map(subscription_json).collect::<Vec<_>>(),
        page,
        per_page,
        total,
    )))
}

async fn find(gateway: &Gateway, caller: &Caller, id: i64) -> Result<Subscription, ApiError> {
    gateway
        .store()
        .subscriptions()
        .subscription(caller.org_id, id)
        .await
        .map_err(|e| ApiError::store(F, e))?
        .ok_or_else(not_found)
}

#[utoipa::path(
    get,
    path = "/subscriptions/{id}",
    tag = TAG_SUBSCRIPTIONS,
    summary = "Get a subscription",
    params(("id" = i64, Path, description = "The subscription's id")),
    responses((status = 200, description = "The subscription with `stats` and `last_payment`", body = doc::SubscriptionAnswer)),
)]
pub(super) async fn get_subscription(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    IdPath(id): IdPath,
) -> Result<Json<Value>, ApiError> {
    let sub = find(&gateway, &caller, id).await?;
    let (stats, last) = gateway
        .store()
        .subscriptions()
        .stats(sub.id)
        .await
        .map_err(|e| ApiError::store(F, e))?;
    Ok(Json(subscription_answer(
        &sub,
        &[
            ("stats", subscription_stats_json(&stats)),
            ("last_payment", last_payment_json(last.as_ref())),
        ],
    )))
}

#[utoipa::path(
    put,
    path = "/subscriptions/{id}",
    tag = TAG_SUBSCRIPTIONS,
    summary = "Change a subscription",
    description = "The fields given change; the next invoices bill the new amount or cart.",
    params(("id" = i64, Path, description = "The subscription's id")),
    request_body = doc::UpdateSubscriptionRequest,
    responses(
        (status = 200, description = "The subscription (`message`: `Subscription updated`)", body = doc::SubscriptionAnswer),
        (status = 400, description = "It is cancelled or expired (`subscription_ended`)", body = doc::ApiPayCodedError),
    ),
)]
pub(super) async fn update_subscription(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> Result<Json<Value>, ApiError> {
    let mut errors = FieldErrors::new();
    for fixed in ["phone_number", "billing_period", "started_at"] {
        if body.get(fixed).is_some_and(|v| !v.is_null()) {
            errors.add(
                fixed,
                format!(
                    "The {fixed} of a subscription cannot be changed; create a new subscription."
                ),
            );
        }
    }
    let cart = cart(&gateway, caller.org_id, &body, &mut errors).await?;
    let has_cart = body.get("cart_items").is_some_and(|c| !c.is_null());
    let flat = if has_cart {
        None
    } else {
        amount(body.get("amount"), false, &mut errors)
    };
    let common = common(&body, &mut errors);
    errors.into_result(F)?;
    // A new cart sets the amount; a flat amount alone ends billing from a cart.
    let (amount, new_cart) = match cart {
        Some((total, lines)) => (Some(total), Some(lines)),
        None => (flat, flat.map(|_| Vec::new())),
    };
    let current = find(&gateway, &caller, id).await?;
    if matches!(
        current.status,
        SubscriptionStatus::Cancelled | SubscriptionStatus::Expired
    ) {
        return Err(ApiError::coded(
            F,
            StatusCode::BAD_REQUEST,
            "subscription_ended",
            format!(
                "This subscription is {} and can no longer be changed.",
                current.status
            ),
        ));
    }
    let sub = gateway
        .store()
        .subscriptions()
        .update(
            caller.org_id,
            id,
            SubscriptionUpdate {
                amount,
                cart: new_cart,
                billing_day: common.billing_day,
                description: common.description,
                subscriber_name: common.subscriber_name,
                external_subscriber_id: common.external_subscriber_id,
                metadata: common.metadata,
                max_retry_attempts: common.max_retry_attempts,
                retry_interval_hours: common.retry_interval_hours,
                grace_period_days: common.grace_period_days,
            },
        )
        .await
        .map_err(|e| match e {
            crate::store::StoreError::NotFound => not_found(),
            e => ApiError::store(F, e),
        })?;
    Ok(Json(subscription_answer(
        &sub,
        &[("message", json!("Subscription updated"))],
    )))
}

async fn act(
    gateway: &Gateway,
    caller: &Caller,
    id: i64,
    action: SubscriptionAction,
) -> Result<Json<Value>, ApiError> {
    let sub = gateway
        .act_on_subscription(caller.org_id, id, action)
        .await
        .map_err(|e| match e {
            SubscriptionActError::NotFound => not_found(),
            SubscriptionActError::NotAllowed(status) => ApiError::coded(
                F,
                StatusCode::BAD_REQUEST,
                "subscription_status_invalid",
                match action {
                    SubscriptionAction::Pause => {
                        format!("Only an active subscription can be paused; this one is {status}.")
                    }
                    SubscriptionAction::Resume => {
                        format!("Only a paused subscription can be resumed; this one is {status}.")
                    }
                    SubscriptionAction::Cancel => {
                        format!("This subscription is {status} already and cannot be cancelled.")
                    }
                },
            ),
            SubscriptionActError::Gateway(e) => gateway_error(e),
        })?;
    let message = match action {
        SubscriptionAction::Pause => "Subscription paused",
        SubscriptionAction::Resume => "Subscription resumed",
        SubscriptionAction::Cancel => "Subscription cancelled",
    };
    Ok(Json(subscription_answer(
        &sub,
        &[("message", json!(message))],
    )))
}

#[utoipa::path(
    post,
    path = "/subscriptions/{id}/pause",
    tag = TAG_SUBSCRIPTIONS,
    summary = "Pause a subscription",
    description = "Only an active subscription can be paused (400 `subscription_status_invalid`).",
    params(("id" = i64, Path, description = "The subscription's id")),
    responses(
        (status = 200, description = "The subscription (`message`: `Subscription paused`)", body = doc::SubscriptionAnswer),
        (status = 400, description = "Not in a status that allows it (`subscription_status_invalid`)", body = doc::ApiPayCodedError),
    ),
)]
pub(super) async fn pause_subscription(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    IdPath(id): IdPath,
) -> Result<Json<Value>, ApiError> {
    act(&gateway, &caller, id, SubscriptionAction::Pause).await
}

#[utoipa::path(
    post,
    path = "/subscriptions/{id}/resume",
    tag = TAG_SUBSCRIPTIONS,
    summary = "Resume a paused subscription",
    description = "Only a paused subscription can be resumed (400 `subscription_status_invalid`).",
    params(("id" = i64, Path, description = "The subscription's id")),
    responses(
        (status = 200, description = "The subscription (`message`: `Subscription resumed`)", body = doc::SubscriptionAnswer),
        (status = 400, description = "Not in a status that allows it (`subscription_status_invalid`)", body = doc::ApiPayCodedError),
    ),
)]
pub(super) async fn resume_subscription(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    IdPath(id): IdPath,
) -> Result<Json<Value>, ApiError> {
    act(&gateway, &caller, id, SubscriptionAction::Resume).await
}

#[utoipa::path(
    post,
    path = "/subscriptions/{id}/cancel",
    tag = TAG_SUBSCRIPTIONS,
    summary = "Cancel a subscription",
    description = "A cancelled or expired one cannot be cancelled (400 `subscription_status_invalid`). Its open invoices are cancelled at Kaspi; it cannot be resumed.",
    params(("id" = i64, Path, description = "The subscription's id")),
    responses(
        (status = 200, description = "The subscription (`message`: `Subscription cancelled`)", body = doc::SubscriptionAnswer),
        (status = 400, description = "Not in a status that allows it (`subscription_status_invalid`)", body = doc::ApiPayCodedError),
    ),
)]
pub(super) async fn cancel_subscription(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    IdPath(id): IdPath,
) -> Result<Json<Value>, ApiError> {
    act(&gateway, &caller, id, SubscriptionAction::Cancel).await
}

#[utoipa::path(
    get,
    path = "/subscriptions/{id}/invoices",
    tag = TAG_SUBSCRIPTIONS,
    summary = "The invoices a subscription made",
    params(("id" = i64, Path, description = "The subscription's id"), doc::PageQuery),
    responses((status = 200, description = "A page of its invoices, newest first", body = doc::SubscriptionInvoicePage)),
)]
pub(super) async fn subscription_invoices(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    IdPath(id): IdPath,
    query: QueryPairs<ApiPay>,
) -> Result<Json<Value>, ApiError> {
    let mut errors = FieldErrors::new();
    let (page, per_page) = page_and_size(&query, 20, &mut errors)?;
    errors.into_result(F)?;
    let sub = find(&gateway, &caller, id).await?;
    let (items, total) = gateway
        .store()
        .subscriptions()
        .invoices(caller.org_id, sub.id, page, per_page)
        .await
        .map_err(|e| ApiError::store(F, e))?;
    Ok(Json(json!({
        "data": items.iter().map(subscription_invoice_json).collect::<Vec<_>>(),
        "meta": page_meta(page, per_page, total),
    })))
}
