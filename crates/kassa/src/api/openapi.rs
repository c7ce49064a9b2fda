//! Kassa's own OpenAPI 3.1 document, `GET /openapi.json`, and its Swagger UI, `GET /docs`.
//!
//! The document is made from the code: each handler carries a `#[utoipa::path]` annotation
//! (its path, parameters, body, answers), each surface gathers its own in an `ApiDoc`
//! (`apipay`, `webhooks`, `xpayment`, `webhook_simulate`), and [`document`] nests them where
//! `crate::app` mounts them: ApiPay's under `/api/v1`, xPayment's under `/v1` and again at the
//! root (tagged [`TAG_XPAYMENT_ROOT`], operation ids ending in `_at_root`). The JSON views are
//! built with `json!`, so their shapes are declared by hand in [`schemas`], field by field.
//!
//! What every operation of a surface can answer is added here rather than on each handler
//! (`add_conventions`): the API key (`X-API-Key` or `Authorization: Bearer`, on both
//! surfaces) with the scope it needs (the security requirement's scope list, from
//! `api::scopes`), and the errors of authentication (401), a missing scope (403), validation (ApiPay 422, xPayment 400:
//! also a NUL character in any parameter), the rate limit (429, `Retry-After`), a request that
//! took too long (408), an unknown id in the path (404), 500, for writes the body limit (413),
//! and for a `POST` the `Idempotency-Key` header and its conflicts (409). A handler lists its
//! own answers besides (Kaspi's errors, 400 refusals).
//!
//! Not described: the dashboard (`/dashboard/`, HTML for people), the sandbox Kaspi that
//! sandbox mode mounts at `/sandbox/kaspi` (Kaspi's protocol, which the gateway calls), and
//! metrics.
//!
//! The Swagger UI's files are compiled into the binary from the `utoipa-swagger-ui` crate (its
//! `vendored` feature ships them; nothing is downloaded at build time), and the page loads
//! only from this server: its `Content-Security-Policy` allows no other host.

pub mod schemas;

use std::sync::{Arc, OnceLock};

use axum::extract::Path;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{HttpMethod, Operation, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder};
use utoipa::openapi::security::{SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, ObjectBuilder, Ref, RefOr, Required, ResponseBuilder, Type};
use utoipa::OpenApi as _;

/// ApiPay's invoices.
pub const TAG_INVOICES: &str = "ApiPay: invoices";
/// ApiPay's refunds.
pub const TAG_REFUNDS: &str = "ApiPay: refunds";
/// ApiPay's subscriptions.
pub const TAG_SUBSCRIPTIONS: &str = "ApiPay: subscriptions";
/// The catalog (units, items, images).
pub const TAG_CATALOG: &str = "ApiPay: catalog";
/// Kassa's webhook endpoints.
pub const TAG_WEBHOOKS: &str = "Kassa: webhooks";
/// Kassa's sandbox helpers and clock.
pub const TAG_SANDBOX: &str = "Kassa: sandbox";
/// The gateway's status.
pub const TAG_STATUS: &str = "Kassa: status";
/// This document and its page.
pub const TAG_DOCS: &str = "Kassa: API reference";
/// xPayment's payments.
pub const TAG_PAYMENTS: &str = "xPayment: payments";
/// xPayment's refunds.
pub const TAG_XREFUNDS: &str = "xPayment: refunds";
/// xPayment's webhook simulator.
pub const TAG_SIMULATOR: &str = "xPayment: webhook simulator";
/// xPayment's operations at the root paths.
pub const TAG_XPAYMENT_ROOT: &str = "xPayment at the root";

/// The security scheme of the `X-API-Key` header.
const API_KEY_SCHEME: &str = "ApiKeyAuth";
/// The security scheme of `Authorization: Bearer`.
const BEARER_SCHEME: &str = "BearerAuth";

/// The paths that need no API key.
const PUBLIC_PATHS: &[&str] = &["/api/v1/status", "/openapi.json", "/docs"];

/// The routes of the document and its page, merged at the root by `crate::app`.
pub fn routes() -> Router {
    Router::new()
        .route("/openapi.json", get(openapi_json))
        .route("/docs", get(docs_page))
        .route("/docs/", get(docs_page))
        .route("/docs/{file}", get(docs_file))
}

/// Kassa's OpenAPI document, as served.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut xpayment = super::xpayment::ApiDoc::openapi();
    xpayment.merge(super::webhook_simulate::ApiDoc::openapi());
    let mut doc = KassaApi::openapi()
        .nest("/api/v1", super::apipay::ApiDoc::openapi())
        .nest("/api/v1", super::webhooks::ApiDoc::openapi())
        .nest("/v1", xpayment);
    add_root_aliases(&mut doc);
    add_conventions(&mut doc);
    doc
}

/// The document as JSON, made once.
fn document_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        serde_json::to_string(&document()).expect("the OpenAPI document is plain JSON")
    })
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Kassa",
        description = "A self-hosted Kaspi Pay gateway with two surfaces compatible with hosted \
            gateways, over the same payments and the same API keys:\n\n\
            - **ApiPay.kz** under `/api/v1` (`X-API-Key`). Amounts are text with two decimals, \
            times RFC 3339 in UTC. Errors: 422 `{\"message\", \"errors\": {field: [message]}}`, \
            401/404/405/500 `{\"message\"}`, other refusals `{\"error\": code, \"message\"}`, \
            429 `{\"message\", \"retry_after\"}`.\n\
            - **xPayment.kz** under `/v1` and at the root (`Authorization: Bearer`). Amounts \
            are numbers of tenge; fields without a value are left out. Every error is \
            `{\"error\": CODE, \"message\"}`; validation is 400 `VALIDATION_ERROR`.\n\n\
            Either header works on both surfaces. Kassa's own additions: webhook endpoints \
            (`/api/v1/webhooks`), the sandbox's payer helpers and clock (`/api/v1/sandbox`, \
            sandbox mode only), subscriptions, the catalog, `POST /api/v1/invoices/status/check` \
            and `GET /api/v1/status`.\n\n\
            A `POST` may carry `Idempotency-Key` (or `X-Idempotency-Key`): a repeat of the same \
            request within 24 hours gets the first answer again (`Idempotent-Replayed: true`). \
            Every answer carries `X-Request-Id`, and with a rate limit `X-RateLimit-Limit` and \
            `X-RateLimit-Remaining`.",
        license(name = "MIT", identifier = "MIT"),
    ),
    paths(gateway_status, openapi_json, docs_page),
    components(schemas(
        schemas::ApiPayValidationError,
        schemas::ApiPayMessage,
        schemas::ApiPayCodedError,
        schemas::ApiPayRateLimited,
        schemas::XPaymentError,
    )),
    tags(
        (name = TAG_INVOICES, description = "Invoices to a payer's phone: create, list, statistics, status, cancel."),
        (name = TAG_REFUNDS, description = "Refunds of paid invoices."),
        (name = TAG_SUBSCRIPTIONS, description = "Recurring invoices on a schedule (the fields of both of ApiPay's doc versions at once)."),
        (name = TAG_CATALOG, description = "Kassa's own catalog: units, items and their images, usable in carts at once."),
        (name = TAG_WEBHOOKS, description = "Endpoints that receive the organization's events (ApiPay's or xPayment's format, signed as Standard Webhooks), their deliveries and redeliveries."),
        (name = TAG_SANDBOX, description = "Sandbox mode only (404 in live mode): what the payer does in the Kaspi app, and the sandbox clock."),
        (name = TAG_PAYMENTS, description = "Payments by phone, payment links (QR) and static QR payments, xPayment's paths under `/v1`."),
        (name = TAG_XREFUNDS, description = "Refunds of completed payments."),
        (name = TAG_SIMULATOR, description = "Test events sent now to the organization's endpoints of the xPayment format."),
        (name = TAG_XPAYMENT_ROOT, description = "xPayment's operations at the root paths its spec names: the same as under `/v1`."),
        (name = TAG_STATUS, description = "Whether the gateway answers and its Kaspi cashiers can work; no API key."),
        (name = TAG_DOCS, description = "This document and its page."),
    ),
)]
struct KassaApi;

/// Documents `GET /api/v1/status`, whose handler is `crate::app`'s.
#[utoipa::path(
    get,
    path = "/api/v1/status",
    tag = TAG_STATUS,
    operation_id = "gateway_status",
    summary = "The gateway's status",
    description = "No authentication, never a secret. `status` is `ok` while the gateway \
        answers; `kaspi.sessions` counts cashier sessions that work and that need a login (with \
        the distinct reasons), so a monitor can alert on `needs_login > 0`; `kaspi.state` is \
        `ok`, `needs_login` or `app_build_outdated` (`kaspi.action` says what to do).",
    responses((status = 200, description = "The gateway answers", body = schemas::GatewayStatus)),
)]
#[allow(dead_code)] // Only its annotation is used: the handler is `crate::app`'s.
fn gateway_status() {}

/// `GET /openapi.json`: this document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = TAG_DOCS,
    summary = "This OpenAPI document",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = inline(Object))),
)]
async fn openapi_json() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        document_json(),
    )
        .into_response()
}

/// The page's policy: everything from this server only (Swagger UI sets inline styles).
const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; font-src 'self' data:; connect-src 'self'; form-action 'none'; \
     frame-ancestors 'none'; base-uri 'none'";

/// `GET /docs`: Swagger UI over this document.
#[utoipa::path(
    get,
    path = "/docs",
    tag = TAG_DOCS,
    summary = "This document in Swagger UI",
    description = "An HTML page whose scripts, styles and images are all served by Kassa \
        (`/docs/…`); it works offline.",
    responses((status = 200, description = "The page", content_type = "text/html", body = String)),
)]
async fn docs_page() -> Response {
    // The dist's page names its files relatively (`./swagger-ui.css`); served at `/docs` as
    // well as `/docs/`, they are named from the root.
    static PAGE: OnceLock<Option<String>> = OnceLock::new();
    let page = PAGE.get_or_init(|| {
        swagger_file("index.html").map(|file| {
            String::from_utf8_lossy(&file.bytes)
                .replace("href=\"./", "href=\"/docs/")
                .replace("src=\"./", "src=\"/docs/")
                .replace("href=\"index.css\"", "href=\"/docs/index.css\"")
                .replace(
                    "<title>Swagger UI</title>",
                    "<title>Kassa API reference</title>",
                )
        })
    });
    match page {
        Some(page) => docs_answer("text/html; charset=utf-8", page.clone().into_bytes()),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `GET /docs/{file}`: a file of Swagger UI (its initializer set to this document).
async fn docs_file(Path(file): Path<String>) -> Response {
    match swagger_file(&file) {
        Some(found) => docs_answer(&found.content_type, found.bytes.into_owned()),
        None => super::ApiError::route_not_found(super::ErrorFormat::ApiPay).into_response(),
    }
}

fn swagger_file(path: &str) -> Option<utoipa_swagger_ui::SwaggerFile<'static>> {
    static CONFIG: OnceLock<Arc<utoipa_swagger_ui::Config<'static>>> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        Arc::new(
            utoipa_swagger_ui::Config::new(["/openapi.json"])
                // Swagger UI would otherwise show a badge from validator.swagger.io.
                .validator_url("none")
                .persist_authorization(false)
                .display_request_duration(true)
                .filter(true)
                .doc_expansion("none")
                // No top bar: the page shows this document only.
                .use_base_layout(),
        )
    });
    utoipa_swagger_ui::serve(path, config.clone())
        .ok()
        .flatten()
}

fn docs_answer(content_type: &str, bytes: Vec<u8>) -> Response {
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(DOCS_CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// Copies every `/v1/…` path to its root path, as `crate::app` mounts xPayment at both.
fn add_root_aliases(doc: &mut utoipa::openapi::OpenApi) {
    let aliases: Vec<(String, PathItem)> = doc
        .paths
        .paths
        .iter()
        .filter_map(|(path, item)| {
            let root = path.strip_prefix("/v1")?;
            let mut item = item.clone();
            for (_, op) in operations_mut(&mut item) {
                op.operation_id = op.operation_id.take().map(|id| format!("{id}_at_root"));
                op.tags = Some(vec![TAG_XPAYMENT_ROOT.to_owned()]);
                op.description = Some(format!(
                    "The same operation as at `{path}`.{}",
                    op.description
                        .take()
                        .map(|d| format!("\n\n{d}"))
                        .unwrap_or_default()
                ));
            }
            Some((root.to_owned(), item))
        })
        .collect();
    doc.paths.paths.extend(aliases);
}

/// Which surface a path belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Surface {
    ApiPay,
    XPayment,
}

/// Adds the security schemes, the reusable error answers, and to every operation what all of
/// its surface's operations answer (see the module docs).
fn add_conventions(doc: &mut utoipa::openapi::OpenApi) {
    let components = doc.components.get_or_insert_with(Default::default);
    components.security_schemes.insert(
        API_KEY_SCHEME.to_owned(),
        RefOr::T(SecurityScheme::ApiKey(ApiKey::Header(
            ApiKeyValue::with_description(
                "X-API-Key",
                "An API key of the organization (`kassa api-key create`).",
            ),
        ))),
    );
    components.security_schemes.insert(
        BEARER_SCHEME.to_owned(),
        RefOr::T(SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "The same API keys, as `Authorization: Bearer <key>` (xPayment's way).",
                ))
                .build(),
        )),
    );
    for (name, response) in common_responses() {
        components
            .responses
            .insert(name.to_owned(), response.into());
    }
    components.parameters.insert(
        "IdempotencyKey".to_owned(),
        ParameterBuilder::new()
            .name("Idempotency-Key")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some(
                "Makes a repeat safe: the same request with the same key within 24 hours gets \
                 the first answer again (`Idempotent-Replayed: true`); another request with it \
                 is 422, a repeat while the first still runs 409. `X-Idempotency-Key` works \
                 too. 1–255 visible ASCII characters.",
            ))
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1))
                    .max_length(Some(255))
                    .pattern(Some("^[\\x21-\\x7E]+$")),
            ))
            .build()
            .into(),
    );

    // One handler may serve two methods (`PATCH` and `PUT`): the second gets its own id.
    let mut ids = std::collections::HashSet::new();
    for (path, item) in doc.paths.paths.iter_mut() {
        let public = PUBLIC_PATHS.contains(&path.as_str());
        let surface = if path.starts_with("/api/v1/") {
            Surface::ApiPay
        } else {
            Surface::XPayment
        };
        let has_path_params = path.contains('{');
        for (method, op) in operations_mut(item) {
            if let Some(id) = op.operation_id.as_mut() {
                if !ids.insert(id.clone()) {
                    id.push('_');
                    id.push_str(method_name(&method));
                    ids.insert(id.clone());
                }
            }
            if public {
                op.security = Some(Vec::new());
                continue;
            }
            // The scope the key needs, from the one table the server checks (`api::scopes`).
            let table = match surface {
                Surface::ApiPay => super::scopes::APIPAY,
                Surface::XPayment => super::scopes::XPAYMENT,
            };
            let scopes: Vec<String> =
                Method::from_bytes(method_name(&method).to_uppercase().as_bytes())
                    .ok()
                    .and_then(|m| table.required(&m, path))
                    .map(|scope| vec![scope.to_string()])
                    .unwrap_or_default();
            op.security = Some(vec![
                SecurityRequirement::new(API_KEY_SCHEME, scopes.clone()),
                SecurityRequirement::new(BEARER_SCHEME, scopes),
            ]);
            let writes = matches!(
                method,
                HttpMethod::Post | HttpMethod::Put | HttpMethod::Patch
            );
            let mut wanted: Vec<&str> = vec!["401", "403", "408", "429", "500"];
            wanted.push(match surface {
                Surface::ApiPay => "422",
                Surface::XPayment => "400",
            });
            if has_path_params {
                wanted.push("404");
            }
            if writes {
                wanted.push("413");
            }
            if matches!(method, HttpMethod::Post) {
                wanted.push("409");
                let params = op.parameters.get_or_insert_with(Vec::new);
                params.push(RefOr::Ref(Ref::new(
                    "#/components/parameters/IdempotencyKey",
                )));
            }
            for status in wanted {
                op.responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert_with(|| {
                        RefOr::Ref(Ref::from_response_name(response_name(surface, status)))
                    });
            }
        }
    }
}

/// The name of a surface's reusable answer for `status`.
fn response_name(surface: Surface, status: &str) -> String {
    match surface {
        Surface::ApiPay => format!("ApiPay{status}"),
        Surface::XPayment => format!("XPayment{status}"),
    }
}

/// The reusable error answers of both surfaces.
fn common_responses() -> Vec<(String, ResponseBuilder)> {
    let body = |schema: &str| {
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name(schema)))
            .build()
    };
    let retry_after = || {
        HeaderBuilder::new()
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(1)),
            ))
            .description(Some("Whole seconds to wait before retrying."))
            .build()
    };
    let apipay = [
        ("401", "No API key, or an unknown or revoked one (`Invalid API key`).", "ApiPayMessage"),
        ("403", "The API key lacks the scope the operation needs (`forbidden`; the message names it; the operation's security requirement lists it).", "ApiPayCodedError"),
        ("404", "Nothing of the caller's has this id (an id that is not a positive integer included).", "ApiPayMessage"),
        ("408", "The request took too long to arrive or to answer (`request_timeout`); send it again.", "ApiPayCodedError"),
        ("409", "A request with this `Idempotency-Key` is still running (`idempotency_key_in_use`, with `Retry-After`), or the request conflicts with existing data (`conflict`).", "ApiPayCodedError"),
        ("413", "The body is larger than 64 KiB (`payload_too_large`).", "ApiPayCodedError"),
        ("422", "Invalid input: each field with its messages (a query or body field, `body` for a body that is not a JSON object, `idempotency_key`, or any parameter with a NUL character).", "ApiPayValidationError"),
        ("429", "The API key's requests per minute are spent.", "ApiPayRateLimited"),
        ("500", "A failure on Kassa's side (`Internal server error.`); it is logged.", "ApiPayMessage"),
    ];
    let xpayment = [
        ("400", "Invalid input (`VALIDATION_ERROR`, each field named in the message; a parameter with a NUL character too).", "XPaymentError"),
        ("401", "No API key, or an unknown or revoked one (`UNAUTHORIZED`).", "XPaymentError"),
        ("403", "The API key lacks the scope the operation needs (`FORBIDDEN`; the message names it; the operation's security requirement lists it).", "XPaymentError"),
        ("404", "Nothing of the caller's has this id (`PAYMENT_NOT_FOUND`, `REFUND_NOT_FOUND`, `NOT_FOUND`).", "XPaymentError"),
        ("408", "The request took too long to arrive or to answer (`REQUEST_TIMEOUT`); send it again.", "XPaymentError"),
        ("409", "A request with this idempotency key is still running (`IDEMPOTENCY_CONFLICT`, with `Retry-After`), or the request conflicts with existing data (`CONFLICT`).", "XPaymentError"),
        ("413", "The body is larger than 64 KiB (`VALIDATION_ERROR`).", "XPaymentError"),
        ("429", "The API key's requests per minute are spent (`RATE_LIMITED`).", "XPaymentError"),
        ("500", "A failure on Kassa's side (`INTERNAL_ERROR`); it is logged.", "XPaymentError"),
    ];
    let mut out = Vec::new();
    for (surface, list) in [(Surface::ApiPay, apipay), (Surface::XPayment, xpayment)] {
        for (status, description, schema) in list {
            let mut response = ResponseBuilder::new()
                .description(description)
                .content("application/json", body(schema));
            if status == "429" || status == "409" {
                response = response.header("Retry-After", retry_after());
            }
            out.push((response_name(surface, status), response));
        }
    }
    out
}

fn method_name(method: &HttpMethod) -> &'static str {
    match method {
        HttpMethod::Get => "get",
        HttpMethod::Put => "put",
        HttpMethod::Post => "post",
        HttpMethod::Delete => "delete",
        HttpMethod::Patch => "patch",
        _ => "other",
    }
}

/// The operations of a path item, with their methods.
fn operations_mut(item: &mut PathItem) -> Vec<(HttpMethod, &mut Operation)> {
    [
        (HttpMethod::Get, &mut item.get),
        (HttpMethod::Post, &mut item.post),
        (HttpMethod::Patch, &mut item.patch),
        (HttpMethod::Put, &mut item.put),
        (HttpMethod::Delete, &mut item.delete),
    ]
    .into_iter()
    .filter_map(|(method, op)| op.as_mut().map(|op| (method, op)))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_is_tagged_named_once_and_answers_its_errors() {
        let doc: serde_json::Value =
            serde_json::from_str(document_json()).expect("the document is JSON");
        assert_eq!(doc["openapi"], "3.1.0");
        let tags: Vec<&str> = doc["tags"]
            .as_array()
            .expect("tags")
            .iter()
            .filter_map(|t| t["name"].as_str())
            .collect();
        let mut ids = std::collections::HashSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                let id = op["operationId"].as_str().expect("an operation id");
                assert!(ids.insert(id.to_owned()), "{id} twice");
                let tag = op["tags"][0].as_str().expect("a tag");
                assert!(tags.contains(&tag), "{method} {path}: unknown tag {tag}");
                assert!(op["summary"].is_string(), "{method} {path}: no summary");
                if PUBLIC_PATHS.contains(&path.as_str()) {
                    continue;
                }
                let validation = if path.starts_with("/api/v1/") {
                    "422"
                } else {
                    "400"
                };
                for status in ["401", "403", "429", "500", validation] {
                    assert!(
                        op["responses"][status].is_object(),
                        "{method} {path}: no {status}"
                    );
                }
            }
        }
        // Every reference points at something.
        let text = document_json();
        for reference in text.split("\"$ref\":\"#/").skip(1) {
            let target = reference.split('"').next().unwrap_or_default();
            let pointer = format!("/{target}");
            assert!(
                doc.pointer(&pointer).is_some(),
                "dangling reference #/{target}"
            );
        }
    }
}
