//! Payments by phone: create, list (filtered, keyset pages), get and cancel; and the lookups
//! the other handlers share (the caller's payment, the `user_id` shown).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

use super::errors::{gateway_error, store_error};
use super::pages::{cut_page, page_size, parse_cursor};
use super::views::payment_json;
use super::F;
use crate::api::auth::Caller;
use crate::api::error::{ApiError, FieldErrors};
use crate::api::extract::{QueryPairs, XJson, XPayment};
use crate::api::openapi::{schemas as doc, TAG_PAYMENTS};
use crate::api::{optional_text, parse_amount};
use crate::domain::Money;
use crate::gateway::{Gateway, GatewayError, NewRemoteInvoice};
use crate::store::{IdemLink, Invoice, InvoiceFilter, InvoiceStatus};

/// The most bytes of `metadata` kept.
const MAX_METADATA_BYTES: usize = 8 * 1024;

/// The organization's slug, shown as `user_id`.
pub(super) async fn user_id(gateway: &Gateway, org_id: i64) -> Result<String, ApiError> {
    match gateway.org_slug(org_id).await {
        Ok(slug) => Ok(slug.to_string()),
        Err(GatewayError::NotFound) => Ok(org_id.to_string()),
        Err(e) => Err(gateway_error(e)),
    }
}

/// The payment `payment_id` of the caller, or 404.
pub(super) async fn payment(
    gateway: &Gateway,
    caller: Caller,
    payment_id: &str,
) -> Result<Invoice, ApiError> {
    gateway
        .store()
        .invoices()
        .invoice_by_payment_id(caller.org_id, payment_id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| gateway_error(GatewayError::NotFound))
}

#[derive(Debug, Deserialize)]
pub(super) struct CreatePaymentBody {
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

pub(super) fn required_amount(value: Option<&Value>, errors: &mut FieldErrors) -> Option<Money> {
    match value {
        None | Some(Value::Null) => {
            errors.add("amount", "amount is required");
            None
        }
        Some(v) => parse_amount(v, "amount", errors),
    }
}

#[utoipa::path(
    post,
    path = "/payments",
    tag = TAG_PAYMENTS,
    summary = "Create a payment to a payer's phone",
    description = "An invoice to the payer's Kaspi app, asked of Kaspi before the answer.",
    request_body = doc::CreatePaymentRequest,
    responses(
        (status = 201, description = "The payment", body = doc::Payment),
        (status = 422, description = "No Kaspi client has this phone (`KASPI_CLIENT_NOT_FOUND`)", body = doc::XPaymentError),
        (status = 502, description = "Kaspi refused or did not answer (`KASPI_ERROR`)", body = doc::XPaymentError),
        (status = 503, description = "No Kaspi cashier can work now (`KASPI_SESSION_INVALID`, `KASPI_APP_BUILD_OUTDATED`)", body = doc::XPaymentError),
    ),
)]
pub(super) async fn create_payment(
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
                cart: None,
            },
        )
        .await
        .map_err(gateway_error)?;
    let user = user_id(&gateway, caller.org_id).await?;
    Ok((StatusCode::CREATED, Json(payment_json(&invoice, &user))))
}

const PAYMENT_STATUSES: &[&str] = &["pending", "completed", "cancelled", "failed", "expired"];

#[utoipa::path(
    get,
    path = "/payments",
    tag = TAG_PAYMENTS,
    summary = "List payments",
    description = "Newest first, in pages that stay stable while payments are added. A `cursor` \
        this API did not give is 400.",
    params(doc::PaymentListQuery),
    responses((status = 200, description = "A page of payments", body = doc::PaymentPage)),
)]
pub(super) async fn list_payments(
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
        .invoices()
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

#[utoipa::path(
    get,
    path = "/payments/{payment_id}",
    tag = TAG_PAYMENTS,
    summary = "Get a payment",
    params(("payment_id" = String, Path, description = "The payment's `payment_id`")),
    responses((status = 200, description = "The payment", body = doc::Payment)),
)]
pub(super) async fn get_payment(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    Path(payment_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let invoice = payment(&gateway, caller, &payment_id).await?;
    let user = user_id(&gateway, caller.org_id).await?;
    Ok(Json(payment_json(&invoice, &user)))
}

#[derive(Debug, Deserialize)]
pub(super) struct CancelBody {
    #[serde(default)]
    reason: Option<Value>,
}

#[utoipa::path(
    post,
    path = "/payments/{payment_id}/cancel",
    tag = TAG_PAYMENTS,
    summary = "Cancel a pending payment",
    params(("payment_id" = String, Path, description = "The payment's `payment_id`")),
    request_body = Option<doc::CancelPaymentRequest>,
    responses(
        (status = 200, description = "The cancelled payment", body = doc::Payment),
        (status = 409, description = "Not pending, or not at Kaspi yet (`PAYMENT_NOT_CANCELABLE`)", body = doc::XPaymentError),
        (status = 502, description = "Kaspi refused or did not answer (`KASPI_ERROR`)", body = doc::XPaymentError),
        (status = 503, description = "No Kaspi cashier can work now (`KASPI_SESSION_INVALID`, `KASPI_APP_BUILD_OUTDATED`)", body = doc::XPaymentError),
    ),
)]
pub(super) async fn cancel_payment(
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
