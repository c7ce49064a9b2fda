//! Invoices by phone: create, list (filtered, sorted, paged), get and cancel.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

use super::cart;
use super::errors::gateway_error;
use super::fields;
use super::query::{almaty_day_start, page_and_size, STATUS_FILTERS};
use super::views::{invoice_item_json, invoice_json, page_meta};
use super::F;
use crate::api::auth::Caller;
use crate::api::error::{ApiError, FieldErrors};
use crate::api::extract::{ApiJson, ApiPay, IdPath, QueryPairs};
use crate::api::openapi::{schemas as doc, TAG_INVOICES};
use crate::api::optional_text;
use crate::gateway::{Gateway, GatewayError, NewRemoteInvoice};
use crate::store::{IdemLink, InvoiceFilter, InvoiceSort, InvoiceStatus, SortOrder};

#[derive(Debug, Deserialize)]
pub(super) struct CreateInvoiceBody {
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
    #[serde(default)]
    discount_percentage: Option<Value>,
}

#[utoipa::path(
    post,
    path = "/invoices",
    tag = TAG_INVOICES,
    summary = "Create an invoice to a payer's phone",
    description = "Kassa asks Kaspi before it answers, so a new invoice has reached the payer's \
        Kaspi app: it is `pending` (`processing` only while Kaspi's answer is not known). A \
        phone with no Kaspi client is 422 naming `phone_number`. The amount is `amount`, or the \
        sum of `cart_items` (catalog items or Kaspi-native lines), less `discount_percentage`.",
    request_body = doc::CreateInvoiceRequest,
    responses(
        (status = 201, description = "The invoice, with its lines", body = doc::Invoice),
        (status = 502, description = "Kaspi refused or did not answer (`kaspi_error`, `kaspi_unavailable`)", body = doc::ApiPayCodedError),
        (status = 503, description = "No Kaspi cashier can work now (`kaspi_not_connected`, `kaspi_session_invalid`, `kaspi_app_build_outdated`)", body = doc::ApiPayCodedError),
    ),
)]
pub(super) async fn create_invoice(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    idem: Option<Extension<IdemLink>>,
    ApiJson(body): ApiJson<CreateInvoiceBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let mut errors = FieldErrors::new();
    let phone = fields::phone_number(body.phone_number.as_ref(), &mut errors);
    let priced = cart::priced(
        &gateway,
        caller.org_id,
        body.amount.as_ref(),
        body.cart_items.as_ref(),
        body.discount_percentage.as_ref(),
        &mut errors,
    )
    .await?;
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
    let (Some(phone), Some((amount, cart))) = (phone, priced) else {
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
                cart,
            },
        )
        .await
        .map_err(gateway_error)?;
    Ok((
        StatusCode::CREATED,
        Json(with_items(&gateway, invoice_json(&invoice), &invoice).await?),
    ))
}

/// `body` (an invoice's view) with the invoice's lines as `items` (empty for a flat amount).
async fn with_items(
    gateway: &Gateway,
    mut body: Value,
    invoice: &crate::store::Invoice,
) -> Result<Value, ApiError> {
    let items = if invoice.subtotal.is_some() {
        gateway
            .store()
            .invoices()
            .items(invoice.org_id, invoice.id)
            .await
            .map_err(|e| ApiError::store(F, e))?
    } else {
        Vec::new()
    };
    body["items"] = Value::Array(items.iter().map(invoice_item_json).collect());
    Ok(body)
}

#[utoipa::path(
    get,
    path = "/invoices",
    tag = TAG_INVOICES,
    summary = "List invoices",
    description = "Newest first unless sorted otherwise; days are Asia/Almaty days.",
    params(doc::InvoiceListQuery),
    responses((status = 200, description = "A page of invoices", body = doc::InvoicePage)),
)]
pub(super) async fn list_invoices(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    query: QueryPairs<ApiPay>,
) -> Result<Json<Value>, ApiError> {
    let mut errors = FieldErrors::new();
    let (page, per_page) = page_and_size(&query, 10, &mut errors)?;
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
            "pending" | "processing" => status_set.push(InvoiceStatus::Pending),
            "paid" => status_set.push(InvoiceStatus::Paid),
            "cancelled" | "error" => {
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
        .invoices()
        .list_invoices(caller.org_id, &filter)
        .await
        .map_err(|e| ApiError::store(F, e))?;
    Ok(Json(json!({
        "data": invoices.iter().map(invoice_json).collect::<Vec<_>>(),
        "meta": page_meta(page, per_page, total)
    })))
}

#[utoipa::path(
    get,
    path = "/invoices/{id}",
    tag = TAG_INVOICES,
    summary = "Get an invoice",
    params(("id" = i64, Path, description = "The invoice's id")),
    responses((status = 200, description = "The invoice, with its lines", body = doc::Invoice)),
)]
pub(super) async fn get_invoice(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    IdPath(id): IdPath,
) -> Result<Json<Value>, ApiError> {
    let invoice = gateway
        .store()
        .invoices()
        .invoice(caller.org_id, id)
        .await
        .map_err(|e| ApiError::store(F, e))?
        .ok_or_else(|| gateway_error(GatewayError::NotFound))?;
    Ok(Json(
        with_items(&gateway, invoice_json(&invoice), &invoice).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/invoices/{id}/cancel",
    tag = TAG_INVOICES,
    summary = "Cancel a pending invoice",
    description = "Cancelled at Kaspi too: the payer can no longer pay it.",
    params(("id" = i64, Path, description = "The invoice's id")),
    responses(
        (status = 200, description = "The cancelled invoice", body = doc::CancelledInvoice),
        (status = 400, description = "Not pending (`invoice_not_cancellable`), or Kaspi has not taken it yet (`invoice_not_ready`)", body = doc::ApiPayCodedError),
        (status = 502, description = "Kaspi refused or did not answer (`kaspi_error`, `kaspi_unavailable`)", body = doc::ApiPayCodedError),
        (status = 503, description = "No Kaspi cashier can work now (`kaspi_not_connected`, `kaspi_session_invalid`, `kaspi_app_build_outdated`)", body = doc::ApiPayCodedError),
    ),
)]
pub(super) async fn cancel_invoice(
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

/// `POST /invoices/status/check`: the current status of up to 100 invoices, each still open
/// one asked of Kaspi first (one that cannot be asked now keeps the status Kassa has). Ids of
/// no invoice of the caller are left out.
#[utoipa::path(
    post,
    path = "/invoices/status/check",
    tag = TAG_INVOICES,
    summary = "Check the status of up to 100 invoices (Kassa's own)",
    request_body = doc::StatusCheckRequest,
    responses((status = 200, description = "The status of each invoice of the caller", body = doc::StatusCheckAnswer)),
)]
pub(super) async fn check_statuses(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<serde_json::Map<String, Value>>,
) -> Result<Json<Value>, ApiError> {
    let mut errors = FieldErrors::new();
    let mut ids: Vec<i64> = Vec::new();
    match body.get("invoice_ids") {
        None | Some(Value::Null) => errors.add("invoice_ids", "The invoice ids field is required."),
        Some(value) => {
            for (i, v) in fields::list(value, "invoice_ids", 100, &mut errors)
                .unwrap_or(&[])
                .iter()
                .enumerate()
            {
                let field = format!("invoice_ids.{i}");
                if let Some(id) = fields::integer(Some(v), &field, 1, i64::MAX, &mut errors) {
                    if !ids.contains(&id) {
                        ids.push(id);
                    }
                }
            }
        }
    }
    errors.into_result(F)?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let read = || async {
            gateway
                .store()
                .invoices()
                .invoice(caller.org_id, id)
                .await
                .map_err(|e| ApiError::store(F, e))
        };
        let Some(invoice) = read().await? else {
            continue;
        };
        let invoice = if invoice.status == InvoiceStatus::Pending {
            if let Err(e) = gateway.check_status(&invoice).await {
                tracing::debug!(invoice = id, error = %e, "status check at Kaspi not possible now");
            }
            read().await?.unwrap_or(invoice)
        } else {
            invoice
        };
        out.push(json!({
            "id": invoice.id,
            "status": super::views::apipay_status(&invoice),
            "kaspi_invoice_id": invoice.kaspi_operation_id.map(|op| op.to_string()),
            "amount": invoice.amount.to_decimal_string(),
            "error_message": super::views::error_message(&invoice),
            "paid_at": invoice.paid_at.map(crate::api::rfc3339_ms),
            "updated_at": crate::api::rfc3339_ms(invoice.updated_at),
        }));
    }
    Ok(Json(json!({ "invoices": out })))
}
