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
//!
//! Where the code lives:
//! - `payments`: create, list, get and cancel payments by phone.
//! - `refunds`: refund a payment, a payment's refunds, the list of refunds, one refund.
//! - `links`: payment links (a QR payment) and their QR code as SVG or PNG.
//! - `static_qr`: a payment to the shop's static QR, found in the synced Kaspi history.
//! - [`views`]: the JSON a client sees; [`errors`]: gateway and store errors as xPayment
//!   answers them; `pages`: keyset pages with an opaque cursor.

use axum::routing::{get, post};
use axum::Router;

use crate::api::error::ErrorFormat;
use crate::gateway::Gateway;

pub mod errors;
mod links;
mod pages;
mod payments;
mod refunds;
mod static_qr;
pub mod views;

use links::{create_link, qr_png, qr_svg};
use payments::{cancel_payment, create_payment, get_payment, list_payments};
use refunds::{get_refund, list_refunds, payment_refunds, refund_payment};
use static_qr::static_qr_payment;

const F: ErrorFormat = ErrorFormat::XPayment;

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

/// The operations of [`routes`] for Kassa's OpenAPI document (relative to `/v1` and to the
/// root; see [`crate::api::openapi`]), in the order of the routes.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    payments::create_payment,
    payments::list_payments,
    links::create_link,
    payments::get_payment,
    payments::cancel_payment,
    refunds::refund_payment,
    refunds::payment_refunds,
    links::qr_svg,
    links::qr_png,
    refunds::list_refunds,
    refunds::get_refund,
    static_qr::static_qr_payment,
))]
pub struct ApiDoc;
