//! Payment links: a QR payment for the payer to scan, and its QR code as SVG or PNG.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::errors::gateway_error;
use super::payments::{payment, required_amount};
use super::views::put;
use super::F;
use crate::api::auth::Caller;
use crate::api::error::{ApiError, FieldErrors};
use crate::api::extract::XJson;
use crate::api::openapi::{schemas as doc, TAG_PAYMENTS};
use crate::api::{optional_text, rfc3339_ms};
use crate::gateway::{Gateway, NewQrPayment};

#[derive(Debug, Deserialize)]
pub(super) struct LinkBody {
    #[serde(default)]
    amount: Option<Value>,
    #[serde(default)]
    merchant_order_id: Option<Value>,
    #[serde(default)]
    comment: Option<Value>,
}

#[utoipa::path(
    post,
    path = "/payments/link",
    tag = TAG_PAYMENTS,
    operation_id = "create_payment_link",
    summary = "Create a payment link (a QR payment)",
    description = "A QR payment the payer scans with the Kaspi app; its QR code is served as \
        SVG or PNG (`/payments/{payment_id}/qr.svg`, `qr.png`).",
    request_body = doc::CreateLinkRequest,
    responses(
        (status = 200, description = "The QR payment", body = doc::PaymentLink),
        (status = 502, description = "Kaspi refused or did not answer (`KASPI_ERROR`)", body = doc::XPaymentError),
        (status = 503, description = "No Kaspi cashier can work now (`KASPI_SESSION_INVALID`, `KASPI_APP_BUILD_OUTDATED`)", body = doc::XPaymentError),
    ),
)]
pub(super) async fn create_link(
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
        invoice.kaspi_operation_id.map(|op| json!(op.get())),
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

#[utoipa::path(
    get,
    path = "/payments/{payment_id}/qr.svg",
    tag = TAG_PAYMENTS,
    operation_id = "payment_qr_svg",
    summary = "A QR payment's code as SVG",
    description = "The code the payer scans (Kaspi's link); a payment by phone has none (404).",
    params(("payment_id" = String, Path, description = "The payment's `payment_id`")),
    responses((status = 200, description = "The QR code", content_type = "image/svg+xml", body = doc::Binary)),
)]
pub(super) async fn qr_svg(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    Path(payment_id): Path<String>,
) -> Result<Response, ApiError> {
    let text = qr_text(&gateway, caller, &payment_id).await?;
    let svg = crate::qr::svg(&text).map_err(|e| ApiError::internal(F, e))?;
    Ok(([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response())
}

#[utoipa::path(
    get,
    path = "/payments/{payment_id}/qr.png",
    tag = TAG_PAYMENTS,
    operation_id = "payment_qr_png",
    summary = "A QR payment's code as PNG",
    description = "The code the payer scans (Kaspi's link); a payment by phone has none (404).",
    params(("payment_id" = String, Path, description = "The payment's `payment_id`")),
    responses((status = 200, description = "The QR code", content_type = "image/png", body = doc::Binary)),
)]
pub(super) async fn qr_png(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    Path(payment_id): Path<String>,
) -> Result<Response, ApiError> {
    let text = qr_text(&gateway, caller, &payment_id).await?;
    let png = crate::qr::png(&text, 8).map_err(|e| ApiError::internal(F, e))?;
    Ok(([(header::CONTENT_TYPE, "image/png")], png).into_response())
}
