//! Who may open which dashboard route: every route (method and path as the router matched it)
//! needs one [`Permission`], listed here in one table; the session check asks [`required`] and
//! [`Role::may`](crate::domain::Role::may) before any handler runs. A route missing from the
//! table is refused to everyone (and logged as a bug), so forgetting one cannot open it: any
//! test that uses the new route fails until it is listed.

use axum::http::Method;

use crate::domain::Permission;

/// `(method, path under /dashboard, action)`: `GET` also covers `HEAD`.
const ROUTES: &[(&str, &str, Permission)] = &[
    // Reading.
    ("GET", "/", Permission::View),
    ("GET", "/invoices", Permission::View),
    ("GET", "/invoices.csv", Permission::View),
    ("GET", "/invoices/{id}", Permission::View),
    ("GET", "/invoices/{id}/status", Permission::View),
    ("GET", "/invoices/{id}/qr.png", Permission::View),
    ("GET", "/subscriptions", Permission::View),
    ("GET", "/subscriptions/{id}", Permission::View),
    ("GET", "/catalog", Permission::View),
    ("GET", "/catalog/images/{file}", Permission::View),
    ("GET", "/catalog/{id}", Permission::View),
    ("GET", "/webhooks", Permission::View),
    ("GET", "/webhooks/{id}", Permission::View),
    ("GET", "/api-keys", Permission::View),
    ("GET", "/cashier", Permission::View),
    ("GET", "/cashier/step", Permission::View),
    ("GET", "/sandbox", Permission::View),
    ("GET", "/team", Permission::View),
    ("GET", "/audit", Permission::View),
    // Their own account; and which side their pages show (live or the test mode), a choice
    // of the session like the language: it changes no data, so everyone may switch (the first
    // switch makes the organization's test mode, empty, with its sandbox cashier).
    ("POST", "/mode", Permission::OwnAccount),
    ("POST", "/logout", Permission::OwnAccount),
    ("GET", "/password", Permission::OwnAccount),
    ("POST", "/password", Permission::OwnAccount),
    ("GET", "/security", Permission::OwnAccount),
    ("POST", "/security/totp/start", Permission::OwnAccount),
    ("POST", "/security/totp/confirm", Permission::OwnAccount),
    ("POST", "/security/totp/disable", Permission::OwnAccount),
    // The organization's sign-in policy.
    ("POST", "/security/require", Permission::SetSecurityPolicy),
    // Invoices.
    ("GET", "/invoices/new", Permission::CreateInvoice),
    ("POST", "/invoices/new", Permission::CreateInvoice),
    ("POST", "/invoices/{id}/cancel", Permission::CancelInvoice),
    ("POST", "/invoices/{id}/refund", Permission::RefundInvoice),
    (
        "POST",
        "/invoices/{id}/sandbox/{action}",
        Permission::UseSandbox,
    ),
    (
        "POST",
        "/invoices/{id}/deliveries/{endpoint}/{delivery}/redeliver",
        Permission::ManageWebhooks,
    ),
    // Subscriptions.
    ("GET", "/subscriptions/new", Permission::ManageSubscriptions),
    (
        "POST",
        "/subscriptions/new",
        Permission::ManageSubscriptions,
    ),
    (
        "POST",
        "/subscriptions/{id}/pause",
        Permission::ManageSubscriptions,
    ),
    (
        "POST",
        "/subscriptions/{id}/resume",
        Permission::ManageSubscriptions,
    ),
    (
        "POST",
        "/subscriptions/{id}/cancel",
        Permission::ManageSubscriptions,
    ),
    // The catalog.
    ("POST", "/catalog", Permission::ManageCatalog),
    ("POST", "/catalog/{id}", Permission::ManageCatalog),
    ("POST", "/catalog/{id}/delete", Permission::ManageCatalog),
    ("POST", "/catalog/{id}/image", Permission::ManageCatalog),
    (
        "POST",
        "/catalog/{id}/image/delete",
        Permission::ManageCatalog,
    ),
    // Webhooks.
    ("POST", "/webhooks", Permission::ManageWebhooks),
    ("POST", "/webhooks/{id}/rotate", Permission::ManageWebhooks),
    ("POST", "/webhooks/{id}/enable", Permission::ManageWebhooks),
    ("POST", "/webhooks/{id}/disable", Permission::ManageWebhooks),
    ("POST", "/webhooks/{id}/test", Permission::ManageWebhooks),
    ("POST", "/webhooks/{id}/delete", Permission::ManageWebhooks),
    (
        "POST",
        "/webhooks/{id}/deliveries/{delivery}/redeliver",
        Permission::ManageWebhooks,
    ),
    // API keys.
    ("POST", "/api-keys", Permission::ManageApiKeys),
    ("POST", "/api-keys/{id}/revoke", Permission::ManageApiKeys),
    // The cashier.
    ("POST", "/cashier/connect", Permission::ManageCashier),
    ("POST", "/cashier/answer", Permission::ManageCashier),
    // The sandbox.
    ("POST", "/sandbox/clock", Permission::UseSandbox),
    // The team.
    ("POST", "/team/invite", Permission::ManageTeam),
    ("POST", "/team/{id}/role", Permission::ManageTeam),
    ("POST", "/team/{id}/remove", Permission::ManageTeam),
];

/// The action a request to `route` (the matched path, with or without the `/dashboard`
/// prefix) with `method` needs; `None` when the table does not list it.
pub(super) fn required(method: &Method, route: &str) -> Option<Permission> {
    let route = route.strip_prefix(super::PREFIX).unwrap_or(route);
    let route = if route.is_empty() { "/" } else { route };
    let method = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    ROUTES
        .iter()
        .find(|(m, path, _)| *m == method && *path == route)
        .map(|(_, _, action)| *action)
}

/// The actions every page's template may ask about (`can.<action>`), for the signed-in role.
pub(super) fn can(role: crate::domain::Role) -> serde_json::Value {
    Permission::ALL
        .iter()
        .map(|a| (a.as_str().to_owned(), role.may(*a).into()))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_route_is_listed_once() {
        let mut seen = std::collections::HashSet::new();
        for (method, path, _) in ROUTES {
            assert!(["GET", "POST"].contains(method), "{method} {path}");
            assert!(path.starts_with('/'), "{path}");
            assert!(seen.insert((method, path)), "{method} {path} twice");
        }
    }

    #[test]
    fn every_change_needs_more_than_reading() {
        for (method, path, action) in ROUTES {
            if *method == "POST" {
                assert_ne!(*action, Permission::View, "POST {path}");
            }
        }
    }

    #[test]
    fn lookup() {
        assert_eq!(required(&Method::GET, "/dashboard"), Some(Permission::View));
        assert_eq!(
            required(&Method::GET, "/dashboard/"),
            Some(Permission::View)
        );
        assert_eq!(required(&Method::HEAD, "/invoices"), Some(Permission::View));
        assert_eq!(
            required(&Method::POST, "/dashboard/invoices/{id}/refund"),
            Some(Permission::RefundInvoice)
        );
        assert_eq!(required(&Method::POST, "/invoices/{id}"), None);
        assert_eq!(required(&Method::DELETE, "/invoices/{id}"), None);
    }
}
