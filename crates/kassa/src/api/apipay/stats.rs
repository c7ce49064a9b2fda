//! The invoice statistics of a period: counts and amounts by status, conversion rate.

use axum::extract::State;
use axum::{Extension, Json};
use serde_json::{json, Value};
use time::{Date, Duration as TimeDuration};

use super::query::{almaty_day_start, almaty_today};

/// The statuses the seed's stats count (`processing` is among `pending`, `error` among
/// `cancelled`).
const STATS_STATUSES: &[&str] = &["pending", "paid", "cancelled", "expired"];
use super::F;
use crate::api::auth::Caller;
use crate::api::error::{ApiError, FieldErrors};
use crate::api::extract::{ApiPay, QueryPairs};
use crate::api::openapi::{schemas as doc, TAG_INVOICES};
use crate::domain::Money;
use crate::gateway::Gateway;
use crate::store::InvoiceStatus;

#[utoipa::path(
    get,
    path = "/invoices/stats",
    tag = TAG_INVOICES,
    summary = "Invoice statistics of a period",
    description = "Give `period`, or `start_date` and `end_date` (Asia/Almaty days); neither, or \
        half a range, is 422.",
    params(doc::StatsQuery),
    responses((status = 200, description = "Counts and amounts of the period", body = doc::InvoiceStats)),
)]
pub(super) async fn invoice_stats(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    query: QueryPairs<ApiPay>,
) -> Result<Json<Value>, ApiError> {
    let mut errors = FieldErrors::new();
    let period = errors
        .take(query.one_of("period", &["today", "week", "month", "year"]))?
        .flatten();
    let start = errors.take(query.date("start_date"))?.flatten();
    let end = errors.take(query.date("end_date"))?.flatten();
    let today = almaty_today(&gateway);
    let range = match (period, start, end) {
        (_, Some(start), Some(end)) => {
            if end < start {
                errors.add(
                    "end_date",
                    "The end date must be a date after or equal to start date.",
                );
            }
            Some((start, end))
        }
        (Some(period), None, None) => Some((period_start(period, today), today)),
        (_, Some(_), None) => {
            errors.add(
                "end_date",
                "The end date field is required when start date is present.",
            );
            None
        }
        (_, None, Some(_)) => {
            errors.add(
                "start_date",
                "The start date field is required when end date is present.",
            );
            None
        }
        (None, None, None) => {
            errors.add(
                "period",
                "The period field is required when start date and end date are not present.",
            );
            None
        }
    };
    errors.into_result(F)?;
    let Some((start, end)) = range else {
        return Err(ApiError::internal(
            F,
            anyhow::anyhow!("validated range missing"),
        ));
    };
    let to_ms = end.next_day().map_or(i64::MAX, almaty_day_start);
    let stats = gateway
        .store()
        .invoices()
        .invoice_stats(caller.org_id, almaty_day_start(start), to_ms)
        .await
        .map_err(|e| ApiError::store(F, e))?;
    let mut by_status = serde_json::Map::new();
    let (mut count, mut amount, mut refunded) = (0i64, 0i64, 0i64);
    for name in STATS_STATUSES {
        let mut c = 0;
        let mut a = 0;
        for totals in &stats.by_status {
            let shown = match totals.status {
                InvoiceStatus::Failed => "cancelled",
                other => other.as_str(),
            };
            if shown == *name {
                c += totals.count;
                a += totals.amount;
            }
        }
        by_status.insert(
            (*name).into(),
            json!({"count": c, "amount": Money::from_tiyn(a).to_decimal_string()}),
        );
    }
    for totals in &stats.by_status {
        count += totals.count;
        amount += totals.amount;
        refunded += totals.refunded;
    }
    let paid = stats.of(InvoiceStatus::Paid);
    // Percent of invoices paid, two decimals, computed in integers.
    let basis_points = if count == 0 {
        0
    } else {
        paid.count * 10_000 / count
    };
    let conversion_rate = Value::from(basis_points as f64 / 100.0);
    let date = time::macros::format_description!("[year]-[month]-[day]");
    Ok(Json(json!({
        "period": {
            "start": start.format(&date).unwrap_or_default(),
            "end": end.format(&date).unwrap_or_default(),
        },
        "total_count": count,
        "total_amount": Money::from_tiyn(amount).to_decimal_string(),
        "paid_count": paid.count,
        "paid_amount": Money::from_tiyn(paid.amount).to_decimal_string(),
        "total_refunded": Money::from_tiyn(refunded).to_decimal_string(),
        "conversion_rate": conversion_rate,
        "by_status": by_status,
    })))
}

/// The first day of `period` ending today: today, this week (from Monday), this month, this
/// year.
fn period_start(period: &str, today: Date) -> Date {
    match period {
        "today" => today,
        "week" => today - TimeDuration::days(i64::from(today.weekday().number_days_from_monday())),
        "month" => today.replace_day(1).unwrap_or(today),
        _ => today
            .replace_day(1)
            .and_then(|d| d.replace_month(time::Month::January))
            .unwrap_or(today),
    }
}
