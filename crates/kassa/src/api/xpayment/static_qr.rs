//! A payment to the shop's static QR, looked up by order number in the synced Kaspi history.

use axum::extract::{Path, State};
use axum::{Extension, Json};
use serde_json::Value;

use super::errors::store_error;
use super::views::static_json;
use super::F;
use crate::api::auth::Caller;
use crate::api::error::ApiError;
use crate::api::openapi::{schemas as doc, TAG_PAYMENTS};
use crate::gateway::Gateway;

#[utoipa::path(
    get,
    path = "/static-qr-payments/{order_number}",
    tag = TAG_PAYMENTS,
    summary = "A payment to the shop's static QR",
    description = "Looked up by order number in the Kaspi history synced so far: a payment made \
        moments ago may not be found yet (404).",
    params(("order_number" = String, Path, description = "Kaspi's order number of the payment")),
    responses((status = 200, description = "The payment as the history shows it", body = doc::StaticQrPayment)),
)]
pub(super) async fn static_qr_payment(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    Path(order_number): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let op = gateway
        .store()
        .invoices()
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
