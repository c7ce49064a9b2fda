//! The answer envelope of qrpay and mtoken, and the one error type that maps onto it.
//!
//! Success: `{"StatusCode":0,"Message":"…","Data":{…}}`. Errors carry a non-zero
//! `StatusCode`, `Message`, a stable `Code`, `ErrorDisplayType` and `CodeSubsystem`; the
//! HTTP status is 200 for business refusals (as Kaspi does) and 4xx/5xx for protocol and
//! session failures. Every code the simulator uses is a constant of [`codes`].

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

/// The stable `Code` values of error envelopes.
pub mod codes {
    pub const INVALID_REQUEST: &str = "InvalidRequest";
    pub const NOT_FOUND: &str = "NotFound";
    pub const INVALID_SIGN: &str = "InvalidSign";
    pub const INVALID_TOKEN_MAC: &str = "InvalidTokenMac";
    pub const SESSION_NOT_FOUND: &str = "SessionNotFound";
    pub const SESSION_EXPIRED: &str = "SessionExpired";
    pub const SESSION_REVOKED: &str = "SessionRevoked";
    pub const SESSION_EVICTED: &str = "SessionEvicted";
    pub const OLD_VERSION_TO_UPDATE: &str = super::OLD_VERSION_TO_UPDATE;
    pub const INVALID_PROFILE: &str = "InvalidProfile";
    pub const TOO_MANY_REQUESTS: &str = "TooManyRequests";
    pub const SERVICE_UNAVAILABLE: &str = "ServiceUnavailable";
    pub const TEMPORARY_ERROR: &str = "TemporaryError";
    pub const CLIENT_NOT_FOUND: &str = "ClientNotFound";
    pub const INVALID_AMOUNT: &str = "InvalidAmount";
    pub const OPERATION_NOT_FOUND: &str = "OperationNotFound";
    pub const OPERATION_ALREADY_PAID: &str = "OperationAlreadyPaid";
    pub const OPERATION_NOT_CANCELABLE: &str = "OperationNotCancelable";
    pub const OPERATION_NOT_PAID: &str = "OperationNotPaid";
    pub const OPERATION_NOT_RETURNABLE: &str = "OperationNotReturnable";
    pub const RETURN_AMOUNT_EXCEEDED: &str = "ReturnAmountExceeded";
    pub const RETURN_PERIOD_EXPIRED: &str = "ReturnPeriodExpired";
}

/// `StatusCode` of business refusals and malformed requests.
pub const STATUS_ERROR: i32 = -1;
/// `StatusCode` of a refused signature.
pub const STATUS_INVALID_SIGN: i32 = -2;
/// `StatusCode` of a profile id that is not the session's.
pub const STATUS_INVALID_PROFILE: i32 = -3;
/// `StatusCode` of every session failure (unknown, expired, revoked, bad MAC).
pub const STATUS_SESSION: i32 = -10;
/// `StatusCode` of a session ended by a login of the same phone on another device.
pub const STATUS_SESSION_EVICTED: i32 = -101_001;
/// The alarm code of an app build below the minimum.
pub const OLD_VERSION_TO_UPDATE: &str = "OldVersionToUpdate";

/// A refusal, as qrpay and mtoken answer it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KaspiError {
    pub http: StatusCode,
    pub status_code: i32,
    pub code: &'static str,
    pub message: String,
}

impl KaspiError {
    pub(crate) fn new(
        http: StatusCode,
        status_code: i32,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            http,
            status_code,
            code,
            message: message.into(),
        }
    }

    /// A malformed request (HTTP 400).
    pub(crate) fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            STATUS_ERROR,
            codes::INVALID_REQUEST,
            message,
        )
    }

    /// A business refusal: HTTP 200 with a non-zero `StatusCode`.
    pub(crate) fn refused(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::OK, STATUS_ERROR, code, message)
    }

    /// A signature that does not verify (HTTP 400).
    pub(crate) fn invalid_sign(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            STATUS_INVALID_SIGN,
            codes::INVALID_SIGN,
            message,
        )
    }

    /// A session failure (HTTP 401): the client must refresh or log in again.
    pub(crate) fn session(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, STATUS_SESSION, code, message)
    }

    /// The session was ended by a login on another device: HTTP 200, `StatusCode` -101001.
    pub(crate) fn evicted() -> Self {
        Self::new(
            StatusCode::OK,
            STATUS_SESSION_EVICTED,
            codes::SESSION_EVICTED,
            "Сессия завершена: выполнен вход с другого устройства",
        )
    }

    /// The app build is below the minimum: HTTP 200, `StatusCode` -1 and the alarm.
    pub(crate) fn old_version() -> Self {
        Self::new(
            StatusCode::OK,
            STATUS_ERROR,
            codes::OLD_VERSION_TO_UPDATE,
            OLD_VERSION_LABEL,
        )
    }

    pub(crate) fn operation_not_found(id: u64) -> Self {
        Self::refused(
            codes::OPERATION_NOT_FOUND,
            format!("Операция {id} не найдена"),
        )
    }

    /// The envelope body of this error.
    pub(crate) fn body(&self) -> Value {
        if self.code == codes::OLD_VERSION_TO_UPDATE {
            return json!({
                "StatusCode": self.status_code,
                "Message": self.message,
                "Code": self.code,
                "ErrorDisplayType": "Alarm",
                "CodeSubsystem": "KaspiPaySimulator",
                "Data": Value::Null,
                "view": {"onOpenAlarm": old_version_alarm()},
            });
        }
        json!({
            "StatusCode": self.status_code,
            "Message": self.message,
            "Code": self.code,
            "ErrorDisplayType": "Alert",
            "CodeSubsystem": "KaspiPaySimulator",
            "Data": Value::Null,
        })
    }
}

/// The label Kaspi shows with `OldVersionToUpdate`.
pub const OLD_VERSION_LABEL: &str = "Обновите приложение, чтобы войти";

/// `view.onOpenAlarm` of an app build below the minimum.
pub(crate) fn old_version_alarm() -> Value {
    json!({"error": {
        "code": OLD_VERSION_TO_UPDATE,
        "label": OLD_VERSION_LABEL,
        "desc": "Эта версия приложения устарела. Установите новую версию Kaspi Pay",
    }})
}

impl IntoResponse for KaspiError {
    fn into_response(self) -> Response {
        // Why a request was refused, for client authors (never a secret: messages name the
        // header or the check, not values).
        tracing::debug!(
            http = self.http.as_u16(),
            status_code = self.status_code,
            code = self.code,
            reason = %self.message,
            "kaspi-sim refused a request"
        );
        (self.http, Json(self.body())).into_response()
    }
}

/// A successful envelope around `data`.
pub(crate) fn ok(data: Value) -> Response {
    Json(json!({ "StatusCode": 0, "Message": "Успешно", "Data": data })).into_response()
}
