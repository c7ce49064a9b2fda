//! Our own extractors, so malformed input answers in the surface's own error format (see
//! [`super::error`]) and never with axum's plain-text rejections.
//!
//! - [`ApiJson`] / [`XJson`]: a JSON body, at most [`MAX_BODY_BYTES`]. Malformed JSON names
//!   `body` with its line and column; a wrong type or a missing field names the field by its
//!   path (`amount`, `cart_items[0].Price`). An empty body reads as `{}`, so optional bodies
//!   (a full refund) and "every field missing" both work; any other body must be a JSON
//!   object. A missing `Content-Type` is accepted; any other than `application/json` (or
//!   `…+json`) is refused.
//! - [`QueryPairs`]: the query string as raw pairs, with PHP/Laravel conventions (`status[]`
//!   arrays, last value wins, empty means absent) and typed helpers that name the field.
//! - [`IdPath`]: a numeric path id; anything else is ApiPay's 404.
//! - [`not_found`] / [`method_not_allowed`]: router fallbacks in a surface's format.
//!
//! - JSON bodies with U+0000 are refused by [`parse_json`] (see [`super::nul`], which also has
//!   the middleware for query and path parameters).
//!
//! Which surface's format an extractor answers in is a type: `ApiJson`/`XJson`, and
//! `QueryPairs<ApiPay>` (the default) / `QueryPairs<XPayment>`.

use std::marker::PhantomData;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use http_body_util::BodyExt as _;
use serde::de::DeserializeOwned;

use super::error::{ApiError, ErrorFormat};

/// The largest request body accepted, in bytes; larger ones are answered 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A surface, as a type: which [`ErrorFormat`] a generic extractor answers in.
pub trait Surface: Send + Sync + 'static {
    const FORMAT: ErrorFormat;
}

/// The ApiPay-compatible surface.
#[derive(Debug, Clone, Copy)]
pub struct ApiPay;

/// The xPayment-compatible surface.
#[derive(Debug, Clone, Copy)]
pub struct XPayment;

impl Surface for ApiPay {
    const FORMAT: ErrorFormat = ErrorFormat::ApiPay;
}

impl Surface for XPayment {
    const FORMAT: ErrorFormat = ErrorFormat::XPayment;
}

/// A JSON request body of the ApiPay surface; errors answer in ApiPay's format.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

/// A JSON request body of the xPayment surface; errors answer in xPayment's format.
#[derive(Debug, Clone)]
pub struct XJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        json_body(ErrorFormat::ApiPay, req).await.map(ApiJson)
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for XJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        json_body(ErrorFormat::XPayment, req).await.map(XJson)
    }
}

/// Reads and parses a JSON body as the extractors do.
pub async fn json_body<T: DeserializeOwned>(
    format: ErrorFormat,
    req: Request,
) -> Result<T, ApiError> {
    let (parts, body) = req.into_parts();
    let bytes = read_body(format, &parts.headers, body).await?;
    parse_json(format, parts.headers.get(CONTENT_TYPE), &bytes)
}

/// The whole body, at most [`MAX_BODY_BYTES`] (else 413, checked against `Content-Length`
/// first so a large upload is refused before it is read). A 413 closes the connection; the
/// listener reads and discards what the client still sends for a moment (see
/// [`crate::server`]), so that a client sending the whole body can read the 413. A body that
/// stalls past the listener's body timeout answers 408.
pub async fn read_body(
    format: ErrorFormat,
    headers: &HeaderMap,
    body: Body,
) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_BODY_BYTES as u64) {
        return Err(ApiError::payload_too_large(format, MAX_BODY_BYTES));
    }
    let mut body = body;
    let mut read = Vec::with_capacity(declared.map_or(0, |len| len as usize));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| body_error(format, &err))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        if read.len() + data.len() > MAX_BODY_BYTES {
            return Err(ApiError::payload_too_large(format, MAX_BODY_BYTES));
        }
        read.extend_from_slice(&data);
    }
    Ok(Bytes::from(read))
}

/// The answer for a body that could not be read: 408 when it stalled past the body timeout.
fn body_error(format: ErrorFormat, err: &axum::Error) -> ApiError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if e.is::<tower_http::timeout::TimeoutError>() {
            return request_timeout(format);
        }
        source = e.source();
    }
    tracing::debug!(error = %err, "request body could not be read");
    ApiError::validation(format, "body", "The request body could not be read.")
}

/// 408 in `format`: the request (its body, or the whole of it) took longer than allowed.
pub fn request_timeout(format: ErrorFormat) -> ApiError {
    let code = match format {
        ErrorFormat::ApiPay => "request_timeout",
        ErrorFormat::XPayment => "REQUEST_TIMEOUT",
    };
    ApiError::coded(
        format,
        axum::http::StatusCode::REQUEST_TIMEOUT,
        code,
        "The request took too long to arrive or to answer; send it again.",
    )
}

/// Parses `bytes` as JSON into `T`, with the error rules of the module docs.
pub fn parse_json<T: DeserializeOwned>(
    format: ErrorFormat,
    content_type: Option<&HeaderValue>,
    bytes: &[u8],
) -> Result<T, ApiError> {
    let blank = bytes.iter().all(u8::is_ascii_whitespace);
    if !blank && !is_json_content_type(content_type) {
        return Err(ApiError::validation(
            format,
            "body",
            "The request body must be JSON (Content-Type: application/json).",
        ));
    }
    let bytes: &[u8] = if blank { b"{}" } else { bytes };
    // A NUL can only be written `\u0000` in JSON (raw control characters are a syntax error),
    // so only a body with that text is walked.
    if bytes.windows(5).any(|w| w == b"u0000") {
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) {
            if let Some(field) = super::nul::nul_field(&value, "") {
                return Err(super::nul::nul_error(format, &field));
            }
        }
    }
    // Both APIs take only objects; serde would also fill a struct from an array, and then
    // name fields `[0]`.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::validation(
            format,
            "body",
            "The request body must be a JSON object.",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        super::json_errors::json_error(format, &path, err.inner())
    })?;
    de.end()
        .map_err(|err| super::json_errors::json_error(format, ".", &err))?;
    Ok(value)
}

/// `application/json`, `application/…+json`, or none at all.
fn is_json_content_type(content_type: Option<&HeaderValue>) -> bool {
    let Some(value) = content_type else {
        return true;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let mime = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// The query string as decoded pairs, read the way PHP/Laravel (and so ApiPay's clients)
/// expect: `status[]=a&status[]=b` is a list, a repeated plain name keeps its last value, and
/// an empty value counts as absent. `S` decides the error format of the typed helpers.
///
/// Never rejects: a query that is not valid percent-encoding is decoded leniently.
#[derive(Debug, Clone)]
pub struct QueryPairs<S = ApiPay> {
    pairs: Vec<(String, String)>,
    surface: PhantomData<fn() -> S>,
}

impl<S: Surface, St: Send + Sync> FromRequestParts<St> for QueryPairs<S> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &St) -> Result<Self, ApiError> {
        Ok(QueryPairs::parse(parts.uri.query().unwrap_or_default()))
    }
}

impl<S: Surface> QueryPairs<S> {
    /// Decodes a raw query string (without the `?`).
    pub fn parse(query: &str) -> QueryPairs<S> {
        QueryPairs {
            pairs: form_urlencoded::parse(query.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
            surface: PhantomData,
        }
    }

    /// Every pair, in order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// The last non-empty value of the plain parameter `name` (not `name[]`).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// Every non-empty value given as `name[]`, `name[<n>]` or `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, v)| !v.is_empty() && is_list_key(k, name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// `name` as an integer in `min..=max`, or `None` when absent.
    pub fn int(&self, name: &str, min: i64, max: i64) -> Result<Option<i64>, ApiError> {
        let Some(text) = self.get(name) else {
            return Ok(None);
        };
        let digits = text.strip_prefix('-').unwrap_or(text);
        let number = if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            text.parse::<i64>().ok()
        } else {
            None
        };
        match number {
            None => Err(self.invalid(name, format!("The {name} field must be an integer."))),
            Some(n) if n < min || n > max => Err(self.invalid(
                name,
                format!("The {name} field must be between {min} and {max}."),
            )),
            Some(n) => Ok(Some(n)),
        }
    }

    /// `name` as text of at most `max_chars` characters, or `None` when absent.
    pub fn string(&self, name: &str, max_chars: usize) -> Result<Option<&str>, ApiError> {
        match self.get(name) {
            Some(text) if text.chars().count() > max_chars => Err(self.invalid(
                name,
                format!("The {name} field must not be greater than {max_chars} characters."),
            )),
            other => Ok(other),
        }
    }

    /// `name` when it is one of `allowed` (as the matching `allowed` entry), or `None` when
    /// absent.
    pub fn one_of(
        &self,
        name: &str,
        allowed: &[&'static str],
    ) -> Result<Option<&'static str>, ApiError> {
        let Some(text) = self.get(name) else {
            return Ok(None);
        };
        match allowed.iter().find(|a| **a == text) {
            Some(found) => Ok(Some(*found)),
            None => Err(self.invalid(
                name,
                format!(
                    "The selected {name} is invalid; expected one of: {}.",
                    allowed.join(", ")
                ),
            )),
        }
    }

    /// Every value of the list `name` (see [`QueryPairs::all`]), each one of `allowed`.
    pub fn all_of(
        &self,
        name: &str,
        allowed: &[&'static str],
    ) -> Result<Vec<&'static str>, ApiError> {
        self.all(name)
            .into_iter()
            .map(|text| {
                allowed
                    .iter()
                    .find(|a| **a == text)
                    .copied()
                    .ok_or_else(|| {
                        self.invalid(
                            name,
                            format!(
                                "The selected {name} ({text}) is invalid; expected one of: {}.",
                                allowed.join(", ")
                            ),
                        )
                    })
            })
            .collect()
    }

    /// `name` as a calendar date `YYYY-MM-DD`, or `None` when absent.
    pub fn date(&self, name: &str) -> Result<Option<time::Date>, ApiError> {
        let Some(text) = self.get(name) else {
            return Ok(None);
        };
        let format = time::macros::format_description!("[year]-[month]-[day]");
        time::Date::parse(text, &format).map(Some).map_err(|_| {
            self.invalid(
                name,
                format!("The {name} field must be a valid date (YYYY-MM-DD)."),
            )
        })
    }

    fn invalid(&self, name: &str, message: String) -> ApiError {
        ApiError::validation(S::FORMAT, name, message)
    }
}

/// `name`, `name[]` or `name[<digits>]`.
fn is_list_key(key: &str, name: &str) -> bool {
    let Some(rest) = key.strip_prefix(name) else {
        return false;
    };
    if rest.is_empty() || rest == "[]" {
        return true;
    }
    rest.strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// A positive integer id from the path (the parameter named `id`, else the last one). Any
/// other text answers ApiPay's 404 `{"message":"Not found."}`, as a lookup of a missing id
/// would, instead of axum's plain-text 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdPath(pub i64);

impl<St: Send + Sync> FromRequestParts<St> for IdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, ApiError> {
        let not_found = || ApiError::route_not_found(ErrorFormat::ApiPay);
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| not_found())?;
        let text = params
            .iter()
            .find(|(k, _)| *k == "id")
            .or_else(|| params.iter().last())
            .map(|(_, v)| v)
            .ok_or_else(not_found)?;
        parse_id(text).map(IdPath).ok_or_else(not_found)
    }
}

/// A positive decimal id without sign or spaces.
pub fn parse_id(text: &str) -> Option<i64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<i64>().ok().filter(|id| *id > 0)
}

/// Router fallback: 404 in `S`'s format (`router.fallback(not_found::<ApiPay>)`).
pub async fn not_found<S: Surface>() -> ApiError {
    ApiError::route_not_found(S::FORMAT)
}

/// Fallback for a known path with an unsupported method: 405 in `S`'s format
/// (`router.method_not_allowed_fallback(method_not_allowed::<ApiPay>)`, after the routes).
pub async fn method_not_allowed<S: Surface>() -> ApiError {
    ApiError::method_not_allowed(S::FORMAT)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use axum::http::StatusCode;
    use axum::response::IntoResponse as _;
    use axum::routing::{get, post};
    use axum::{Json, Router};
    use serde::Deserialize;
    use serde_json::{json, Value};
    use tower::ServiceExt as _;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    #[allow(dead_code)] // read only through Debug in the tests
    struct CartItem {
        name: String,
        price: f64,
        count: u32,
        r#type: ItemType,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    enum ItemType {
        FastSale,
        Catalogue,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Create {
        phone_number: String,
        amount: Option<serde_json::Number>,
        #[serde(default)]
        cart_items: Vec<CartItem>,
    }

    async fn send(router: Router, req: Request) -> (StatusCode, Value) {
        let response = router.oneshot(req).await.expect("infallible");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            // Errors are JSON; the test handlers answer their input's Debug text.
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        (status, body)
    }

    fn app() -> Router {
        Router::new()
            .route(
                "/invoices",
                post(|ApiJson(c): ApiJson<Create>| async move { format!("{c:?}") }),
            )
            .route(
                "/payments",
                post(|XJson(c): XJson<Create>| async move { format!("{c:?}") }),
            )
            .route(
                "/invoices/{id}",
                get(|IdPath(id): IdPath| async move { Json(json!({"id": id})) }),
            )
            .method_not_allowed_fallback(method_not_allowed::<ApiPay>)
            .fallback(not_found::<ApiPay>)
    }

    fn post_as(uri: &str, content_type: Option<&str>, body: &str) -> Request {
        let mut req = Request::post(uri);
        if let Some(content_type) = content_type {
            req = req.header(CONTENT_TYPE, content_type);
        }
        req.body(Body::from(body.to_owned())).expect("request")
    }

    fn post_json(uri: &str, body: &str) -> Request {
        post_as(uri, Some("application/json"), body)
    }

    /// The ApiPay errors map of a 422 answer.
    async fn apipay_errors(body: &str) -> BTreeMap<String, Vec<String>> {
        let (status, body) = send(app(), post_json("/invoices", body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["message"], "Validation failed");
        serde_json::from_value(body["errors"].clone()).expect("errors map")
    }

    fn one(field: &str, message: &str) -> BTreeMap<String, Vec<String>> {
        BTreeMap::from([(field.to_owned(), vec![message.to_owned()])])
    }

    #[tokio::test]
    async fn a_good_body_parses() {
        let req = post_json(
            "/invoices",
            r#"{"phone_number":"87001234567","amount":100.5,"cart_items":[{"Name":"A","Price":1.5,"Count":2,"Type":"FAST_SALE"}]}"#,
        );
        let response = app().oneshot(req).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn wrong_types_and_missing_fields_name_the_field() {
        assert_eq!(
            apipay_errors(r#"{"phone_number":"8700","amount":"ten"}"#).await,
            one("amount", "The amount field must be a number.")
        );
        assert_eq!(
            apipay_errors(r#"{"amount":10}"#).await,
            one("phone_number", "The phone_number field is required.")
        );
        assert_eq!(
            apipay_errors(r#"{"phone_number":87001234567}"#).await,
            one("phone_number", "The phone_number field must be a string.")
        );
        assert_eq!(
            apipay_errors(r#"{"phone_number":"8","cart_items":[{"Name":"A","Price":"x","Count":1,"Type":"FAST_SALE"}]}"#).await,
            one("cart_items[0].Price", "The cart_items[0].Price field must be a number.")
        );
        assert_eq!(
            apipay_errors(
                r#"{"phone_number":"8","cart_items":[{"Name":"A","Price":1,"Type":"FAST_SALE"}]}"#
            )
            .await,
            one(
                "cart_items[0].Count",
                "The cart_items[0].Count field is required."
            )
        );
        assert_eq!(
            apipay_errors(r#"{"phone_number":"8","cart_items":[{"Name":"A","Price":1,"Count":-1,"Type":"FAST_SALE"}]}"#).await,
            one("cart_items[0].Count", "The cart_items[0].Count field must be a non-negative integer (got integer -1).")
        );
        assert_eq!(
            apipay_errors(r#"{"phone_number":"8","cart_items":[{"Name":"A","Price":1,"Count":1,"Type":"GIFT"}]}"#).await,
            one("cart_items[0].Type", "The selected cart_items[0].Type (GIFT) is invalid; expected one of: FAST_SALE, CATALOGUE.")
        );
        assert_eq!(
            apipay_errors(r#"{"phone_number":"8","cart_items":{}}"#).await,
            one("cart_items", "The cart_items field must be an array.")
        );
        assert_eq!(
            apipay_errors(r#"[1]"#).await,
            one("body", "The request body must be a JSON object.")
        );
    }

    #[tokio::test]
    async fn malformed_json_names_the_body_with_line_and_column() {
        let errors = apipay_errors("{\n  \"phone_number\": \"8\",\n  \"amount\": 1,,\n}").await;
        let message = &errors["body"][0];
        assert!(
            message.starts_with("The request body is not valid JSON ("),
            "{message}"
        );
        assert!(message.ends_with("at line 3, column 15)."), "{message}");

        let errors = apipay_errors(r#"{"phone_number":"8"} trailing"#).await;
        assert!(
            errors["body"][0].contains("trailing characters"),
            "{errors:?}"
        );
    }

    #[tokio::test]
    async fn content_type_and_empty_bodies() {
        let body = r#"{"phone_number":"8"}"#;
        let (status, answer) = send(app(), post_as("/invoices", Some("text/plain"), body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            answer["errors"]["body"][0],
            "The request body must be JSON (Content-Type: application/json)."
        );
        // No Content-Type at all, and a JSON suffix type, are fine.
        for content_type in [None, Some("application/merge-patch+json; charset=utf-8")] {
            let req = post_as("/invoices", content_type, body);
            assert_eq!(send(app(), req).await.0, StatusCode::OK, "{content_type:?}");
        }
        // An empty body reads as `{}`: every required field is reported missing.
        let (status, answer) = send(app(), post_as("/invoices", None, "")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            answer["errors"],
            json!({"phone_number": ["The phone_number field is required."]})
        );
    }

    #[tokio::test]
    async fn xpayment_bodies_answer_in_its_format() {
        let (status, body) = send(app(), post_json("/payments", r#"{"amount":true}"#)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body,
            json!({"error": "VALIDATION_ERROR", "message": "The amount field must be a number."})
        );
    }

    #[tokio::test]
    async fn large_bodies_are_413_in_the_surface_format() {
        let big = format!(r#"{{"phone_number":"{}"}}"#, "8".repeat(MAX_BODY_BYTES));
        let (status, body) = send(app(), post_json("/invoices", &big)).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(body["error"], "payload_too_large");

        // The same body on xPayment (no Content-Length: the reader's own limit catches it).
        let (status, body) = send(app(), post_json("/payments", &big)).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(body["error"], "VALIDATION_ERROR");

        // A declared length over the limit is refused before reading.
        let req = Request::post("/invoices")
            .header(CONTENT_TYPE, "application/json")
            .header(CONTENT_LENGTH, "1000000")
            .body(Body::from("{}"))
            .expect("request");
        assert_eq!(send(app(), req).await.0, StatusCode::PAYLOAD_TOO_LARGE);

        // Exactly at the limit is accepted by the reader.
        let exact = vec![b' '; MAX_BODY_BYTES];
        let headers = HeaderMap::new();
        let read = read_body(ErrorFormat::ApiPay, &headers, Body::from(exact))
            .await
            .expect("at the limit");
        assert_eq!(read.len(), MAX_BODY_BYTES);
    }

    #[tokio::test]
    async fn ids_and_fallbacks_answer_json() {
        let get = |uri: &str| Request::get(uri).body(Body::empty()).expect("request");
        assert_eq!(
            send(app(), get("/invoices/42")).await,
            (StatusCode::OK, json!({"id": 42}))
        );
        for bad in [
            "/invoices/abc",
            "/invoices/-1",
            "/invoices/0",
            "/invoices/+5",
            "/invoices/99999999999999999999",
        ] {
            assert_eq!(
                send(app(), get(bad)).await,
                (StatusCode::NOT_FOUND, json!({"message": "Not found."})),
                "{bad}"
            );
        }
        assert_eq!(
            send(app(), get("/nowhere")).await,
            (StatusCode::NOT_FOUND, json!({"message": "Not found."}))
        );
        let delete = Request::delete("/invoices/1")
            .body(Body::empty())
            .expect("request");
        assert_eq!(
            send(app(), delete).await,
            (
                StatusCode::METHOD_NOT_ALLOWED,
                json!({"message": "Method not allowed."})
            )
        );
        assert_eq!(
            not_found::<XPayment>().await.into_response().status(),
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn query_pairs_read_arrays_and_last_values() {
        let q = QueryPairs::<ApiPay>::parse(
            "status[]=paid&status[]=pending&status=expired&status[2]=cancelled&status[x]=no&statuses=no&page=1&page=3&search=&search=a%20b+c",
        );
        assert_eq!(q.all("status"), ["paid", "pending", "expired", "cancelled"]);
        assert_eq!(q.get("page"), Some("3"));
        assert_eq!(q.get("search"), Some("a b c"));
        assert_eq!(q.get("status"), Some("expired"));
        assert_eq!(q.get("missing"), None);
        let empty = QueryPairs::<ApiPay>::parse("search=&status[]=");
        assert_eq!(empty.get("search"), None);
        assert!(empty.all("status").is_empty());
    }

    #[test]
    fn query_helpers_name_the_field() {
        let q = QueryPairs::<ApiPay>::parse(
            "page=2&per_page=500&bad=1.5&neg=-3&sort_by=amount&sort_order=up&status[]=paid&status[]=lost&date_from=2025-01-31&date_to=31.01.2025&search=abcdef",
        );
        assert_eq!(q.int("page", 1, i64::MAX).expect("page"), Some(2));
        assert_eq!(q.int("absent", 1, 10).expect("absent"), None);
        assert_eq!(q.int("neg", -5, 5).expect("negative in range"), Some(-3));
        let err = q.int("per_page", 1, 100).expect_err("too big");
        assert_eq!(
            err.body()["errors"],
            json!({"per_page": ["The per_page field must be between 1 and 100."]})
        );
        let err = q.int("bad", 1, 100).expect_err("not an integer");
        assert_eq!(
            err.body()["errors"],
            json!({"bad": ["The bad field must be an integer."]})
        );
        assert_eq!(
            q.one_of("sort_by", &["id", "amount"]).expect("sort_by"),
            Some("amount")
        );
        assert_eq!(
            q.one_of("sort_order", &["asc", "desc"])
                .expect_err("bad order")
                .body()["errors"]["sort_order"][0],
            "The selected sort_order is invalid; expected one of: asc, desc."
        );
        assert_eq!(
            q.all_of("status", &["paid", "pending"])
                .expect_err("lost")
                .body()["errors"]["status"][0],
            "The selected status (lost) is invalid; expected one of: paid, pending."
        );
        assert_eq!(
            q.date("date_from").expect("date"),
            Some(time::macros::date!(2025 - 01 - 31))
        );
        assert!(q.date("date_to").is_err());
        assert_eq!(q.string("search", 6).expect("fits"), Some("abcdef"));
        assert!(q.string("search", 5).is_err());

        let x = QueryPairs::<XPayment>::parse("limit=x");
        assert_eq!(
            x.int("limit", 1, 100).expect_err("bad").body(),
            json!({"error": "VALIDATION_ERROR", "message": "The limit field must be an integer."})
        );
    }
}
