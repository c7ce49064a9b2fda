//! The ApiPay.kz-compatible surface under `/api/v1`: invoices by phone, their list, stats and
//! cancellation, and for sandbox invoices the payer's helpers. Shapes follow
//! `apipay-docs/openapi.yaml` and its docs; where they are silent the choice is noted here.
//!
//! - Amounts are strings with two decimals (`"10000.00"`); times RFC 3339 in UTC.
//! - Kassa's `failed` (the payer declined, Kaspi rejected) shows as ApiPay's `cancelled`, the
//!   nearest status ApiPay has; a `status[]=cancelled` filter includes it.
//! - Days (`date_from`, `date_to`, `start_date`, `end_date`, `period`) are Asia/Almaty days
//!   (UTC+5).
//!
//! Where the code lives:
//! - `invoices`: create, list, get and cancel invoices.
//! - `stats`: the invoice statistics of a period.
//! - `refunds`: refund an invoice, list refunds.
//! - `subscriptions`: recurring invoices on a schedule (both doc versions' shapes at once).
//! - `sandbox`: the payer's helpers (pay, decline, expire: for test keys, and every key of a
//!   sandbox deployment) and the sandbox clock (a sandbox deployment only: it is Kassa's own).
//! - `fields`: body fields read with Laravel's rules.
//! - `catalog`: units, items and their images (Kassa's own catalog).
//! - [`views`]: the JSON a client sees; [`errors`]: gateway errors as ApiPay answers them;
//!   `query`: what the list and stats queries share (pages, Almaty days).

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

use super::error::ErrorFormat;
use crate::gateway::Gateway;
use crate::jobs::Jobs;

mod cart;
mod catalog;
pub mod errors;
mod fields;
mod invoices;
mod query;
mod refunds;
mod sandbox;
mod stats;
mod subscriptions;
pub mod views;

use catalog::{
    catalog_image, create_catalog_items, delete_catalog_item, list_catalog, list_units,
    update_catalog_item, upload_image,
};
use invoices::{cancel_invoice, check_statuses, create_invoice, get_invoice, list_invoices};
use refunds::{get_refund, invoice_refunds, list_refunds, refund_invoice};
use sandbox::{
    sandbox_clock, sandbox_clock_advance, sandbox_decline, sandbox_expire, sandbox_pay,
    SandboxClock,
};
use stats::invoice_stats;
use subscriptions::{
    cancel_subscription, create_subscription, get_subscription, list_subscriptions,
    pause_subscription, resume_subscription, subscription_invoices, update_subscription,
};

pub use subscriptions::{
    DEFAULT_GRACE_PERIOD_DAYS, DEFAULT_MAX_RETRY_ATTEMPTS, DEFAULT_RETRY_INTERVAL_HOURS,
};

const F: ErrorFormat = ErrorFormat::ApiPay;

/// The authenticated routes (relative to `/api/v1`); the caller adds authentication, rate
/// limit and idempotency around them. `sandbox` (the work of this process, in a sandbox
/// deployment) moves with the sandbox clock; without it the clock's routes refuse.
pub fn routes(gateway: Gateway, sandbox: Option<Jobs>) -> Router {
    let mut router = Router::new()
        .route("/invoices", post(create_invoice).get(list_invoices))
        .route("/invoices/stats", get(invoice_stats))
        .route("/invoices/status/check", post(check_statuses))
        .route("/invoices/{id}", get(get_invoice))
        .route("/invoices/{id}/cancel", post(cancel_invoice))
        .route("/invoices/{id}/refund", post(refund_invoice))
        .route("/invoices/{id}/refunds", get(invoice_refunds))
        .route("/refunds", get(list_refunds))
        .route("/refunds/{id}", get(get_refund))
        .route(
            "/subscriptions",
            post(create_subscription).get(list_subscriptions),
        )
        .route(
            "/subscriptions/{id}",
            get(get_subscription).put(update_subscription),
        )
        .route("/subscriptions/{id}/pause", post(pause_subscription))
        .route("/subscriptions/{id}/resume", post(resume_subscription))
        .route("/subscriptions/{id}/cancel", post(cancel_subscription))
        .route("/subscriptions/{id}/invoices", get(subscription_invoices))
        .route("/catalog", get(list_catalog).post(create_catalog_items))
        .route("/catalog/units", get(list_units))
        .route(
            "/catalog/upload-image",
            // The one body larger than a JSON request: an image of up to 10 MB, in multipart.
            post(upload_image).layer(DefaultBodyLimit::max(
                crate::images::MAX_UPLOAD_BYTES + 256 * 1024,
            )),
        )
        .route("/catalog/images/{file}", get(catalog_image))
        .route(
            "/catalog/{id}",
            axum::routing::patch(update_catalog_item).delete(delete_catalog_item),
        );
    // The payer's helpers check the caller's organization (a live one of a live deployment
    // is refused); the clock moves Kassa's own, so only a sandbox deployment has one.
    router = router
        .route("/sandbox/invoices/{id}/pay", post(sandbox_pay))
        .route("/sandbox/invoices/{id}/decline", post(sandbox_decline))
        .route("/sandbox/invoices/{id}/expire", post(sandbox_expire));
    let clock = Router::new()
        .route("/sandbox/clock", get(sandbox_clock))
        .route("/sandbox/clock/advance", post(sandbox_clock_advance))
        .with_state(SandboxClock::new(sandbox));
    router.with_state(gateway).merge(clock)
}

/// The operations of [`routes`] for Kassa's OpenAPI document (relative to `/api/v1`; see
/// [`crate::api::openapi`]), in the order of the routes.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    invoices::create_invoice,
    invoices::list_invoices,
    stats::invoice_stats,
    invoices::check_statuses,
    invoices::get_invoice,
    invoices::cancel_invoice,
    refunds::refund_invoice,
    refunds::invoice_refunds,
    refunds::list_refunds,
    refunds::get_refund,
    subscriptions::create_subscription,
    subscriptions::list_subscriptions,
    subscriptions::get_subscription,
    subscriptions::update_subscription,
    subscriptions::pause_subscription,
    subscriptions::resume_subscription,
    subscriptions::cancel_subscription,
    subscriptions::subscription_invoices,
    catalog::list_catalog,
    catalog::create_catalog_items,
    catalog::list_units,
    catalog::upload_image,
    catalog::catalog_image,
    catalog::update_catalog_item,
    catalog::delete_catalog_item,
    sandbox::sandbox_pay,
    sandbox::sandbox_decline,
    sandbox::sandbox_expire,
    sandbox::sandbox_clock,
    sandbox::sandbox_clock_advance,
))]
pub struct ApiDoc;
