//! The sandbox page (a sandbox deployment, or an organization's test mode): invoices waiting for the payer, with the payer's
//! buttons (pay, decline, expire: the invoice's own page has them too), and the sandbox clock
//! that moves Kassa and the sandbox Kaspi forward together (billing days, expiries; a sandbox
//! deployment only, as Kassa's clock is every organization's).

use std::collections::HashMap;

use axum::extract::State;
use axum::http::Method;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use serde_json::json;

use super::render::{DashError, Signed};
use super::{see_other, Dashboard};

pub(super) const WORDS: &[(&str, &str, &str)] = &[
    ("sandbox.title", "Песочница", "Sandbox"),
    ("sandbox.pending", "Счета, ожидающие оплаты", "Invoices awaiting payment"),
    ("sandbox.clock", "Часы песочницы", "The sandbox clock"),
    ("sandbox.now", "Сейчас в Алматы", "Now in Almaty"),
    ("sandbox.days", "Дней вперёд", "Days forward"),
    ("sandbox.advance", "Перевести часы", "Move the clock"),
    ("sandbox.clock_hint", "Часы Kassa и Kaspi-песочницы идут вперёд вместе: наступают дни списания подписок, истекают счета.", "Kassa's and the sandbox Kaspi's clocks move together: subscription billing days come, invoices expire."),
    ("done.clock", "Часы переведены.", "The clock moved."),
];

pub(super) fn routes() -> Router<Dashboard> {
    Router::new()
        .route("/sandbox", get(show))
        .route("/sandbox/clock", post(advance))
}

async fn show(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
) -> Result<Response, DashError> {
    if !me.sandbox {
        return Err(DashError::NotFound);
    }
    let pending = dash
        .api_get(me.org_id(), "/invoices?status[]=pending&per_page=50")
        .await?;
    // The clock moves only in a sandbox deployment (it is Kassa's own).
    let clock = match dash.state().sandbox {
        Some(_) => dash.api_get(me.org_id(), "/sandbox/clock").await?,
        None => serde_json::Value::Null,
    };
    dash.page(
        &me,
        "sandbox.html",
        "sandbox",
        json!({"pending": pending["data"], "clock": clock, "form": {}, "errors": {}}),
    )
    .await
}

async fn advance(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, DashError> {
    if !me.sandbox || dash.state().sandbox.is_none() {
        return Err(DashError::NotFound);
    }
    let days = form.get("days").map(|d| d.trim()).unwrap_or_default();
    let days = days
        .parse::<i64>()
        .map_or_else(|_| json!(days), serde_json::Value::from);
    let answer = dash
        .api(
            me.org_id(),
            Method::POST,
            "/sandbox/clock/advance",
            Some(json!({"days": days})),
        )
        .await?;
    if answer.ok() {
        return Ok(see_other("/dashboard/sandbox?done=clock"));
    }
    let pending = dash
        .api_get(me.org_id(), "/invoices?status[]=pending&per_page=50")
        .await?;
    let clock = dash.api_get(me.org_id(), "/sandbox/clock").await?;
    let mut page = dash
        .page(
            &me,
            "sandbox.html",
            "sandbox",
            json!({
                "pending": pending["data"],
                "clock": clock,
                "form": form,
                "errors": answer.field_errors(),
            }),
        )
        .await?;
    *page.status_mut() = answer.status;
    Ok(page)
}
