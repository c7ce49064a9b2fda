//! The overview: today, 7 and 30 days (invoices, paid sum, conversion, refunds), a chart of
//! the paid sums per day drawn as SVG on the server, and the cashier session's health.

use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use serde_json::{json, Value};

use super::render::{DashError, Signed};
use super::Dashboard;
use crate::domain::{InvoiceStatus, Money, ALMATY};

pub(super) const WORDS: &[(&str, &str, &str)] = &[
    ("overview.title", "Обзор", "Overview"),
    ("overview.today", "Сегодня", "Today"),
    ("overview.week", "7 дней", "7 days"),
    ("overview.month", "30 дней", "30 days"),
    ("overview.invoices", "Счетов", "Invoices"),
    ("overview.paid", "Оплачено", "Paid"),
    ("overview.conversion", "Конверсия", "Conversion"),
    ("overview.refunds", "Возвраты", "Refunds"),
    ("overview.chart", "Оплаты по дням за 30 дней", "Payments per day, last 30 days"),
    ("overview.no_payments", "Оплат за 30 дней не было.", "No payments in the last 30 days."),
    ("overview.cashier", "Кассир Kaspi", "Kaspi cashier"),
    ("overview.cashier_ok", "Сессия кассира работает.", "The cashier's session works."),
    ("overview.cashier_bad", "Сессия кассира не работает: счета не уходят покупателям. Войдите как кассир заново.", "The cashier's session does not work: invoices do not reach payers. Sign the cashier in again."),
    ("overview.cashier_none", "Кассир не подключён: подключите его, чтобы выставлять счета.", "No cashier is connected: connect one to send invoices."),
];

pub(super) fn routes() -> Router<Dashboard> {
    Router::new().route("/", get(overview))
}

const DAY_MS: i64 = 86_400_000;

/// One period's figures.
async fn period(dash: &Dashboard, org_id: i64, from: i64, to: i64) -> Result<Value, DashError> {
    let stats = dash
        .state()
        .store
        .invoices()
        .invoice_stats(org_id, from, to)
        .await?;
    let count: i64 = stats.by_status.iter().map(|t| t.count).sum();
    let paid = stats.of(InvoiceStatus::Paid);
    // Whole percent, rounded down, in integers.
    let conversion = if count > 0 {
        paid.count * 100 / count
    } else {
        0
    };
    Ok(json!({
        "count": count,
        "paid_count": paid.count,
        "paid": Money::from_tiyn(paid.amount).to_decimal_string(),
        "conversion": conversion,
        "refunded": Money::from_tiyn(paid.refunded).to_decimal_string(),
    }))
}

/// The chart: one bar per day (the last 30 Almaty days), heights relative to the best day.
fn chart(days: &[(i64, i64)], first_day: i64) -> Value {
    const WIDTH: i64 = 900;
    const HEIGHT: i64 = 160;
    let best = days.iter().map(|(_, sum)| *sum).max().unwrap_or(0);
    let slot = WIDTH / 30;
    let bars: Vec<Value> = (0..30)
        .map(|i| {
            let day = first_day + i;
            let sum = days.iter().find(|(d, _)| *d == day).map_or(0, |(_, s)| *s);
            let height = if best > 0 {
                (i128::from(sum) * i128::from(HEIGHT - 20) / i128::from(best)) as i64
            } else {
                0
            };
            let date = time::OffsetDateTime::from_unix_timestamp(day * 86_400)
                .map(|t| format!("{:02}.{:02}", t.day(), u8::from(t.month())))
                .unwrap_or_default();
            json!({
                "x": i * slot + 2,
                "y": HEIGHT - 14 - height,
                "w": slot - 4,
                "h": height,
                "label": date,
                "sum": Money::from_tiyn(sum).to_decimal_string(),
                "show_label": i % 5 == 0,
            })
        })
        .collect();
    json!({"width": WIDTH, "height": HEIGHT, "bars": bars, "any": best > 0})
}

pub(super) async fn overview(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
) -> Result<Response, DashError> {
    let org = me.org_id();
    let now = dash.state().store.now_ms();
    let offset = i64::from(ALMATY.whole_seconds()) * 1000;
    let today = (now + offset).div_euclid(DAY_MS);
    let day_start = |day: i64| day * DAY_MS - offset;
    let end = day_start(today + 1);
    let figures = json!({
        "today": period(&dash, org, day_start(today), end).await?,
        "week": period(&dash, org, day_start(today - 6), end).await?,
        "month": period(&dash, org, day_start(today - 29), end).await?,
    });
    let days = dash
        .state()
        .store
        .invoices()
        .paid_per_day(org, day_start(today - 29), end, offset)
        .await?;
    let terminal = dash.state().store.orgs().terminal_for_org(org).await?;
    dash.page(
        &me,
        "overview.html",
        "overview",
        json!({
            "figures": figures,
            "chart": chart(&days, today - 29),
            "has_cashier": terminal.is_some(),
        }),
    )
    .await
}
