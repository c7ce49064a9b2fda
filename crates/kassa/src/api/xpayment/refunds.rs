//! Refunds: refund a payment, a payment's refunds, the list of refunds and one refund.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde_json::{json, Value};

use super::errors::{gateway_error, store_error};
use super::pages::{cut_page, page_size, parse_cursor};
use super::payments::{payment, user_id};
use super::views::refund_json;
use super::F;
use crate::api::auth::Caller;
use crate::api::error::{ApiError, FieldErrors};
use crate::api::extract::{QueryPairs, XJson, XPayment};
use crate::api::openapi::{schemas as doc, TAG_XREFUNDS};
use crate::api::{optional_text, parse_amount, RefundBody};
use crate::gateway::{Gateway, RefundRequest};
use crate::store::{IdemLink, Refund, RefundFilter, RefundStatus};

#[utoipa::path(
    post,
    path = "/payments/{payment_id}/refund",
    tag = TAG_XREFUNDS,
    summary = "Refund a completed payment",
    description = "The whole rest when `amount` is left out. The refund is asked of Kaspi and \
        completes later (`payment.refunded` or `payment.refund_failed`). More than what is left \
        is 400.",
    params(("payment_id" = String, Path, description = "The payment's `payment_id`")),
    request_body = Option<doc::RefundPaymentRequest>,
    responses(
        (status = 202, description = "The refund, asked", body = doc::XPaymentRefund),
        (status = 409, description = "The payment cannot be refunded: not completed, or nothing left (`PAYMENT_NOT_REFUNDABLE`)", body = doc::XPaymentError),
        (status = 502, description = "Kaspi refused or did not answer (`KASPI_ERROR`)", body = doc::XPaymentError),
        (status = 503, description = "No Kaspi cashier can work now (`KASPI_SESSION_INVALID`, `KASPI_APP_BUILD_OUTDATED`)", body = doc::XPaymentError),
    ),
)]
pub(super) async fn refund_payment(
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
                return_items: Vec::new(),
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

#[utoipa::path(
    get,
    path = "/payments/{payment_id}/refunds",
    tag = TAG_XREFUNDS,
    summary = "A payment's refunds",
    description = "An unknown payment simply has none.",
    params(("payment_id" = String, Path, description = "The payment's `payment_id`")),
    responses((status = 200, description = "Its refunds, newest first (at most 100, one page)", body = doc::XPaymentRefundPage)),
)]
pub(super) async fn payment_refunds(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    Path(payment_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    // The spec answers this list 200 only: an unknown payment simply has no refunds.
    let Some(invoice) = gateway
        .store()
        .invoices()
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
        .refunds()
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

#[utoipa::path(
    get,
    path = "/refunds",
    tag = TAG_XREFUNDS,
    operation_id = "list_xpayment_refunds",
    summary = "List refunds",
    description = "Newest first, in pages; a `cursor` this API did not give is 400.",
    params(doc::XPaymentRefundListQuery),
    responses((status = 200, description = "A page of refunds", body = doc::XPaymentRefundPage)),
)]
pub(super) async fn list_refunds(
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
        .refunds()
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
        .invoices()
        .invoice(refund.org_id, refund.invoice_id)
        .await
        .map_err(store_error)?
        .map(|i| i.payment_id)
        .unwrap_or_default())
}

#[utoipa::path(
    get,
    path = "/refunds/{refund_id}",
    tag = TAG_XREFUNDS,
    operation_id = "get_xpayment_refund",
    summary = "Get a refund",
    params(("refund_id" = String, Path, description = "The refund's `refund_id`")),
    responses((status = 200, description = "The refund", body = doc::XPaymentRefund)),
)]
pub(super) async fn get_refund(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    Path(refund_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let refund = gateway
        .store()
        .refunds()
        .refund_by_uuid(caller.org_id, &refund_id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found(F, "REFUND_NOT_FOUND", "Refund not found"))?;
    let payment_id = refund_payment_id(&gateway, &refund).await?;
    let user = user_id(&gateway, caller.org_id).await?;
    Ok(Json(refund_json(&refund, &payment_id, &user)))
}
