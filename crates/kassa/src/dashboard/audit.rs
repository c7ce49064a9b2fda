//! The audit log page: who changed what in the organization, from which address, when;
//! filtered by who (e-mail or key prefix), what (a kind of change) and the days, newest first,
//! 50 at a time. The API has no route for the log: this page reads the store.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use serde_json::{json, Value};

use super::render::{DashError, Signed};
use super::Dashboard;
use crate::api::rfc3339_ms;
use crate::audit::parse_moment;
use crate::store::AuditFilter;

pub(super) const WORDS: &[(&str, &str, &str)] = &[
    ("audit.title", "Журнал действий", "Audit log"),
    ("audit.intro", "Каждое изменение, сделанное человеком или API-ключом: кто, когда, откуда и что изменилось. Секреты сюда не пишутся.", "Every change made by a person or an API key: who, when, from where and what changed. No secret is ever written here."),
    ("audit.who", "Кто", "Who"),
    ("audit.who_hint", "эл. почта или начало ключа", "e-mail or key prefix"),
    ("audit.what", "Что", "What"),
    ("audit.any", "Любое действие", "Any action"),
    ("audit.ip", "Адрес", "Address"),
    ("audit.target", "Объект", "Object"),
    ("audit.details", "Подробности", "Details"),
    ("audit.at", "Когда", "When"),
    ("audit.older", "Более ранние", "Older"),
    ("audit.bad_date", "Дата в виде ГГГГ-ММ-ДД.", "A date as YYYY-MM-DD."),
    ("audit.kind.user", "пользователь", "user"),
    ("audit.kind.api_key", "ключ", "key"),
    ("audit.kind.cli", "командная строка", "command line"),
    ("audit.of.invoice", "Счета", "Invoices"),
    ("audit.of.refund", "Возвраты", "Refunds"),
    ("audit.of.subscription", "Подписки", "Subscriptions"),
    ("audit.of.catalog_item", "Каталог", "Catalog"),
    ("audit.of.catalog_image", "Изображения каталога", "Catalog images"),
    ("audit.of.webhook_endpoint", "Вебхуки", "Webhooks"),
    ("audit.of.webhook_delivery", "Повторные отправки", "Redeliveries"),
    ("audit.of.api_key", "API-ключи", "API keys"),
    ("audit.of.user", "Пользователи", "Users"),
    ("audit.of.cashier", "Кассиры", "Cashiers"),
    ("audit.of.organization", "Организация", "Organization"),
];

/// The kinds of change the page filters by (the part of an action before its `.`).
const KINDS: &[&str] = &[
    "invoice",
    "refund",
    "subscription",
    "catalog_item",
    "catalog_image",
    "webhook_endpoint",
    "webhook_delivery",
    "api_key",
    "user",
    "cashier",
    "organization",
];

/// Entries on one page.
const PAGE: i64 = 50;

pub(super) fn routes() -> Router<Dashboard> {
    Router::new().route("/audit", get(list))
}

/// `GET /dashboard/audit?who=&what=&date_from=&date_to=&before=`.
async fn list(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, DashError> {
    let text = |key: &str| query.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
    let mut errors = serde_json::Map::new();
    let mut day = |key: &str, next_day: bool| {
        let value = text(key)?;
        match parse_moment(value).ok().filter(|_| value.len() == 10) {
            // The end of a range is the end of its day.
            Some(at) => Some(if next_day { at + 24 * 3600 * 1000 } else { at }),
            None => {
                errors.insert(
                    key.to_owned(),
                    json!(super::i18n::word(me.lang, "audit.bad_date").unwrap_or_default()),
                );
                None
            }
        }
    };
    let from = day("date_from", false);
    let to = day("date_to", true);
    let filter = AuditFilter {
        org_id: Some(me.org_id()),
        actor: text("who").map(str::to_owned),
        action: text("what")
            .filter(|w| KINDS.contains(w))
            .map(str::to_owned),
        from,
        to,
        before_id: text("before").and_then(|b| b.parse().ok()),
        // One more than shown tells whether there is an older page.
        limit: PAGE + 1,
    };
    let mut entries = if errors.is_empty() {
        dash.state().store.audit().list(&filter).await?
    } else {
        Vec::new()
    };
    let older = (entries.len() as i64 > PAGE).then(|| {
        entries.truncate(PAGE as usize);
        entries.last().map(|e| e.id)
    });
    let entries: Vec<Value> = entries
        .into_iter()
        .map(|e| {
            json!({
                "id": e.id,
                "at": rfc3339_ms(e.at),
                "actor": e.actor,
                "actor_kind": e.actor_kind.as_str(),
                "ip": e.ip,
                "action": e.action,
                "target": e.target,
                "details": e.details.to_string(),
            })
        })
        .collect();
    let base = super::query_of(&query, &["who", "what", "date_from", "date_to"]);
    dash.page(
        &me,
        "audit.html",
        "audit",
        json!({
            "entries": entries,
            "q": query,
            "kinds": KINDS,
            "errors": errors,
            "older": older.flatten().map(|id| format!("/dashboard/audit?{base}&before={id}")),
        }),
    )
    .await
}
