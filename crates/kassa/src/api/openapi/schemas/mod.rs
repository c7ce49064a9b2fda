//! The shapes of the JSON Kassa reads and answers, for the OpenAPI document only. The handlers
//! build their answers with `json!` (each surface's `views`), so these types are never made or
//! read: each one describes, field by field, what a view writes.
//!
//! Conventions of the derives: a field that is always there but may be `null` is an `Option`
//! with `required = true`; a field that is left out when it has no value is a plain type with
//! `#[serde(default)]` (not required, never `null`).
#![allow(dead_code)] // Descriptions only: no value of these types is ever made.

use std::collections::BTreeMap;

use utoipa::ToSchema;

mod catalog;
mod invoices;
mod refunds;
mod sandbox;
mod status;
mod subscriptions;
mod webhooks;
mod xpayment;

pub use catalog::*;
pub use invoices::*;
pub use refunds::*;
pub use sandbox::*;
pub use status::*;
pub use subscriptions::*;
pub use webhooks::*;
pub use xpayment::*;

// ---------------------------------------------------------------------------------------------
// Error bodies.

/// ApiPay's validation error (422): a general message and, for each field, what is wrong with
/// it. Query parameters, JSON body fields (`cart_items.0.price`), the `Idempotency-Key` header
/// (`idempotency_key`) and a NUL character (U+0000) anywhere are all reported this way.
#[derive(ToSchema)]
#[schema(example = json!({
    "message": "Validation failed",
    "errors": {"phone_number": ["Phone number must be in format 8XXXXXXXXXX."]}
}))]
pub struct ApiPayValidationError {
    /// Always `Validation failed`.
    pub message: String,
    /// Field name → its messages.
    pub errors: BTreeMap<String, Vec<String>>,
}

/// ApiPay's plain error: 401 (`Invalid API key`), 404 (`Invoice not found.`, `Not found.`),
/// 405 and 500 (`Internal server error.`).
#[derive(ToSchema)]
#[schema(example = json!({"message": "Invoice not found."}))]
pub struct ApiPayMessage {
    pub message: String,
}

/// ApiPay's coded error: a stable machine code and a sentence, e.g. 400
/// `invoice_not_cancellable`, 409 `idempotency_key_in_use`, 413 `payload_too_large`, 502
/// `kaspi_unavailable`, 503 `kaspi_session_invalid`.
#[derive(ToSchema)]
#[schema(example = json!({
    "error": "invoice_not_cancellable",
    "message": "Only pending invoices can be cancelled; this invoice is paid."
}))]
pub struct ApiPayCodedError {
    pub error: String,
    pub message: String,
}

/// ApiPay's 429: the API key's requests per minute are spent (the `Retry-After` header says
/// the same).
#[derive(ToSchema)]
#[schema(example = json!({
    "message": "Too many requests. Please retry after 12 seconds.",
    "retry_after": 12
}))]
pub struct ApiPayRateLimited {
    pub message: String,
    /// Whole seconds to wait, at least 1.
    #[schema(minimum = 1)]
    pub retry_after: u64,
}

/// xPayment's error, for every status: a machine code (`VALIDATION_ERROR`, `UNAUTHORIZED`,
/// `PAYMENT_NOT_FOUND`, `PAYMENT_NOT_CANCELABLE`, `IDEMPOTENCY_CONFLICT`, `RATE_LIMITED`,
/// `KASPI_ERROR`, `KASPI_SESSION_INVALID`, `INTERNAL_ERROR`, …) and a message. A validation
/// error names each field in the message (`payer_phone: must be a string; amount is
/// required`).
#[derive(ToSchema)]
#[schema(example = json!({"error": "PAYMENT_NOT_FOUND", "message": "Payment not found"}))]
pub struct XPaymentError {
    pub error: String,
    pub message: String,
}

// ---------------------------------------------------------------------------------------------
// Other bodies.

/// Bytes of a file (an image).
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct Binary(Vec<u8>);
