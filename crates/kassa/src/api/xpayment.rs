//! The xPayment.kz-compatible surface (`xpayment-openapi.json`), served at the root paths the
//! spec names and under `/v1`, with `Authorization: Bearer <key>` (the same API keys).
//!
//! One payment, two faces: an xPayment `payment_id` is the UUID of the same row ApiPay shows
//! by integer id, so status and refunds are the same whichever surface asks.
//!
//! Choices where the spec is silent:
//! - Amounts are JSON numbers of tenge (`1500`, `15.5`), times RFC 3339 in UTC; fields without
//!   a value (`completed_at` of a pending payment) are left out rather than `null`, as the spec
//!   types them as plain strings.
//! - Lists are newest first, 20 a page (`limit` 1–100 may ask for another size); the cursor
//!   is opaque and names the last row seen, so pages stay stable while payments are added.
//! - `user_id` is the organization's slug.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::auth::Caller;
use super::error::{ApiError, ErrorFormat, FieldErrors};
use super::extract::{QueryPairs, XJson, XPayment};
use super::{amount_number, optional_text, parse_amount, rfc3339_ms};
use crate::gateway::{Gateway, GatewayError, NewQrPayment, NewRemoteInvoice, RefundRequest};
use crate::store::{
    IdemLink, Invoice, InvoiceFilter, InvoiceStatus, KaspiOperation, Refund, RefundFilter,
    RefundRefusal, RefundStatus,
};

const F: ErrorFormat = ErrorFormat::XPayment;
const PAGE: u32 = 20;
/// The most bytes of `metadata` kept.
const MAX_METADATA_BYTES: usize = 8 * 1024;

/// The authenticated routes; the caller adds authentication, rate limit and idempotency and
/// mounts them at `/` and `/v1`.
pub fn routes(gateway: Gateway) -> Router {
    Router::new()
        .route("/payments", post(create_payment).get(list_payments))
        .route("/payments/link", post(create_link))
        .route("/payments/{payment_id}", get(get_payment))
        .route("/payments/{payment_id}/cancel", post(cancel_payment))
        .route("/payments/{payment_id}/refund", post(refund_payment))
        .route("/payments/{payment_id}/refunds", get(payment_refunds))
        .route("/payments/{payment_id}/qr.svg", get(qr_svg))
        .route("/payments/{payment_id}/qr.png", get(qr_png))
        .route("/refunds", get(list_refunds))
        .route("/refunds/{refund_id}", get(get_refund))
        .route("/static-qr-payments/{order_number}", get(static_qr_payment))
        .with_state(gateway)
}

/// xPayment's name for a status.
pub fn xpayment_status(status: InvoiceStatus) -> &'static str {
    match status {
        InvoiceStatus::Pending => "pending",
        InvoiceStatus::Paid => "completed",
        InvoiceStatus::Cancelled => "cancelled",
        InvoiceStatus::Failed => "failed",
        InvoiceStatus::Expired => "expired",
    }
}

/// Inserts `key` when `value` is there.
fn put(object: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(value) = value {
        object.insert(key.to_owned(), value);
    }
}

/// A payment as xPayment shows it (`handler.paymentObject`); `user_id` is the organization.
pub fn payment_json(invoice: &Invoice, user_id: &str) -> Value {
    let mut o = Map::new();
    o.insert("payment_id".into(), json!(invoice.payment_id));
    o.insert("amount".into(), amount_number(invoice.amount));
    o.insert("currency".into(), json!("KZT"));
    o.insert("status".into(), json!(xpayment_status(invoice.status)));
    put(
        &mut o,
        "payer_phone",
        invoice.phone.as_ref().map(|p| json!(format!("+7{p}"))),
    );
    put(
        &mut o,
        "comment",
        invoice.description.as_ref().map(|c| json!(c)),
    );
    put(
        &mut o,
        "merchant_order_id",
        invoice.external_order_id.as_ref().map(|m| json!(m)),
    );
    let metadata = invoice
        .metadata
        .as_deref()
        .and_then(|m| serde_json::from_str::<Value>(m).ok())
        .unwrap_or_else(|| json!({}));
    o.insert("metadata".into(), metadata);
    put(
        &mut o,
        "cancel_reason",
        invoice.cancel_reason.as_ref().map(|r| json!(r)),
    );
    put(
        &mut o,
        "cancelled_at",
        invoice.cancelled_at.map(|t| json!(rfc3339_ms(t))),
    );
    put(
        &mut o,
        "completed_at",
        invoice.paid_at.map(|t| json!(rfc3339_ms(t))),
    );
    o.insert("created_at".into(), json!(rfc3339_ms(invoice.created_at)));
    o.insert("updated_at".into(), json!(rfc3339_ms(invoice.updated_at)));
    o.insert("user_id".into(), json!(user_id));
    put(
        &mut o,
        "qr_token",
        invoice.qr_token.as_ref().map(|t| json!(t)),
    );
    put(
        &mut o,
        "kaspi_operation_id",
        invoice.kaspi_operation_id.as_ref().map(|t| json!(t)),
    );
    Value::Object(o)
}

/// A refund as xPayment shows it (`handler.refundObject`).
pub fn refund_json(refund: &Refund, payment_id: &str, user_id: &str) -> Value {
    let mut o = Map::new();
    o.insert("refund_id".into(), json!(refund.refund_id));
    o.insert("payment_id".into(), json!(payment_id));
    o.insert("amount".into(), amount_number(refund.amount));
    o.insert("status".into(), json!(refund.status.as_str()));
    put(&mut o, "reason", refund.reason.as_ref().map(|r| json!(r)));
    put(
        &mut o,
        "fail_reason",
        refund.fail_reason.as_ref().map(|r| json!(r)),
    );
    o.insert("created_at".into(), json!(rfc3339_ms(refund.created_at)));
    o.insert("updated_at".into(), json!(rfc3339_ms(refund.updated_at)));
    put(
        &mut o,
        "completed_at",
        refund.completed_at.map(|t| json!(rfc3339_ms(t))),
    );
    o.insert("user_id".into(), json!(user_id));
    Value::Object(o)
}

/// A gateway error as xPayment answers it.
pub fn gateway_error(e: GatewayError) -> ApiError {
    use GatewayError as G;
    let coded =
        |status, code: &'static str, message: String| ApiError::coded(F, status, code, message);
    match e {
        G::NotFound => ApiError::not_found(F, "PAYMENT_NOT_FOUND", "Payment not found"),
        e @ G::NotCancellable { .. } => coded(StatusCode::CONFLICT, "PAYMENT_NOT_CANCELABLE", e.to_string()),
        e @ G::NotAtKaspiYet => coded(StatusCode::CONFLICT, "PAYMENT_NOT_CANCELABLE", e.to_string()),
        G::NotRefundable(RefundRefusal::TooMuch { left }) => ApiError::validation(
            F,
            "amount",
            format!(
                "the refund is more than what is left to refund ({})",
                kaspi::Amount::from_tiyn(left).to_decimal_string()
            ),
        ),
        G::NotRefundable(RefundRefusal::BadAmount) => {
            ApiError::validation(F, "amount", "the refund amount must be positive")
        }
        e @ G::NotRefundable(_) => coded(StatusCode::CONFLICT, "PAYMENT_NOT_REFUNDABLE", e.to_string()),
        G::KaspiClientNotFound => coded(
            StatusCode::UNPROCESSABLE_ENTITY,
            "KASPI_CLIENT_NOT_FOUND",
            "No Kaspi client has this phone number".into(),
        ),
        e @ (G::NoTerminal | G::SessionInvalid(_)) => coded(
            StatusCode::SERVICE_UNAVAILABLE,
            "KASPI_SESSION_INVALID",
            match e {
                G::SessionInvalid(reason) => format!("The Kaspi cashier session is no longer valid ({reason}); the cashier must log in again (kassa terminal connect)"),
                other => other.to_string(),
            },
        ),
        e @ G::AppBuildOutdated { .. } => coded(
            StatusCode::SERVICE_UNAVAILABLE,
            "KASPI_APP_BUILD_OUTDATED",
            e.to_string(),
        ),
        G::KaspiRefused(message) | G::LoginFailed(message) => coded(
            StatusCode::BAD_GATEWAY,
            "KASPI_ERROR",
            format!("Kaspi refused the request: {message}"),
        ),
        G::KaspiUnavailable(_) | G::OutcomeUnknown(_) => coded(
            StatusCode::BAD_GATEWAY,
            "KASPI_ERROR",
            "Kaspi did not answer; try again shortly".into(),
        ),
        G::Sandbox(message) => coded(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message),
        e @ G::Internal(_) => ApiError::internal(F, e),
        G::Store(e) => ApiError::store(F, e),
    }
}

fn store_error(e: crate::store::StoreError) -> ApiError {
    ApiError::store(F, e)
}

/// The organization's slug, shown as `user_id`.
async fn user_id(gateway: &Gateway, org_id: i64) -> Result<String, ApiError> {
    match gateway.org_slug(org_id).await {
        Ok(slug) => Ok(slug.to_string()),
        Err(GatewayError::NotFound) => Ok(org_id.to_string()),
        Err(e) => Err(gateway_error(e)),
    }
}

/// The payment `payment_id` of the caller, or 404.
async fn payment(gateway: &Gateway, caller: Caller, payment_id: &str) -> Result<Invoice, ApiError> {
    gateway
        .store()
        .invoice_by_payment_id(caller.org_id, payment_id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| gateway_error(GatewayError::NotFound))
}

#[derive(Debug, Deserialize)]
struct CreatePaymentBody {
    #[serde(default)]
    payer_phone: Option<Value>,
    #[serde(default)]
    amount: Option<Value>,
    #[serde(default)]
    comment: Option<Value>,
    #[serde(default)]
    merchant_order_id: Option<Value>,
    #[serde(default)]
    metadata: Option<Value>,
}

fn required_amount(value: Option<&Value>, errors: &mut FieldErrors) -> Option<kaspi::Amount> {
    match value {
        None | Some(Value::Null) => {
            errors.add("amount", "amount is required");
            None
        }
        Some(v) => parse_amount(v, "amount", errors),
    }
}

async fn create_payment(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    idem: Option<Extension<IdemLink>>,
    XJson(body): XJson<CreatePaymentBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let mut errors = FieldErrors::new();
    let phone = match &body.payer_phone {
        None | Some(Value::Null) => {
            errors.add("payer_phone", "payer_phone is required");
            None
        }
        Some(Value::String(p)) => match kaspi::phone::normalize(p) {
            Ok(phone) => Some(phone),
            Err(_) => {
                errors.add(
                    "payer_phone",
                    "must be a Kazakhstan mobile number such as +77001234567",
                );
                None
            }
        },
        Some(_) => {
            errors.add("payer_phone", "must be a string");
            None
        }
    };
    let amount = required_amount(body.amount.as_ref(), &mut errors);
    let comment = optional_text(F, body.comment.as_ref(), "comment", 500, &mut errors);
    let merchant_order_id = optional_text(
        F,
        body.merchant_order_id.as_ref(),
        "merchant_order_id",
        255,
        &mut errors,
    );
    let metadata = match &body.metadata {
        None | Some(Value::Null) => None,
        Some(m @ Value::Object(_)) => {
            let text = m.to_string();
            if text.len() > MAX_METADATA_BYTES {
                errors.add(
                    "metadata",
                    format!("must be at most {MAX_METADATA_BYTES} bytes of JSON"),
                );
            }
            Some(text)
        }
        Some(_) => {
            errors.add("metadata", "must be a JSON object");
            None
        }
    };
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
                description: comment,
                external_order_id: merchant_order_id,
                metadata,
                idempotency: idem.map(|Extension(link)| link),
            },
        )
        .await
        .map_err(gateway_error)?;
    let user = user_id(&gateway, caller.org_id).await?;
    Ok((StatusCode::CREATED, Json(payment_json(&invoice, &user))))
}

/// The opaque cursor naming the last row of a page.
fn cursor_of(id: i64) -> String {
    B64URL.encode(format!("after:{id}"))
}

/// The row id a cursor names; a validation error on `cursor` when it is not one of ours.
fn parse_cursor(query: &QueryPairs<XPayment>) -> Result<Option<i64>, ApiError> {
    let Some(text) = query.get("cursor") else {
        return Ok(None);
    };
    B64URL
        .decode(text)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|s| s.strip_prefix("after:").and_then(|n| n.parse::<i64>().ok()))
        .map(Some)
        .ok_or_else(|| ApiError::validation(F, "cursor", "is not a cursor this API gave"))
}

/// Cuts a keyset page: `rows` were fetched with `limit + 1`; whether there is more, and the
/// cursor naming the page's last row (empty at the end).
fn cut_page<T>(rows: &mut Vec<T>, limit: u32, id_of: impl Fn(&T) -> i64) -> (bool, String) {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let has_more = rows.len() > limit;
    rows.truncate(limit);
    let next_cursor = if has_more {
        rows.last().map(|r| cursor_of(id_of(r))).unwrap_or_default()
    } else {
        String::new()
    };
    (has_more, next_cursor)
}

fn page_size(query: &QueryPairs<XPayment>) -> Result<u32, ApiError> {
    Ok(query
        .int("limit", 1, 100)?
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(PAGE))
}

const PAYMENT_STATUSES: &[&str] = &["pending", "completed", "cancelled", "failed", "expired"];

async fn list_payments(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    query: QueryPairs<XPayment>,
) -> Result<Json<Value>, ApiError> {
    // The spec types `status` as free text: a status no payment has matches nothing.
    let status = query.get("status");
    if status.is_some_and(|s| !PAYMENT_STATUSES.contains(&s)) {
        return Ok(Json(
            json!({"data": [], "has_more": false, "next_cursor": ""}),
        ));
    }
    let phone = match query.get("payer_phone") {
        Some(p) => Some(
            kaspi::phone::normalize(p)
                .map_err(|_| {
                    ApiError::validation(
                        F,
                        "payer_phone",
                        "must be a Kazakhstan mobile number such as +77001234567",
                    )
                })?
                .as_str()
                .to_owned(),
        ),
        None => None,
    };
    let merchant_order_id = query.string("merchant_order_id", 255)?.map(str::to_owned);
    let after = parse_cursor(&query)?;
    let limit = page_size(&query)?;
    let statuses = match status {
        Some("pending") => vec![InvoiceStatus::Pending],
        Some("completed") => vec![InvoiceStatus::Paid],
        Some("cancelled") => vec![InvoiceStatus::Cancelled],
        Some("failed") => vec![InvoiceStatus::Failed],
        Some(_) => vec![InvoiceStatus::Expired],
        None => Vec::new(),
    };
    let filter = InvoiceFilter {
        statuses,
        phone,
        external_order_id: merchant_order_id,
        ..InvoiceFilter::default()
    };
    let mut rows = gateway
        .store()
        .list_invoices_before(caller.org_id, &filter, after, limit + 1)
        .await
        .map_err(store_error)?;
    let (has_more, next_cursor) = cut_page(&mut rows, limit, |r| r.id);
    let user = user_id(&gateway, caller.org_id).await?;
    Ok(Json(json!({
        "data": rows.iter().map(|i| payment_json(i, &user)).collect::<Vec<_>>(),
        "has_more": has_more,
        "next_cursor": next_cursor,
    })))
}

async fn get_payment(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    Path(payment_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let invoice = payment(&gateway, caller, &payment_id).await?;
    let user = user_id(&gateway, caller.org_id).await?;
    Ok(Json(payment_json(&invoice, &user)))
}

#[derive(Debug, Deserialize)]
struct CancelBody {
    #[serde(default)]
    reason: Option<Value>,
}

async fn cancel_payment(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    Path(payment_id): Path<String>,
    XJson(body): XJson<CancelBody>,
) -> Result<Json<Value>, ApiError> {
    let mut errors = FieldErrors::new();
    let reason = optional_text(F, body.reason.as_ref(), "reason", 500, &mut errors);
    errors.into_result(F)?;
    let invoice = payment(&gateway, caller, &payment_id).await?;
    let cancelled = gateway
        .cancel_invoice_with_reason(caller.org_id, invoice.id, reason)
        .await
        .map_err(gateway_error)?;
    let user = user_id(&gateway, caller.org_id).await?;
    Ok(Json(payment_json(&cancelled, &user)))
}

#[derive(Debug, Deserialize)]
struct RefundBody {
    #[serde(default)]
    amount: Option<Value>,
    #[serde(default)]
    reason: Option<Value>,
}

async fn refund_payment(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    idem: Option<Extension<IdemLink>>,
    Path(payment_id): Path<String>,
    XJson(body): XJson<RefundBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let mut errors = FieldErrors::new();
    let amount = match &body.amount {
        None | Some(Value::Null) => None,
        Some(v) => parse_amount(v, "amount", &mut errors),
    };
    let reason = optional_text(F, body.reason.as_ref(), "reason", 500, &mut errors);
    errors.into_result(F)?;
    let invoice = payment(&gateway, caller, &payment_id).await?;
    let (refund, _) = gateway
        .request_refund(
            caller.org_id,
            invoice.id,
            RefundRequest {
                amount,
                reason,
                initiated_by: "xpayment",
                idempotency: idem.map(|Extension(link)| link),
            },
        )
        .await
        .map_err(gateway_error)?;
    let user = user_id(&gateway, caller.org_id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(refund_json(&refund, &invoice.payment_id, &user)),
    ))
}

async fn payment_refunds(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    Path(payment_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    // The spec answers this list 200 only: an unknown payment simply has no refunds.
    let Some(invoice) = gateway
        .store()
        .invoice_by_payment_id(caller.org_id, &payment_id)
        .await
        .map_err(store_error)?
    else {
        return Ok(Json(
            json!({"data": [], "has_more": false, "next_cursor": ""}),
        ));
    };
    let filter = RefundFilter {
        invoice_id: Some(invoice.id),
        ..RefundFilter::default()
    };
    let refunds = gateway
        .store()
        .list_refunds_before(caller.org_id, &filter, None, 100)
        .await
        .map_err(store_error)?;
    let user = user_id(&gateway, caller.org_id).await?;
    Ok(Json(json!({
        "data": refunds.iter().map(|r| refund_json(r, &invoice.payment_id, &user)).collect::<Vec<_>>(),
        "has_more": false,
        "next_cursor": "",
    })))
}

const REFUND_STATUSES: &[&str] = &["pending", "processing", "completed", "failed"];

async fn list_refunds(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    query: QueryPairs<XPayment>,
) -> Result<Json<Value>, ApiError> {
    // Free text in the spec, as for payments: an unknown status matches nothing.
    let status = query.get("status");
    if status.is_some_and(|s| !REFUND_STATUSES.contains(&s)) {
        return Ok(Json(
            json!({"data": [], "has_more": false, "next_cursor": ""}),
        ));
    }
    let payment_id = query.string("payment_id", 64)?.map(str::to_owned);
    let after = parse_cursor(&query)?;
    let limit = page_size(&query)?;
    let filter = RefundFilter {
        statuses: status.and_then(RefundStatus::parse).into_iter().collect(),
        payment_id,
        ..RefundFilter::default()
    };
    let mut rows = gateway
        .store()
        .list_refunds_before(caller.org_id, &filter, after, limit + 1)
        .await
        .map_err(store_error)?;
    let (has_more, next_cursor) = cut_page(&mut rows, limit, |r| r.id);
    let user = user_id(&gateway, caller.org_id).await?;
    let mut data = Vec::with_capacity(rows.len());
    for refund in &rows {
        let payment_id = refund_payment_id(&gateway, refund).await?;
        data.push(refund_json(refund, &payment_id, &user));
    }
    Ok(Json(json!({
        "data": data,
        "has_more": has_more,
        "next_cursor": next_cursor,
    })))
}

async fn refund_payment_id(gateway: &Gateway, refund: &Refund) -> Result<String, ApiError> {
    Ok(gateway
        .store()
        .invoice(refund.org_id, refund.invoice_id)
        .await
        .map_err(store_error)?
        .map(|i| i.payment_id)
        .unwrap_or_default())
}

async fn get_refund(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    Path(refund_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let refund = gateway
        .store()
        .refund_by_uuid(caller.org_id, &refund_id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found(F, "REFUND_NOT_FOUND", "Refund not found"))?;
    let payment_id = refund_payment_id(&gateway, &refund).await?;
    let user = user_id(&gateway, caller.org_id).await?;
    Ok(Json(refund_json(&refund, &payment_id, &user)))
}

#[derive(Debug, Deserialize)]
struct LinkBody {
    #[serde(default)]
    amount: Option<Value>,
    #[serde(default)]
    merchant_order_id: Option<Value>,
    #[serde(default)]
    comment: Option<Value>,
}

async fn create_link(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    XJson(body): XJson<LinkBody>,
) -> Result<Json<Value>, ApiError> {
    let mut errors = FieldErrors::new();
    let amount = required_amount(body.amount.as_ref(), &mut errors);
    let merchant_order_id = optional_text(
        F,
        body.merchant_order_id.as_ref(),
        "merchant_order_id",
        255,
        &mut errors,
    );
    let comment = optional_text(F, body.comment.as_ref(), "comment", 500, &mut errors);
    errors.into_result(F)?;
    let Some(amount) = amount else {
        return Err(ApiError::internal(
            F,
            anyhow::anyhow!("validated amount missing"),
        ));
    };
    let invoice = gateway
        .create_qr_payment(
            caller.org_id,
            NewQrPayment {
                amount,
                description: comment,
                external_order_id: merchant_order_id,
                metadata: None,
            },
        )
        .await
        .map_err(gateway_error)?;
    let mut o = Map::new();
    o.insert("payment_id".into(), json!(invoice.payment_id));
    put(
        &mut o,
        "qr_token",
        invoice.qr_token.as_ref().map(|t| json!(t)),
    );
    put(
        &mut o,
        "qr_operation_id",
        invoice
            .kaspi_operation_id
            .as_deref()
            .and_then(|op| op.parse::<i64>().ok())
            .map(|op| json!(op)),
    );
    put(
        &mut o,
        "ext_tran_id",
        invoice.ext_tran_id.as_ref().map(|t| json!(t)),
    );
    put(
        &mut o,
        "expire_date",
        invoice.expires_at.map(|t| json!(rfc3339_ms(t))),
    );
    put(
        &mut o,
        "status",
        invoice.kaspi_status.as_ref().map(|s| json!(s)),
    );
    Ok(Json(Value::Object(o)))
}

/// The payer's URL of a QR payment: Kaspi's token, which the Kaspi app opens when scanned.
async fn qr_text(gateway: &Gateway, caller: Caller, payment_id: &str) -> Result<String, ApiError> {
    let invoice = payment(gateway, caller, payment_id).await?;
    invoice.qr_token.ok_or_else(|| {
        ApiError::not_found(
            F,
            "PAYMENT_NOT_FOUND",
            "This payment has no QR code (it is an invoice by phone)",
        )
    })
}

async fn qr_svg(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    Path(payment_id): Path<String>,
) -> Result<Response, ApiError> {
    let text = qr_text(&gateway, caller, &payment_id).await?;
    let svg = crate::qr::svg(&text).map_err(|e| ApiError::internal(F, e))?;
    Ok(([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response())
}

async fn qr_png(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    Path(payment_id): Path<String>,
) -> Result<Response, ApiError> {
    let text = qr_text(&gateway, caller, &payment_id).await?;
    let png = crate::qr::png(&text, 8).map_err(|e| ApiError::internal(F, e))?;
    Ok(([(header::CONTENT_TYPE, "image/png")], png).into_response())
}

/// A synced history operation as `handler.staticQrPaymentObject`.
fn static_json(op: &KaspiOperation) -> Value {
    let mut o = Map::new();
    o.insert("id".into(), json!(op.id));
    o.insert("kaspi_operation_id".into(), json!(op.kaspi_operation_id));
    put(&mut o, "amount", op.amount.map(amount_number));
    put(
        &mut o,
        "client_short_name",
        op.client_short_name.as_ref().map(|v| json!(v)),
    );
    put(&mut o, "comment", op.comment.as_ref().map(|v| json!(v)));
    put(&mut o, "features", op.features.map(|v| json!(v)));
    put(
        &mut o,
        "operation_method",
        op.operation_method.map(|v| json!(v)),
    );
    put(
        &mut o,
        "operation_type",
        op.operation_type.map(|v| json!(v)),
    );
    put(
        &mut o,
        "order_number",
        op.order_number.as_ref().map(|v| json!(v)),
    );
    put(
        &mut o,
        "order_reg_date",
        op.order_reg_date.as_ref().map(|v| json!(v)),
    );
    put(&mut o, "sale_id", op.sale_id.map(|v| json!(v)));
    put(&mut o, "sale_type", op.sale_type.as_ref().map(|v| json!(v)));
    put(
        &mut o,
        "source_type",
        op.source_type.as_ref().map(|v| json!(v)),
    );
    put(&mut o, "status", op.status.as_ref().map(|v| json!(v)));
    o.insert("synced_at".into(), json!(rfc3339_ms(op.synced_at)));
    Value::Object(o)
}

async fn static_qr_payment(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    Path(order_number): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let op = gateway
        .store()
        .static_qr_payment(caller.org_id, &order_number)
        .await
        .map_err(store_error)?
        .ok_or_else(|| {
            ApiError::not_found(
                F,
                "PAYMENT_NOT_FOUND",
                "No payment with this order number was found in the Kaspi history synced so far",
            )
        })?;
    Ok(Json(static_json(&op)))
}
