//! Gateway and store errors as xPayment answers them: the status, code and message of each.

use axum::http::StatusCode;

use super::F;
use crate::api::error::ApiError;
use crate::gateway::GatewayError;
use crate::store::RefundRefusal;

/// A gateway error as xPayment answers it.
pub fn gateway_error(e: GatewayError) -> ApiError {
    use GatewayError as G;
    let coded =
        |status, code: &'static str, message: String| ApiError::coded(F, status, code, message);
    match e {
        G::NotFound => ApiError::not_found(F, "PAYMENT_NOT_FOUND", "Payment not found"),
        e @ G::NotCancellable { .. } => coded(StatusCode::CONFLICT, "PAYMENT_NOT_CANCELABLE", e.to_string()),
        e @ G::NotAtKaspiYet => coded(StatusCode::CONFLICT, "PAYMENT_NOT_CANCELABLE", e.to_string()),
        G::NotRefundable(RefundRefusal::TooMuch { left }) => ApiError::validation(
            F,
            "amount",
            format!(
                "the refund is more than what is left to refund ({})",
                left.to_decimal_string()
            ),
        ),
        G::NotRefundable(RefundRefusal::BadAmount) => {
            ApiError::validation(F, "amount", "the refund amount must be positive")
        }
        e @ G::NotRefundable(_) => coded(StatusCode::CONFLICT, "PAYMENT_NOT_REFUNDABLE", e.to_string()),
        G::KaspiClientNotFound => coded(
            StatusCode::UNPROCESSABLE_ENTITY,
            "KASPI_CLIENT_NOT_FOUND",
            "No Kaspi client has this phone number".into(),
        ),
        e @ (G::NoTerminal | G::SessionInvalid(_)) => coded(
            StatusCode::SERVICE_UNAVAILABLE,
            "KASPI_SESSION_INVALID",
            match e {
                G::SessionInvalid(reason) => format!("The Kaspi cashier session is no longer valid ({reason}); the cashier must log in again (kassa terminal connect)"),
                other => other.to_string(),
            },
        ),
        e @ G::AppBuildOutdated { .. } => coded(
            StatusCode::SERVICE_UNAVAILABLE,
            "KASPI_APP_BUILD_OUTDATED",
            e.to_string(),
        ),
        G::KaspiRefused(message) | G::LoginFailed(message) => coded(
            StatusCode::BAD_GATEWAY,
            "KASPI_ERROR",
            format!("Kaspi refused the request: {message}"),
        ),
        G::KaspiUnavailable(_) | G::OutcomeUnknown(_) => coded(
            StatusCode::BAD_GATEWAY,
            "KASPI_ERROR",
            "Kaspi did not answer; try again shortly".into(),
        ),
        G::Sandbox(message) => coded(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message),
        e @ G::Internal(_) => ApiError::internal(F, e),
        G::Store(e) => ApiError::store(F, e),
    }
}

pub(super) fn store_error(e: crate::store::StoreError) -> ApiError {
    ApiError::store(F, e)
}
