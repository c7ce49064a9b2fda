//! The HTTP API's shared pieces; the two compatible surfaces (ApiPay, xPayment) are built from
//! them.
//!
//! - [`error`]: [`ApiError`], the one error type, rendered in each surface's error format.
//! - [`extract`]: JSON body, query and path-id extractors and router fallbacks that answer in
//!   that format, never axum's plain text; the body limit [`MAX_BODY_BYTES`].
//! - [`auth`]: API key → [`Caller`] middleware, with a success cache that revocations end.
//! - [`scopes`]: the scope each route needs (one table per surface) and the 403 without it.
//! - [`ratelimit`]: per-key requests-per-minute limit (held across processes) and its headers.
//! - [`idempotency`]: `Idempotency-Key` replays for `POST`.
//! - [`apipay`], [`xpayment`]: the two surfaces, each a folder: routes, handlers by resource,
//!   `views` (the JSON a client sees) and `errors` (gateway errors in that surface's format).
//! - [`optional_text`], [`parse_amount`]: body fields both surfaces read alike.
//! - [`openapi`]: Kassa's OpenAPI document of both surfaces (`GET /openapi.json`) and its
//!   Swagger UI (`GET /docs`).
//!
//! A request to a protected route goes: [`auth::authenticate`] (401, or a `Caller`) →
//! [`scopes::require_scope`] (403 without the route's scope) → [`ratelimit::enforce`] (429, or counted; `X-RateLimit-*` headers on every answer) →
//! [`idempotency::idempotency`] (replay, 409/422, or run and record) → the handler, whose
//! extractors and `Result<_, ApiError>` answer in the surface's format. [`protect`] puts
//! these layers on a router in that order.

pub mod apipay;
pub mod auth;
pub mod error;
pub mod extract;
pub mod idempotency;
mod json_errors;
pub mod nul;
pub mod openapi;
pub mod ratelimit;
pub mod scopes;
pub mod webhook_simulate;
pub mod webhooks;
pub mod xpayment;
// The surfaces' handlers (`pub mod apipay;`, `pub mod xpayment;`) are declared here.

use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::Router;
use serde_json::Value;
use time::OffsetDateTime;

use crate::domain::{Money, MoneyError};

pub use auth::{AuthState, Caller};
pub use error::{ApiError, ErrorFormat, ErrorKind, FieldError, FieldErrors};
pub use extract::{
    method_not_allowed, not_found, ApiJson, ApiPay, IdPath, QueryPairs, Surface, XJson, XPayment,
    MAX_BODY_BYTES,
};
pub use ratelimit::RateLimiter;

/// Puts authentication, the scope check (against `scopes`, the surface's table), the rate
/// limit, idempotency and the body limit on every route of `router` (which must already have
/// them; a router without routes is returned as it is). Only matched routes are protected, so
/// an unknown path answers the fallback's 404, not 401.
///
/// Order, outermost first: authentication, scopes, rate limit, NUL characters in the query and
/// path ([`nul::reject_nul`]), idempotency, handler.
pub fn protect<S>(router: Router<S>, auth: AuthState, scopes: scopes::ScopeTable) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    if !router.has_routes() {
        return router;
    }
    // `route_layer` wraps what is there: the last one added runs first.
    router
        .route_layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .route_layer(from_fn_with_state(auth.clone(), idempotency::idempotency))
        .route_layer(from_fn_with_state(auth.format(), nul::reject_nul))
        .route_layer(from_fn_with_state(auth.clone(), ratelimit::enforce))
        .route_layer(from_fn_with_state(scopes, scopes::require_scope))
        .route_layer(from_fn_with_state(auth, auth::authenticate))
}

/// Unix milliseconds as ApiPay writes times: UTC, whole seconds, `2025-01-31T12:00:00Z`.
/// Sub-second parts are dropped; times outside years 1..=9999 are clamped.
pub fn rfc3339_ms(ms: i64) -> String {
    const MIN_SECS: i64 = -62_135_596_800; // 0001-01-01T00:00:00Z
    const MAX_SECS: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    let secs = ms.div_euclid(1000).clamp(MIN_SECS, MAX_SECS);
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

/// An optional text field of a JSON body: absent, `null` or `""` is `None`; longer than `max`
/// characters or not a string is an error on `field`, worded for the surface.
pub fn optional_text(
    format: ErrorFormat,
    value: Option<&serde_json::Value>,
    field: &str,
    max: usize,
    errors: &mut FieldErrors,
) -> Option<String> {
    use serde_json::Value;
    let (too_long, not_text) = match format {
        ErrorFormat::ApiPay => (
            format!("The {field} must not be greater than {max} characters."),
            format!("The {field} must be a string."),
        ),
        ErrorFormat::XPayment => (
            format!("must be at most {max} characters"),
            "must be a string".to_owned(),
        ),
    };
    match value {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.chars().count() > max => {
            errors.add(field, too_long);
            None
        }
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errors.add(field, not_text);
            None
        }
    }
}

/// The body of a refund request, as both surfaces take it (each checks the fields in its own
/// words).
#[derive(Debug, serde::Deserialize)]
pub struct RefundBody {
    #[serde(default)]
    pub amount: Option<Value>,
    #[serde(default)]
    pub reason: Option<Value>,
    /// ApiPay's current version: cart lines to take back (xPayment has none).
    #[serde(default)]
    pub return_items: Option<Value>,
}

/// `amount` of a request: a JSON number or a numeric string, 0.01–99999999.99, at most two
/// decimals, read exactly ([`Money::from_json`]); an error on `field` otherwise, in ApiPay's
/// words (both surfaces use them).
pub fn parse_amount(value: &Value, field: &str, errors: &mut FieldErrors) -> Option<Money> {
    let message = match Money::from_json(value) {
        Ok(money) => return Some(money),
        Err(MoneyError::OutOfRange) => format!("The {field} must be between 0.01 and 99999999.99."),
        Err(MoneyError::TooPrecise) => format!(
            "The {field} must be a number with at most two decimal places, between 0.01 and 99999999.99."
        ),
        Err(MoneyError::NotANumber) => format!("The {field} must be a number."),
    };
    errors.add(field, message);
    None
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use axum::body::Body;
    use axum::extract::{Request, State};
    use axum::http::{HeaderMap, Method, StatusCode};
    use axum::routing::{get, post};
    use axum::Json;
    use serde_json::{json, Value};
    use tokio::sync::Notify;
    use tower::ServiceExt as _;

    use super::*;
    use crate::db::testing::TestDb;
    use crate::secrets::{new_api_key, MasterKey};
    use crate::store::{Begin, Store};

    #[test]
    fn times() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_ms(1_738_324_800_999), "2025-01-31T12:00:00Z");
        assert_eq!(rfc3339_ms(-1), "1969-12-31T23:59:59Z");
        assert_eq!(rfc3339_ms(i64::MAX), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339_ms(i64::MIN), "0001-01-01T00:00:00Z");
    }

    /// A protected test router over a fresh SQLite store, with one organization and key.
    struct Fixture {
        _db: TestDb,
        store: Store,
        router: Router,
        api_key: String,
        key_id: i64,
        org_id: i64,
        /// How many times the create handler ran.
        runs: Arc<AtomicUsize>,
        gate: Gate,
    }

    /// Lets a test hold the `/slow` handler: it signals `started`, then waits for `release`.
    #[derive(Clone, Default)]
    struct Gate {
        started: Arc<Notify>,
        release: Arc<Notify>,
    }

    #[derive(Clone)]
    struct TestState {
        runs: Arc<AtomicUsize>,
        gate: Gate,
    }

    async fn fixture(format: ErrorFormat, per_minute: u32) -> Fixture {
        let db = TestDb::sqlite().await;
        let store = Store::new(db.db());
        let master_key = MasterKey::generate();
        let org = store.orgs().create_org("shop", "Shop").await.expect("org");
        let (api_key, prefix) = new_api_key();
        let record = store
            .orgs()
            .create_api_key(org.id, "test", &prefix, &master_key.api_key_hash(&api_key))
            .await
            .expect("key");
        let limiter = Arc::new(RateLimiter::per_minute(store.clone(), per_minute));
        let auth = AuthState::new(store.clone(), master_key, limiter, format);
        let runs = Arc::new(AtomicUsize::new(0));
        let gate = Gate::default();
        let routes = Router::new()
            .route(
                "/me",
                get(|caller: Caller| async move {
                    Json(json!({"key_id": caller.key_id, "org_id": caller.org_id}))
                }),
            )
            .route("/create", post(create))
            .route(
                "/fail",
                post(|| async {
                    Err::<Json<Value>, _>(ApiError::coded(
                        ErrorFormat::ApiPay,
                        StatusCode::BAD_GATEWAY,
                        "kaspi_error",
                        "Kaspi API error",
                    ))
                }),
            )
            .route(
                "/panic",
                post(|| async {
                    if true {
                        panic!("handler bug");
                    }
                    "unreachable"
                }),
            )
            .route(
                "/slow",
                post(|State(state): State<TestState>| async move {
                    state.gate.started.notify_one();
                    state.gate.release.notified().await;
                    (StatusCode::CREATED, Json(json!({"slow": true})))
                }),
            )
            .with_state(TestState {
                runs: runs.clone(),
                gate: gate.clone(),
            });
        let router = protect(routes, auth, TEST_SCOPES)
            .method_not_allowed_fallback(method_not_allowed::<ApiPay>)
            .fallback(not_found::<ApiPay>);
        Fixture {
            _db: db,
            store,
            router,
            api_key,
            key_id: record.id,
            org_id: org.id,
            runs,
            gate,
        }
    }

    /// The fixture's routes, all readable with `invoices:read`.
    const TEST_SCOPES: scopes::ScopeTable = scopes::ScopeTable {
        format: ErrorFormat::ApiPay,
        routes: &[
            (Method::GET, "/me", INVOICES_READ),
            (Method::POST, "/create", INVOICES_READ),
            (Method::POST, "/fail", INVOICES_READ),
            (Method::POST, "/panic", INVOICES_READ),
            (Method::POST, "/slow", INVOICES_READ),
        ],
    };
    const INVOICES_READ: crate::domain::Scope =
        crate::domain::Scope::read(crate::domain::Resource::Invoices);

    /// A handler as the surfaces write them: `Caller`, our JSON extractor, `ApiError`.
    async fn create(
        State(TestState { runs, .. }): State<TestState>,
        caller: Caller,
        ApiJson(body): ApiJson<Value>,
    ) -> Result<(StatusCode, Json<Value>), ApiError> {
        let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
        if body.get("bad").is_some() {
            return Err(ApiError::validation(
                ErrorFormat::ApiPay,
                "bad",
                "The bad field is bad.",
            ));
        }
        Ok((
            StatusCode::CREATED,
            Json(json!({"run": n, "org_id": caller.org_id, "echo": body})),
        ))
    }

    async fn call(
        router: &Router,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (StatusCode, HeaderMap, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let req = req.body(Body::from(body.to_owned())).expect("request");
        let response = router.clone().oneshot(req).await.expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("JSON answer")
        };
        (status, headers, value)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn authentication_in_both_formats() {
        let f = fixture(ErrorFormat::ApiPay, 0).await;
        let (status, _, body) = call(&f.router, "GET", "/me", &[], "").await;
        assert_eq!(
            (status, body),
            (
                StatusCode::UNAUTHORIZED,
                json!({"message": "Invalid API key"})
            )
        );
        let (status, _, _) =
            call(&f.router, "GET", "/me", &[("x-api-key", "kassa_wrong")], "").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, headers, body) =
            call(&f.router, "GET", "/me", &[("x-api-key", &f.api_key)], "").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["org_id"], f.org_id);
        assert!(
            headers.get("x-ratelimit-limit").is_none(),
            "limit off: no headers"
        );
        let bearer = format!("Bearer {}", f.api_key);
        let (status, _, _) = call(&f.router, "GET", "/me", &[("authorization", &bearer)], "").await;
        assert_eq!(status, StatusCode::OK);

        // Unknown paths are 404 without a key; known ones with a wrong method need one.
        let (status, _, body) = call(&f.router, "GET", "/nowhere", &[], "").await;
        assert_eq!(
            (status, body),
            (StatusCode::NOT_FOUND, json!({"message": "Not found."}))
        );
        let (status, _, body) =
            call(&f.router, "DELETE", "/me", &[("x-api-key", &f.api_key)], "").await;
        assert_eq!(
            (status, body),
            (
                StatusCode::METHOD_NOT_ALLOWED,
                json!({"message": "Method not allowed."})
            )
        );

        let x = fixture(ErrorFormat::XPayment, 0).await;
        let (status, _, body) = call(&x.router, "GET", "/me", &[], "").await;
        assert_eq!(
            (status, body),
            (
                StatusCode::UNAUTHORIZED,
                json!({"error": "UNAUTHORIZED", "message": "missing API key"})
            )
        );
        let (_, _, body) = call(
            &x.router,
            "GET",
            "/me",
            &[("authorization", "Bearer nope")],
            "",
        )
        .await;
        assert_eq!(body["message"], "invalid API key");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rate_limit_headers_and_429() {
        let f = fixture(ErrorFormat::ApiPay, 2).await;
        let key = [("x-api-key", f.api_key.as_str())];
        let (_, headers, _) = call(&f.router, "GET", "/me", &key, "").await;
        assert_eq!(headers["x-ratelimit-limit"], "2");
        assert_eq!(headers["x-ratelimit-remaining"], "1");
        let (_, headers, _) = call(&f.router, "GET", "/me", &key, "").await;
        assert_eq!(headers["x-ratelimit-remaining"], "0");
        let (status, headers, body) = call(&f.router, "GET", "/me", &key, "").await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(headers["x-ratelimit-remaining"], "0");
        let retry: u64 = headers["retry-after"]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("secs");
        // The seconds to the end of the fixed window.
        assert!((1..=60).contains(&retry), "{retry}");
        assert_eq!(body["retry_after"], retry);
        // Unauthenticated requests do not spend the key's budget and get no headers.
        let (status, headers, _) = call(&f.router, "GET", "/me", &[], "").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(headers.get("x-ratelimit-limit").is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn idempotent_replays_mismatches_and_failures() {
        let f = fixture(ErrorFormat::ApiPay, 0).await;
        let k = f.api_key.as_str();
        let with_key = |idem: &'static str| {
            [
                ("x-api-key", k),
                ("idempotency-key", idem),
                ("content-type", "application/json"),
            ]
        };

        let (status, headers, first) =
            call(&f.router, "POST", "/create", &with_key("a"), r#"{"n":1}"#).await;
        assert_eq!(status, StatusCode::CREATED);
        assert!(headers.get("idempotent-replayed").is_none());
        let (status, headers, again) =
            call(&f.router, "POST", "/create", &with_key("a"), r#"{"n":1}"#).await;
        assert_eq!((status, &again), (StatusCode::CREATED, &first));
        assert_eq!(headers["idempotent-replayed"], "true");
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(
            f.runs.load(Ordering::SeqCst),
            1,
            "the replay did not run the handler"
        );

        let (status, _, body) =
            call(&f.router, "POST", "/create", &with_key("a"), r#"{"n":2}"#).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            body["errors"],
            json!({"idempotency_key": ["This Idempotency-Key was already used with a different request."]})
        );
        // The same key on another path is another request.
        let (status, _, _) = call(
            &f.router,
            "POST",
            "/create?x=1",
            &with_key("a"),
            r#"{"n":1}"#,
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

        // 4xx answers are kept too.
        let (status, _, _) =
            call(&f.router, "POST", "/create", &with_key("b"), r#"{"bad":1}"#).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let (status, headers, _) =
            call(&f.router, "POST", "/create", &with_key("b"), r#"{"bad":1}"#).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(headers["idempotent-replayed"], "true");

        // X-Idempotency-Key works as well; without a key every request runs.
        let x = [("x-api-key", k), ("x-idempotency-key", "c")];
        call(&f.router, "POST", "/create", &x, "{}").await;
        let (_, headers, _) = call(&f.router, "POST", "/create", &x, "{}").await;
        assert_eq!(headers["idempotent-replayed"], "true");
        let before = f.runs.load(Ordering::SeqCst);
        call(&f.router, "POST", "/create", &[("x-api-key", k)], "{}").await;
        call(&f.router, "POST", "/create", &[("x-api-key", k)], "{}").await;
        assert_eq!(f.runs.load(Ordering::SeqCst), before + 2);

        // A 5xx abandons the key: the retry runs again (and is not a replay).
        let (status, _, _) = call(&f.router, "POST", "/fail", &with_key("d"), "").await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        let (status, headers, _) = call(&f.router, "POST", "/fail", &with_key("d"), "").await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        assert!(headers.get("idempotent-replayed").is_none());

        // Bad keys.
        let long = "k".repeat(256);
        let (status, _, body) = call(
            &f.router,
            "POST",
            "/create",
            &[("x-api-key", k), ("idempotency-key", &long)],
            "{}",
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(body["errors"]["idempotency_key"][0]
            .as_str()
            .expect("message")
            .contains("255"));
        let (status, _, _) = call(
            &f.router,
            "POST",
            "/create",
            &[("x-api-key", k), ("idempotency-key", " ")],
            "{}",
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

        // Too large a body is 413 before any record is made.
        let big = format!(r#"{{"n":"{}"}}"#, "x".repeat(MAX_BODY_BYTES));
        let (status, _, _) = call(&f.router, "POST", "/create", &with_key("e"), &big).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        let (status, _, _) = call(&f.router, "POST", "/create", &with_key("e"), "{}").await;
        assert_eq!(status, StatusCode::CREATED);
    }

    /// Sends `POST uri` with xPayment's headers from a task of its own.
    fn spawn_post(
        f: &Fixture,
        uri: &'static str,
        idem: &'static str,
    ) -> tokio::task::JoinHandle<(StatusCode, HeaderMap, Value)> {
        let router = f.router.clone();
        let bearer = format!("Bearer {}", f.api_key);
        tokio::spawn(async move {
            let headers = [
                ("authorization", bearer.as_str()),
                ("x-idempotency-key", idem),
            ];
            call(&router, "POST", uri, &headers, "").await
        })
    }

    /// Waits (at most 10 s) until the record of `idem` for `uri` is no longer running.
    async fn wait_until_settled(f: &Fixture, uri: &str, idem: &str) -> Begin {
        let hash = idempotency::request_hash(&Method::POST, uri, b"");
        for _ in 0..500 {
            // `now_ms` 0 never expires the real record; a fresh one made here expires at once.
            let begun = f
                .store
                .orgs()
                .idempotency_begin(f.key_id, idem, &hash, 0, 1)
                .await
                .expect("begin");
            if begun != Begin::InFlight {
                return begun;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the record of {idem} stayed running");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn in_flight_cancelled_and_panicking_requests() {
        let f = fixture(ErrorFormat::XPayment, 0).await;
        let bearer = format!("Bearer {}", f.api_key);

        // While the first request runs, a repeat is refused.
        let first = spawn_post(&f, "/slow", "slow");
        f.gate.started.notified().await;
        let repeat = [
            ("authorization", bearer.as_str()),
            ("x-idempotency-key", "slow"),
        ];
        let (status, _, body) = call(&f.router, "POST", "/slow", &repeat, "").await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(
            body,
            json!({"error": "IDEMPOTENCY_CONFLICT", "message": "A request with this Idempotency-Key is still being processed."})
        );
        f.gate.release.notify_one();
        let (status, _, _) = first.await.expect("first request");
        assert_eq!(status, StatusCode::CREATED);

        // A client that goes away does not cancel the work: it completes, is recorded, and
        // the client's retry gets the replay.
        let gone = spawn_post(&f, "/slow", "gone");
        f.gate.started.notified().await;
        gone.abort();
        assert!(gone.await.expect_err("aborted").is_cancelled());
        f.gate.release.notify_one();
        assert!(matches!(
            wait_until_settled(&f, "/slow", "gone").await,
            Begin::Replay { status: 201, .. }
        ));
        let retry = [
            ("authorization", bearer.as_str()),
            ("x-idempotency-key", "gone"),
        ];
        let (status, headers, body) = call(&f.router, "POST", "/slow", &retry, "").await;
        assert_eq!((status, body), (StatusCode::CREATED, json!({"slow": true})));
        assert_eq!(headers["idempotent-replayed"], "true");

        // A panicking handler: 500 in the surface's format, and the key is free again.
        let boom = [
            ("authorization", bearer.as_str()),
            ("x-idempotency-key", "boom"),
        ];
        let (status, _, body) = call(&f.router, "POST", "/panic", &boom, "").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["error"], "INTERNAL_ERROR");
        assert_eq!(wait_until_settled(&f, "/panic", "boom").await, Begin::New);
    }
}
