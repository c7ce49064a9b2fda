//! Gateway errors as ApiPay answers them: the status, code and message of each.

use axum::http::StatusCode;

use super::F;
use crate::api::error::ApiError;
use crate::gateway::GatewayError;
use crate::store::InvoiceStatus;

/// A gateway error as ApiPay answers it.
pub fn gateway_error(e: GatewayError) -> ApiError {
    use GatewayError as G;
    let coded =
        |status, code: &'static str, message: String| ApiError::coded(F, status, code, message);
    match e {
        G::NotFound => ApiError::not_found(F, "INVOICE_NOT_FOUND", "Invoice not found."),
        G::NotCancellable { status } => coded(
            StatusCode::BAD_REQUEST,
            "invoice_not_cancellable",
            format!(
                "Only pending invoices can be cancelled; this invoice is {}.",
                match status {
                    InvoiceStatus::Failed => "cancelled",
                    other => other.as_str(),
                }
            ),
        ),
        e @ G::NotAtKaspiYet => coded(StatusCode::BAD_REQUEST, "invoice_not_ready", e.to_string()),
        e @ G::NoTerminal => coded(
            StatusCode::SERVICE_UNAVAILABLE,
            "kaspi_not_connected",
            e.to_string(),
        ),
        G::SessionInvalid(reason) => coded(
            StatusCode::SERVICE_UNAVAILABLE,
            "kaspi_session_invalid",
            format!("The Kaspi cashier session is no longer valid ({reason}); the cashier must log in again (kassa terminal connect)."),
        ),
        e @ G::AppBuildOutdated { .. } => coded(
            StatusCode::SERVICE_UNAVAILABLE,
            "kaspi_app_build_outdated",
            capitalized(&e.to_string()),
        ),
        G::KaspiClientNotFound => ApiError::validation(
            F,
            "phone_number",
            "No Kaspi client has this phone number.",
        ),
        G::KaspiRefused(message) | G::LoginFailed(message) => coded(
            StatusCode::BAD_GATEWAY,
            "kaspi_error",
            format!("Kaspi refused the request: {message}"),
        ),
        G::KaspiUnavailable(_) | G::OutcomeUnknown(_) => coded(
            StatusCode::BAD_GATEWAY,
            "kaspi_unavailable",
            "Kaspi did not answer; try again shortly.".into(),
        ),
        e @ G::NotRefundable(_) => coded(
            StatusCode::BAD_REQUEST,
            "invoice_not_refundable",
            capitalized(&e.to_string()),
        ),
        G::Sandbox(message) => coded(StatusCode::BAD_REQUEST, "sandbox_action_refused", message),
        e @ G::Internal(_) => ApiError::internal(F, e),
        G::Store(e) => ApiError::store(F, e),
    }
}

/// `text` with its first letter upper-case, as a sentence.
pub(super) fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => format!("{}{}.", first.to_uppercase(), chars.as_str()),
        None => String::new(),
    }
}
