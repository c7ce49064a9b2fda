//! Refunds: refund an invoice, an invoice's refunds, and the list of all refunds.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde_json::{json, Value};

use super::errors::{capitalized, gateway_error};
use super::query::{almaty_day_start, page_and_size};
use super::views::{apipay_status, page_meta, refund_detail_json};
use super::F;
use crate::api::auth::Caller;
use crate::api::error::{ApiError, FieldErrors};
use crate::api::extract::{ApiJson, ApiPay, IdPath, QueryPairs};
use crate::api::openapi::{schemas as doc, TAG_REFUNDS};
use crate::api::{optional_text, parse_amount, RefundBody};
use crate::gateway::{Gateway, GatewayError, RefundRequest};
use crate::store::{IdemLink, RefundFilter, RefundRefusal, RefundStatus};

#[utoipa::path(
    post,
    path = "/invoices/{id}/refund",
    tag = TAG_REFUNDS,
    summary = "Refund a paid invoice",
    description = "The whole rest (no body), a part (`amount`) or lines of its cart \
        (`return_items`). The refund is asked of Kaspi and completes later: its status and the \
        `invoice.refunded` webhook tell. More than what is left, or lines it did not sell, is \
        422.",
    params(("id" = i64, Path, description = "The invoice's id")),
    request_body = Option<doc::RefundInvoiceRequest>,
    responses(
        (status = 201, description = "The refund asked, and the invoice's sums", body = doc::RefundCreated),
        (status = 400, description = "The invoice cannot be refunded (`invoice_not_refundable`: not paid, or nothing left)", body = doc::ApiPayCodedError),
        (status = 502, description = "Kaspi refused or did not answer (`kaspi_error`, `kaspi_unavailable`)", body = doc::ApiPayCodedError),
        (status = 503, description = "No Kaspi cashier can work now (`kaspi_not_connected`, `kaspi_session_invalid`, `kaspi_app_build_outdated`)", body = doc::ApiPayCodedError),
    ),
)]
pub(super) async fn refund_invoice(
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
    let return_items = return_items(body.return_items.as_ref(), &mut errors);
    if !return_items.is_empty() && body.amount.as_ref().is_some_and(|a| !a.is_null()) {
        errors.add(
            "amount",
            "The amount field is prohibited when return items is present: the items make the amount.",
        );
    }
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
                return_items,
            },
        )
        .await
        .map_err(|e| match e {
            GatewayError::NotRefundable(
                why @ (RefundRefusal::NoCart
                | RefundRefusal::NotSold { .. }
                | RefundRefusal::TooManyReturned { .. }),
            ) => ApiError::validation(
                F,
                "return_items",
                capitalized(&GatewayError::NotRefundable(why).to_string()),
            ),
            e => gateway_error(e),
        })?;
    let refund_view = details(&gateway, caller.org_id, std::slice::from_ref(&refund))
        .await?
        .pop()
        .unwrap_or(Value::Null);
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "message": "Refund initiated successfully",
            "refund": refund_view,
            "invoice": {
                "id": invoice.id,
                "amount": invoice.amount.to_decimal_string(),
                "status": apipay_status(&invoice),
                "total_refunded": invoice.total_refunded.to_decimal_string(),
                "available_for_refund": invoice.refundable().to_decimal_string(),
                "pending_refund_amount": invoice
                    .refund_reserved
                    .saturating_sub(invoice.total_refunded)
                    .to_json_number(),
            },
        })),
    ))
}

/// `return_items`: `[{catalog_item_id, count}]`, each named in errors (empty when absent).
fn return_items(value: Option<&Value>, errors: &mut FieldErrors) -> Vec<(i64, i64)> {
    let Some(list) = value
        .filter(|v| !v.is_null())
        .and_then(|v| super::fields::list(v, "return_items", 100, errors))
    else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let Some(item) = item.as_object() else {
            errors.add(
                format!("return_items.{i}"),
                "Each return item must be an object.",
            );
            continue;
        };
        let mut one = |key: &str, max: i64| {
            let field = format!("return_items.{i}.{key}");
            match item.get(key) {
                None | Some(Value::Null) => {
                    errors.add(field.clone(), format!("The {field} field is required."));
                    None
                }
                v => super::fields::integer(v, &field, 1, max, errors),
            }
        };
        let id = one("catalog_item_id", i64::MAX);
        let count = one("count", 100_000);
        if let (Some(id), Some(count)) = (id, count) {
            out.push((id, count));
        }
    }
    out
}

#[utoipa::path(
    get,
    path = "/invoices/{id}/refunds",
    tag = TAG_REFUNDS,
    summary = "An invoice's refunds",
    params(("id" = i64, Path, description = "The invoice's id")),
    responses((status = 200, description = "Its refunds, newest first (at most 100)", body = doc::InvoiceRefunds)),
)]
pub(super) async fn invoice_refunds(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    IdPath(id): IdPath,
) -> Result<Json<Value>, ApiError> {
    gateway
        .store()
        .invoices()
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
        .refunds()
        .list_refunds(caller.org_id, &filter, 1, 100)
        .await
        .map_err(|e| ApiError::store(F, e))?;
    Ok(Json(
        json!({ "data": details(&gateway, caller.org_id, &refunds).await? }),
    ))
}

/// Each of `refunds` as ApiPay's current version lists it, with its invoice and lines.
async fn details(
    gateway: &Gateway,
    org_id: i64,
    refunds: &[crate::store::Refund],
) -> Result<Vec<Value>, ApiError> {
    let mut out = Vec::with_capacity(refunds.len());
    for refund in refunds {
        let invoice = gateway
            .store()
            .invoices()
            .invoice(org_id, refund.invoice_id)
            .await
            .map_err(|e| ApiError::store(F, e))?;
        let items = gateway
            .store()
            .refunds()
            .refund_items(refund.id)
            .await
            .map_err(|e| ApiError::store(F, e))?;
        out.push(refund_detail_json(refund, invoice.as_ref(), &items));
    }
    Ok(out)
}

#[utoipa::path(
    get,
    path = "/refunds/{id}",
    tag = TAG_REFUNDS,
    summary = "Get a refund",
    params(("id" = i64, Path, description = "The refund's id")),
    responses((status = 200, description = "The refund", body = doc::Refund)),
)]
pub(super) async fn get_refund(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    IdPath(id): IdPath,
) -> Result<Json<Value>, ApiError> {
    let refund = gateway
        .store()
        .refunds()
        .refund(caller.org_id, id)
        .await
        .map_err(|e| ApiError::store(F, e))?
        .ok_or_else(|| ApiError::not_found(F, "REFUND_NOT_FOUND", "Refund not found."))?;
    let mut one = details(&gateway, caller.org_id, std::slice::from_ref(&refund)).await?;
    Ok(Json(one.pop().unwrap_or(Value::Null)))
}

const REFUND_STATUSES: &[&str] = &["pending", "processing", "completed", "failed"];

#[utoipa::path(
    get,
    path = "/refunds",
    tag = TAG_REFUNDS,
    summary = "List refunds",
    params(doc::RefundListQuery),
    responses((status = 200, description = "A page of refunds, newest first", body = doc::RefundPage)),
)]
pub(super) async fn list_refunds(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    query: QueryPairs<ApiPay>,
) -> Result<Json<Value>, ApiError> {
    let mut errors = FieldErrors::new();
    let (page, per_page) = page_and_size(&query, 10, &mut errors)?;
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
        .refunds()
        .list_refunds(
            caller.org_id,
            &filter,
            u32::try_from(page).unwrap_or(1),
            u32::try_from(per_page).unwrap_or(10),
        )
        .await
        .map_err(|e| ApiError::store(F, e))?;
    Ok(Json(json!({
        "data": details(&gateway, caller.org_id, &refunds).await?,
        "meta": page_meta(page, per_page, total)
    })))
}
