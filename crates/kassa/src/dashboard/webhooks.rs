//! Webhooks: the organization's endpoints (their health, an add form), an endpoint's page
//! (rotate its secret, enable or disable it, send a test event, delete it) and its delivery
//! log: each delivery's attempts (HTTP status, latency, error, the first bytes of the answer)
//! and the request body it sent, which the API does not repeat and the store keeps.
//!
//! A new endpoint's secret and a rotated one are shown once, on the page the form's answer
//! renders (never in a URL, never again).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use serde_json::{json, Value};

use super::i18n;
use super::render::{DashError, Signed};
use super::{see_other, ApiAnswer, Dashboard};
use crate::webhooks::payloads::{APIPAY_EVENTS, XPAYMENT_EVENTS};

pub(super) const WORDS: &[(&str, &str, &str)] = &[
    ("webhooks.title", "Вебхуки", "Webhooks"),
    ("webhooks.intro", "Касса отправляет события счетов и подписок на эти адреса, подписывая каждое секретом адреса.", "Kassa sends the events of invoices and subscriptions to these addresses, each signed with the address's secret."),
    ("webhooks.url", "Адрес (URL)", "URL"),
    ("webhooks.events", "События", "Events"),
    ("webhooks.events_hint", "«*» — все события. Или через запятую:", "\"*\" means every event. Or a comma-separated list:"),
    ("webhooks.format", "Формат", "Format"),
    ("webhooks.format.apipay", "ApiPay.kz", "ApiPay.kz"),
    ("webhooks.format.xpayment", "xPayment.kz", "xPayment.kz"),
    ("webhooks.state", "Состояние", "State"),
    ("webhooks.health", "Доставка", "Delivery"),
    ("webhooks.enabled", "включён", "enabled"),
    ("webhooks.disabled", "отключён", "disabled"),
    ("webhooks.healthy", "работает", "healthy"),
    ("webhooks.failing_since", "ошибки с", "failing since"),
    ("webhooks.add", "Добавить адрес", "Add an endpoint"),
    ("webhooks.add_submit", "Добавить", "Add"),
    ("webhooks.open", "Открыть", "Open"),
    ("webhook.title", "Вебхук", "Webhook"),
    ("webhook.fields", "Данные", "Details"),
    ("webhook.uuid", "Идентификатор xPayment", "xPayment id"),
    ("webhook.disabled_reason", "Причина отключения", "Why it is disabled"),
    ("webhook.previous_secret", "Старый секрет действует до", "The old secret works until"),
    ("webhook.updated_at", "Изменён", "Updated"),
    ("webhook.secret", "Секрет для проверки подписи", "The signing secret"),
    ("webhook.rotate", "Сменить секрет", "Rotate the secret"),
    ("webhook.rotate_confirm", "Выпустить новый секрет? Старый будет действовать ещё сутки.", "Make a new secret? The old one keeps working for a day."),
    ("webhook.enable", "Включить", "Enable"),
    ("webhook.disable", "Отключить", "Disable"),
    ("webhook.disable_confirm", "Отключить этот адрес? События перестанут отправляться.", "Disable this endpoint? Events will no longer be sent."),
    ("webhook.send_test", "Отправить тестовое событие", "Send a test event"),
    ("webhook.delete", "Удалить адрес", "Delete the endpoint"),
    ("webhook.delete_confirm", "Удалить этот адрес вместе с журналом доставок? Это нельзя отменить.", "Delete this endpoint and its delivery log? This cannot be undone."),
    ("webhook.test_why", "Тестовое событие можно отправить только на включённый адрес.", "A test event can be sent only to an enabled endpoint."),
    ("webhook.viewer_why", "Ваша роль не позволяет менять вебхуки.", "Your role does not allow changing webhooks."),
    ("webhook.deliveries", "Журнал доставок", "Delivery log"),
    ("webhook.event", "Событие", "Event"),
    ("webhook.attempts", "Попытки", "Attempts"),
    ("webhook.attempt_log", "Ответы", "Answers"),
    ("webhook.no_attempts", "Попыток ещё не было.", "No attempts yet."),
    ("webhook.next_attempt", "следующая попытка", "next attempt"),
    ("webhook.no_answer", "нет ответа", "no answer"),
    ("webhook.latency", "мс", "ms"),
    ("webhook.request", "Тело запроса", "Request body"),
    ("webhook.test_badge", "тест", "test"),
    ("webhook.redeliver", "Отправить снова", "Send again"),
    ("status.sending", "отправляется", "sending"),
    ("done.webhook_enabled", "Адрес включён.", "The endpoint is enabled."),
    ("done.webhook_disabled", "Адрес отключён.", "The endpoint is disabled."),
    ("done.webhook_deleted", "Адрес удалён.", "The endpoint was deleted."),
    ("done.webhook_created", "Адрес добавлен.", "The endpoint was added."),
    ("done.webhook_rotated", "Секрет заменён.", "The secret was rotated."),
    ("done.webhook_test_sent", "Тестовое событие доставлено.", "The test event was delivered."),
    ("done.webhook_test_failed", "Тестовое событие не доставлено — подробности в журнале ниже.", "The test event was not delivered: the log below says why."),
    ("done.webhook_redelivered", "Доставка поставлена в очередь.", "The delivery was queued again."),
];

/// Formats an endpoint can have (ApiPay's names).
const FORMATS: &[&str] = &["apipay", "xpayment"];

/// Deliveries per page of the log.
const PER_PAGE: u32 = 20;

pub(super) fn routes() -> Router<Dashboard> {
    Router::new()
        .route("/webhooks", get(list).post(create))
        .route("/webhooks/{id}", get(show))
        .route("/webhooks/{id}/rotate", post(rotate))
        .route("/webhooks/{id}/enable", post(enable))
        .route("/webhooks/{id}/disable", post(disable))
        .route("/webhooks/{id}/test", post(send_test))
        .route("/webhooks/{id}/delete", post(delete))
        .route(
            "/webhooks/{id}/deliveries/{delivery}/redeliver",
            post(redeliver),
        )
}

/// The label `key` in the signed-in user's language.
fn word(me: &Signed, key: &str) -> Value {
    i18n::word(me.lang, key).map_or(Value::Null, |w| Value::String(w.to_owned()))
}

/// The add form, empty.
fn empty_form() -> Value {
    json!({"events": "*", "format": "apipay"})
}

/// The list page, with the add form's values, errors and alert.
async fn list_page(
    dash: &Dashboard,
    me: &Signed,
    form: Value,
    errors: Value,
    alert: Option<String>,
) -> Result<Response, DashError> {
    let endpoints = dash.api_get(me.org_id(), "/webhooks").await?;
    dash.page(
        me,
        "webhooks.html",
        "webhooks",
        json!({
            "endpoints": endpoints["data"],
            "form": form,
            "errors": errors,
            "alert": alert,
            "formats": FORMATS,
            "events_apipay": APIPAY_EVENTS,
            "events_xpayment": XPAYMENT_EVENTS,
        }),
    )
    .await
}

/// `GET /dashboard/webhooks`.
async fn list(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
) -> Result<Response, DashError> {
    list_page(&dash, &me, empty_form(), json!({}), None).await
}

/// The event names of the form's text: `*`, or names separated by commas or spaces.
fn events_of(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `POST /dashboard/webhooks`: the API's `POST /webhooks`; on success the new endpoint's page
/// with its secret, shown this once.
async fn create(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, DashError> {
    let field = |name: &str| form.get(name).map(|v| v.trim().to_owned());
    let mut body = serde_json::Map::new();
    body.insert("url".into(), json!(field("url").unwrap_or_default()));
    body.insert(
        "events".into(),
        json!(events_of(&field("events").unwrap_or_default())),
    );
    if let Some(format) = field("format").filter(|f| !f.is_empty()) {
        body.insert("format".into(), json!(format));
    }
    if let Some(description) = field("description").filter(|d| !d.is_empty()) {
        body.insert("description".into(), json!(description));
    }
    let answer = dash
        .api(
            me.org_id(),
            Method::POST,
            "/webhooks",
            Some(Value::Object(body)),
        )
        .await?;
    if answer.ok() {
        let id = answer.body["id"].as_i64().unwrap_or_default();
        tracing::info!(
            org_id = me.org_id(),
            endpoint = id,
            "dashboard: webhook endpoint added"
        );
        return endpoint_page(
            &dash,
            &me,
            id,
            1,
            json!({
                "secret": answer.body["secret"],
                "flash": word(&me, "done.webhook_created"),
            }),
        )
        .await;
    }
    let mut response = list_page(
        &dash,
        &me,
        json!(form),
        answer.field_errors(),
        Some(answer.message()),
    )
    .await?;
    *response.status_mut() = answer.status;
    Ok(response)
}

/// The endpoint's page: its fields, its actions and page `page` of its delivery log; `extra`
/// adds to (or overrides) what the template gets (a secret shown once, an alert, a flash).
async fn endpoint_page(
    dash: &Dashboard,
    me: &Signed,
    id: i64,
    page: u32,
    extra: Value,
) -> Result<Response, DashError> {
    let org = me.org_id();
    let endpoint = dash.api_get(org, &format!("/webhooks/{id}")).await?;
    let log = dash
        .api_get(
            org,
            &format!("/webhooks/{id}/deliveries?page={page}&per_page={PER_PAGE}"),
        )
        .await?;
    let deliveries = with_payloads(dash, org, id, page, &log["data"]).await?;
    let mut data = json!({
        "endpoint": endpoint,
        "deliveries": deliveries,
        "meta": log["meta"],
        "page_base": format!("/dashboard/webhooks/{id}?"),
    });
    if let (Value::Object(data), Value::Object(extra)) = (&mut data, extra) {
        data.extend(extra);
    }
    dash.page(me, "webhook.html", "webhooks", data).await
}

/// The API's deliveries with the request body each sent (`payload`, as text), read from the
/// store: the same page of the same list, and one by one for any the page did not hold (a
/// delivery made between the two reads shifts the page).
async fn with_payloads(
    dash: &Dashboard,
    org: i64,
    endpoint: i64,
    page: u32,
    deliveries: &Value,
) -> Result<Vec<Value>, DashError> {
    let store = dash.state().store.webhooks();
    let offset = page.saturating_sub(1).saturating_mul(PER_PAGE);
    let bodies: HashMap<i64, Vec<u8>> = store
        .list_webhook_deliveries(org, endpoint, PER_PAGE, offset)
        .await?
        .into_iter()
        .map(|d| (d.id, d.payload))
        .collect();
    let mut out = Vec::new();
    for delivery in deliveries.as_array().into_iter().flatten() {
        let mut delivery = delivery.clone();
        if let Some(id) = delivery["id"].as_i64() {
            let payload = match bodies.get(&id) {
                Some(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
                None => store
                    .webhook_delivery(org, endpoint, id)
                    .await?
                    .map(|d| String::from_utf8_lossy(&d.payload).into_owned()),
            };
            delivery["payload"] = json!(payload);
        }
        out.push(delivery);
    }
    Ok(out)
}

/// `GET /dashboard/webhooks/{id}?page=N`.
async fn show(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, DashError> {
    let id = super::path_id(&id)?;
    let page = super::page_of(&query);
    endpoint_page(&dash, &me, id, page, json!({})).await
}

/// A refusal of the API shown on the endpoint's page, with the answer's status; a 404 is the
/// dashboard's 404.
async fn refused(
    dash: &Dashboard,
    me: &Signed,
    id: i64,
    answer: &ApiAnswer,
) -> Result<Response, DashError> {
    if answer.status == StatusCode::NOT_FOUND {
        return Err(DashError::NotFound);
    }
    let mut alert = answer.message();
    if let Some(errors) = answer.field_errors().as_object() {
        for message in errors.values().filter_map(Value::as_str) {
            alert.push(' ');
            alert.push_str(message);
        }
    }
    let mut response = endpoint_page(dash, me, id, 1, json!({"alert": alert})).await?;
    *response.status_mut() = answer.status;
    Ok(response)
}

/// Calls the API on endpoint `id` and comes back to its page with `?done=<done>`.
async fn act(
    dash: &Dashboard,
    me: &Signed,
    id: i64,
    method: Method,
    uri: &str,
    body: Option<Value>,
    done: &str,
) -> Result<Response, DashError> {
    let answer = dash.api(me.org_id(), method, uri, body).await?;
    if answer.ok() {
        return Ok(see_other(&format!("/dashboard/webhooks/{id}?done={done}")));
    }
    refused(dash, me, id, &answer).await
}

/// `POST /dashboard/webhooks/{id}/rotate`: a new secret, shown this once.
async fn rotate(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
    Path(id): Path<String>,
) -> Result<Response, DashError> {
    let id = super::path_id(&id)?;
    let answer = dash
        .api(
            me.org_id(),
            Method::POST,
            &format!("/webhooks/{id}/rotate-secret"),
            Some(json!({})),
        )
        .await?;
    if !answer.ok() {
        return refused(&dash, &me, id, &answer).await;
    }
    tracing::info!(
        org_id = me.org_id(),
        endpoint = id,
        "dashboard: webhook secret rotated"
    );
    endpoint_page(
        &dash,
        &me,
        id,
        1,
        json!({
            "secret": answer.body["secret"],
            "flash": word(&me, "done.webhook_rotated"),
        }),
    )
    .await
}

async fn enable(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
    Path(id): Path<String>,
) -> Result<Response, DashError> {
    let id = super::path_id(&id)?;
    let uri = format!("/webhooks/{id}");
    let body = Some(json!({"is_active": true}));
    act(&dash, &me, id, Method::PATCH, &uri, body, "webhook_enabled").await
}

async fn disable(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
    Path(id): Path<String>,
) -> Result<Response, DashError> {
    let id = super::path_id(&id)?;
    let uri = format!("/webhooks/{id}");
    let body = Some(json!({"is_active": false}));
    act(
        &dash,
        &me,
        id,
        Method::PATCH,
        &uri,
        body,
        "webhook_disabled",
    )
    .await
}

/// `POST /dashboard/webhooks/{id}/test`: the API's test event, sent now; the page says
/// whether it arrived and the log shows the attempt.
async fn send_test(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
    Path(id): Path<String>,
) -> Result<Response, DashError> {
    let id = super::path_id(&id)?;
    let answer = dash
        .api(
            me.org_id(),
            Method::POST,
            &format!("/webhooks/{id}/test"),
            None,
        )
        .await?;
    if !answer.ok() {
        return refused(&dash, &me, id, &answer).await;
    }
    let done = if answer.body["success"].as_bool() == Some(true) {
        "webhook_test_sent"
    } else {
        "webhook_test_failed"
    };
    Ok(see_other(&format!("/dashboard/webhooks/{id}?done={done}")))
}

/// `POST /dashboard/webhooks/{id}/delete`: back to the list.
async fn delete(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
    Path(id): Path<String>,
) -> Result<Response, DashError> {
    let id = super::path_id(&id)?;
    let answer = dash
        .api(
            me.org_id(),
            Method::DELETE,
            &format!("/webhooks/{id}"),
            None,
        )
        .await?;
    if !answer.ok() {
        return refused(&dash, &me, id, &answer).await;
    }
    tracing::info!(
        org_id = me.org_id(),
        endpoint = id,
        "dashboard: webhook endpoint deleted"
    );
    Ok(see_other("/dashboard/webhooks?done=webhook_deleted"))
}

async fn redeliver(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
    Path((id, delivery)): Path<(String, String)>,
) -> Result<Response, DashError> {
    let (id, delivery) = (super::path_id(&id)?, super::path_id(&delivery)?);
    let uri = format!("/webhooks/{id}/deliveries/{delivery}/redeliver");
    act(
        &dash,
        &me,
        id,
        Method::POST,
        &uri,
        None,
        "webhook_redelivered",
    )
    .await
}
