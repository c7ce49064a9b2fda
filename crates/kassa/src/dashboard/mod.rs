//! The merchant dashboard under `/dashboard/`: everything a shop owner does, in the browser.
//!
//! Server-rendered HTML (minijinja templates compiled into the binary, escaped automatically),
//! our own CSS and a little of our own JavaScript (`assets/`), in Russian by default with
//! English one click away. No CDN and nothing fetched at run time.
//!
//! **One set of rules.** A form does not get a second implementation of what the API does:
//! the dashboard calls the ApiPay surface's own handlers in process ([`Dashboard::api`]), as the
//! signed-in user's organization, and renders their JSON. Validation, errors, idempotent money
//! moves and webhooks are therefore the API's, byte for byte. What the API has no route for
//! (API keys, the cashier's login, a delivery's request body, the chart) reads the store.
//!
//! - `auth.rs`: users' passwords (argon2), sign-in with throttling, sessions (cookies
//!   `HttpOnly`, `SameSite=Strict`, `Secure` behind TLS), one-time sign-in links, CSRF.
//! - `two_factor.rs`: TOTP sign-in with recovery codes, the security page, the organization's
//!   requirement.
//! - `i18n.rs`: every label in Russian and English.
//! - `mode.rs`: the live/test switch (which organization the pages act as).
//! - `access.rs`: the permission every route needs (one table), checked before any handler.
//! - one module per page group: `overview`, `invoices`, `subscriptions`, `catalog`,
//!   `webhooks`, `keys`, `cashier`, `sandbox`, `team` (and a member's own password), `audit`
//!   (the audit log).
//!
//! Security: every page sends a `Content-Security-Policy` without inline script; every `POST`
//! carries the session's CSRF token (checked before the handler runs); every route needs a
//! permission of the user's role (`access.rs`, refused with a 403 page before the handler
//! runs; templates show only what the role may use, as `can.<action>`); another
//! organization's ids are 404, as in the API.

mod access;
mod audit;
mod auth;
mod cashier;
mod catalog;
mod i18n;
mod invoices;
mod keys;
mod mode;
mod overview;
mod render;
mod sandbox;
mod subscriptions;
mod team;
mod two_factor;
mod webhooks;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::Value;
use tower::ServiceExt as _;

use crate::api::Caller;
use crate::app::AppState;

pub use auth::{hash_password, issue_login_link, LOGIN_LINK_TTL_MS};
pub(crate) use render::DashError;

/// Where the dashboard is mounted.
pub const PREFIX: &str = "/dashboard";

/// The policy every dashboard answer carries: our own scripts, styles and images only.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// What the dashboard's handlers share; cheap to clone.
#[derive(Clone)]
pub struct Dashboard {
    inner: Arc<Inner>,
}

struct Inner {
    state: AppState,
    /// The ApiPay surface's routes without authentication: called in process with the signed-in
    /// user's organization as the caller.
    api: Router,
    templates: minijinja::Environment<'static>,
    connects: cashier::Connects,
}

/// An answer of the in-process API.
#[derive(Debug)]
pub(crate) struct ApiAnswer {
    pub status: StatusCode,
    pub body: Value,
}

impl ApiAnswer {
    pub fn ok(&self) -> bool {
        self.status.is_success()
    }

    /// The answer's message (errors), for people.
    pub fn message(&self) -> String {
        self.body["message"]
            .as_str()
            .unwrap_or("The request failed.")
            .to_owned()
    }

    /// Field errors of a 422, each field's first message: `{field: message}`.
    pub fn field_errors(&self) -> Value {
        let mut out = serde_json::Map::new();
        if let Some(errors) = self.body["errors"].as_object() {
            for (field, messages) in errors {
                let first = messages.get(0).and_then(Value::as_str).unwrap_or("invalid");
                out.insert(field.clone(), Value::String(first.to_owned()));
            }
        }
        Value::Object(out)
    }
}

impl Dashboard {
    /// The dashboard over the running gateway; `api` is the ApiPay surface's routes (relative
    /// to `/api/v1`) without the authentication layers.
    pub fn new(state: AppState, api: Router) -> Dashboard {
        Dashboard {
            inner: Arc::new(Inner {
                state,
                api,
                templates: render::templates(),
                connects: cashier::Connects::default(),
            }),
        }
    }

    pub(crate) fn state(&self) -> &AppState {
        &self.inner.state
    }

    /// Calls the ApiPay surface as organization `org_id`: `uri` is relative to `/api/v1`
    /// (`/invoices?page=2`), `body` a JSON body for `POST`, `PUT` and `PATCH`.
    pub(crate) async fn api(
        &self,
        org_id: i64,
        method: Method,
        uri: &str,
        body: Option<Value>,
    ) -> Result<ApiAnswer, DashError> {
        let mut request = Request::builder().method(method).uri(uri);
        let body = match body {
            Some(body) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(serde_json::to_vec(&body).map_err(DashError::internal)?)
            }
            None => Body::empty(),
        };
        let mut request = request.body(body).map_err(DashError::internal)?;
        // The dashboard acts without an API key: key id 0 (no key has it); what its user may
        // do is the dashboard's to decide, not a key's scopes.
        request.extensions_mut().insert(Caller {
            key_id: 0,
            org_id,
            scopes: crate::domain::Scopes::ALL,
        });
        let response = self
            .inner
            .api
            .clone()
            .oneshot(request)
            .await
            .map_err(|e| DashError::internal(anyhow::anyhow!("{e}")))?;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 16 * 1024 * 1024)
            .await
            .map_err(DashError::internal)?;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        Ok(ApiAnswer { status, body })
    }

    /// [`Dashboard::api`] for a read that must succeed: a 404 is the dashboard's 404.
    pub(crate) async fn api_get(&self, org_id: i64, uri: &str) -> Result<Value, DashError> {
        let answer = self.api(org_id, Method::GET, uri, None).await?;
        match answer.status {
            s if s.is_success() => Ok(answer.body),
            StatusCode::NOT_FOUND => Err(DashError::NotFound),
            s => Err(DashError::internal(anyhow::anyhow!(
                "GET {uri} answered {s}: {}",
                answer.message()
            ))),
        }
    }
}

/// The dashboard's routes, to be nested at [`PREFIX`].
pub fn routes(dashboard: Dashboard) -> Router {
    let signed_in = Router::new()
        .merge(overview::routes())
        .merge(invoices::routes())
        .merge(subscriptions::routes())
        .merge(catalog::routes())
        .merge(webhooks::routes())
        .merge(keys::routes())
        .merge(cashier::routes())
        .merge(sandbox::routes())
        .merge(mode::routes())
        .merge(team::routes())
        .merge(audit::routes())
        .merge(auth::signed_in_routes())
        .merge(two_factor::signed_in_routes())
        .route_layer(from_fn_with_state(dashboard.clone(), auth::require_session));
    Router::new()
        .merge(auth::public_routes())
        .merge(two_factor::public_routes())
        .route("/assets/style.css", get(render::style))
        .route("/assets/app.js", get(render::script))
        .merge(signed_in)
        .fallback(render::not_found)
        .with_state(dashboard)
        .layer(from_fn(security_headers))
}

/// `/dashboard/` itself (nesting serves the overview at `/dashboard`): merged at the root.
pub fn root_route(dashboard: Dashboard) -> Router {
    Router::new()
        .route("/dashboard/", get(overview::overview))
        .route_layer(from_fn_with_state(dashboard.clone(), auth::require_session))
        .with_state(dashboard)
        .layer(from_fn(security_headers))
}

/// Headers on every dashboard answer: the CSP, no framing, no sniffing, no caching of pages.
async fn security_headers(request: Request, next: axum::middleware::Next) -> Response {
    let is_asset = request.uri().path().contains("/assets/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    // Pages are never cached; an answer that says how it may be cached (assets, catalog
    // images) keeps its own rule.
    if !is_asset && !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// An id in a dashboard path: anything but a positive integer is not found, as in the API.
pub(crate) fn path_id(id: &str) -> Result<i64, DashError> {
    crate::api::extract::parse_id(id).ok_or(DashError::NotFound)
}

/// The `page` query parameter: 1 when absent or unreadable.
pub(crate) fn page_of(query: &std::collections::HashMap<String, String>) -> u32 {
    query
        .get("page")
        .and_then(|p| p.parse::<u32>().ok())
        .unwrap_or(1)
        .max(1)
}

/// The form's fields `names` that are not blank, trimmed, as a JSON body's strings (the API
/// reads numbers from strings and names the field when it cannot).
pub(crate) fn json_fields(
    form: &std::collections::HashMap<String, String>,
    names: &[&str],
) -> serde_json::Map<String, Value> {
    names
        .iter()
        .filter_map(|name| {
            let v = form
                .get(*name)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())?;
            Some(((*name).to_owned(), Value::String(v.to_owned())))
        })
        .collect()
}

/// The query string of `keys` of `query` that are not blank, trimmed.
pub(crate) fn query_of(query: &std::collections::HashMap<String, String>, keys: &[&str]) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for key in keys {
        if let Some(v) = query.get(*key).map(|v| v.trim()).filter(|v| !v.is_empty()) {
            out.append_pair(key, v);
        }
    }
    out.finish()
}

/// A redirect after a successful form (303, so the browser follows with `GET`).
pub(crate) fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_owned())]).into_response()
}
