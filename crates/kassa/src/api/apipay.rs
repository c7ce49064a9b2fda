//! The ApiPay.kz-compatible surface under `/api/v1`: invoices by phone, their list, stats and
//! cancellation, and in sandbox mode the payer's helpers. Shapes follow
//! `apipay-docs/openapi.yaml` and its docs; where they are silent the choice is noted here.
//!
//! - Amounts are strings with two decimals (`"10000.00"`); times RFC 3339 in UTC.
//! - Kassa's `failed` (the payer declined, Kaspi rejected) shows as ApiPay's `cancelled`, the
//!   nearest status ApiPay has; a `status[]=cancelled` filter includes it.
//! - Days (`date_from`, `date_to`, `start_date`, `end_date`, `period`) are Asia/Almaty days
//!   (UTC+5).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use time::{Date, Duration as TimeDuration, OffsetDateTime, UtcOffset};

use super::auth::Caller;
use super::error::{ApiError, ErrorFormat, FieldErrors};
use super::extract::{ApiJson, ApiPay, IdPath, QueryPairs};
use super::{amount_string, optional_text, parse_amount, rfc3339_ms};
use crate::gateway::{Gateway, GatewayError, NewRemoteInvoice, RefundRequest, SandboxAction};
use crate::store::{
    IdemLink, Invoice, InvoiceFilter, InvoiceSort, InvoiceStatus, Refund, RefundFilter,
    RefundStatus, SortOrder,
};

const F: ErrorFormat = ErrorFormat::ApiPay;

/// Asia/Almaty: UTC+5 all year.
const ALMATY: UtcOffset = match UtcOffset::from_hms(5, 0, 0) {
    Ok(offset) => offset,
    Err(_) => UtcOffset::UTC,
};

/// The authenticated routes (relative to `/api/v1`); the caller adds authentication, rate
/// limit and idempotency around them. `sandbox` mounts the payer's helpers.
pub fn routes(gateway: Gateway, sandbox: bool) -> Router {
    let mut router = Router::new()
        .route("/invoices", post(create_invoice).get(list_invoices))
        .route("/invoices/stats", get(invoice_stats))
        .route("/invoices/{id}", get(get_invoice))
        .route("/invoices/{id}/cancel", post(cancel_invoice))
        .route("/invoices/{id}/refund", post(refund_invoice))
        .route("/invoices/{id}/refunds", get(invoice_refunds))
        .route("/refunds", get(list_refunds));
    if sandbox {
        router = router
            .route("/sandbox/invoices/{id}/pay", post(sandbox_pay))
            .route("/sandbox/invoices/{id}/decline", post(sandbox_decline))
            .route("/sandbox/invoices/{id}/expire", post(sandbox_expire));
    }
    router.with_state(gateway)
}

/// An invoice as ApiPay shows it.
pub fn invoice_json(invoice: &Invoice) -> Value {
    let mut body = json!({
        "id": invoice.id,
        "amount": amount_string(invoice.amount),
        "description": invoice.description,
        "external_order_id": invoice.external_order_id,
        "status": apipay_status(invoice),
        "client_name": invoice.client_name,
        "client_comment": Value::Null,
        "is_sandbox": invoice.is_sandbox,
        "total_refunded": amount_string(invoice.total_refunded),
        "is_fully_refunded": invoice.total_refunded > 0 && invoice.total_refunded >= invoice.amount,
        "paid_at": invoice.paid_at.map(rfc3339_ms),
        "expires_at": invoice.expires_at.map(rfc3339_ms),
        "created_at": rfc3339_ms(invoice.created_at),
        "updated_at": rfc3339_ms(invoice.updated_at),
    });
    // The spec types these as strings: absent rather than null (a QR payment has no phone;
    // Kaspi's id comes with its answer).
    if let Some(phone) = &invoice.phone {
        body["phone_number"] = json!(format!("8{phone}"));
    }
    if let Some(op) = &invoice.kaspi_operation_id {
        body["kaspi_invoice_id"] = json!(op);
    }
    body
}

/// ApiPay's name for the invoice's status: a paid invoice is `partially_refunded` or
/// `refunded` once refunds completed (as ApiPay's invoice docs list them).
fn apipay_status(invoice: &Invoice) -> &'static str {
    match invoice.status {
        InvoiceStatus::Pending => "pending",
        InvoiceStatus::Paid if invoice.total_refunded >= invoice.amount => "refunded",
        InvoiceStatus::Paid if invoice.total_refunded > 0 => "partially_refunded",
        InvoiceStatus::Paid => "paid",
        InvoiceStatus::Cancelled | InvoiceStatus::Failed => "cancelled",
        InvoiceStatus::Expired => "expired",
    }
}

/// A gateway error as ApiPay answers it.
pub fn gateway_error(e: GatewayError) -> ApiError {
    use GatewayError as G;
    let coded =
        |status, code: &'static str, message: String| ApiError::coded(F, status, code, message);
    match e {
        G::NotFound => ApiError::not_found(F, "INVOICE_NOT_FOUND", "Invoice not found."),
        G::NotCancellable { status } => coded(
            StatusCode::BAD_REQUEST,
            "invoice_not_cancellable",
            format!(
                "Only pending invoices can be cancelled; this invoice is {}.",
                match status {
                    InvoiceStatus::Failed => "cancelled",
                    other => other.as_str(),
                }
            ),
        ),
        e @ G::NotAtKaspiYet => coded(StatusCode::BAD_REQUEST, "invoice_not_ready", e.to_string()),
        e @ G::NoTerminal => coded(
            StatusCode::SERVICE_UNAVAILABLE,
            "kaspi_not_connected",
            e.to_string(),
        ),
        G::SessionInvalid(reason) => coded(
            StatusCode::SERVICE_UNAVAILABLE,
            "kaspi_session_invalid",
            format!("The Kaspi cashier session is no longer valid ({reason}); the cashier must log in again (kassa terminal connect)."),
        ),
        e @ G::AppBuildOutdated { .. } => coded(
            StatusCode::SERVICE_UNAVAILABLE,
            "kaspi_app_build_outdated",
            capitalized(&e.to_string()),
        ),
        G::KaspiClientNotFound => ApiError::validation(
            F,
            "phone_number",
            "No Kaspi client has this phone number.",
        ),
        G::KaspiRefused(message) | G::LoginFailed(message) => coded(
            StatusCode::BAD_GATEWAY,
            "kaspi_error",
            format!("Kaspi refused the request: {message}"),
        ),
        G::KaspiUnavailable(_) | G::OutcomeUnknown(_) => coded(
            StatusCode::BAD_GATEWAY,
            "kaspi_unavailable",
            "Kaspi did not answer; try again shortly.".into(),
        ),
        e @ G::NotRefundable(_) => coded(
            StatusCode::BAD_REQUEST,
            "invoice_not_refundable",
            capitalized(&e.to_string()),
        ),
        G::Sandbox(message) => coded(StatusCode::BAD_REQUEST, "sandbox_action_refused", message),
        e @ G::Internal(_) => ApiError::internal(F, e),
        G::Store(e) => ApiError::store(F, e),
    }
}

/// `text` with its first letter upper-case, as a sentence.
fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => format!("{}{}.", first.to_uppercase(), chars.as_str()),
        None => String::new(),
    }
}

#[derive(Debug, Deserialize)]
struct CreateInvoiceBody {
    #[serde(default)]
    amount: Option<Value>,
    #[serde(default)]
    phone_number: Option<Value>,
    #[serde(default)]
    description: Option<Value>,
    #[serde(default)]
    external_order_id: Option<Value>,
    #[serde(default)]
    cart_items: Option<Value>,
}

async fn create_invoice(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    idem: Option<Extension<IdemLink>>,
    ApiJson(body): ApiJson<CreateInvoiceBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let mut errors = FieldErrors::new();
    let phone = match &body.phone_number {
        None | Some(Value::Null) => {
            errors.add("phone_number", "The phone number field is required.");
            None
        }
        Some(Value::String(p)) if is_apipay_phone(p) => match kaspi::phone::normalize(p) {
            Ok(phone) => Some(phone),
            Err(_) => {
                errors.add(
                    "phone_number",
                    "The phone number is not a Kazakhstan mobile number (8 7XX XXX XX XX).",
                );
                None
            }
        },
        Some(Value::String(_)) => {
            errors.add(
                "phone_number",
                "Phone number must be in format 8XXXXXXXXXX.",
            );
            None
        }
        Some(_) => {
            errors.add("phone_number", "The phone number must be a string.");
            None
        }
    };
    if body.cart_items.as_ref().is_some_and(|c| !c.is_null()) {
        errors.add(
            "cart_items",
            "Cart items need the product catalog, which this Kassa does not have yet; send amount instead.",
        );
    }
    let amount = match &body.amount {
        None | Some(Value::Null) => {
            errors.add("amount", "The amount field is required.");
            None
        }
        Some(v) => parse_amount(v, "amount", &mut errors),
    };
    let description = optional_text(
        F,
        body.description.as_ref(),
        "description",
        500,
        &mut errors,
    );
    let external_order_id = optional_text(
        F,
        body.external_order_id.as_ref(),
        "external_order_id",
        255,
        &mut errors,
    );
    errors.into_result(F)?;
    let (Some(phone), Some(amount)) = (phone, amount) else {
        return Err(ApiError::internal(
            F,
            anyhow::anyhow!("validated fields missing"),
        ));
    };
    let invoice = gateway
        .create_invoice(
            caller.org_id,
            NewRemoteInvoice {
                phone,
                amount,
                description,
                external_order_id,
                metadata: None,
                idempotency: idem.map(|Extension(link)| link),
            },
        )
        .await
        .map_err(gateway_error)?;
    Ok((StatusCode::CREATED, Json(invoice_json(&invoice))))
}

/// ApiPay's `meta` of a page.
fn page_meta(page: i64, per_page: i64, total: i64) -> Value {
    let last_page = if total == 0 {
        1
    } else {
        (total + per_page - 1) / per_page
    };
    json!({
        "current_page": page,
        "last_page": last_page,
        "per_page": per_page,
        "total": total,
    })
}

/// `page` as Laravel's paginator reads it: below 1 means the first page; a page past the end is
/// simply empty. Only text that is not an integer is an error.
fn lenient_page(query: &QueryPairs<ApiPay>, errors: &mut FieldErrors) -> Result<i64, ApiError> {
    let page = errors
        .take(query.int("page", i64::MIN, i64::MAX))?
        .flatten()
        .unwrap_or(1);
    Ok(page.clamp(1, i64::from(u32::MAX)))
}

/// `8` and ten digits, as ApiPay requires.
fn is_apipay_phone(text: &str) -> bool {
    text.len() == 11 && text.starts_with('8') && text.bytes().all(|b| b.is_ascii_digit())
}

/// The start of `date` in Almaty, as unix ms.
fn almaty_day_start(date: Date) -> i64 {
    let at = date.midnight().assume_offset(ALMATY);
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Today in Almaty.
fn almaty_today() -> Date {
    OffsetDateTime::now_utc().to_offset(ALMATY).date()
}

const STATUS_FILTERS: &[&str] = &["pending", "paid", "cancelled", "expired"];

async fn list_invoices(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    query: QueryPairs<ApiPay>,
) -> Result<Json<Value>, ApiError> {
    let mut errors = FieldErrors::new();
    let page = lenient_page(&query, &mut errors)?;
    let per_page = errors
        .take(query.int("per_page", 1, 100))?
        .flatten()
        .unwrap_or(10);
    let search = errors
        .take(query.string("search", 100))?
        .flatten()
        .map(str::to_owned);
    let statuses = errors
        .take(query.all_of("status", STATUS_FILTERS))?
        .unwrap_or_default();
    let date_from = errors.take(query.date("date_from"))?.flatten();
    let date_to = errors.take(query.date("date_to"))?.flatten();
    let sort_by = errors
        .take(query.one_of(
            "sort_by",
            &["id", "amount", "client_name", "status", "created_at"],
        ))?
        .flatten()
        .and_then(InvoiceSort::parse)
        .unwrap_or_default();
    let sort_order = match errors
        .take(query.one_of("sort_order", &["asc", "desc"]))?
        .flatten()
    {
        Some("asc") => SortOrder::Asc,
        _ => SortOrder::Desc,
    };
    if let (Some(from), Some(to)) = (date_from, date_to) {
        if to < from {
            errors.add(
                "date_to",
                "The date to must be a date after or equal to date from.",
            );
        }
    }
    errors.into_result(F)?;
    let mut status_set = Vec::new();
    for s in statuses {
        match s {
            "pending" => status_set.push(InvoiceStatus::Pending),
            "paid" => status_set.push(InvoiceStatus::Paid),
            "cancelled" => {
                status_set.push(InvoiceStatus::Cancelled);
                status_set.push(InvoiceStatus::Failed);
            }
            _ => status_set.push(InvoiceStatus::Expired),
        }
    }
    let filter = InvoiceFilter {
        page: u32::try_from(page).unwrap_or(1),
        per_page: u32::try_from(per_page).unwrap_or(10),
        search,
        statuses: status_set,
        created_from: date_from.map(almaty_day_start),
        created_to: date_to.and_then(|d| d.next_day()).map(almaty_day_start),
        sort_by,
        sort_order,
        ..InvoiceFilter::default()
    };
    let (invoices, total) = gateway
        .store()
        .list_invoices(caller.org_id, &filter)
        .await
        .map_err(|e| ApiError::store(F, e))?;
    Ok(Json(json!({
        "data": invoices.iter().map(invoice_json).collect::<Vec<_>>(),
        "meta": page_meta(page, per_page, total)
    })))
}

async fn get_invoice(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    IdPath(id): IdPath,
) -> Result<Json<Value>, ApiError> {
    let invoice = gateway
        .store()
        .invoice(caller.org_id, id)
        .await
        .map_err(|e| ApiError::store(F, e))?
        .ok_or_else(|| gateway_error(GatewayError::NotFound))?;
    Ok(Json(invoice_json(&invoice)))
}

async fn cancel_invoice(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    IdPath(id): IdPath,
) -> Result<Json<Value>, ApiError> {
    let invoice = gateway
        .cancel_invoice(caller.org_id, id)
        .await
        .map_err(gateway_error)?;
    let mut body = invoice_json(&invoice);
    body["message"] = json!("Invoice cancelled.");
    Ok(Json(body))
}

async fn invoice_stats(
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
    let today = almaty_today();
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
        .invoice_stats(caller.org_id, almaty_day_start(start), to_ms)
        .await
        .map_err(|e| ApiError::store(F, e))?;
    let mut by_status = serde_json::Map::new();
    let (mut count, mut amount, mut refunded) = (0i64, 0i64, 0i64);
    for name in STATUS_FILTERS {
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
            json!({"count": c, "amount": amount_string(a)}),
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
        "total_amount": amount_string(amount),
        "paid_count": paid.count,
        "paid_amount": amount_string(paid.amount),
        "total_refunded": amount_string(refunded),
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

async fn sandbox(
    gateway: &Gateway,
    caller: Caller,
    id: i64,
    action: SandboxAction,
) -> Result<Json<Value>, ApiError> {
    let invoice = gateway
        .sandbox_act(caller.org_id, id, action)
        .await
        .map_err(gateway_error)?;
    Ok(Json(invoice_json(&invoice)))
}

async fn sandbox_pay(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    IdPath(id): IdPath,
) -> Result<Json<Value>, ApiError> {
    sandbox(&gateway, caller, id, SandboxAction::Pay).await
}

async fn sandbox_decline(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    IdPath(id): IdPath,
) -> Result<Json<Value>, ApiError> {
    sandbox(&gateway, caller, id, SandboxAction::Decline).await
}

async fn sandbox_expire(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    IdPath(id): IdPath,
) -> Result<Json<Value>, ApiError> {
    sandbox(&gateway, caller, id, SandboxAction::Expire).await
}

/// A refund as ApiPay shows it.
pub fn refund_json(refund: &Refund) -> Value {
    json!({
        "id": refund.id,
        "invoice_id": refund.invoice_id,
        "amount": amount_string(refund.amount),
        "reason": refund.reason,
        "status": refund.status.as_str(),
        "fail_reason": refund.fail_reason,
        "initiated_by": refund.initiated_by,
        "created_at": rfc3339_ms(refund.created_at),
        "updated_at": rfc3339_ms(refund.updated_at),
        "completed_at": refund.completed_at.map(rfc3339_ms),
    })
}

#[derive(Debug, Deserialize)]
struct RefundBody {
    #[serde(default)]
    amount: Option<Value>,
    #[serde(default)]
    reason: Option<Value>,
}

async fn refund_invoice(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    idem: Option<Extension<IdemLink>>,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<RefundBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let mut errors = FieldErrors::new();
    let amount = match &body.amount {
        None | Some(Value::Null) => None,
        Some(v) => parse_amount(v, "amount", &mut errors),
    };
    let reason = optional_text(F, body.reason.as_ref(), "reason", 500, &mut errors);
    errors.into_result(F)?;
    let (refund, invoice) = gateway
        .request_refund(
            caller.org_id,
            id,
            RefundRequest {
                amount,
                reason,
                initiated_by: "api",
                idempotency: idem.map(|Extension(link)| link),
            },
        )
        .await
        .map_err(gateway_error)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "message": "Refund initiated successfully",
            "refund": refund_json(&refund),
            "invoice": {
                "id": invoice.id,
                "amount": amount_string(invoice.amount),
                "status": apipay_status(&invoice),
                "total_refunded": amount_string(invoice.total_refunded),
                "available_for_refund": amount_string(invoice.refundable()),
                "pending_refund_amount": super::amount_number(invoice.refund_reserved - invoice.total_refunded),
            },
        })),
    ))
}

async fn invoice_refunds(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    IdPath(id): IdPath,
) -> Result<Json<Value>, ApiError> {
    gateway
        .store()
        .invoice(caller.org_id, id)
        .await
        .map_err(|e| ApiError::store(F, e))?
        .ok_or_else(|| gateway_error(GatewayError::NotFound))?;
    let filter = RefundFilter {
        invoice_id: Some(id),
        ..RefundFilter::default()
    };
    let (refunds, _) = gateway
        .store()
        .list_refunds(caller.org_id, &filter, 1, 100)
        .await
        .map_err(|e| ApiError::store(F, e))?;
    Ok(Json(json!({
        "data": refunds.iter().map(refund_json).collect::<Vec<_>>(),
    })))
}

const REFUND_STATUSES: &[&str] = &["pending", "processing", "completed", "failed"];

async fn list_refunds(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    query: QueryPairs<ApiPay>,
) -> Result<Json<Value>, ApiError> {
    let mut errors = FieldErrors::new();
    let page = lenient_page(&query, &mut errors)?;
    let per_page = errors
        .take(query.int("per_page", 1, 100))?
        .flatten()
        .unwrap_or(10);
    let statuses = errors
        .take(query.all_of("status", REFUND_STATUSES))?
        .unwrap_or_default();
    // Any integer: one that names no invoice of the caller simply matches nothing.
    let invoice_id = errors
        .take(query.int("invoice_id", i64::MIN, i64::MAX))?
        .flatten();
    let date_from = errors.take(query.date("date_from"))?.flatten();
    let date_to = errors.take(query.date("date_to"))?.flatten();
    if let (Some(from), Some(to)) = (date_from, date_to) {
        if to < from {
            errors.add(
                "date_to",
                "The date to must be a date after or equal to date from.",
            );
        }
    }
    errors.into_result(F)?;
    let filter = RefundFilter {
        statuses: statuses
            .iter()
            .filter_map(|s| RefundStatus::parse(s))
            .collect(),
        invoice_id,
        payment_id: None,
        created_from: date_from.map(almaty_day_start),
        created_to: date_to.and_then(|d| d.next_day()).map(almaty_day_start),
    };
    let (refunds, total) = gateway
        .store()
        .list_refunds(
            caller.org_id,
            &filter,
            u32::try_from(page).unwrap_or(1),
            u32::try_from(per_page).unwrap_or(10),
        )
        .await
        .map_err(|e| ApiError::store(F, e))?;
    Ok(Json(json!({
        "data": refunds.iter().map(refund_json).collect::<Vec<_>>(),
        "meta": page_meta(page, per_page, total)
    })))
}
