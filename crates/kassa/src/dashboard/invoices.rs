//! Invoices: the list (search, status and date filters, pages, CSV export), a new invoice by
//! form (an amount or a cart from the catalog), and an invoice's page: its fields, the
//! timeline of its status, refunds, the webhook deliveries of its events, the QR image of a
//! payment link, cancel and refund where allowed. A pending invoice's page follows its status
//! by itself (`assets/app.js` asks `/invoices/{id}/status`).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{header, Method};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use serde_json::{json, Value};

use super::render::{DashError, Signed};
use super::{see_other, Dashboard};
use crate::api::rfc3339_ms;

pub(super) const WORDS: &[(&str, &str, &str)] = &[
    ("invoices.title", "Счета", "Invoices"),
    ("invoices.new", "Новый счёт", "New invoice"),
    (
        "invoices.search",
        "Телефон, описание, номер заказа",
        "Phone, description, order number",
    ),
    ("invoices.any_status", "Любой статус", "Any status"),
    ("invoices.date_from", "С даты", "From"),
    ("invoices.date_to", "По дату", "To"),
    ("invoices.filter", "Показать", "Show"),
    ("invoices.csv", "Скачать CSV", "Download CSV"),
    ("invoices.id", "№", "No."),
    ("invoices.order", "Заказ", "Order"),
    (
        "invoices.phone_hint",
        "Номер Kaspi покупателя: 87001234567",
        "The payer's Kaspi number: 87001234567",
    ),
    (
        "invoices.amount_hint",
        "В тенге, например 1500 или 1500.50. Не нужна, если выбраны товары.",
        "In tenge, e.g. 1500 or 1500.50. Not needed with items from the catalog.",
    ),
    (
        "invoices.cart",
        "Товары из каталога",
        "Items from the catalog",
    ),
    ("invoices.item", "Товар", "Item"),
    ("invoices.count", "Кол-во", "Qty"),
    ("invoices.no_item", "— не выбран —", "— none —"),
    ("invoices.discount", "Скидка, %", "Discount, %"),
    (
        "invoices.external_order_id",
        "Номер заказа в вашей системе",
        "Your order number",
    ),
    ("invoices.send", "Выставить счёт", "Send the invoice"),
    ("invoice.title", "Счёт", "Invoice"),
    ("invoice.fields", "Данные", "Details"),
    ("invoice.kaspi_id", "Номер в Kaspi", "Kaspi id"),
    ("invoice.paid_at", "Оплачен", "Paid"),
    ("invoice.expires_at", "Истекает", "Expires"),
    ("invoice.client", "Покупатель", "Payer"),
    ("invoice.refunded", "Возвращено", "Refunded"),
    ("invoice.error", "Ошибка", "Error"),
    ("invoice.items", "Состав", "Items"),
    ("invoice.subtotal", "Без скидки", "Subtotal"),
    ("invoice.timeline", "История статусов", "Status history"),
    ("invoice.created", "создан", "created"),
    ("invoice.refunds", "Возвраты", "Refunds"),
    ("invoice.refund", "Вернуть деньги", "Refund"),
    (
        "invoice.refund_amount",
        "Сумма возврата (пусто — всё, что осталось)",
        "Amount to refund (empty: all that is left)",
    ),
    ("invoice.refund_reason", "Причина", "Reason"),
    (
        "invoice.refund_confirm",
        "Вернуть деньги покупателю? Это нельзя отменить.",
        "Refund the payer? This cannot be undone.",
    ),
    ("invoice.cancel", "Отменить счёт", "Cancel the invoice"),
    (
        "invoice.cancel_confirm",
        "Отменить этот счёт?",
        "Cancel this invoice?",
    ),
    (
        "invoice.cancel_why",
        "Отменить можно только счёт, ожидающий оплаты.",
        "Only an invoice awaiting payment can be cancelled.",
    ),
    (
        "invoice.refund_why",
        "Вернуть можно только оплаченный счёт с невозвращённым остатком.",
        "Only a paid invoice with money left to return can be refunded.",
    ),
    (
        "invoice.viewer_why",
        "Ваша роль не позволяет менять счета.",
        "Your role does not allow changing invoices.",
    ),
    (
        "invoice.deliveries",
        "Вебхуки этого счёта",
        "Webhooks of this invoice",
    ),
    ("invoice.event", "Событие", "Event"),
    ("invoice.attempts", "Попытки", "Attempts"),
    ("invoice.last_answer", "Последний ответ", "Last answer"),
    ("invoice.redeliver", "Отправить снова", "Send again"),
    ("invoice.qr", "QR-код для оплаты", "QR code to pay"),
    (
        "invoice.live",
        "Страница обновится сама, когда счёт оплатят.",
        "This page updates by itself when the invoice is paid.",
    ),
    ("invoice.subscription", "Подписка", "Subscription"),
    (
        "invoice.sandbox",
        "Песочница: покупатель",
        "Sandbox: the payer",
    ),
    ("sandbox.pay", "Оплатить", "Pay"),
    ("sandbox.decline", "Отказаться", "Decline"),
    ("sandbox.expire", "Истечь", "Expire"),
    (
        "done.invoice_created",
        "Счёт выставлен.",
        "The invoice was sent.",
    ),
    (
        "done.cancelled",
        "Счёт отменён.",
        "The invoice was cancelled.",
    ),
    (
        "done.refunded",
        "Возврат принят.",
        "The refund was accepted.",
    ),
    (
        "done.redelivered",
        "Доставка поставлена в очередь.",
        "The delivery was queued again.",
    ),
    (
        "done.sandbox",
        "Песочница выполнила действие.",
        "The sandbox did it.",
    ),
];

/// Statuses the list filters by (ApiPay's).
const STATUSES: &[&str] = &[
    "pending",
    "processing",
    "paid",
    "cancelled",
    "expired",
    "error",
];

/// The most rows a CSV export holds.
const CSV_MAX_ROWS: usize = 100_000;

pub(super) fn routes() -> Router<Dashboard> {
    Router::new()
        .route("/invoices", get(list))
        .route("/invoices.csv", get(export))
        .route("/invoices/new", get(new_form).post(create))
        .route("/invoices/{id}", get(show))
        .route("/invoices/{id}/status", get(status))
        .route("/invoices/{id}/qr.png", get(qr))
        .route("/invoices/{id}/cancel", post(cancel))
        .route("/invoices/{id}/refund", post(refund))
        .route("/invoices/{id}/sandbox/{action}", post(sandbox_act))
        .route(
            "/invoices/{id}/deliveries/{endpoint}/{delivery}/redeliver",
            post(redeliver),
        )
}

/// The list's filters, as the page and the API both name them.
fn filter_query(query: &HashMap<String, String>) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for key in ["search", "date_from", "date_to"] {
        if let Some(v) = query.get(key).filter(|v| !v.trim().is_empty()) {
            out.append_pair(key, v.trim());
        }
    }
    if let Some(s) = query
        .get("status")
        .filter(|s| STATUSES.contains(&s.as_str()))
    {
        out.append_pair("status[]", s);
    }
    out.finish()
}

async fn list(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, DashError> {
    let filters = filter_query(&query);
    let page = super::page_of(&query);
    let answer = dash
        .api(
            me.org_id(),
            Method::GET,
            &format!("/invoices?{filters}&page={page}&per_page=20"),
            None,
        )
        .await?;
    // A bad filter (a date like 2026-13-01) is the API's 422: shown beside the filters.
    let (invoices, meta, errors) = if answer.ok() {
        (
            answer.body["data"].clone(),
            answer.body["meta"].clone(),
            Value::Null,
        )
    } else {
        (json!([]), Value::Null, answer.field_errors())
    };
    let base_filters = super::query_of(&query, &["search", "status", "date_from", "date_to"]);
    dash.page(
        &me,
        "invoices.html",
        "invoices",
        json!({
            "invoices": invoices,
            "meta": meta,
            "errors": errors,
            "q": query,
            "statuses": STATUSES,
            "page_base": format!("/dashboard/invoices?{base_filters}&"),
            "csv": format!("/dashboard/invoices.csv?{base_filters}"),
        }),
    )
    .await
}

/// A CSV field: quoted when it must be, and never read as a formula by a spreadsheet.
fn csv_field(value: &Value) -> String {
    let text = match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let text = if text.starts_with(['=', '+', '-', '@']) && text.parse::<f64>().is_err() {
        format!("'{text}")
    } else {
        text
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// `GET /dashboard/invoices.csv`: every invoice the filters select, newest first.
async fn export(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, DashError> {
    const COLUMNS: &[&str] = &[
        "id",
        "created_at",
        "status",
        "amount",
        "total_refunded",
        "phone_number",
        "description",
        "external_order_id",
        "kaspi_invoice_id",
        "paid_at",
    ];
    let filters = filter_query(&query);
    let mut out = COLUMNS.join(",");
    out.push_str("\r\n");
    let mut rows = 0;
    for page in 1.. {
        let body = dash
            .api_get(
                me.org_id(),
                &format!("/invoices?{filters}&page={page}&per_page=100"),
            )
            .await?;
        let data = body["data"].as_array().cloned().unwrap_or_default();
        for invoice in &data {
            let line: Vec<String> = COLUMNS.iter().map(|c| csv_field(&invoice[*c])).collect();
            out.push_str(&line.join(","));
            out.push_str("\r\n");
            rows += 1;
        }
        let last = body["meta"]["last_page"].as_i64().unwrap_or(1);
        if data.is_empty() || i64::from(page) >= last || rows >= CSV_MAX_ROWS {
            break;
        }
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"invoices.csv\"",
            ),
        ],
        out,
    )
        .into_response())
}

/// The catalog's items for the cart rows of the form.
async fn catalog_items(dash: &Dashboard, org_id: i64) -> Result<Value, DashError> {
    let body = dash.api_get(org_id, "/catalog?per_page=100").await?;
    Ok(body["data"].clone())
}

async fn new_form(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
) -> Result<Response, DashError> {
    let items = catalog_items(&dash, me.org_id()).await?;
    dash.page(
        &me,
        "invoice_new.html",
        "invoices",
        json!({"form": {}, "errors": {}, "items": items, "rows": [0, 1, 2]}),
    )
    .await
}

/// `POST /dashboard/invoices/new`: the form's fields as the API's body; its errors shown
/// beside the fields, nothing stored when there are any.
async fn create(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, DashError> {
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let mut body = serde_json::Map::new();
    for name in ["phone_number", "amount", "description", "external_order_id"] {
        if let Some(v) = field(name) {
            body.insert(name.to_owned(), Value::String(v));
        }
    }
    // Cart rows: `item_id` and `count` pairs in order; rows without an item are skipped.
    let ids: Vec<&String> = form
        .iter()
        .filter(|(k, _)| k == "item_id")
        .map(|(_, v)| v)
        .collect();
    let counts: Vec<&String> = form
        .iter()
        .filter(|(k, _)| k == "count")
        .map(|(_, v)| v)
        .collect();
    let mut cart = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let Ok(id) = id.parse::<i64>() else { continue };
        let count = counts.get(i).map_or("1", |c| c.trim());
        let count: Value = count
            .parse::<i64>()
            .map_or_else(|_| Value::String(count.to_owned()), Value::from);
        cart.push(json!({"catalog_item_id": id, "count": count}));
    }
    if !cart.is_empty() {
        body.insert("cart_items".into(), Value::Array(cart));
        if let Some(d) = field("discount_percentage") {
            body.insert("discount_percentage".into(), Value::String(d));
        }
    }
    let answer = dash
        .api(
            me.org_id(),
            Method::POST,
            "/invoices",
            Some(Value::Object(body)),
        )
        .await?;
    if answer.ok() {
        let id = answer.body["id"].as_i64().unwrap_or_default();
        return Ok(see_other(&format!(
            "/dashboard/invoices/{id}?done=invoice_created"
        )));
    }
    let items = catalog_items(&dash, me.org_id()).await?;
    let values: HashMap<&str, &str> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut response = dash
        .page(
            &me,
            "invoice_new.html",
            "invoices",
            json!({
                "form": values,
                "errors": answer.field_errors(),
                "alert": answer.message(),
                "items": items,
                "rows": [0, 1, 2],
            }),
        )
        .await?;
    *response.status_mut() = answer.status;
    Ok(response)
}

/// `GET /dashboard/invoices/{id}`.
async fn show(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
    Path(id): Path<String>,
) -> Result<Response, DashError> {
    let id = super::path_id(&id)?;
    let org = me.org_id();
    let invoice = dash.api_get(org, &format!("/invoices/{id}")).await?;
    let refunds = dash
        .api_get(org, &format!("/invoices/{id}/refunds"))
        .await?;
    let store = &dash.state().store;
    let timeline: Vec<Value> = store
        .invoices()
        .invoice_events(org, id)
        .await?
        .into_iter()
        .map(|(_, to, at)| json!({"status": to.as_str(), "at": rfc3339_ms(at)}))
        .collect();
    let deliveries: Vec<Value> = store
        .webhooks()
        .invoice_deliveries(org, id)
        .await?
        .iter()
        .map(|d| {
            json!({
                "id": d.id,
                "endpoint_id": d.endpoint_id,
                "event": d.event_type,
                "status": d.status.as_str(),
                "attempts": d.attempts,
                "last_status": d.last_status,
                "last_error": d.last_error,
                "created_at": rfc3339_ms(d.created_at),
            })
        })
        .collect();
    let status = invoice["status"].as_str().unwrap_or_default().to_owned();
    let refund_in_flight = refunds["data"].as_array().is_some_and(|list| {
        list.iter()
            .any(|r| matches!(r["status"].as_str(), Some("pending" | "processing")))
    });
    let can_cancel = status == "pending";
    let can_refund = matches!(status.as_str(), "paid" | "partially_refunded");
    let has_qr = store
        .invoices()
        .invoice(org, id)
        .await?
        .is_some_and(|i| i.qr_token.is_some());
    dash.page(
        &me,
        "invoice.html",
        "invoices",
        json!({
            "invoice": invoice,
            "refunds": refunds["data"],
            "timeline": timeline,
            "deliveries": deliveries,
            "can_cancel": can_cancel,
            "can_refund": can_refund,
            // Followed while the payer may still pay or a refund is on its way.
            "live": matches!(status.as_str(), "pending" | "processing") || refund_in_flight,
            "has_qr": has_qr,
            "form": {},
            "errors": {},
        }),
    )
    .await
}

/// `GET /dashboard/invoices/{id}/status`: `{"status"}`, what the page's script follows.
async fn status(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
    Path(id): Path<String>,
) -> Result<Json<Value>, DashError> {
    let id = super::path_id(&id)?;
    let invoice = dash
        .api_get(me.org_id(), &format!("/invoices/{id}"))
        .await?;
    Ok(Json(json!({"status": invoice["status"]})))
}

/// `GET /dashboard/invoices/{id}/qr.png`: the QR code of a payment link.
async fn qr(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
    Path(id): Path<String>,
) -> Result<Response, DashError> {
    let id = super::path_id(&id)?;
    let invoice = dash
        .state()
        .store
        .invoices()
        .invoice(me.org_id(), id)
        .await?;
    let token = invoice
        .and_then(|i| i.qr_token)
        .ok_or(DashError::NotFound)?;
    let png = crate::qr::png(&token, 8).map_err(DashError::internal)?;
    Ok(([(header::CONTENT_TYPE, "image/png")], png).into_response())
}

/// Runs an action of the API on invoice `id` and comes back to its page, with the API's
/// message when it refused.
async fn act(
    dash: &Dashboard,
    me: &Signed,
    id: i64,
    uri: &str,
    body: Option<Value>,
    done: &str,
) -> Result<Response, DashError> {
    let answer = dash
        .api(me.org_id(), Method::POST, uri, body.clone())
        .await?;
    if answer.ok() {
        return Ok(see_other(&format!("/dashboard/invoices/{id}?done={done}")));
    }
    if answer.status == axum::http::StatusCode::NOT_FOUND {
        return Err(DashError::NotFound);
    }
    // Shown on the invoice's page, above its actions.
    let invoice = dash
        .api_get(me.org_id(), &format!("/invoices/{id}"))
        .await?;
    let mut response = dash
        .page(
            me,
            "invoice.html",
            "invoices",
            json!({
                "invoice": invoice,
                "refunds": [],
                "timeline": [],
                "deliveries": [],
                "alert": answer.message(),
                "errors": answer.field_errors(),
                "form": body,
            }),
        )
        .await?;
    *response.status_mut() = answer.status;
    Ok(response)
}

async fn cancel(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
    Path(id): Path<String>,
) -> Result<Response, DashError> {
    let id = super::path_id(&id)?;
    act(
        &dash,
        &me,
        id,
        &format!("/invoices/{id}/cancel"),
        None,
        "cancelled",
    )
    .await
}

async fn refund(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, DashError> {
    let id = super::path_id(&id)?;
    let body = super::json_fields(&form, &["amount", "reason"]);
    act(
        &dash,
        &me,
        id,
        &format!("/invoices/{id}/refund"),
        Some(Value::Object(body)),
        "refunded",
    )
    .await
}

async fn sandbox_act(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
    Path((id, action)): Path<(String, String)>,
) -> Result<Response, DashError> {
    let id = super::path_id(&id)?;
    if !me.sandbox || !["pay", "decline", "expire"].contains(&action.as_str()) {
        return Err(DashError::NotFound);
    }
    act(
        &dash,
        &me,
        id,
        &format!("/sandbox/invoices/{id}/{action}"),
        None,
        "sandbox",
    )
    .await
}

async fn redeliver(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
    Path((id, endpoint, delivery)): Path<(String, String, String)>,
) -> Result<Response, DashError> {
    let id = super::path_id(&id)?;
    let (endpoint, delivery) = (super::path_id(&endpoint)?, super::path_id(&delivery)?);
    act(
        &dash,
        &me,
        id,
        &format!("/webhooks/{endpoint}/deliveries/{delivery}/redeliver"),
        None,
        "redelivered",
    )
    .await
}
