//! Subscriptions: the list (status filter, search, pages), a new subscription by form, and a
//! subscription's page: its fields, payment totals, what it sells, the invoices it made, and
//! pause / resume / cancel where its status allows. Everything goes through the ApiPay
//! surface's own handlers ([`Dashboard::api`]); the rules of which action a status allows are
//! the domain's ([`SubscriptionAction::apply`]).
//!
//! A subscription's own events (retries, grace, expiry) are not shown: the store keeps them in
//! the outbox for webhooks and has no reader of one subscription's events.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use serde_json::{json, Value};

use super::render::{DashError, Signed};
use super::{see_other, ApiAnswer, Dashboard};
use crate::api::apipay::{
    DEFAULT_GRACE_PERIOD_DAYS, DEFAULT_MAX_RETRY_ATTEMPTS, DEFAULT_RETRY_INTERVAL_HOURS,
};
use crate::domain::{BillingPeriod, SubscriptionAction, SubscriptionStatus};

#[rustfmt::skip]
pub(super) const WORDS: &[(&str, &str, &str)] = &[
    ("sub.events", "События", "Events"),
    ("sub.no_events", "Событий пока не было: они появляются, когда счёт подписки оплачен или не оплачен.", "No events yet: they come when a subscription invoice is paid or is not."),
    ("sub.event.subscription.payment_succeeded", "оплата прошла", "payment succeeded"),
    ("sub.event.subscription.payment_failed", "оплата не прошла", "payment failed"),
    ("sub.event.subscription.grace_period_started", "начался льготный период", "grace period started"),
    ("sub.event.subscription.expired", "подписка закончилась", "subscription expired"),
    ("subs.title", "Подписки", "Subscriptions"),
    ("subs.new", "Новая подписка", "New subscription"),
    ("subs.any_status", "Любой статус", "Any status"),
    ("subs.search", "Имя подписчика или телефон", "Subscriber's name or phone"),
    ("subs.filter", "Показать", "Show"),
    ("subs.id", "№", "No."),
    ("subs.period", "Период", "Period"),
    ("subs.next_billing", "Следующее списание", "Next billing"),
    ("subs.period.daily", "ежедневно", "daily"),
    ("subs.period.weekly", "еженедельно", "weekly"),
    ("subs.period.biweekly", "раз в две недели", "every two weeks"),
    ("subs.period.monthly", "ежемесячно", "monthly"),
    ("subs.period.quarterly", "ежеквартально", "quarterly"),
    ("subs.period.yearly", "ежегодно", "yearly"),
    ("subs.choose_period", "— выберите —", "— choose —"),
    ("subs.phone_hint", "Номер Kaspi подписчика: 87001234567", "The subscriber's Kaspi number: 87001234567"),
    ("subs.amount_hint", "В тенге за каждый период, например 5000 или 5000.50.", "In tenge per period, e.g. 5000 or 5000.50."),
    ("subs.billing_day", "День месяца для списания (1–28)", "Day of the month to bill (1–28)"),
    ("subs.billing_day_hint", "Для ежемесячных, ежеквартальных и ежегодных подписок. Пусто — день начала.", "For monthly, quarterly and yearly subscriptions. Empty: the start date's day."),
    ("subs.started_at", "Дата начала", "Start date"),
    ("subs.started_hint", "Пусто — сегодня.", "Empty: today."),
    ("subs.subscriber_name", "Имя подписчика", "Subscriber's name"),
    ("subs.external_subscriber_id", "Номер подписчика в вашей системе", "Your subscriber id"),
    ("subs.retries", "Если счёт не оплачен", "When an invoice is not paid"),
    ("subs.max_retry_attempts", "Повторных попыток", "Retry attempts"),
    ("subs.retry_interval_hours", "Часов между попытками", "Hours between attempts"),
    ("subs.grace_period_days", "Льготных дней после последней попытки", "Days of grace after the last attempt"),
    ("subs.bill_immediately", "Выставить первый счёт сразу", "Send the first invoice now"),
    ("subs.create", "Создать подписку", "Create the subscription"),
    ("sub.title", "Подписка", "Subscription"),
    ("sub.fields", "Данные", "Details"),
    ("sub.schedule", "Расписание", "Schedule"),
    ("sub.billing_day", "День списания", "Billing day"),
    ("sub.started_at", "Начало", "Started"),
    ("sub.next_billing_date", "Дата следующего списания", "Next billing date"),
    ("sub.failed_attempts", "Неудачных попыток подряд", "Failed attempts in a row"),
    ("sub.in_grace", "Идёт льготный период", "In the grace period"),
    ("sub.grace_until", "Льготный период до", "Grace period until"),
    ("sub.metadata", "Метаданные", "Metadata"),
    ("sub.is_sandbox", "Песочница", "Sandbox"),
    ("sub.paused_at", "Приостановлена", "Paused"),
    ("sub.cancelled_at", "Отменена", "Cancelled"),
    ("sub.expired_at", "Истекла", "Expired"),
    ("sub.updated_at", "Изменена", "Updated"),
    ("sub.stats", "Платежи", "Payments"),
    ("sub.total_payments", "Счетов выставлено", "Invoices sent"),
    ("sub.successful_payments", "Оплачено", "Paid"),
    ("sub.failed_payments", "Не оплачено", "Not paid"),
    ("sub.total_collected", "Собрано", "Collected"),
    ("sub.last_payment", "Последний платёж", "Last payment"),
    ("sub.cart", "Что продаётся каждый период", "What each period sells"),
    ("sub.item", "Товар", "Item"),
    ("sub.price", "Цена", "Price"),
    ("sub.count", "Кол-во", "Qty"),
    ("sub.invoices", "Счета подписки", "Invoices of this subscription"),
    ("sub.invoice", "Счёт", "Invoice"),
    ("sub.invoice_period", "Период", "Period"),
    ("sub.attempt", "Попытка", "Attempt"),
    ("sub.failure", "Причина", "Reason"),
    ("sub.pause", "Приостановить", "Pause"),
    ("sub.resume", "Возобновить", "Resume"),
    ("sub.cancel", "Отменить подписку", "Cancel the subscription"),
    ("sub.cancel_confirm", "Отменить подписку? Вернуть её будет нельзя.", "Cancel this subscription? It cannot be restarted."),
    ("sub.pause_why", "Приостановить можно только активную подписку.", "Only an active subscription can be paused."),
    ("sub.resume_why", "Возобновить можно только приостановленную подписку.", "Only a paused subscription can be resumed."),
    ("sub.cancel_why", "Подписка уже завершена.", "This subscription has ended already."),
    ("sub.viewer_why", "Ваша роль не позволяет менять подписки.", "Your role does not allow changing subscriptions."),
    ("done.sub_created", "Подписка создана.", "The subscription was created."),
    ("done.sub_paused", "Подписка приостановлена.", "The subscription was paused."),
    ("done.sub_resumed", "Подписка возобновлена.", "The subscription was resumed."),
    ("done.sub_cancelled", "Подписка отменена.", "The subscription was cancelled."),
];

/// The create form's fields, sent to the API as they are when not empty.
const FORM_FIELDS: &[&str] = &[
    "phone_number",
    "amount",
    "description",
    "billing_period",
    "billing_day",
    "started_at",
    "subscriber_name",
    "external_subscriber_id",
    "max_retry_attempts",
    "retry_interval_hours",
    "grace_period_days",
    "bill_immediately",
];

pub(super) fn routes() -> Router<Dashboard> {
    Router::new()
        .route("/subscriptions", get(list))
        .route("/subscriptions/new", get(new_form).post(create))
        .route("/subscriptions/{id}", get(show))
        .route("/subscriptions/{id}/pause", post(pause))
        .route("/subscriptions/{id}/resume", post(resume))
        .route("/subscriptions/{id}/cancel", post(cancel))
}

fn statuses() -> Vec<&'static str> {
    SubscriptionStatus::ALL.iter().map(|s| s.as_str()).collect()
}

fn periods() -> Vec<&'static str> {
    BillingPeriod::ALL.iter().map(|p| p.as_str()).collect()
}

/// `GET /dashboard/subscriptions`.
async fn list(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, DashError> {
    let filters = super::query_of(&query, &["status", "search"]);
    let page = super::page_of(&query);
    let answer = dash
        .api(
            me.org_id(),
            Method::GET,
            &format!("/subscriptions?{filters}&page={page}&per_page=20"),
            None,
        )
        .await?;
    // A bad filter is the API's 422: shown beside the filters.
    let (subscriptions, meta, errors) = if answer.ok() {
        (
            answer.body["data"].clone(),
            answer.body["meta"].clone(),
            json!({}),
        )
    } else {
        (json!([]), Value::Null, answer.field_errors())
    };
    dash.page(
        &me,
        "subscriptions.html",
        "subscriptions",
        json!({
            "subscriptions": subscriptions,
            "meta": meta,
            "errors": errors,
            "q": query,
            "statuses": statuses(),
            "page_base": format!("/dashboard/subscriptions?{filters}&"),
        }),
    )
    .await
}

/// The create form, empty or with what was sent and the API's answer.
async fn form_page(
    dash: &Dashboard,
    me: &Signed,
    form: Value,
    answer: Option<&ApiAnswer>,
) -> Result<Response, DashError> {
    let mut response = dash
        .page(
            me,
            "subscription_new.html",
            "subscriptions",
            json!({
                "form": form,
                "errors": answer.map_or_else(|| json!({}), ApiAnswer::field_errors),
                "alert": answer.map(ApiAnswer::message),
                "periods": periods(),
                "defaults": {
                    "max_retry_attempts": DEFAULT_MAX_RETRY_ATTEMPTS,
                    "retry_interval_hours": DEFAULT_RETRY_INTERVAL_HOURS,
                    "grace_period_days": DEFAULT_GRACE_PERIOD_DAYS,
                },
            }),
        )
        .await?;
    if let Some(answer) = answer {
        *response.status_mut() = answer.status;
    }
    Ok(response)
}

async fn new_form(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
) -> Result<Response, DashError> {
    form_page(&dash, &me, json!({}), None).await
}

/// `POST /dashboard/subscriptions/new`: the form's fields as the API's body; its errors shown
/// beside the fields.
async fn create(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, DashError> {
    let body = super::json_fields(&form, FORM_FIELDS);
    let answer = dash
        .api(
            me.org_id(),
            Method::POST,
            "/subscriptions",
            Some(Value::Object(body)),
        )
        .await?;
    if answer.ok() {
        let id = answer.body["id"].as_i64().unwrap_or_default();
        return Ok(see_other(&format!(
            "/dashboard/subscriptions/{id}?done=sub_created"
        )));
    }
    form_page(&dash, &me, json!(form), Some(&answer)).await
}

/// The subscription's page; `failed` is an action's refusal, shown above the actions with the
/// API's status.
async fn detail(
    dash: &Dashboard,
    me: &Signed,
    id: i64,
    page: u32,
    failed: Option<&ApiAnswer>,
) -> Result<Response, DashError> {
    let org = me.org_id();
    let sub = dash.api_get(org, &format!("/subscriptions/{id}")).await?;
    let invoices = dash
        .api_get(
            org,
            &format!("/subscriptions/{id}/invoices?page={page}&per_page=20"),
        )
        .await?;
    let events: Vec<Value> = dash
        .state()
        .store
        .subscriptions()
        .subscription_events(org, id, 100)
        .await?
        .into_iter()
        .map(|e| {
            json!({
                "event": e.kind.as_str(),
                "status": e.status,
                "invoice_id": e.invoice_id,
                "at": crate::api::rfc3339_ms(e.at),
            })
        })
        .collect();
    let status = SubscriptionStatus::parse(sub["status"].as_str().unwrap_or_default());
    let allowed = |action: SubscriptionAction| status.and_then(|s| action.apply(s)).is_some();
    let metadata = match &sub["metadata"] {
        Value::Null => Value::Null,
        other => Value::String(other.to_string()),
    };
    let mut response = dash
        .page(
            me,
            "subscription.html",
            "subscriptions",
            json!({
                "sub": sub,
                "metadata": metadata,
                "invoices": invoices["data"],
                "events": events,
                "meta": invoices["meta"],
                "page_base": format!("/dashboard/subscriptions/{id}?"),
                "can_pause": allowed(SubscriptionAction::Pause),
                "can_resume": allowed(SubscriptionAction::Resume),
                "can_cancel": allowed(SubscriptionAction::Cancel),
                "alert": failed.map(ApiAnswer::message),
            }),
        )
        .await?;
    if let Some(failed) = failed {
        *response.status_mut() = failed.status;
    }
    Ok(response)
}

/// `GET /dashboard/subscriptions/{id}` (`?page=` pages its invoices).
async fn show(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, DashError> {
    let id = super::path_id(&id)?;
    detail(&dash, &me, id, super::page_of(&query), None).await
}

/// Runs `action` through the API and comes back to the subscription's page, with the API's
/// message when it refused.
async fn act(
    dash: &Dashboard,
    me: &Signed,
    id: &str,
    action: SubscriptionAction,
    done: &str,
) -> Result<Response, DashError> {
    let id = super::path_id(id)?;
    let answer = dash
        .api(
            me.org_id(),
            Method::POST,
            &format!("/subscriptions/{id}/{}", action.as_str()),
            None,
        )
        .await?;
    if answer.ok() {
        return Ok(see_other(&format!(
            "/dashboard/subscriptions/{id}?done={done}"
        )));
    }
    if answer.status == StatusCode::NOT_FOUND {
        return Err(DashError::NotFound);
    }
    detail(dash, me, id, 1, Some(&answer)).await
}

async fn pause(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
    Path(id): Path<String>,
) -> Result<Response, DashError> {
    act(&dash, &me, &id, SubscriptionAction::Pause, "sub_paused").await
}

async fn resume(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
    Path(id): Path<String>,
) -> Result<Response, DashError> {
    act(&dash, &me, &id, SubscriptionAction::Resume, "sub_resumed").await
}

async fn cancel(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
    Path(id): Path<String>,
) -> Result<Response, DashError> {
    act(&dash, &me, &id, SubscriptionAction::Cancel, "sub_cancelled").await
}
