//! Which scope each API route needs, and the middleware that refuses a key without it.
//!
//! The tables below are the one place a route's scope is written: [`APIPAY`] for `/api/v1`
//! (ApiPay's routes and Kassa's webhooks), [`XPAYMENT`] for xPayment's (with its webhook
//! simulator). [`require_scope`] runs right after authentication ([`super::protect`] puts it
//! there) and looks the request's matched route pattern up in its surface's table: a key
//! without the scope gets 403 in the surface's format, naming the scope, before the rate limit,
//! idempotency or the handler see the request, so a refused request changes nothing. A route
//! missing from the table is refused as well (and logged as the bug it is): a new route is
//! closed until it is given a scope. The OpenAPI document lists each operation's scope from
//! the same tables (`openapi::add_conventions`), and a test walks the document.
//!
//! Choices: reading invoices includes their stats, status checks (`POST
//! /invoices/status/check` changes nothing), QR images and static-QR payments; a subscription's
//! invoices are read with `subscriptions:read`; the sandbox payer's helpers and the sandbox
//! clock's advance need `invoices:write` (they move invoices), its reading `invoices:read`; the
//! webhook simulator sends events, so it needs `webhooks:write`.

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::auth::Caller;
use super::error::{ApiError, ErrorFormat};
use crate::domain::{Resource, Scope};

/// One route's requirement: its method, its pattern relative to the surface's base, the scope.
pub type RouteScope = (Method, &'static str, Scope);

/// What a surface's routes need; see the module docs.
#[derive(Debug, Clone, Copy)]
pub struct ScopeTable {
    pub format: ErrorFormat,
    pub routes: &'static [RouteScope],
}

/// Where the surfaces are mounted (`crate::app`): a matched pattern is one of these followed
/// by a pattern of the table.
const MOUNTS: [&str; 3] = ["/api/v1", "/v1", ""];

use Resource::{Catalog, Invoices, Refunds, Subscriptions, Webhooks};

const fn r(resource: Resource) -> Scope {
    Scope::read(resource)
}

const fn w(resource: Resource) -> Scope {
    Scope::write(resource)
}

/// ApiPay's routes and Kassa's webhook endpoints, relative to `/api/v1`.
pub const APIPAY: ScopeTable = ScopeTable {
    format: ErrorFormat::ApiPay,
    routes: &[
        (Method::POST, "/invoices", w(Invoices)),
        (Method::GET, "/invoices", r(Invoices)),
        (Method::GET, "/invoices/stats", r(Invoices)),
        (Method::POST, "/invoices/status/check", r(Invoices)),
        (Method::GET, "/invoices/{id}", r(Invoices)),
        (Method::POST, "/invoices/{id}/cancel", w(Invoices)),
        (Method::POST, "/invoices/{id}/refund", w(Refunds)),
        (Method::GET, "/invoices/{id}/refunds", r(Refunds)),
        (Method::GET, "/refunds", r(Refunds)),
        (Method::GET, "/refunds/{id}", r(Refunds)),
        (Method::POST, "/subscriptions", w(Subscriptions)),
        (Method::GET, "/subscriptions", r(Subscriptions)),
        (Method::GET, "/subscriptions/{id}", r(Subscriptions)),
        (Method::PUT, "/subscriptions/{id}", w(Subscriptions)),
        (Method::POST, "/subscriptions/{id}/pause", w(Subscriptions)),
        (Method::POST, "/subscriptions/{id}/resume", w(Subscriptions)),
        (Method::POST, "/subscriptions/{id}/cancel", w(Subscriptions)),
        (
            Method::GET,
            "/subscriptions/{id}/invoices",
            r(Subscriptions),
        ),
        (Method::GET, "/catalog", r(Catalog)),
        (Method::POST, "/catalog", w(Catalog)),
        (Method::GET, "/catalog/units", r(Catalog)),
        (Method::POST, "/catalog/upload-image", w(Catalog)),
        (Method::GET, "/catalog/images/{file}", r(Catalog)),
        (Method::PATCH, "/catalog/{id}", w(Catalog)),
        (Method::DELETE, "/catalog/{id}", w(Catalog)),
        (Method::POST, "/sandbox/invoices/{id}/pay", w(Invoices)),
        (Method::POST, "/sandbox/invoices/{id}/decline", w(Invoices)),
        (Method::POST, "/sandbox/invoices/{id}/expire", w(Invoices)),
        (Method::GET, "/sandbox/clock", r(Invoices)),
        (Method::POST, "/sandbox/clock/advance", w(Invoices)),
        (Method::POST, "/webhooks", w(Webhooks)),
        (Method::GET, "/webhooks", r(Webhooks)),
        (Method::GET, "/webhooks/{id}", r(Webhooks)),
        (Method::PATCH, "/webhooks/{id}", w(Webhooks)),
        (Method::PUT, "/webhooks/{id}", w(Webhooks)),
        (Method::DELETE, "/webhooks/{id}", w(Webhooks)),
        (Method::POST, "/webhooks/{id}/rotate-secret", w(Webhooks)),
        (Method::POST, "/webhooks/{id}/test", w(Webhooks)),
        (Method::GET, "/webhooks/{id}/deliveries", r(Webhooks)),
        (
            Method::POST,
            "/webhooks/{id}/deliveries/{delivery}/redeliver",
            w(Webhooks),
        ),
    ],
};

/// xPayment's routes and its webhook simulator, relative to `/v1` (and the root).
pub const XPAYMENT: ScopeTable = ScopeTable {
    format: ErrorFormat::XPayment,
    routes: &[
        (Method::POST, "/payments", w(Invoices)),
        (Method::GET, "/payments", r(Invoices)),
        (Method::POST, "/payments/link", w(Invoices)),
        (Method::GET, "/payments/{payment_id}", r(Invoices)),
        (Method::POST, "/payments/{payment_id}/cancel", w(Invoices)),
        (Method::POST, "/payments/{payment_id}/refund", w(Refunds)),
        (Method::GET, "/payments/{payment_id}/refunds", r(Refunds)),
        (Method::GET, "/payments/{payment_id}/qr.svg", r(Invoices)),
        (Method::GET, "/payments/{payment_id}/qr.png", r(Invoices)),
        (Method::GET, "/refunds", r(Refunds)),
        (Method::GET, "/refunds/{refund_id}", r(Refunds)),
        (
            Method::GET,
            "/static-qr-payments/{order_number}",
            r(Invoices),
        ),
        (Method::POST, "/webhook-simulate", w(Webhooks)),
        (Method::GET, "/webhook-simulate/subscriptions", r(Webhooks)),
    ],
};

impl ScopeTable {
    /// The scope `method` on the matched pattern `path` (as mounted, e.g.
    /// `/api/v1/invoices/{id}`) needs; `None` for a route the table does not list.
    pub fn required(&self, method: &Method, path: &str) -> Option<Scope> {
        self.row(method, path).map(|(_, _, scope)| *scope)
    }

    fn row(&self, method: &Method, path: &str) -> Option<&'static RouteScope> {
        let routes = self.routes;
        MOUNTS.iter().find_map(|mount| {
            let relative = path.strip_prefix(mount)?;
            routes
                .iter()
                .find(|(m, p, _)| m == method && *p == relative)
        })
    }
}

/// Middleware, right after [`super::auth::authenticate`]: 403 unless the caller's key holds
/// the scope the route needs (see the module docs).
pub async fn require_scope(State(table): State<ScopeTable>, req: Request, next: Next) -> Response {
    let format = table.format;
    let Some(caller) = req.extensions().get::<Caller>().copied() else {
        return ApiError::internal(format, anyhow::anyhow!("scope check before authentication"))
            .into_response();
    };
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let Some(scope) = table.required(req.method(), &path) else {
        return ApiError::internal(
            format,
            anyhow::anyhow!("route {} {path} has no scope", req.method()),
        )
        .into_response();
    };
    if !caller.scopes.allows(scope) {
        tracing::info!(key_id = caller.key_id, %scope, "API key lacks the route's scope");
        return ApiError::missing_scope(format, scope).into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// Every operation of the OpenAPI document (which a test keeps equal to the routes served)
    /// has a scope, and every table row is a documented operation: no stale rows.
    #[test]
    fn every_documented_operation_has_a_scope() {
        let doc = super::super::openapi::document();
        let mut used = HashSet::new();
        for (path, item) in &doc.paths.paths {
            if ["/api/v1/status", "/openapi.json", "/docs"].contains(&path.as_str()) {
                continue;
            }
            let table = if path.starts_with("/api/v1/") {
                APIPAY
            } else {
                XPAYMENT
            };
            let ops = [
                (Method::GET, &item.get),
                (Method::POST, &item.post),
                (Method::PUT, &item.put),
                (Method::PATCH, &item.patch),
                (Method::DELETE, &item.delete),
            ];
            for (m, _) in ops.iter().filter(|(_, op)| op.is_some()) {
                let row = table.row(m, path);
                assert!(row.is_some(), "{m} {path} has no scope");
                used.extend(row.map(|(m, p, _)| (table.format == ErrorFormat::ApiPay, m, *p)));
            }
        }
        for table in [APIPAY, XPAYMENT] {
            for row in table.routes {
                let key = (table.format == ErrorFormat::ApiPay, &row.0, row.1);
                assert!(used.contains(&key), "{} {} is not documented", row.0, row.1);
            }
        }
    }

    #[test]
    fn patterns_are_found_under_each_mount() {
        let scope = APIPAY.required(&Method::POST, "/api/v1/invoices");
        assert_eq!(scope, Some(Scope::write(Resource::Invoices)));
        assert_eq!(APIPAY.required(&Method::DELETE, "/api/v1/invoices"), None);
        assert_eq!(
            XPAYMENT.required(&Method::POST, "/v1/payments/{payment_id}/refund"),
            Some(Scope::write(Resource::Refunds))
        );
        assert_eq!(
            XPAYMENT.required(&Method::GET, "/refunds"),
            Some(Scope::read(Resource::Refunds))
        );
        assert_eq!(XPAYMENT.required(&Method::GET, "/nowhere"), None);
    }
}
