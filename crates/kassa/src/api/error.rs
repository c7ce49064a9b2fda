//! The HTTP layer's one error type, [`ApiError`], and its mapping to each surface's error body.
//!
//! Every error a handler, extractor or middleware answers is an [`ApiError`]: an
//! [`ErrorKind`] (what went wrong, with a stable machine code where the surface has one) plus
//! the [`ErrorFormat`] of the surface it is answered on. The two bodies:
//!
//! | kind | ApiPay | xPayment |
//! | --- | --- | --- |
//! | validation | 422 `{"message":"Validation failed","errors":{"field":["…"]}}` | 400 `{"error":"VALIDATION_ERROR","message":"…"}` |
//! | unauthorized | 401 `{"message":"Invalid API key"}` | 401 `{"error":"UNAUTHORIZED","message":"…"}` |
//! | not found | 404 `{"message":"…"}` | 404 `{"error":"<code>","message":"…"}` |
//! | missing scope | 403 `{"error":"forbidden","message":"This API key lacks the scope invoices:write."}` | 403 `{"error":"FORBIDDEN","message":"…"}` |
//! | coded | status, `{"error":"<slug>","message":"…"}` | status, `{"error":"<CODE>","message":"…"}` |
//! | too many requests | 429 `{"message":"Too many requests. Please retry after N seconds.","retry_after":N}` | 429 `{"error":"RATE_LIMITED","message":"…"}` |
//! | payload too large | 413 `{"error":"payload_too_large","message":"…"}` | 413 `{"error":"VALIDATION_ERROR","message":"…"}` |
//! | method not allowed | 405 `{"message":"Method not allowed."}` | 405 `{"error":"METHOD_NOT_ALLOWED","message":"…"}` |
//! | internal | 500 `{"message":"Internal server error."}` | 500 `{"error":"INTERNAL_ERROR","message":"internal server error"}` |
//!
//! 429 answers also carry `Retry-After`. An internal error is logged (with its cause chain)
//! where it is made and never echoed: the body is always the generic one above.
//!
//! xPayment's spec documents 400 and 422 for `POST /payments` with the same body; its example
//! (`VALIDATION_ERROR`, "payer_phone and amount are required") is a malformed request, so
//! validation answers 400 there.

use std::borrow::Cow;
use std::fmt;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use crate::store::StoreError;

/// Which API's error body to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorFormat {
    /// ApiPay.kz-compatible (`/api/v1/...`, Laravel-style bodies).
    ApiPay,
    /// xPayment.kz-compatible (`{"error": CODE, "message": ...}`).
    XPayment,
}

/// One invalid input: the field as the client named it (`amount`, `cart_items[0].Price`,
/// `body`, `idempotency_key`) and a sentence a developer can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// What went wrong; mapped to a status and body per [`ErrorFormat`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// Input that does not satisfy the API's rules; never empty.
    Validation(Vec<FieldError>),
    /// No, or an unknown or revoked, API key.
    Unauthorized { message: Cow<'static, str> },
    /// The resource does not exist for this caller. `code` is xPayment's (e.g.
    /// `PAYMENT_NOT_FOUND`); ApiPay has none and answers only the message.
    NotFound {
        code: Cow<'static, str>,
        message: Cow<'static, str>,
    },
    /// Any other refusal with a stable machine code: `kaspi_session_invalid` (503),
    /// `invoice_not_cancellable` (400), `IDEMPOTENCY_CONFLICT` (409), …
    Coded {
        status: StatusCode,
        code: Cow<'static, str>,
        message: Cow<'static, str>,
    },
    /// The caller's rate limit is spent; it may retry after this many whole seconds (≥ 1).
    TooManyRequests { retry_after_secs: u64 },
    /// The request body is longer than `limit_bytes`.
    PayloadTooLarge { limit_bytes: usize },
    /// The path exists, the method does not.
    MethodNotAllowed,
    /// A bug or an outage on our side; the cause was logged when the error was made.
    Internal,
}

/// An error answer of the HTTP API. Build one with the constructors below; it renders itself
/// through [`IntoResponse`], so handlers return `Result<_, ApiError>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    format: ErrorFormat,
    kind: ErrorKind,
}

/// ApiPay's message for any validation failure (its `errors.md`).
const APIPAY_VALIDATION_MESSAGE: &str = "Validation failed";

impl ApiError {
    /// An error of `kind`, answered in `format`.
    pub fn new(format: ErrorFormat, kind: ErrorKind) -> ApiError {
        ApiError { format, kind }
    }

    /// One invalid field: `ApiError::validation(f, "amount", "The amount must be between
    /// 0.01 and 99999999.99.")`. Use [`FieldErrors`] to report several at once.
    pub fn validation(
        format: ErrorFormat,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError::new(
            format,
            ErrorKind::Validation(vec![FieldError {
                field: field.into(),
                message: message.into(),
            }]),
        )
    }

    /// Adds another invalid field to a validation error (other kinds are returned unchanged).
    #[must_use]
    pub fn and_field(mut self, field: impl Into<String>, message: impl Into<String>) -> ApiError {
        if let ErrorKind::Validation(errors) = &mut self.kind {
            errors.push(FieldError {
                field: field.into(),
                message: message.into(),
            });
        }
        self
    }

    /// A 401 with `message` (ApiPay's documented one is "Invalid API key").
    pub fn unauthorized(format: ErrorFormat, message: impl Into<Cow<'static, str>>) -> ApiError {
        ApiError::new(
            format,
            ErrorKind::Unauthorized {
                message: message.into(),
            },
        )
    }

    /// A 404: `code` is xPayment's machine code (ignored by ApiPay), `message` says what is
    /// missing ("Invoice not found").
    pub fn not_found(
        format: ErrorFormat,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<Cow<'static, str>>,
    ) -> ApiError {
        ApiError::new(
            format,
            ErrorKind::NotFound {
                code: code.into(),
                message: message.into(),
            },
        )
    }

    /// A 404 for a URL that names nothing (route fallback, a non-numeric id).
    pub fn route_not_found(format: ErrorFormat) -> ApiError {
        ApiError::not_found(format, "NOT_FOUND", "Not found.")
    }

    /// Any status with a stable machine code:
    /// `ApiError::coded(f, StatusCode::SERVICE_UNAVAILABLE, "kaspi_session_invalid", msg)`.
    /// `status` should be a 4xx or 5xx; use [`ApiError::internal`] for our own failures.
    pub fn coded(
        format: ErrorFormat,
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<Cow<'static, str>>,
    ) -> ApiError {
        ApiError::new(
            format,
            ErrorKind::Coded {
                status,
                code: code.into(),
                message: message.into(),
            },
        )
    }

    /// A 403: the API key does not hold `scope` (see `api::scopes`).
    pub fn missing_scope(format: ErrorFormat, scope: crate::domain::Scope) -> ApiError {
        let code = match format {
            ErrorFormat::ApiPay => "forbidden",
            ErrorFormat::XPayment => "FORBIDDEN",
        };
        ApiError::coded(
            format,
            StatusCode::FORBIDDEN,
            code,
            format!("This API key lacks the scope {scope}."),
        )
    }

    /// A 429; `retry_after_secs` is raised to at least 1.
    pub fn too_many_requests(format: ErrorFormat, retry_after_secs: u64) -> ApiError {
        ApiError::new(
            format,
            ErrorKind::TooManyRequests {
                retry_after_secs: retry_after_secs.max(1),
            },
        )
    }

    /// A 413 for a body over `limit_bytes`.
    pub fn payload_too_large(format: ErrorFormat, limit_bytes: usize) -> ApiError {
        ApiError::new(format, ErrorKind::PayloadTooLarge { limit_bytes })
    }

    /// A 405.
    pub fn method_not_allowed(format: ErrorFormat) -> ApiError {
        ApiError::new(format, ErrorKind::MethodNotAllowed)
    }

    /// A 500: logs `err` with its cause chain now (`tracing::error!`); the answer is generic.
    /// Takes anything `anyhow` takes: a `StoreError`, a `kaspi::Error`, `anyhow!("…")`.
    pub fn internal(format: ErrorFormat, err: impl Into<anyhow::Error>) -> ApiError {
        let err: anyhow::Error = err.into();
        tracing::error!(error = format!("{err:#}"), "internal error answered as 500");
        ApiError::new(format, ErrorKind::Internal)
    }

    /// A store error as an answer: `NotFound` → 404, `Conflict` → 409 `conflict`, a database
    /// failure → 500 (logged). Handlers that know what was not found should match
    /// `StoreError::NotFound` themselves and say so.
    pub fn store(format: ErrorFormat, err: StoreError) -> ApiError {
        match err {
            StoreError::NotFound => ApiError::route_not_found(format),
            StoreError::Conflict(what) => {
                tracing::info!(conflict = %what, "store conflict answered as 409");
                let code = match format {
                    ErrorFormat::ApiPay => "conflict",
                    ErrorFormat::XPayment => "CONFLICT",
                };
                ApiError::coded(
                    format,
                    StatusCode::CONFLICT,
                    code,
                    "The request conflicts with existing data.",
                )
            }
            err @ StoreError::Db(_) => ApiError::internal(format, err),
        }
    }

    pub fn format(&self) -> ErrorFormat {
        self.format
    }

    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match (&self.kind, self.format) {
            (ErrorKind::Validation(_), ErrorFormat::ApiPay) => StatusCode::UNPROCESSABLE_ENTITY,
            (ErrorKind::Validation(_), ErrorFormat::XPayment) => StatusCode::BAD_REQUEST,
            (ErrorKind::Unauthorized { .. }, _) => StatusCode::UNAUTHORIZED,
            (ErrorKind::NotFound { .. }, _) => StatusCode::NOT_FOUND,
            (ErrorKind::Coded { status, .. }, _) => *status,
            (ErrorKind::TooManyRequests { .. }, _) => StatusCode::TOO_MANY_REQUESTS,
            (ErrorKind::PayloadTooLarge { .. }, _) => StatusCode::PAYLOAD_TOO_LARGE,
            (ErrorKind::MethodNotAllowed, _) => StatusCode::METHOD_NOT_ALLOWED,
            (ErrorKind::Internal, _) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The JSON body this error answers with.
    pub fn body(&self) -> Value {
        match self.format {
            ErrorFormat::ApiPay => self.apipay_body(),
            ErrorFormat::XPayment => self.xpayment_body(),
        }
    }

    fn apipay_body(&self) -> Value {
        match &self.kind {
            ErrorKind::Validation(errors) => {
                let mut fields = Map::new();
                for e in errors {
                    let list = fields
                        .entry(e.field.clone())
                        .or_insert_with(|| Value::Array(Vec::new()));
                    if let Value::Array(list) = list {
                        list.push(Value::String(e.message.clone()));
                    }
                }
                json!({"message": APIPAY_VALIDATION_MESSAGE, "errors": fields})
            }
            ErrorKind::Unauthorized { message } | ErrorKind::NotFound { message, .. } => {
                json!({"message": message})
            }
            ErrorKind::Coded { code, message, .. } => json!({"error": code, "message": message}),
            ErrorKind::TooManyRequests { retry_after_secs } => json!({
                "message": format!(
                    "Too many requests. Please retry after {retry_after_secs} seconds."
                ),
                "retry_after": retry_after_secs,
            }),
            ErrorKind::PayloadTooLarge { limit_bytes } => json!({
                "error": "payload_too_large",
                "message": too_large_message(*limit_bytes),
            }),
            ErrorKind::MethodNotAllowed => json!({"message": "Method not allowed."}),
            ErrorKind::Internal => json!({"message": "Internal server error."}),
        }
    }

    fn xpayment_body(&self) -> Value {
        let (code, message): (&str, Cow<'_, str>) = match &self.kind {
            ErrorKind::Validation(errors) => ("VALIDATION_ERROR", xpayment_validation(errors)),
            ErrorKind::Unauthorized { message } => ("UNAUTHORIZED", message.as_ref().into()),
            ErrorKind::NotFound { code, message } | ErrorKind::Coded { code, message, .. } => {
                (code.as_ref(), message.as_ref().into())
            }
            ErrorKind::TooManyRequests { retry_after_secs } => (
                "RATE_LIMITED",
                format!("rate limit exceeded, retry after {retry_after_secs} seconds").into(),
            ),
            ErrorKind::PayloadTooLarge { limit_bytes } => {
                ("VALIDATION_ERROR", too_large_message(*limit_bytes).into())
            }
            ErrorKind::MethodNotAllowed => ("METHOD_NOT_ALLOWED", "method not allowed".into()),
            ErrorKind::Internal => ("INTERNAL_ERROR", "internal server error".into()),
        };
        json!({"error": code, "message": message})
    }
}

fn too_large_message(limit_bytes: usize) -> String {
    format!("The request body must not be larger than {limit_bytes} bytes.")
}

/// xPayment has one message string: each error as `field: message` (the field is left out
/// when the message already names it), joined with `; `.
fn xpayment_validation(errors: &[FieldError]) -> Cow<'static, str> {
    let parts: Vec<String> = errors
        .iter()
        .map(|e| {
            if e.message.contains(&e.field) {
                e.message.clone()
            } else {
                format!("{}: {}", e.field, e.message)
            }
        })
        .collect();
    parts.join("; ").into()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = (status, Json(self.body())).into_response();
        // The request's body may be left unread: the connection cannot carry another one.
        if status == StatusCode::PAYLOAD_TOO_LARGE || status == StatusCode::REQUEST_TIMEOUT {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let ErrorKind::TooManyRequests { retry_after_secs } = self.kind {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        response
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status().as_u16(), self.body())
    }
}

impl std::error::Error for ApiError {}

/// Collects several invalid fields so one answer names them all (as ApiPay does):
///
/// ```ignore
/// let mut errors = FieldErrors::new();
/// if body.phone_number.is_none() { errors.add("phone_number", "The phone number field is required."); }
/// if too_long { errors.add("description", "The description may not be greater than 500 characters."); }
/// errors.into_result(ErrorFormat::ApiPay)?;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldErrors(Vec<FieldError>);

impl FieldErrors {
    pub fn new() -> FieldErrors {
        FieldErrors::default()
    }

    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    /// Adds the field error of a validation [`ApiError`] (e.g. from a query helper) and
    /// returns `None`; any other error is returned as it is.
    pub fn take<T>(&mut self, result: Result<T, ApiError>) -> Result<Option<T>, ApiError> {
        match result {
            Ok(value) => Ok(Some(value)),
            Err(ApiError {
                kind: ErrorKind::Validation(errors),
                ..
            }) => {
                self.0.extend(errors);
                Ok(None)
            }
            Err(other) => Err(other),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(())` when nothing was added, else one validation error naming every field.
    pub fn into_result(self, format: ErrorFormat) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::new(format, ErrorKind::Validation(self.0)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn answer(err: ApiError) -> (StatusCode, axum::http::HeaderMap, Value) {
        let response = err.into_response();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        (
            status,
            headers,
            serde_json::from_slice(&bytes).expect("json body"),
        )
    }

    #[tokio::test]
    async fn validation_bodies() {
        let err = ApiError::validation(
            ErrorFormat::ApiPay,
            "amount",
            "The amount field must be a number.",
        )
        .and_field("amount", "The amount must be between 0.01 and 99999999.99.")
        .and_field("phone_number", "The phone number field is required.");
        let (status, headers, body) = answer(err.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        assert_eq!(
            body,
            json!({"message": "Validation failed", "errors": {
                "amount": ["The amount field must be a number.", "The amount must be between 0.01 and 99999999.99."],
                "phone_number": ["The phone number field is required."],
            }})
        );

        let x = ApiError::new(ErrorFormat::XPayment, err.kind().clone());
        let (status, _, body) = answer(x).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body,
            json!({"error": "VALIDATION_ERROR", "message":
                "The amount field must be a number.; The amount must be between 0.01 and 99999999.99.; phone_number: The phone number field is required."})
        );
        let one = ApiError::validation(ErrorFormat::XPayment, "payer_phone", "is required");
        assert_eq!(
            one.body(),
            json!({"error": "VALIDATION_ERROR", "message": "payer_phone: is required"})
        );
    }

    #[tokio::test]
    async fn auth_and_not_found_bodies() {
        let (status, _, body) = answer(ApiError::unauthorized(
            ErrorFormat::ApiPay,
            "Invalid API key",
        ))
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body, json!({"message": "Invalid API key"}));
        let (status, _, body) = answer(ApiError::unauthorized(
            ErrorFormat::XPayment,
            "invalid API key",
        ))
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            body,
            json!({"error": "UNAUTHORIZED", "message": "invalid API key"})
        );

        let apipay = ApiError::not_found(
            ErrorFormat::ApiPay,
            "INVOICE_NOT_FOUND",
            "Invoice not found",
        );
        assert_eq!(apipay.status(), StatusCode::NOT_FOUND);
        assert_eq!(apipay.body(), json!({"message": "Invoice not found"}));
        let x = ApiError::not_found(
            ErrorFormat::XPayment,
            "PAYMENT_NOT_FOUND",
            "payment not found",
        );
        assert_eq!(
            x.body(),
            json!({"error": "PAYMENT_NOT_FOUND", "message": "payment not found"})
        );
        assert_eq!(
            ApiError::route_not_found(ErrorFormat::ApiPay).body(),
            json!({"message": "Not found."})
        );
    }

    #[tokio::test]
    async fn coded_rate_limit_size_and_method_bodies() {
        let err = ApiError::coded(
            ErrorFormat::ApiPay,
            StatusCode::SERVICE_UNAVAILABLE,
            "kaspi_session_invalid",
            "Kaspi session expired",
        );
        let (status, _, body) = answer(err).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            body,
            json!({"error": "kaspi_session_invalid", "message": "Kaspi session expired"})
        );

        let (status, headers, body) =
            answer(ApiError::too_many_requests(ErrorFormat::ApiPay, 42)).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(headers[header::RETRY_AFTER], "42");
        assert_eq!(
            body,
            json!({"message": "Too many requests. Please retry after 42 seconds.", "retry_after": 42})
        );
        let (_, headers, body) =
            answer(ApiError::too_many_requests(ErrorFormat::XPayment, 0)).await;
        assert_eq!(headers[header::RETRY_AFTER], "1", "at least one second");
        assert_eq!(body["error"], "RATE_LIMITED");

        let (status, _, body) =
            answer(ApiError::payload_too_large(ErrorFormat::ApiPay, 65536)).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(body["error"], "payload_too_large");
        assert_eq!(
            ApiError::payload_too_large(ErrorFormat::XPayment, 10).body()["error"],
            "VALIDATION_ERROR"
        );

        let (status, _, body) = answer(ApiError::method_not_allowed(ErrorFormat::ApiPay)).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(body, json!({"message": "Method not allowed."}));
    }

    #[tokio::test]
    async fn internal_errors_do_not_echo_their_cause() {
        let cause = anyhow::anyhow!("password=hunter2 at /var/secret").context("store failed");
        let (status, _, body) = answer(ApiError::internal(ErrorFormat::ApiPay, cause)).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body, json!({"message": "Internal server error."}));
        let body = ApiError::internal(ErrorFormat::XPayment, anyhow::anyhow!("secret")).body();
        assert_eq!(
            body,
            json!({"error": "INTERNAL_ERROR", "message": "internal server error"})
        );
    }

    #[test]
    fn store_errors_map_to_answers() {
        let f = ErrorFormat::XPayment;
        assert_eq!(
            ApiError::store(f, StoreError::NotFound).status(),
            StatusCode::NOT_FOUND
        );
        let conflict = ApiError::store(f, StoreError::Conflict("slug taken".into()));
        assert_eq!(conflict.status(), StatusCode::CONFLICT);
        assert_eq!(conflict.body()["error"], "CONFLICT");
        assert!(!conflict.to_string().contains("slug taken"));
    }

    #[test]
    fn field_errors_collect_and_take() {
        let f = ErrorFormat::ApiPay;
        let mut errors = FieldErrors::new();
        assert!(errors.clone().into_result(f).is_ok());
        errors.add("amount", "The amount field is required.");
        let taken = errors
            .take::<i64>(Err(ApiError::validation(
                f,
                "page",
                "The page field must be an integer.",
            )))
            .expect("a validation error is collected");
        assert_eq!(taken, None);
        assert_eq!(errors.take(Ok(5)).expect("ok"), Some(5));
        assert!(errors
            .take::<i64>(Err(ApiError::route_not_found(f)))
            .is_err());
        let err = errors.into_result(f).expect_err("two errors");
        assert_eq!(
            err.body()["errors"],
            json!({"amount": ["The amount field is required."], "page": ["The page field must be an integer."]})
        );
    }
}
